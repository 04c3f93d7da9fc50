//! `Idempotency-Key` on every POST.
//!
//! A request whose key already holds a response (same API key, within 24 hours) gets that
//! response replayed if it is the same request (method, path and body bytes), or a 400
//! `idempotency_key_reused` if it is not. Otherwise the handler runs with the key in its
//! request extensions: writes that can (events, organizations) store the response in the
//! same transaction as their effect, so a crash can never leave one without the other and
//! two concurrent requests with one key commit once. Other responses are recorded here
//! afterwards. Only responses of requests that took effect are recorded (Stripe's rule):
//! a 5xx, a 429 or a 4xx refusal changed nothing, so a retry with the same key does the
//! work again ("register the missing version, then retry" succeeds).

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stele_core::idempotency::{request_fingerprint, MAX_KEY_LENGTH};
use stele_core::model::{IdempotencyRecord, Idempotent};
use stele_core::timestamp::{now_millis, UnixMillis};
use stele_core::FieldError;

use crate::api::error::ApiError;
use crate::api::extract::authenticate;
use crate::api::wire::json_response;
use crate::state::AppState;

const HEADER: &str = "idempotency-key";

/// The idempotency key of a request being executed.
#[derive(Debug, Clone)]
pub struct PendingIdempotency {
    scope: String,
    key: String,
    fingerprint: [u8; 32],
    created_at: UnixMillis,
}

impl PendingIdempotency {
    /// A key taken by one item of a batch request, for the caller's `scope`.
    pub fn for_item(scope: &str, key: String, fingerprint: [u8; 32]) -> Self {
        Self {
            scope: scope.to_owned(),
            key,
            fingerprint,
            created_at: now_millis(),
        }
    }

    /// The request's key itself.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The record that makes `status` and `body` this key's response.
    pub fn record(&self, status: StatusCode, body: Vec<u8>) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: self.scope.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint,
            status: status.as_u16(),
            body,
            created_at: self.created_at,
        }
    }

    /// Identifies this request (API key, idempotency key and body fingerprint) where a
    /// refusal is kept rather than recorded: the quarantine keeps a retried refusal once.
    pub fn request_key(&self) -> String {
        let fingerprint: String = self
            .fingerprint
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{}:{}:{fingerprint}", self.scope, self.key)
    }

    /// The response recorded for this key, replayed (or refused as a reuse), if the key
    /// already holds one. Handlers of routes the layer does not look keys up for call this
    /// before answering with a refusal (see `claims_key_with_its_write`).
    pub async fn replayed(&self, state: &AppState) -> Result<Option<Response>, ApiError> {
        Ok(self
            .existing(state)
            .await?
            .map(|existing| self.replay_or_reject(&existing)))
    }

    /// The record this key already holds (whatever request it was recorded for), if any.
    pub async fn existing(&self, state: &AppState) -> Result<Option<IdempotencyRecord>, ApiError> {
        Ok(state
            .idempotency
            .find(&self.scope, &self.key, self.created_at)
            .await?)
    }

    /// The response for a key that turned out to be taken already.
    pub fn replay_or_reject(&self, existing: &IdempotencyRecord) -> Response {
        if existing.fingerprint != self.fingerprint {
            return ApiError::IdempotencyKeyReused.into_response();
        }
        let status = StatusCode::from_u16(existing.status).unwrap_or(StatusCode::OK);
        let mut response = (status, existing.body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        response.extensions_mut().insert(RecordedWithWrite);
        response
    }
}

/// The response to a write that stored its idempotency record in its own transaction:
/// `render`'s status and body when the work was done now, or the first response when the
/// key had already been used.
pub fn written_or_replayed<T>(
    outcome: Idempotent<T>,
    idempotency: Option<&PendingIdempotency>,
    render: impl FnOnce(T) -> Result<(StatusCode, Vec<u8>), ApiError>,
) -> Result<Response, ApiError> {
    Ok(match outcome {
        Idempotent::Done(done) => {
            let (status, body) = render(done)?;
            let mut response = json_response(status, body);
            if idempotency.is_some() {
                response.extensions_mut().insert(RecordedWithWrite);
            }
            response
        }
        Idempotent::AlreadyDone(record) => match idempotency {
            Some(pending) => pending.replay_or_reject(&record),
            // Only a write that carried a record can find the key taken.
            None => ApiError::IdempotencyKeyReused.into_response(),
        },
    })
}

