//! `/organizations/{id}/audit_logs/quarantine`: events refused by their schema and kept,
//! listed, accepted (validated again and stored) or discarded.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use stele_core::model::Idempotent;
use stele_core::quarantine::QuarantinedEvent;
use stele_core::schema::SchemaViolation;
use stele_core::timestamp::format_millis;
use stele_core::FieldError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{typed_body, Activity, ApiCaller, ListQuery};
use crate::api::idempotency::{written_or_replayed, IdempotencyContext};
use crate::api::wire::json_bytes;
use crate::services::activity::{actions, ActivityTarget};
use crate::services::quarantine::QuarantineService;
use crate::services::{IdempotencyRecordFor, ServiceError};
use crate::state::AppState;

/// The `quarantine` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_quarantine))
        .routes(routes!(discard_quarantined))
        .routes(routes!(accept_quarantined))
}

/// A quarantined event: the request body exactly as received, the errors it was refused
/// with, and when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinedEventResponse {
    #[schema(example = "audit_log_quarantined_event")]
    pub object: &'static str,
    #[schema(example = "quarantine_01HZX5Q0M9V6Y8T3K2J1H0G9F8")]
    pub id: String,
    pub organization_id: String,
    pub action: String,
    /// The schema version the event named.
    pub version: i64,
    /// The refused request body, as sent.
    #[schema(value_type = Object)]
    pub body: Box<RawValue>,
    /// Every error the event was refused with (`instancePath`, `message`).
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<SchemaViolation>,
    /// The first error: what the dashboard's counts group by.
    pub reason: String,
    pub created_at: String,
    pub expires_at: String,
}

impl QuarantinedEventResponse {
    fn from_entry(entry: QuarantinedEvent, service: &QuarantineService) -> Result<Self, ApiError> {
        let body = String::from_utf8(entry.body)
            .ok()
            .and_then(|text| RawValue::from_string(text).ok())
            .ok_or_else(|| {
                ApiError::from(ServiceError::Corrupt {
                    record: format!("quarantined event {}", entry.id),
                    detail: "the kept body is not JSON".into(),
                })
            })?;
        Ok(Self {
            object: "audit_log_quarantined_event",
            organization_id: entry.organization_id.into(),
            action: entry.action,
            version: entry.version,
            body,
            errors: entry.errors,
            reason: entry.reason,
            created_at: format_millis(entry.created_at),
            expires_at: format_millis(service.expires_at(entry.created_at)),
            id: entry.id,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<QuarantinedEventResponse>,
    pub list_metadata: crate::api::wire::ListMetadata,
}

#[utoipa::path(get, path = "/organizations/{id}/audit_logs/quarantine", tag = "quarantine",
    params(("id" = String, Path, description = "Organization id"),
           ("limit" = Option<u32>, Query), ("before" = Option<String>, Query),
           ("after" = Option<String>, Query), ("order" = Option<String>, Query)),
    responses((status = 200, body = QuarantineList), (status = 404, description = "Unknown organization"),
              (status = 422, description = "Invalid paging parameters")))]
pub async fn list_quarantine(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<QuarantineList>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let page = state.quarantine.list(&id, query.page()).await?;
    // Quarantined bodies are audit data: recorded before they are returned.
    state
        .activity
        .record_with(
            &activity,
            actions::QUARANTINE_LISTED,
            vec![ActivityTarget::organization(&id)],
            Map::from_iter([("returned".to_owned(), Value::from(page.data.len()))]),
        )
        .await?;
    let data = page
        .data
        .into_iter()
        .map(|entry| QuarantinedEventResponse::from_entry(entry, &state.quarantine))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(QuarantineList {
        object: "list",
        data,
        list_metadata: query.list_metadata(page.before, page.after),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineDiscarded {
    #[schema(example = "audit_log_quarantined_event")]
    pub object: &'static str,
    pub id: String,
    pub deleted: bool,
}

#[utoipa::path(delete, path = "/organizations/{id}/audit_logs/quarantine/{quarantine_id}", tag = "quarantine",
    params(("id" = String, Path, description = "Organization id"), ("quarantine_id" = String, Path)),
    responses((status = 200, body = QuarantineDiscarded),
              (status = 404, description = "No such quarantined event in this organization")))]
pub async fn discard_quarantined(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    Path((id, quarantine_id)): Path<(String, String)>,
) -> Result<Json<QuarantineDiscarded>, ApiError> {
    state.quarantine.discard(&id, &quarantine_id).await?;
    state
        .activity
        .record(
            &activity,
            actions::QUARANTINED_EVENT_DISCARDED,
            vec![
                ActivityTarget::quarantined_event(&quarantine_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(Json(QuarantineDiscarded {
        object: "audit_log_quarantined_event",
        id: quarantine_id,
        deleted: true,
    }))
}

/// Body of an accept: the version to validate against (default: the one the event named).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AcceptBody {
    pub version: Option<i64>,
}

/// Create-event's response, with the quarantine entry the event came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineAccepted {
    pub success: bool,
    #[schema(example = "audit_log_event_01GBNJC3MX9ZZJW1FSTF4C5938")]
    pub id: String,
    #[schema(example = "quarantine_01HZX5Q0M9V6Y8T3K2J1H0G9F8")]
    pub quarantine_id: String,
}

#[utoipa::path(post, path = "/organizations/{id}/audit_logs/quarantine/{quarantine_id}/accept", tag = "quarantine",
    params(("id" = String, Path, description = "Organization id"), ("quarantine_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    request_body(content = AcceptBody, description = "Optional; `version` (1 or more) to validate against instead of the version the event named"),
    responses((status = 200, body = QuarantineAccepted, description = "Stored as an event; the entry is removed"),
              (status = 400, description = "Still invalid (invalid_audit_log_event, with `errors` and `quarantine_id`); the entry stays"),
              (status = 404, description = "No such quarantined event in this organization"),
              (status = 422, description = "Malformed body")))]
pub async fn accept_quarantined(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    IdempotencyContext(idempotency): IdempotencyContext,
    Path((id, quarantine_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let version = accept_version(&body)?;
    let response_quarantine_id = quarantine_id.clone();
    let make_record = idempotency.clone().map(|pending| {
        let quarantine_id = quarantine_id.clone();
        Box::new(move |event_id: &str| {
            let body = json_bytes(&QuarantineAccepted {
                success: true,
                id: event_id.to_owned(),
                quarantine_id,
            })?;
            Ok(pending.record(StatusCode::OK, body))
        }) as IdempotencyRecordFor<str>
    });
    let outcome = state
        .quarantine
        .accept(&id, &quarantine_id, version, make_record)
        .await?;
    if let Idempotent::Done(accepted) = &outcome {
        accepted.record_in(&state.activity, &activity, &id).await?;
    }
    written_or_replayed(outcome, idempotency.as_ref(), |accepted| {
        let body = json_bytes(&QuarantineAccepted {
            success: true,
            id: accepted.event.id.into(),
            quarantine_id: response_quarantine_id,
        })?;
        Ok((StatusCode::OK, body))
    })
}

/// The `version` of an accept body; an empty body names none.
fn accept_version(body: &[u8]) -> Result<Option<i64>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::validation(vec![FieldError {
            code: "invalid_json",
            field: "body".into(),
            message: format!("The request body is not valid JSON: {error}."),
        }])
    })?;
    let accept: AcceptBody = typed_body(value)?;
    match accept.version {
        Some(version) if version < 1 => Err(ApiError::validation(vec![FieldError::invalid(
            "version",
            "version must be an integer of 1 or more.",
        )])),
        version => Ok(version),
    }
}
