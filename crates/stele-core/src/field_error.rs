//! Request-shape errors: the `errors[]` items of a 422 `validation_failed` response.

use serde::Serialize;

/// One problem with the shape of a request body, named by its dotted field path
/// (`event.actor.id`) and a short machine-readable code (`required`, `invalid_type`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} is required.");
        Self {
            code: "required",
            field,
            message,
        }
    }

    pub fn invalid_type(field: impl Into<String>, expected: &str) -> Self {
        let field = field.into();
        let message = format!("{field} must be {expected}.");
        Self {
            code: "invalid_type",
            field,
            message,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "invalid",
            field: field.into(),
            message: message.into(),
        }
    }
}
