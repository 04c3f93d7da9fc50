//! The one API error type: it owns the table from error to HTTP status and WorkOS-shaped
//! body, and logs internals while the client sees only the request id to quote.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_core::FieldError;
use stele_store::StoreError;

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

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Service(ServiceError::Store(error))
    }
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        ApiError::Service(ServiceError::InvalidRequest(errors))
    }

    fn status_and_body(self) -> (StatusCode, Value) {
        match self {
            ApiError::Service(ServiceError::InvalidRequest(errors)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation failed.", "code": "validation_failed", "errors": errors}),
            ),
            ApiError::Service(ServiceError::InvalidEvent(errors)) => (
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid Audit Log event.", "code": "invalid_audit_log_event", "errors": errors}),
            ),
            ApiError::Service(
                error @ (ServiceError::OrganizationNotFound(_)
                | ServiceError::ActionNotFound(_)
                | ServiceError::NotFound { .. }),
            ) => (
                StatusCode::NOT_FOUND,
                json!({"message": error.to_string(), "code": "not_found"}),
            ),
            ApiError::Service(ServiceError::Forbidden { code, message }) => (
                StatusCode::FORBIDDEN,
                json!({"message": message, "code": code}),
            ),
            ApiError::Service(ServiceError::Gone(message)) => (
                StatusCode::GONE,
                json!({"message": message, "code": "gone"}),
            ),
            // `errors` is present (empty) on every 400 so the Node SDK raises its typed
            // BadRequestException rather than a generic one.
            ApiError::Service(ServiceError::Rejected { code, message }) => (
                StatusCode::BAD_REQUEST,
                json!({"message": message, "code": code, "errors": []}),
            ),
            ApiError::Service(ServiceError::Store(error)) => {
                tracing::error!(%error, "request failed on the store");
                let status = match error {
                    StoreError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (
                    status,
                    json!({"message": "Internal server error; quote the X-Request-ID header when reporting it.", "code": "internal_error"}),
                )
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Unauthorized: send a valid API key as 'Authorization: Bearer sk_...'.", "code": "unauthorized"}),
            ),
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"message": format!("Request body exceeds the limit of {limit} bytes."), "code": "payload_too_large"}),
            ),
            ApiError::RouteNotFound { method, path } => (
                StatusCode::NOT_FOUND,
                json!({"message": format!("No route for {method} {path}."), "code": "not_found"}),
            ),
            ApiError::MethodNotAllowed { method, path } => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": format!("Method {method} is not allowed on {path}."), "code": "method_not_allowed"}),
            ),
            ApiError::IdempotencyKeyReused => (
                StatusCode::BAD_REQUEST,
                json!({
                    "message": "This Idempotency-Key was already used with a different request; use a new key for a new request.",
                    "code": "idempotency_key_reused",
                    "errors": []
                }),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(body)).into_response()
    }
}