/// Marks a response whose idempotency record is already stored (or which is a replay).
#[derive(Debug, Clone, Copy)]
pub struct RecordedWithWrite;

/// Marks a response that is never recorded for replay because it carries a one-time
/// secret (an Admin Portal link), which the database must hold only as a hash. A retry
/// with the same key gets a new link.
#[derive(Debug, Clone, Copy)]
pub struct NeverRecorded;

pub async fn idempotency_layer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(header) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = header.to_str().ok().map(str::to_owned);
    let (mut parts, body) = request.into_parts();
    // The key is scoped to the caller, and only an authenticated caller learns anything
    // about its key: a request without a valid API key gets its 401 before the key is judged.
    let caller = match authenticate(&parts, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let key = match key {
        Some(key) if !key.is_empty() && key.len() <= MAX_KEY_LENGTH => key,
        _ => {
            return ApiError::validation(vec![FieldError::invalid(
                "Idempotency-Key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters."),
            )])
            .into_response()
        }
    };
    let limit = state.config.body_limit_for(parts.uri.path());
    let bytes = match to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::unreadable_body(&error, limit).into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let pending = PendingIdempotency {
        scope: caller.0.id.clone().into(),
        key,
        fingerprint: request_fingerprint(parts.method.as_str(), path, &bytes),
        created_at: now_millis(),
    };
    let found = if claims_key_with_its_write(parts.uri.path()) {
        Ok(None)
    } else {
        state
            .idempotency
            .find(&pending.scope, &pending.key, pending.created_at)
            .await
    };
    match found {
        Ok(Some(mut existing)) => {
            // A replayed export creation carries a freshly signed link, not the expired one.
            if existing.fingerprint == pending.fingerprint
                && parts.uri.path() == "/audit_logs/exports"
            {
                if let Some(fresh) = crate::api::exports::replayed_export_body(
                    &state,
                    &parts.headers,
                    &existing.body,
                )
                .await
                {
                    existing.body = fresh;
                }
            }
            return pending.replay_or_reject(&existing);
        }
        Ok(None) => {}
        Err(error) => return ApiError::from(error).into_response(),
    }
    parts.extensions.insert(caller);
    parts.extensions.insert(pending.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    // Every refusal (4xx) changes nothing, so it is not recorded; a write that took effect
    // answers 2xx.
    let status = response.status();
    if !status.is_success()
        || response.extensions().get::<RecordedWithWrite>().is_some()
        || response.extensions().get::<NeverRecorded>().is_some()
    {
        return response;
    }
    let (response_parts, response_body) = response.into_parts();
    let Ok(body) = to_bytes(response_body, usize::MAX).await else {
        return ApiError::internal("response body could not be buffered").into_response();
    };
    let ours = pending.record(status, body.to_vec());
    match state.idempotency.save(ours.clone()).await {
        // A concurrent request with the same key recorded its response first: answer as it did.
        Ok(in_force) if in_force != ours => pending.replay_or_reject(&in_force),
        Ok(_) => Response::from_parts(response_parts, Body::from(body)),
        Err(error) => {
            tracing::warn!(%error, "could not record an idempotent response; a retry will run again");
            Response::from_parts(response_parts, Body::from(body))
        }
    }
}

/// Whether the handler of `path` claims the request's key in the same transaction as its
/// write and, before refusing a request, looks the key up itself
/// ([`PendingIdempotency::replayed`]). For such a route the layer does not read the key
/// first: a taken key is found by the write that would take it, which saves a database read
/// on every request of the busiest route (`POST /audit_logs/events`).
fn claims_key_with_its_write(path: &str) -> bool {
    path == "/audit_logs/events"
}

/// The idempotency key of this request, if it carried one (set by the idempotency layer).
pub struct IdempotencyContext(pub Option<PendingIdempotency>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(IdempotencyContext(
            parts.extensions.get::<PendingIdempotency>().cloned(),
        ))
    }
}
