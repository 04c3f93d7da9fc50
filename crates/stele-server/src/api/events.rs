//! `/audit_logs/events`: creating (and dry-run validating) audit events.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use stele_core::idempotency::{request_fingerprint, MAX_KEY_LENGTH};
use stele_core::model::{EventQuery, IdempotencyRecord, Idempotent, OccurredAtKey, StoredEvent};
use stele_core::pagination::Page;
use stele_core::schema::SchemaViolation;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::extract::{Activity, ApiCaller, ExactJsonBody, JsonBody, ListQuery};
use crate::api::idempotency::IdempotencyContext;
use crate::api::idempotency::{written_or_replayed, PendingIdempotency, RecordedWithWrite};
use crate::api::wire::{json_bytes, json_response, ListMetadata};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::events::{BatchItem, BatchItemRequest};
use crate::services::filters::{check_value_count, parse_bound, repeated};
use crate::services::{IdempotencyRecordFor, ServiceError};
use crate::state::AppState;
use stele_core::FieldError;

/// The `events` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event, search_events))
        .routes(routes!(validate_event))
        .routes(routes!(create_event_batch))
}

/// Most items one batch request may hold.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Documentation of the batch body; parsing is [`batch_items`].
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CreateEventBatchBody {
    /// 1 to 1,000 items.
    events: Vec<BatchItemBody>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BatchItemBody {
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    organization_id: String,
    event: EventBody,
    /// 1 to 255 characters. Same key and same item within 24 hours: the first item's id
    /// again, stored once; same key and a different item: this item fails with
    /// `idempotency_key_reused`.
    idempotency_key: Option<String>,
}

// Only documents the values in the OpenAPI document; parsing is `search_order_by`.
/// The order of a search's pages.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SearchOrderBy {
    Sequence,
    OccurredAt,
}

/// What happened to one item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemResult {
    /// The item's position in `events`.
    pub index: usize,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "audit_log_event_01GBNJC3MX9ZZJW1FSTF4C5938")]
    pub id: Option<String>,
    /// Present when `success` is false: the body the single create would have answered
    /// (`code`, `message`, and `errors` for `validation_failed`, `invalid_audit_log_event`
    /// and the other 400s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResults {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<BatchItemResult>,
}

/// The fingerprint an item's key is stored with (beside the single create's response
/// body): the route and the item's RFC 8785 bytes without `idempotency_key`, so
/// formatting and member order do not make a retry a different item.
fn item_fingerprint(item: &serde_json::Map<String, Value>) -> Result<[u8; 32], ApiError> {
    let mut item = item.clone();
    item.remove("idempotency_key");
    let bytes = stele_core::canonical::to_canonical_bytes(&item)
        .map_err(|error| ApiError::internal(format!("encoding a batch item: {error}")))?;
    Ok(request_fingerprint(
        "POST",
        crate::config::BATCH_INGEST_PATH,
        &bytes,
    ))
}

/// A batch item as split from the request: the item and, when it has an idempotency key,
/// that key (whose record must carry the item's fingerprint for a replay, and under which
/// a schema refusal of it is quarantined once).
struct ParsedItem {
    item: BatchItem,
    key: Option<PendingIdempotency>,
}

