//! The one API error type: it maps each error to its [`ErrorCode`] (whose table gives the
//! HTTP status) and WorkOS-shaped body, and logs internals while the client sees only the
//! request id to quote.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_core::FieldError;
use stele_store::StoreError;

use crate::error_code::ErrorCode;
use crate::services::ServiceError;

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
            ApiError::Service(ServiceError::InvalidEvent(errors)) => {
                (ErrorCode::InvalidAuditLogEvent, None, json!(errors))
            }
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
    /// The status and the WorkOS-shaped body `{"message","code","errors"?}` (also one
    /// refused item of a batch).
    pub fn into_body(self) -> (axum::http::StatusCode, Value) {
        let (code, message, errors) = self.parts();
        let message = message.or(code.fixed_message().map(str::to_owned));
        let mut body = json!({"message": message, "code": code.as_str()});
        if code.lists_errors() {
            body["errors"] = errors;
        }
        (code.status(), body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.into_body();
        (status, Json(body)).into_response()
    }
}
