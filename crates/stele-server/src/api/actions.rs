//! `/audit_logs/actions`: actions and their immutable schema versions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use stele_core::schema::{ActorDefinition, TargetDefinition};
use stele_core::timestamp::format_millis;
use stele_store::{ActionSummary, SchemaVersion};
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::api::extract::{ApiCaller, JsonBody, ListQuery};
use crate::api::wire::List;
use crate::services::schemas;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaTargetResponse {
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON Schema for this target type's metadata, as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaActorResponse {
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// One immutable schema version.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaResponse {
    #[schema(example = "audit_log_schema")]
    pub object: &'static str,
    pub version: i64,
    pub targets: Vec<SchemaTargetResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<SchemaActorResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub created_at: String,
}

impl SchemaResponse {
    pub fn from_version(version: SchemaVersion) -> Self {
        let definition = version.definition;
        SchemaResponse {
            object: "audit_log_schema",
            version: version.version,
            targets: definition
                .targets
                .into_iter()
                .map(|TargetDefinition { kind, metadata }| SchemaTargetResponse { kind, metadata })
                .collect(),
            actor: definition
                .actor
                .map(|ActorDefinition { metadata }| SchemaActorResponse { metadata }),
            metadata: definition.metadata,
            created_at: format_millis(version.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResponse {
    #[schema(example = "audit_log_action")]
    pub object: &'static str,
    pub name: String,
    /// The latest schema version.
    pub schema: SchemaResponse,
    pub created_at: String,
    pub updated_at: String,
}

/// Documentation of the create-schema body; parsing is `stele_core::schema::parse_schema_definition`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CreateSchemaBody {
    /// Target types this version declares; each `type` non-empty and unique.
    targets: Vec<SchemaTargetInput>,
    /// `{"metadata": <JSON Schema>}`; `null` or an empty object schema means none.
    #[schema(value_type = Option<Object>)]
    actor: Option<Value>,
    /// JSON Schema (draft-07 unless `$schema` selects 2019-09 or 2020-12) for event metadata.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SchemaTargetInput {
    #[schema(rename = "type")]
    kind: String,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[utoipa::path(post, path = "/audit_logs/actions/{action}/schemas", tag = "audit logs", request_body = CreateSchemaBody,
    responses((status = 201, description = "A new version was created", body = SchemaResponse),
              (status = 200, description = "Identical to the latest version, which is returned", body = SchemaResponse),
              (status = 422, description = "Invalid definition or JSON Schema")))]
pub async fn create_schema(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(action): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let created_by = format!("api key {}", caller.0.name);
    let (version, created) = schemas::create_version(&state, &action, &body, &created_by).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SchemaResponse::from_version(version))).into_response())
}

#[utoipa::path(get, path = "/audit_logs/actions/{action}/schemas", tag = "audit logs",
    params(("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = List<SchemaResponse>), (status = 404, description = "Unknown action")))]
pub async fn list_schemas(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(action): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<List<SchemaResponse>>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let page = schemas::list_versions(&state, &action, query.numeric_page()?).await?;
    Ok(Json(List::from_page(page, SchemaResponse::from_version)))
}

#[utoipa::path(get, path = "/audit_logs/actions", tag = "audit logs",
    params(("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = List<ActionResponse>)))]
pub async fn list_actions(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<List<ActionResponse>>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let page = schemas::list_actions(&state, query.numeric_page()?).await?;
    Ok(Json(List::from_page(page, |action: ActionSummary| {
        ActionResponse {
            object: "audit_log_action",
            name: action.name,
            schema: SchemaResponse::from_version(action.latest),
            created_at: format_millis(action.created_at),
            updated_at: format_millis(action.updated_at),
        }
    })))
}