/// Splits a batch body into its items, each with the fingerprint its key's record must
/// carry for a replay (when it has a key): the request's own shape (an `events` array of 1 to
/// [`MAX_BATCH_ITEMS`]) is checked first and refuses the whole request; each item's
/// `idempotency_key` is checked on its own. An item without a key, in a request that has
/// an `Idempotency-Key` header, is keyed by the header's key and its index, so two
/// concurrent requests with one header key store each item once.
fn batch_items(
    body: Value,
    caller: &ApiCaller,
    request_key: Option<&PendingIdempotency>,
) -> Result<Vec<ParsedItem>, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::validation(vec![FieldError::invalid(
            "body",
            "The body must be an object with an `events` array.",
        )]));
    };
    let items = match body.remove("events") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            return Err(ApiError::validation(vec![FieldError::required("events")]))
        }
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::invalid(
                "events",
                "events must be an array.",
            )]))
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::validation(vec![FieldError::invalid(
            "events",
            format!(
                "events must hold 1 to {MAX_BATCH_ITEMS} items; it holds {}.",
                items.len()
            ),
        )]));
    }
    let scope: String = caller.0.id.clone().into();
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(item) = item else {
                let refusal = ServiceError::InvalidRequest(vec![FieldError::invalid(
                    "body",
                    "Each item of events must be an object.",
                )]);
                return Ok(ParsedItem::refused(refusal));
            };
            let key = match item.get("idempotency_key") {
                None | Some(Value::Null) => {
                    request_key.map(|pending| format!("{}\u{1f}batch item {index}", pending.key()))
                }
                Some(Value::String(key)) if !key.is_empty() && key.len() <= MAX_KEY_LENGTH => {
                    Some(key.clone())
                }
                Some(_) => {
                    let refusal = ServiceError::InvalidRequest(vec![FieldError::invalid(
                        "idempotency_key",
                        format!(
                            "idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters."
                        ),
                    )]);
                    return Ok(ParsedItem::refused(refusal));
                }
            };
            let Some(key) = key else {
                return Ok(ParsedItem {
                    item: Ok(BatchItemRequest {
                        body: Value::Object(item),
                        idempotency: None,
                    }),
                    key: None,
                });
            };
            let pending = PendingIdempotency::for_item(&scope, key, item_fingerprint(&item)?);
            let key = pending.clone();
            let idempotency = Box::new(move |id: &str| {
                let body = json_bytes(&EventCreated {
                    success: true,
                    id: id.to_owned(),
                })?;
                Ok(pending.record(StatusCode::CREATED, body))
            }) as IdempotencyRecordFor<str>;
            Ok(ParsedItem {
                item: Ok(BatchItemRequest {
                    body: Value::Object(item),
                    idempotency: Some(idempotency),
                }),
                key: Some(key),
            })
        })
        .collect()
}

impl ParsedItem {
    fn refused(refusal: ServiceError) -> Self {
        Self {
            item: Err(refusal),
            key: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventCreated {
    pub success: bool,
    #[schema(example = "audit_log_event_01GBNJC3MX9ZZJW1FSTF4C5938")]
    pub id: String,
}

#[utoipa::path(post, path = "/audit_logs/events/batch", tag = "audit logs", request_body = CreateEventBatchBody,
    description = "Creates up to 1,000 events (and at most `--batch-body-limit-bytes`, 16 MiB by default). \
Each item is validated and stored on its own, with the rules of `POST /audit_logs/events`: \
one refused item never holds back the others. Every accepted item is durable, in one commit, \
when the response is sent. With `Idempotency-Key`, an item without its own \
`idempotency_key` is keyed by the header's key and its position.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Keys each item that has no idempotency_key of its own, by position")),
    responses((status = 200, description = "One result per item, in order", body = BatchResults),
              (status = 400, description = "The Idempotency-Key was used with another request (idempotency_key_reused)"),
              (status = 413, description = "The body exceeds --batch-body-limit-bytes (payload_too_large)"),
              (status = 422, description = "The body is not an object with an `events` array of 1 to 1,000 items")))]
pub async fn create_event_batch(
    State(state): State<AppState>,
    caller: ApiCaller,
    IdempotencyContext(idempotency): IdempotencyContext,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let parsed = batch_items(body, &caller, idempotency.as_ref())?;
    let mut items = Vec::with_capacity(parsed.len());
    let mut keys = Vec::with_capacity(parsed.len());
    // What the quarantine keeps of an item its schema refuses: the item as a create-event
    // body, once per item key (a retried refusal is not kept twice, as on the single
    // endpoint).
    let mut bodies = Vec::with_capacity(parsed.len());
    for ParsedItem { item, key } in parsed {
        bodies.push(item.as_ref().ok().map(|request| request.body.clone()));
        keys.push(key);
        items.push(item);
    }
    let outcomes = state.events.create_batch(items).await?;
    let mut data = Vec::with_capacity(outcomes.len());
    for (index, ((outcome, key), body)) in outcomes.into_iter().zip(keys).zip(bodies).enumerate() {
        let fingerprint = key.as_ref().map(PendingIdempotency::fingerprint);
        let id = match outcome {
            Ok(Idempotent::Done(appended)) => Ok(String::from(appended.id)),
            Ok(Idempotent::AlreadyDone(record)) => replayed_item_id(&record, fingerprint),
            Err(refusal) => {
                // A key that already holds a response replays it, or refuses this other
                // item as a reuse, before any refusal of it (as on the single endpoint):
                // a refused item is never quarantined under a key that stored an event.
                // The batch has committed: a lookup that fails fails this item only. A
                // 5xx for the whole request would have the client send again items that
                // are already stored.
                let existing = match &key {
                    Some(key) => key.existing(&state).await,
                    None => Ok(None),
                };
                match (existing, body) {
                    (Err(error), _) => Err(error),
                    (Ok(Some(record)), _) => replayed_item_id(&record, fingerprint),
                    (Ok(None), Some(body)) => {
                        let request_key = key.as_ref().map(PendingIdempotency::request_key);
                        Err(ApiError::from(
                            state
                                .quarantine
                                .keep_refused(&body, None, request_key, refusal)
                                .await,
                        ))
                    }
                    (Ok(None), None) => Err(ApiError::from(refusal)),
                }
            }
        };
        data.push(match id {
            Ok(id) => BatchItemResult {
                index,
                success: true,
                id: Some(id),
                error: None,
            },
            Err(error) => BatchItemResult {
                index,
                success: false,
                id: None,
                error: Some(error.status_and_body().1),
            },
        });
    }
    let body = json_bytes(&BatchResults {
        object: "list",
        data,
    })?;
    let mut response = json_response(StatusCode::OK, body);
    // Each item stored its own key's record with it; the request as a whole records
    // nothing, so a retry with the same header key redoes only the refused items.
    response.extensions_mut().insert(RecordedWithWrite);
    Ok(response)
}

