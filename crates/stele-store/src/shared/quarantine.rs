//! Quarantine rows as both backends store them: the columns read back, and the encoding
//! of the errors list.

use stele_core::quarantine::QuarantinedEvent;
use stele_core::schema::SchemaViolation;

use crate::shared::encoding::json_text;
use crate::{StoreError, StoreResult};

/// The columns of a quarantine row, in the order [`QuarantineRow`] reads them.
pub(crate) const QUARANTINE_COLUMNS: &str = "id, organization_id, action, version, body, errors, reason, idempotency_key, accepted_event_id, created_at";

/// A quarantine row as read, before its errors list is decoded.
pub(crate) struct QuarantineRow {
    pub(crate) id: String,
    pub(crate) organization_id: String,
    pub(crate) action: String,
    pub(crate) version: i64,
    pub(crate) body: Vec<u8>,
    pub(crate) errors: String,
    pub(crate) reason: String,
    pub(crate) request_key: Option<String>,
    pub(crate) accepted_event_id: Option<String>,
    pub(crate) created_at: i64,
}

impl QuarantineRow {
    pub(crate) fn decode(self) -> StoreResult<QuarantinedEvent> {
        let errors: Vec<SchemaViolation> = serde_json::from_str(&self.errors).map_err(|error| {
            StoreError::corrupt(
                Some(&self.organization_id),
                None,
                format!("errors of quarantined event {}: {error}", self.id),
            )
        })?;
        Ok(QuarantinedEvent {
            id: self.id,
            organization_id: self.organization_id.into(),
            action: self.action,
            version: self.version,
            body: self.body,
            errors,
            reason: self.reason,
            request_key: self.request_key,
            accepted_event_id: self.accepted_event_id,
            created_at: self.created_at,
        })
    }
}

/// The stored text of an errors list.
pub(crate) fn errors_text(errors: &[SchemaViolation]) -> StoreResult<String> {
    json_text(&errors)
}
