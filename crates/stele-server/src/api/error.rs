//! The one API error type: it maps each error to its [`ErrorCode`] (whose table gives the
//! HTTP status) and WorkOS-shaped body, and logs internals while the client sees only the
//! request id to quote.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_core::FieldError;
use stele_store::StoreError;

use crate::error_code::ErrorCode;
use crate::services::{QuarantineNote, ServiceError};

#[derive(Debug)]
pub enum ApiError {
    Service(ServiceError),
    Unauthorized,
    PayloadTooLarge {
        limit: usize,
    },
    RouteNotFound {
        method: String,
        path: String,
    },
    MethodNotAllowed {
        method: String,
        path: String,
    },
    IdempotencyKeyReused,
    /// The request body did not arrive within the body timeout.
    BodyTimeout,
    /// An error answered in plain text by a layer or extractor outside the API's handlers,
    /// with its status and text.
    Plain {
        status: axum::http::StatusCode,
        text: String,
    },
    /// The caller's rate limit is used up until the current window ends.
    RateLimited {
        retry_after_secs: u64,
    },
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::Service(error)
    }
}

/// Whether reading a request body failed because it did not arrive within the body
/// timeout (somewhere in the error's chain of sources).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = error.source();
    }
    false
}

impl ApiError {
    /// The error for a request body that could not be read (`limit` is the body limit).
    pub fn unreadable_body(error: &(dyn std::error::Error + 'static), limit: usize) -> Self {
        if is_body_timeout(error) {
            ApiError::BodyTimeout
        } else {
            ApiError::PayloadTooLarge { limit }
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        ApiError::Service(ServiceError::InvalidRequest(errors))
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Service(ServiceError::Internal(detail.into()))
    }

    /// The code, the message when the code has no fixed one, and the `errors` list.
    fn parts(self) -> (ErrorCode, Option<String>, Value) {
        let none = || Value::Array(Vec::new());
        match self {
            ApiError::Service(ServiceError::InvalidRequest(errors)) => {
                (ErrorCode::ValidationFailed, None, json!(errors))
            }
            ApiError::Service(
                ServiceError::InvalidEvent(errors)
                | ServiceError::RefusedEvent {
                    violations: errors, ..
                },
            ) => (ErrorCode::InvalidAuditLogEvent, None, json!(errors)),
            ApiError::Service(
                error @ (ServiceError::OrganizationNotFound(_)
                | ServiceError::ActionNotFound(_)
                | ServiceError::NotFound { .. }),
            ) => (ErrorCode::NotFound, Some(error.to_string()), none()),
            ApiError::Service(
                ServiceError::Forbidden { code, message }
                | ServiceError::Rejected { code, message },
            ) => (code, Some(message), none()),
            ApiError::Service(ServiceError::Gone(message)) => {
                (ErrorCode::Gone, Some(message), none())
            }
            ApiError::Service(ServiceError::Store(error)) => {
                tracing::error!(%error, "request failed on the store");
                let code = match error {
                    StoreError::Unavailable => ErrorCode::Unavailable,
                    _ => ErrorCode::Internal,
                };
                (code, None, none())
            }
            ApiError::Service(
                error @ (ServiceError::Internal(_) | ServiceError::Corrupt { .. }),
            ) => {
                tracing::error!(%error, "request failed");
                (ErrorCode::Internal, None, none())
            }
            ApiError::Unauthorized => (ErrorCode::Unauthorized, None, none()),
            ApiError::PayloadTooLarge { limit } => (
                ErrorCode::PayloadTooLarge,
                Some(format!("Request body exceeds the limit of {limit} bytes.")),
                none(),
            ),
            ApiError::RouteNotFound { method, path } => (
                ErrorCode::NotFound,
                Some(format!("No route for {method} {path}.")),
                none(),
            ),
            ApiError::MethodNotAllowed { method, path } => (
                ErrorCode::MethodNotAllowed,
                Some(format!("Method {method} is not allowed on {path}.")),
                none(),
            ),
            ApiError::IdempotencyKeyReused => (ErrorCode::IdempotencyKeyReused, None, none()),
            ApiError::RateLimited { .. } => (ErrorCode::RateLimitExceeded, None, none()),
            ApiError::BodyTimeout => (ErrorCode::RequestTimeout, None, none()),
            ApiError::Plain { status, text } => plain_error(status, text),
        }
    }
}

/// The code and message of an error a layer or extractor answered in plain text.
fn plain_error(status: StatusCode, text: String) -> (ErrorCode, Option<String>, Value) {
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let code = match status {
        // A query string or path that did not decode: the request's shape is wrong.
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            let lowered = message.to_ascii_lowercase();
            let field = if lowered.contains("query") {
                "query"
            } else if lowered.contains("path") || lowered.contains("url") {
                "path"
            } else {
                "request"
            };
            return (
                ErrorCode::ValidationFailed,
                None,
                json!([FieldError::invalid(field, message)]),
            );
        }
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimitExceeded,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        status if status.is_server_error() => {
            tracing::error!(%status, message, "a layer answered an error in plain text");
            return (ErrorCode::Internal, None, json!([]));
        }
        _ => ErrorCode::InvalidRequest,
    };
    (code, Some(message), json!([]))
}

impl ApiError {
    /// The status and WorkOS-shaped body of this error (what a batch item's `error` holds).
    pub fn status_and_body(self) -> (StatusCode, Value) {
        let (code, body) = self.rendered();
        (code.status(), body)
    }

    /// The error's code and body.
    fn rendered(self) -> (ErrorCode, Value) {
        // A refused event's 400 also says what the quarantine did with it.
        let quarantine = match &self {
            ApiError::Service(ServiceError::RefusedEvent { quarantine, .. }) => {
                Some(quarantine.clone())
            }
            _ => None,
        };
        let (code, message, errors) = self.parts();
        let message = message.or(code.fixed_message().map(str::to_owned));
        let mut body = json!({"message": message, "code": code.as_str()});
        if code.lists_errors() {
            body["errors"] = errors;
        }
        match quarantine {
            Some(QuarantineNote::Kept(id)) => body["quarantine_id"] = json!(id),
            Some(QuarantineNote::NotKept { code, message }) => {
                body["quarantine_id"] = Value::Null;
                body["quarantine_error"] = json!({"code": code, "message": message});
            }
            None => {}
        }
        (code, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let (code, body) = self.rendered();
        let mut response = (code.status(), Json(body)).into_response();
        response
            .extensions_mut()
            .insert(ErrorCodeTag(code.as_str()));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The `code` of an error response, kept on the response for the metrics middleware
/// (`stele_ingest_errors_total{code}`), which sees responses but not their bodies.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCodeTag(pub &'static str);