/// The id a batch item's key already stands for, if the record is this same item's.
fn replayed_item_id(
    record: &IdempotencyRecord,
    fingerprint: Option<[u8; 32]>,
) -> Result<String, ApiError> {
    if fingerprint != Some(record.fingerprint) {
        return Err(ApiError::IdempotencyKeyReused);
    }
    serde_json::from_slice::<Value>(&record.body)
        .ok()
        .and_then(|body| body.get("id").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| ApiError::internal("a batch item's idempotency record has no event id"))
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
            // The idempotency layer left the key for this handler to find (the append
            // claims it): a key that already holds a response replays it instead of this
            // refusal (say, the organization was deleted since the first request).
            if let Some(pending) = &idempotency {
                if let Some(replayed) = pending.replayed(&state).await? {
                    return Ok(replayed);
                }
            }
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
           ("order" = Option<String>, Query),
           ("order_by" = inline(Option<SearchOrderBy>), Query, description = "`sequence` (the default: the order events were stored in) or `occurred_at` (ties broken by sequence; a time range's page is then read from the time index without sorting the whole range). Cursors of one order are refused by the other")),
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
    let by_occurred_at = search_order_by(&query, &mut errors);
    check_value_count("actions", &filter.actions, &mut errors);
    check_value_count("actor_ids", &filter.actor_ids, &mut errors);
    check_value_count("actor_names", &filter.actor_names, &mut errors);
    check_value_count("target_types", &filter.target_types, &mut errors);
    check_value_count("target_ids", &filter.target_ids, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let page = if by_occurred_at {
        state
            .events
            .search_by_occurred_at(filter.clone(), query.keyed_page::<OccurredAtKey>()?)
            .await?
    } else {
        state
            .events
            .search(filter.clone(), query.numeric_page()?)
            .await?
    };
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

/// Whether a search request asks for pages ordered by `occurred_at` (`order_by`) rather than
/// by sequence, the default.
pub fn search_order_by(query: &ListQuery, errors: &mut Vec<FieldError>) -> bool {
    match query.get("order_by") {
        None | Some("sequence") => false,
        Some("occurred_at") => true,
        Some(_) => {
            errors.push(FieldError::invalid(
                "order_by",
                "order_by must be 'sequence' or 'occurred_at'.",
            ));
            false
        }
    }
}

/// The filters of a search request (every parameter but `organization_id` and paging).
pub fn search_filter(
    query: &ListQuery,
    organization_id: String,
    errors: &mut Vec<FieldError>,
) -> EventQuery {
    let occurred_from = parse_bound("range_start", query.get("range_start"), errors);
    let occurred_to = parse_bound("range_end", query.get("range_end"), errors);
    // An inverted range can match nothing: most likely the two were swapped.
    if let (Some(from), Some(to)) = (occurred_from, occurred_to) {
        if from > to {
            errors.push(FieldError::invalid(
                "range_start",
                "range_start must not be after range_end.",
            ));
        }
    }
    EventQuery {
        organization_id: organization_id.into(),
        actions: repeated(&query.rest, "actions"),
        actor_ids: repeated(&query.rest, "actor_ids"),
        actor_names: repeated(&query.rest, "actor_names"),
        target_types: repeated(&query.rest, "target_types"),
        target_ids: repeated(&query.rest, "target_ids"),
        occurred_from,
        occurred_to,
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
