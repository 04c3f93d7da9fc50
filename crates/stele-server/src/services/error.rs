//! The errors a use case can end in. The API layer owns how each becomes a response.

use stele_core::schema::SchemaViolation;
use stele_core::FieldError;
use stele_store::StoreError;

use crate::error_code::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request body has the wrong shape (422 `validation_failed`).
    #[error("request validation failed")]
    InvalidRequest(Vec<FieldError>),
    /// The event breaks its action's schema version (400 `invalid_audit_log_event`).
    #[error("invalid audit log event")]
    InvalidEvent(Vec<SchemaViolation>),
    /// The event breaks its action's schema version (400 `invalid_audit_log_event`), and
    /// was offered to the quarantine: the body says whether it was kept and under which id.
    #[error("invalid audit log event")]
    RefusedEvent {
        violations: Vec<SchemaViolation>,
        quarantine: QuarantineNote,
    },
    #[error("Organization not found: '{0}'.")]
    OrganizationNotFound(String),
    #[error("Audit log action not found: '{0}'.")]
    ActionNotFound(String),
    #[error("{kind} not found: '{id}'.")]
    NotFound { kind: &'static str, id: String },
    /// The request is understood but not permitted (403 with `code`).
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// The resource existed but is no longer available (410).
    #[error("{0}")]
    Gone(String),
    /// A well-formed request the current state forbids (400 with `code`).
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error(transparent)]
    Store(StoreError),
    /// The server itself failed (500): a task that could not finish, a value it could not
    /// encode.
    #[error("internal error: {0}")]
    Internal(String),
    /// Stored data the server read back is damaged (500): `record` names it.
    #[error("stored data is damaged: {record}: {detail}")]
    Corrupt { record: String, detail: String },
}

/// What the quarantine did with a refused event.
#[derive(Debug, Clone, PartialEq)]
pub enum QuarantineNote {
    /// Kept under this quarantine id.
    Kept(String),
    /// Not kept; `code` and `message` say why (the body was too large, or the
    /// organization's quarantine is full).
    NotKept { code: &'static str, message: String },
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        ServiceError::Store(error)
    }
}

impl ServiceError {
    /// A store error of a write on one organization, where the store's
    /// `OrganizationNotFound` names the organization the request gave.
    pub fn on_organization(error: StoreError, organization_id: &str) -> Self {
        match error {
            StoreError::OrganizationNotFound => {
                ServiceError::OrganizationNotFound(organization_id.to_owned())
            }
            other => ServiceError::Store(other),
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::InvalidRequest(vec![FieldError::invalid(field, message)])
    }
}
