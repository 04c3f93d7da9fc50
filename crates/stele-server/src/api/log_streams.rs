//! Log streams of an organization (Stele extension; names fixed by the Round 2 contract):
//! create, list, get, delete, replay from a sequence, and the operator actions test,
//! pause and resume. Secrets are write-only: no response carries them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stele_core::log_stream::LogStream;
use stele_core::timestamp::format_millis;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller, JsonBody};
use crate::api::wire::{List, ListMetadata};
use crate::services::activity::{actions, ActivityTarget};
use crate::state::AppState;

/// The `log_streams` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_log_stream, list_log_streams))
        .routes(routes!(get_log_stream, delete_log_stream))
        .routes(routes!(replay_log_stream))
        .routes(routes!(test_log_stream))
        .routes(routes!(pause_log_stream))
        .routes(routes!(resume_log_stream))
}

/// A log stream. Its secrets (tokens, API keys, HMAC secrets, custom header values) are
/// never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogStreamResponse {
    #[schema(example = "audit_log_stream")]
    pub object: &'static str,
    pub id: String,
    pub organization_id: String,
    /// `Datadog`, `Splunk`, `S3`, `GoogleCloudStorage` or `GenericHttps`.
    #[serde(rename = "type")]
    #[schema(example = "GenericHttps")]
    pub stream_type: &'static str,
    /// `active`, `inactive` (paused), `error` (retrying) or `invalid` (credentials refused).
    #[schema(example = "active")]
    pub state: &'static str,
    /// The last sequence the destination acknowledged (0: none yet).
    pub delivered_sequence: i64,
    pub last_synced_at: Option<String>,
    pub last_error: Option<String>,
    /// Events delivered since the stream was created (replays count again).
    pub delivered_events: i64,
    /// The destination settings that are not secret.
    #[schema(value_type = Object)]
    pub destination: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

impl LogStreamResponse {
    pub fn from_stream(stream: LogStream) -> Self {
        Self {
            object: "audit_log_stream",
            id: stream.id,
            organization_id: stream.organization_id.into_string(),
            stream_type: stream.stream_type.as_str(),
            state: stream.state.as_str(),
            delivered_sequence: stream.delivered_sequence,
            last_synced_at: stream.last_synced_at.map(format_millis),
            last_error: stream.last_error,
            delivered_events: stream.delivered_events,
            destination: stream.settings,
            created_at: format_millis(stream.created_at),
            updated_at: format_millis(stream.updated_at),
        }
    }
}

/// What a test delivery found.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogStreamTestResponse {
    #[schema(example = "audit_log_stream_test")]
    pub object: &'static str,
    pub success: bool,
    pub message: String,
}

/// Body: `{"type", ...destination settings}` (see docs/log-streams.md).
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/log_streams", tag = "log streams",
    request_body(content = Object, description = "type (Datadog, Splunk, S3, GoogleCloudStorage, GenericHttps) and that destination's settings"),
    responses((status = 201, body = LogStreamResponse),
              (status = 400, description = "destination_not_allowed, stream_secrets_key_not_configured or log_stream_limit_reached"),
              (status = 404, description = "Unknown organization"),
              (status = 422, description = "Missing or invalid settings")))]
pub async fn create_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let stream = state.log_streams.create(&id, &body).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_CREATED,
            vec![
                ActivityTarget::log_stream(&stream.id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LogStreamResponse::from_stream(stream)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/log_streams", tag = "log streams",
    responses((status = 200, body = List<LogStreamResponse>), (status = 404, description = "Unknown organization")))]
pub async fn list_log_streams(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<List<LogStreamResponse>>, ApiError> {
    let streams = state.log_streams.list(&id).await?;
    Ok(Json(List {
        object: "list",
        data: streams
            .into_iter()
            .map(LogStreamResponse::from_stream)
            .collect(),
        list_metadata: ListMetadata {
            before: None,
            after: None,
        },
    }))
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}", tag = "log streams",
    responses((status = 200, body = LogStreamResponse), (status = 404, description = "Unknown organization or stream")))]
pub async fn get_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path((id, stream_id)): Path<(String, String)>,
) -> Result<Json<LogStreamResponse>, ApiError> {
    Ok(Json(LogStreamResponse::from_stream(
        state.log_streams.get(&id, &stream_id).await?,
    )))
}

#[utoipa::path(delete, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}", tag = "log streams",
    responses((status = 204, description = "Deleted"), (status = 404, description = "Unknown organization or stream")))]
pub async fn delete_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, stream_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.log_streams.delete(&id, &stream_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_DELETED,
            vec![
                ActivityTarget::log_stream(&stream_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body: `{"from_sequence": n}` (1 to the newest sequence + 1): delivery continues from
/// event `n`, backwards (deliver again) or forwards (skip).
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}/replay", tag = "log streams",
    request_body(content = Object, description = "{\"from_sequence\": n}"),
    responses((status = 200, body = LogStreamResponse), (status = 404, description = "Unknown organization or stream"),
              (status = 422, description = "from_sequence missing or out of range")))]
pub async fn replay_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, stream_id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<LogStreamResponse>, ApiError> {
    let stream = state.log_streams.replay(&id, &stream_id, &body).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_REPLAYED,
            vec![
                ActivityTarget::log_stream(&stream_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(Json(LogStreamResponse::from_stream(stream)))
}

/// Sends a test delivery (no events) and reports whether the destination accepted it;
/// the stream does not change.
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}/test", tag = "log streams",
    responses((status = 200, body = LogStreamTestResponse), (status = 404, description = "Unknown organization or stream")))]
pub async fn test_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, stream_id)): Path<(String, String)>,
) -> Result<Json<LogStreamTestResponse>, ApiError> {
    let outcome = state.log_streams.test(&id, &stream_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_TESTED,
            vec![
                ActivityTarget::log_stream(&stream_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(Json(LogStreamTestResponse {
        object: "audit_log_stream_test",
        success: outcome.success,
        message: outcome.message,
    }))
}

/// Pauses delivery (state `inactive`).
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}/pause", tag = "log streams",
    responses((status = 200, body = LogStreamResponse), (status = 404, description = "Unknown organization or stream")))]
pub async fn pause_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, stream_id)): Path<(String, String)>,
) -> Result<Json<LogStreamResponse>, ApiError> {
    let stream = state.log_streams.pause(&id, &stream_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_PAUSED,
            vec![
                ActivityTarget::log_stream(&stream_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(Json(LogStreamResponse::from_stream(stream)))
}

/// Resumes delivery at once (state `active`), also after `error` or `invalid`.
#[utoipa::path(post, path = "/organizations/{id}/audit_logs/log_streams/{stream_id}/resume", tag = "log streams",
    responses((status = 200, body = LogStreamResponse), (status = 404, description = "Unknown organization or stream")))]
pub async fn resume_log_stream(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, stream_id)): Path<(String, String)>,
) -> Result<Json<LogStreamResponse>, ApiError> {
    let stream = state.log_streams.resume(&id, &stream_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::LOG_STREAM_RESUMED,
            vec![
                ActivityTarget::log_stream(&stream_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(Json(LogStreamResponse::from_stream(stream)))
}
