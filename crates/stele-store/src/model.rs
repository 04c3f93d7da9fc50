//! Values that cross the store boundary.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stele_core::chain::ChainBreak;
use stele_core::event::EventInput;
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::UnixMillis;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: UnixMillis,
}

/// A dashboard user as stored, with the argon2id PHC string of their password.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: UnixMillis,
}

/// A dashboard session about to be stored. The token itself stays in the browser's cookie.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: [u8; 32],
    pub user_id: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A live session and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A stored event as kept: its exact canonical bytes, with the columns that locate it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: String,
    pub organization_id: String,
    pub sequence: i64,
    pub version: i64,
    pub received_at: UnixMillis,
    /// RFC 8785 JSON of the stored record (see `stele_core::event::EventRecord`).
    pub canonical: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationDomain {
    pub id: String,
    pub domain: String,
    pub state: String,
    pub verification_strategy: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub domains: Vec<OrganizationDomain>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Which organizations a list returns; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrganizationFilter {
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Organizations owning at least one of these domains.
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaVersion {
    pub action: String,
    pub version: i64,
    pub definition: SchemaDefinition,
    /// Who created it: an API key name or a dashboard user.
    pub created_by: String,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionSummary {
    /// Stable position in the action list, used as the pagination key.
    pub position: i64,
    pub name: String,
    pub latest: SchemaVersion,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// An event that passed validation and is ready to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub organization_id: String,
    pub event: EventInput,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppendedEvent {
    pub id: String,
    pub sequence: i64,
    pub received_at: UnixMillis,
}

/// A completed response kept for `Idempotency-Key` replays.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub scope: String,
    pub key: String,
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
    pub created_at: UnixMillis,
}

/// The outcome of a write that carried an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Idempotent<T> {
    /// The work was done now.
    Done(T),
    /// The key was already used; this is the response recorded the first time.
    AlreadyDone(IdempotencyRecord),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub organizations: u64,
    pub events: u64,
    /// The first broken link found, with its organization.
    pub first_break: Option<(String, ChainBreak)>,
}
