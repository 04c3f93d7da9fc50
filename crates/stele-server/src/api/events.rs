//! `/audit_logs/events`: creating (and dry-run validating) audit events.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use stele_core::model::{EventQuery, StoredEvent};
use stele_core::pagination::Page;
use stele_core::schema::SchemaViolation;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller, ExactJsonBody, JsonBody, ListQuery};
use crate::api::idempotency::written_or_replayed;
use crate::api::idempotency::IdempotencyContext;
use crate::api::wire::{json_bytes, ListMetadata};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::filters::{check_value_count, parse_bound, repeated};
use crate::services::{IdempotencyRecordFor, ServiceError};
use crate::state::AppState;
use stele_core::FieldError;

/// The `events` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event, search_events))
        .routes(routes!(validate_event))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventCreated {
    pub success: bool,
    #[schema(example = "audit_log_event_01GBNJC3MX9ZZJW1FSTF4C5938")]
    pub id: String,
}

/// Documentation of the create-event body; parsing is `stele_core::event::parse_create_event`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CreateEventBody {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    event: EventBody,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct EventBody {
    #[schema(example = "user.signed_in")]
    action: String,
    /// RFC 3339 date-time with offset.
    occurred_at: String,
    /// Schema version to validate against; omitted, null or 0 means 1.
    version: Option<i64>,
    actor: EntityBody,
    targets: Vec<EntityBody>,
    context: ContextBody,
    /// Up to 50 keys; values are strings (max 500 chars), numbers or booleans.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct EntityBody {
    id: String,
    #[schema(rename = "type")]
    kind: String,
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ContextBody {
    location: String,
    user_agent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationResult {
    pub valid: bool,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<Value>,
}

#[utoipa::path(post, path = "/audit_logs/events", tag = "audit logs", request_body = CreateEventBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 200, body = EventCreated, description = "Stored durably (WorkOS's spec answers 200; `id` is Stele's addition)"),
              (status = 400, description = "The event breaks its schema version (invalid_audit_log_event). The body's `quarantine_id` names the quarantined copy kept of it; when it could not be kept, `quarantine_id` is null and `quarantine_error` ({code: quarantine_full | quarantine_body_too_large | quarantine_organization_unknown, message}) says why"),
              (status = 404, description = "Unknown organization"),
              (status = 422, description = "Malformed request")))]
pub async fn create_event(
    State(state): State<AppState>,
    _caller: ApiCaller,
    IdempotencyContext(idempotency): IdempotencyContext,
    ExactJsonBody { value: body, bytes }: ExactJsonBody,
) -> Result<Response, ApiError> {
    let make_record = idempotency.clone().map(|pending| {
        Box::new(move |id: &str| {
            let body = json_bytes(&EventCreated {
                success: true,
                id: id.to_owned(),
            })?;
            Ok(pending.record(StatusCode::OK, body))
        }) as IdempotencyRecordFor<str>
    });
    let outcome = match state.events.create(&body, make_record).await {
        Ok(outcome) => outcome,
        // A refusal is not recorded for the key (only 2xx are); the quarantine keeps a
        // retried refusal once instead.
        Err(error) => {
            let request_key = idempotency.as_ref().map(|pending| pending.request_key());
            return Err(state
                .quarantine
                .keep_refused(&body, Some(&bytes), request_key, error)
                .await
                .into());
        }
    };
    written_or_replayed(outcome, idempotency.as_ref(), |appended| {
        let body = json_bytes(&EventCreated {
            success: true,
            id: appended.id.into(),
        })?;
        Ok((StatusCode::OK, body))
    })
}

#[utoipa::path(post, path = "/audit_logs/events/validate", tag = "audit logs",
    request_body(content = serde_json::Value, description = "Any JSON document: the answer says whether it is a valid create-event body (shaped as `CreateEventBody`) and why not"),
    responses((status = 200, description = "Whether the event would be accepted; nothing is stored", body = ValidationResult)))]
pub async fn validate_event(
    State(state): State<AppState>,
    _caller: ApiCaller,
    JsonBody(body): JsonBody,
) -> Result<Json<ValidationResult>, ApiError> {
    let to_values = |items: Vec<SchemaViolation>| {
        items
            .into_iter()
            .filter_map(|item| serde_json::to_value(item).ok())
            .collect()
    };
    let errors: Vec<Value> = match state.events.validate(&body).await {
        Ok(_) => Vec::new(),
        Err(ServiceError::InvalidEvent(violations)) => to_values(violations),
        Err(ServiceError::InvalidRequest(errors)) => errors
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect(),
        Err(ServiceError::OrganizationNotFound(id)) => to_values(vec![SchemaViolation::new(
            "/organization_id",
            format!("Organization not found: '{id}'."),
        )]),
        Err(other) => return Err(other.into()),
    };
    Ok(Json(ValidationResult {
        valid: errors.is_empty(),
        errors,
    }))
}

