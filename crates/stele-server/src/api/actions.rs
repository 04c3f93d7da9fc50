//! `/audit_logs/actions`: actions and their immutable schema versions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use stele_core::compatibility::Compatibility;
use stele_core::model::{ActionSummary, Idempotent, IdempotentWrite, SchemaVersion};
use stele_core::schema::{ActorDefinition, SchemaViolation, TargetDefinition};
use stele_core::timestamp::format_millis;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller, JsonBody, ListQuery};
use crate::api::idempotency::written_or_replayed;
use crate::api::idempotency::IdempotencyContext;
use crate::api::wire::{json_bytes, List};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::schemas::{self, SchemaCheck};
use crate::state::AppState;

/// The `actions` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_actions))
        .routes(routes!(create_schema, list_schemas))
        .routes(routes!(check_schema))
}

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
    params(("action" = String, Path, description = "The action to define. Action names are two or more dot-separated segments of lowercase letters, digits, `_` and `-` (like `user.signed_in`), at most 128 characters; other names are refused with 422.")),
    responses((status = 201, description = "A new version was created", body = SchemaResponse),
              (status = 200, description = "Identical to the latest version, which is returned", body = SchemaResponse),
              (status = 422, description = "Invalid action name, definition or JSON Schema")))]
pub async fn create_schema(
    State(state): State<AppState>,
    caller: ApiCaller,
    Activity(activity): Activity,
    IdempotencyContext(idempotency): IdempotencyContext,
    Path(action): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let created_by = format!("api key {}", caller.0.name);
    // The status (201 new, 200 unchanged) and the version number are only known inside
    // the write, so the record is rendered there.
    let write = idempotency.as_ref().map(|pending| IdempotentWrite {
        claim: pending.record(StatusCode::CREATED, Vec::new()),
        // The store needs an answer inside its transaction: a body that cannot be
        // encoded is recorded as the 500 the request itself gets.
        respond: Box::new(
            |outcome: &(SchemaVersion, bool)| match render_created_schema(outcome) {
                Ok((status, body)) => (status.as_u16(), body),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR.as_u16(), Vec::new()),
            },
        ),
    });
    let outcome = state
        .schemas
        .create_version_idempotently(&action, &body, &created_by, write)
        .await?;
    if let Idempotent::Done((version, true)) = &outcome {
        state
            .activity
            .record(
                &activity,
                actions::SCHEMA_VERSION_CREATED,
                vec![ActivityTarget::schema_version(
                    &version.action,
                    version.version,
                )],
            )
            .await?;
    }
    written_or_replayed(outcome, idempotency.as_ref(), |outcome| {
        render_created_schema(&outcome)
    })
}

/// 201 and the new version, or 200 and the unchanged latest one.
fn render_created_schema(
    (version, created): &(SchemaVersion, bool),
) -> Result<(StatusCode, Vec<u8>), ApiError> {
    let status = if *created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        json_bytes(&SchemaResponse::from_version(version.clone()))?,
    ))
}

#[utoipa::path(get, path = "/audit_logs/actions/{action}/schemas", tag = "audit logs",
    params(("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = List<SchemaResponse>), (status = 404, description = "Unknown action"),
              (status = 422, description = "Invalid list parameters (limit, order, cursors)")))]
pub async fn list_schemas(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(action): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<List<SchemaResponse>>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let page = state
        .schemas
        .list_versions(&action, query.numeric_page()?)
        .await?;
    Ok(Json(query.list(page, SchemaResponse::from_version)))
}

#[utoipa::path(get, path = "/audit_logs/actions", tag = "audit logs",
    params(("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = List<ActionResponse>),
              (status = 422, description = "Invalid list parameters (limit, order, cursors)")))]
pub async fn list_actions(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<List<ActionResponse>>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let page = state.schemas.list_actions(query.numeric_page()?).await?;
    Ok(Json(query.list(page, |action: ActionSummary| {
        ActionResponse {
            object: "audit_log_action",
            name: action.name,
            schema: SchemaResponse::from_version(action.latest),
            created_at: format_millis(action.created_at),
            updated_at: format_millis(action.updated_at),
        }
    })))
}

