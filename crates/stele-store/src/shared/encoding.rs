//! Encodings of stored values that both backends share, so a row means the same thing
//! whichever database holds it; a value that does not decode is [`StoreError::Corrupt`],
//! never a default.

use serde_json::Map;
use stele_core::model::{IdempotencyRecord, OrganizationDomain};
use stele_core::schema::SchemaDefinition;

use crate::{StoreError, StoreResult};

/// JSON text of a value kept in a text column (organization metadata, domains, filters).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        what: "a JSON column",
        source: source.into(),
    })
}

/// A 32-byte hash column, or [`StoreError::Corrupt`] naming `what` and where it was read.
pub(crate) fn hash_from(
    bytes: &[u8],
    organization: &str,
    sequence: Option<i64>,
    what: &str,
) -> StoreResult<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        StoreError::corrupt(
            Some(organization),
            sequence,
            format!("{what} is {} bytes, not 32", bytes.len()),
        )
    })
}

/// One target of a stored event, as its search rows need it.
#[derive(serde::Deserialize)]
pub(crate) struct StoredTarget {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

#[derive(serde::Deserialize)]
struct StoredTargets {
    targets: Vec<StoredTarget>,
}

/// The targets of a stored event, read from its canonical bytes (the target rows of the
/// search index are derived from them), or [`StoreError::Corrupt`] naming the event.
pub(crate) fn stored_targets(
    canonical: &[u8],
    organization: &str,
    sequence: i64,
) -> StoreResult<Vec<StoredTarget>> {
    serde_json::from_slice::<StoredTargets>(canonical)
        .map(|stored| stored.targets)
        .map_err(|error| {
            StoreError::corrupt(
                Some(organization),
                Some(sequence),
                format!("stored event has no readable targets: {error}"),
            )
        })
}

/// A stored schema version's definition, or [`StoreError::Corrupt`] naming it.
pub(crate) fn parse_definition(
    action: &str,
    version: i64,
    text: &str,
) -> StoreResult<SchemaDefinition> {
    serde_json::from_str(text).map_err(|error| {
        StoreError::corrupt(None, None, format!("schema {action} v{version}: {error}"))
    })
}

/// An organization's `metadata` and `domains` columns.
pub(crate) fn parse_organization_json(
    id: &str,
    metadata: &str,
    domains: &str,
) -> StoreResult<(Map<String, serde_json::Value>, Vec<OrganizationDomain>)> {
    let metadata = serde_json::from_str(metadata)
        .map_err(|error| StoreError::corrupt(Some(id), None, format!("metadata: {error}")))?;
    let domains = serde_json::from_str(domains)
        .map_err(|error| StoreError::corrupt(Some(id), None, format!("domains: {error}")))?;
    Ok((metadata, domains))
}

/// A `LIKE` pattern matching names that contain `text` literally (`\` escapes).
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// An idempotency record from its columns. A fingerprint that is not 32 bytes or a status
/// that is not an HTTP status means the row was damaged; replaying it would answer with a
/// response the request never got.
pub(crate) fn idempotency_record(
    scope: &str,
    key: &str,
    fingerprint: &[u8],
    status: i64,
    body: Vec<u8>,
    created_at: i64,
) -> StoreResult<IdempotencyRecord> {
    let damaged = |detail: String| {
        StoreError::corrupt(
            None,
            None,
            format!("idempotency key {key} of {scope}: {detail}"),
        )
    };
    Ok(IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint: fingerprint.try_into().map_err(|_| {
            damaged(format!(
                "fingerprint is {} bytes, not 32",
                fingerprint.len()
            ))
        })?,
        status: u16::try_from(status)
            .map_err(|_| damaged(format!("status {status} is not an HTTP status")))?,
        body,
        created_at,
    })
}

/// A stored portal intent; anything else was not written by Stele.
pub(crate) fn portal_intent(text: &str) -> StoreResult<stele_core::model::PortalIntent> {
    stele_core::model::PortalIntent::parse(text).ok_or_else(|| StoreError::Corrupt {
        organization: None,
        sequence: None,
        detail: format!("a portal link or session has the unknown intent {text:?}"),
    })
}

/// An event to append, with its canonical record encoded on the caller's thread: the
/// appender that gives events their sequences (SQLite's writer thread, PostgreSQL's append
/// task) runs one batch at a time, and then only joins the sequence and `received_at` in
/// (encoding took about a fifth of SQLite's writer time under single-event load).
pub(crate) struct PreparedEvent {
    pub(crate) event: stele_core::model::NewEvent,
    record: stele_core::event::PreparedRecord,
}

impl PreparedEvent {
    pub(crate) fn new(event: stele_core::model::NewEvent) -> StoreResult<Self> {
        let record = event
            .event
            .prepare_record(&event.id, &event.organization_id)
            .map_err(cannot_encode)?;
        Ok(Self { event, record })
    }

    /// The canonical record at `sequence`, received at `received_at`.
    pub(crate) fn complete(&self, sequence: i64, received_at: i64) -> StoreResult<Vec<u8>> {
        self.record
            .complete(sequence, received_at)
            .map_err(cannot_encode)
    }
}

fn cannot_encode(error: stele_core::canonical::CanonicalError) -> StoreError {
    StoreError::Internal(format!("cannot encode the event: {error}"))
}
