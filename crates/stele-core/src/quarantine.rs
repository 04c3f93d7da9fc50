//! Quarantine: events refused by their schema, kept with their exact body and errors until
//! someone accepts them (after a schema fix) or discards them. The limits here are the
//! same on every backend because the store is handed them, never chooses them.

use crate::ids::OrganizationId;
use crate::schema::SchemaViolation;
use crate::timestamp::UnixMillis;

/// The largest request body kept, in bytes. A refused event with a larger body is
/// refused as before (its 400 says it was not kept and why).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// How many quarantined events one organization may hold at once. At the cap a refused
/// event is not kept (its 400 says so) until some are accepted, discarded or expire.
pub const MAX_PER_ORGANIZATION: u64 = 10_000;

/// Default number of days a quarantined event is kept before it expires.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// The longest `reason` kept (characters): the first error, which counts group by.
const MAX_REASON_CHARS: usize = 300;

/// An event refused by its schema, as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedEvent {
    /// `quarantine_` + ULID; ids sort in the order events were quarantined.
    pub id: String,
    pub organization_id: OrganizationId,
    pub action: String,
    /// The version the event named (1 when it named none).
    pub version: i64,
    /// The request body exactly as received.
    pub body: Vec<u8>,
    /// Every error the event was refused with.
    pub errors: Vec<SchemaViolation>,
    /// The first error, `instancePath: message`: what the per-error counts group by.
    pub reason: String,
    /// Identifies the refused request when it carried an `Idempotency-Key` (API key, key
    /// and body fingerprint), so a retry of it is kept once.
    pub request_key: Option<String>,
    /// Set while an accept is appending the event (and kept if it was interrupted), so a
    /// retried accept stores the event once.
    pub accepted_event_id: Option<String>,
    pub created_at: UnixMillis,
}

/// What happened to a refused event offered to the quarantine.
#[derive(Debug, Clone, PartialEq)]
pub enum Quarantined {
    /// Kept under this id (or already kept under it: a retried request).
    Kept(String),
    /// Not kept: the organization already holds [`MAX_PER_ORGANIZATION`] of them.
    Full,
}

/// How many quarantined events share an action, the version they named and their first
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineCount {
    pub action: String,
    pub version: i64,
    pub reason: String,
    pub count: u64,
}

/// The `reason` of a refusal: its first error, shortened to a bounded length.
pub fn reason_of(errors: &[SchemaViolation]) -> String {
    let Some(first) = errors.first() else {
        return "refused".to_owned();
    };
    let text = format!("{}: {}", first.instance_path, first.message);
    if text.chars().count() <= MAX_REASON_CHARS {
        text
    } else {
        let mut short: String = text.chars().take(MAX_REASON_CHARS - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_first_error_and_bounded() {
        let errors = vec![
            SchemaViolation::new("/targets/0/type", "target type 'team' is not declared"),
            SchemaViolation::new("/metadata/role", "not a string"),
        ];
        assert_eq!(
            reason_of(&errors),
            "/targets/0/type: target type 'team' is not declared"
        );
        let long = vec![SchemaViolation::new("/metadata", "x".repeat(1000))];
        assert_eq!(reason_of(&long).chars().count(), MAX_REASON_CHARS);
        assert_eq!(reason_of(&[]), "refused");
    }
}