/// One difference between the latest version and the proposed one.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaChangeResponse {
    /// JSON pointer into the definition, with `targets` keyed by type
    /// (`/targets/team/metadata/required`).
    pub pointer: String,
    /// `added`, `removed`, `changed`, or `unchanged` (listed because it makes a change beside it unprovable).
    #[schema(example = "added")]
    pub kind: &'static str,
    /// True unless the change is proven backward compatible.
    pub breaking: bool,
    /// `compatible`, `breaking` (proven to reject some events valid before) or `may_break` (not proven).
    #[schema(example = "compatible")]
    pub compatibility: &'static str,
    pub reason: String,
    /// The value before the change: any JSON value (a schema, an array of types, a string...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>, required = false)]
    pub old: Option<Value>,
    /// The value after the change: any JSON value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>, required = false)]
    pub new: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailingEventResponse {
    pub id: String,
    pub organization_id: String,
    /// The version the event was validated against when it was stored.
    pub version: i64,
    pub received_at: String,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<SchemaViolation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImpactResponse {
    /// How many of the action's most recent stored events were checked (at most `limit`).
    pub checked: usize,
    /// How many of those saving would break: events the latest version accepts and the
    /// proposed version rejects (the same count as the dashboard's review). Zero when the
    /// proposal equals the latest version.
    pub failing: usize,
    /// Checked events the latest version already rejects (stored under an older version,
    /// whose emitters keep validating against it): not affected by saving.
    pub already_failing: usize,
    pub limit: u32,
    /// Up to three of the events counted in `failing`, newest first.
    pub examples: Vec<FailingEventResponse>,
}

/// The dry run of a new schema version.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaCheckResponse {
    #[schema(example = "audit_log_schema_check")]
    pub object: &'static str,
    pub action: String,
    /// The latest existing version; null for an action that does not exist yet.
    pub latest_version: Option<i64>,
    /// Whether saving would create a version (false: identical to the latest).
    pub would_create_version: bool,
    /// The version that would be latest after saving.
    pub version: i64,
    /// `compatible`, `breaking` or `may_break`: the worst of the changes.
    #[schema(example = "compatible")]
    pub verdict: &'static str,
    /// True only when the verdict is `compatible`.
    pub compatible: bool,
    pub changes: Vec<SchemaChangeResponse>,
    pub impact: ImpactResponse,
}

impl SchemaCheckResponse {
    pub fn from_check(check: SchemaCheck) -> Self {
        SchemaCheckResponse {
            object: "audit_log_schema_check",
            action: check.action,
            latest_version: check.latest.as_ref().map(|latest| latest.version),
            would_create_version: check.would_create,
            version: check.resulting_version,
            verdict: check.report.verdict.as_str(),
            compatible: check.report.verdict == Compatibility::Compatible,
            changes: check
                .report
                .changes
                .into_iter()
                .map(|change| SchemaChangeResponse {
                    pointer: change.pointer,
                    kind: change.kind.as_str(),
                    breaking: change.compatibility != Compatibility::Compatible,
                    compatibility: change.compatibility.as_str(),
                    reason: change.reason,
                    old: change.old,
                    new: change.new,
                })
                .collect(),
            impact: ImpactResponse {
                checked: check.impact.checked,
                failing: check.impact.would_fail(),
                already_failing: check.impact.already_failing(),
                limit: schemas::IMPACT_SAMPLE,
                examples: check
                    .impact
                    .would_fail_examples()
                    .iter()
                    .map(|example| FailingEventResponse {
                        id: example.id.clone(),
                        organization_id: example.organization_id.clone(),
                        version: example.version,
                        received_at: format_millis(example.received_at),
                        errors: example.errors.clone(),
                    })
                    .collect(),
            },
        }
    }
}

#[utoipa::path(post, path = "/audit_logs/actions/{action}/schemas/check", tag = "audit logs", request_body = CreateSchemaBody,
    responses((status = 200, description = "What creating this version would do; nothing is stored", body = SchemaCheckResponse),
              (status = 422, description = "Invalid definition or JSON Schema")))]
pub async fn check_schema(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(action): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<SchemaCheckResponse>, ApiError> {
    let check = state.schemas.check_version(&action, &body).await?;
    Ok(Json(SchemaCheckResponse::from_check(check)))
}
