//! Retention settings and audit log configuration of an organization (WorkOS shapes).

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller, JsonBody};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::retention;
use crate::state::AppState;

/// The `retention` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_retention, set_retention))
        .routes(routes!(get_configuration))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionResponse {
    /// `null`: events are kept forever.
    pub retention_period_in_days: Option<i64>,
}

/// What the configuration reports as `retention_period_in_days` when no retention is set
/// (events are kept forever). WorkOS's spec makes the field a required integer, and typed
/// SDK models (PHP `int`, Rust `i64`) fail on `null` while Go, .NET and Kotlin read it as
/// 0 already; 0 is never a valid period (PUT takes 1 to 3650), so it cannot be mistaken
/// for one.
pub const KEEP_FOREVER_DAYS: i64 = 0;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogConfiguration {
    pub organization_id: String,
    /// Days events are kept; `0` when they are kept forever (no retention set).
    pub retention_period_in_days: i64,
    #[schema(example = "active")]
    pub state: &'static str,
    /// Present only when the organization has a log stream: its first stream, in
    /// WorkOS's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<ConfiguredLogStream>,
}

/// WorkOS's `log_stream` object of the audit log configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfiguredLogStream {
    pub id: String,
    /// `Datadog`, `Splunk`, `S3`, `GoogleCloudStorage` or `GenericHttps`.
    #[serde(rename = "type")]
    pub stream_type: &'static str,
    /// `active`, `inactive`, `error` or `invalid`.
    pub state: &'static str,
    pub last_synced_at: Option<String>,
    pub created_at: String,
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs_retention", tag = "organizations",
    responses((status = 200, body = RetentionResponse), (status = 404, description = "Unknown organization")))]
pub async fn get_retention(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<RetentionResponse>, ApiError> {
    let organization = state.organizations.get(&id).await?;
    Ok(Json(RetentionResponse {
        retention_period_in_days: organization.retention_period_in_days,
    }))
}

/// Body: `{"retention_period_in_days": 1..3650 | null}` or
/// `{"retention_period": "1_MONTH".."11_MONTHS" | "1_YEAR".."10_YEARS"}`.
#[utoipa::path(put, path = "/organizations/{id}/audit_logs_retention", tag = "organizations",
    request_body(content = Object, description = "retention_period_in_days (1 to 3650, or null) or retention_period"),
    responses((status = 200, body = RetentionResponse), (status = 404, description = "Unknown organization"),
              (status = 422, description = "Invalid period")))]
pub async fn set_retention(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<RetentionResponse>, ApiError> {
    let days = retention::parse_retention_body(&body)?;
    state.retention.set(&id, days).await?;
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "retention_period_in_days".into(),
        days.map_or(serde_json::Value::String("forever".into()), Into::into),
    );
    state
        .activity
        .record_with(
            &activity,
            actions::RETENTION_UPDATED,
            vec![ActivityTarget::organization(&id)],
            metadata,
        )
        .await?;
    Ok(Json(RetentionResponse {
        retention_period_in_days: days,
    }))
}

#[utoipa::path(get, path = "/organizations/{id}/audit_log_configuration", tag = "organizations",
    responses((status = 200, body = AuditLogConfiguration), (status = 404, description = "Unknown organization")))]
pub async fn get_configuration(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<AuditLogConfiguration>, ApiError> {
    let organization = state.organizations.get(&id).await?;
    let log_stream = state
        .log_streams
        .first(&id)
        .await?
        .map(|stream| ConfiguredLogStream {
            id: stream.id,
            stream_type: stream.stream_type.as_str(),
            state: stream.state.as_str(),
            last_synced_at: stream
                .last_synced_at
                .map(stele_core::timestamp::format_millis),
            created_at: stele_core::timestamp::format_millis(stream.created_at),
        });
    Ok(Json(AuditLogConfiguration {
        organization_id: organization.id.into(),
        retention_period_in_days: organization
            .retention_period_in_days
            .unwrap_or(KEEP_FOREVER_DAYS),
        state: "active",
        log_stream,
    }))
}
