//! The one API error type: it maps each error to its [`ErrorCode`] (whose table gives the
//! HTTP status) and WorkOS-shaped body, and logs internals while the client sees only the
//! request id to quote.

use axum::http::StatusCode;
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
    PayloadTooLarge { limit: usize },
    RouteNotFound { method: String, path: String },
    MethodNotAllowed { method: String, path: String },
    IdempotencyKeyReused,
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::Service(error)
    }
}

impl ApiError {
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
        }
    }
}

impl ApiError {
    /// The status and WorkOS-shaped body of this error (what a batch item's `error` holds).
    pub fn status_and_body(self) -> (StatusCode, Value) {
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
        (code.status(), body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(body)).into_response()
    }
}