/// A page of stored events: each item is the event exactly as stored (the hashed bytes),
/// which carries `id`, `version`, `sequence` and `received_at` beside the ingested fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    #[schema(example = "list")]
    pub object: &'static str,
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Box<RawValue>>,
    pub list_metadata: ListMetadata,
}

#[utoipa::path(get, path = "/audit_logs/events", tag = "audit logs",
    params(("organization_id" = String, Query, description = "Required"),
           ("actions" = Option<Vec<String>>, Query, description = "Repeatable; also `actions[]`"),
           ("actor_ids" = Option<Vec<String>>, Query), ("actor_names" = Option<Vec<String>>, Query),
           ("target_types" = Option<Vec<String>>, Query), ("target_ids" = Option<Vec<String>>, Query),
           ("range_start" = Option<String>, Query, description = "Inclusive lower bound on occurred_at"),
           ("range_end" = Option<String>, Query, description = "Inclusive upper bound on occurred_at"),
           ("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = EventList), (status = 404, description = "Unknown organization"),
              (status = 422, description = "Invalid filters")))]
pub async fn search_events(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<axum::Json<EventList>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let mut errors = Vec::new();
    let organization_id = query
        .get("organization_id")
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    if organization_id.is_none() {
        errors.push(FieldError::required("organization_id"));
    }
    let filter = search_filter(&query, organization_id.unwrap_or_default(), &mut errors);
    check_value_count("actions", &filter.actions, &mut errors);
    check_value_count("actor_ids", &filter.actor_ids, &mut errors);
    check_value_count("actor_names", &filter.actor_names, &mut errors);
    check_value_count("target_types", &filter.target_types, &mut errors);
    check_value_count("target_ids", &filter.target_ids, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let page = state
        .events
        .search(filter.clone(), query.numeric_page()?)
        .await?;
    // Who read which audit data is itself recorded, before the data is returned.
    state
        .activity
        .record_with(
            &activity,
            actions::EVENTS_SEARCHED,
            vec![ActivityTarget::organization(
                filter.organization_id.as_ref(),
            )],
            search_metadata(&filter, page.data.len()),
        )
        .await?;
    Ok(axum::Json(event_list(&query, page)?))
}

/// The filters of a search request (every parameter but `organization_id` and paging).
pub fn search_filter(
    query: &ListQuery,
    organization_id: String,
    errors: &mut Vec<FieldError>,
) -> EventQuery {
    EventQuery {
        organization_id: organization_id.into(),
        actions: repeated(&query.rest, "actions"),
        actor_ids: repeated(&query.rest, "actor_ids"),
        actor_names: repeated(&query.rest, "actor_names"),
        target_types: repeated(&query.rest, "target_types"),
        target_ids: repeated(&query.rest, "target_ids"),
        occurred_from: parse_bound("range_start", query.get("range_start"), errors),
        occurred_to: parse_bound("range_end", query.get("range_end"), errors),
        up_to_sequence: None,
    }
}

/// What the activity log keeps of a search: its filters (JSON text, cut to 500
/// characters) and how many events it returned.
pub fn search_metadata(filter: &EventQuery, returned: usize) -> serde_json::Map<String, Value> {
    let filters = serde_json::json!({
        "actions": filter.actions,
        "actor_ids": filter.actor_ids,
        "actor_names": filter.actor_names,
        "target_types": filter.target_types,
        "target_ids": filter.target_ids,
    })
    .to_string();
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "filters".into(),
        Value::String(filters.chars().take(500).collect()),
    );
    metadata.insert("returned".into(), Value::from(returned as u64));
    metadata
}

/// A page of stored events as the list envelope, each item its stored bytes.
pub fn event_list(query: &ListQuery, page: Page<StoredEvent>) -> Result<EventList, ApiError> {
    let data = page
        .data
        .into_iter()
        .map(|event| {
            String::from_utf8(event.canonical)
                .ok()
                .and_then(|text| RawValue::from_string(text).ok())
                .ok_or_else(|| {
                    ApiError::from(ServiceError::Corrupt {
                        record: format!("event {} of {}", event.sequence, event.organization_id),
                        detail: "the stored bytes are not JSON".into(),
                    })
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventList {
        object: "list",
        data,
        list_metadata: query.list_metadata(page.before, page.after),
    })
}
