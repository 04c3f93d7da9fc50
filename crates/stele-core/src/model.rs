//! The domain model: the records Stele keeps (organizations, schema versions, stored
//! events, exports, API keys, users, checkpoints) and the values use cases exchange with
//! the store. Plain data with typed ids; persistence lives in `stele-store`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::access::KeyGrants;
use crate::chain::{ChainBreak, ChainHash};
use crate::event::EventInput;
pub use crate::export::ExportFormat;
pub use crate::ids::{ApiKeyId, EventId, ExportId, OrganizationId, UserId};
use crate::schema::SchemaDefinition;
use crate::timestamp::UnixMillis;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
    /// Scopes and organization restrictions.
    pub grants: KeyGrants,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub created_at: UnixMillis,
    pub grants: KeyGrants,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: UnixMillis,
}

/// A dashboard user as stored, with the argon2id PHC string of their password.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: UnixMillis,
}

/// A dashboard session about to be stored. The token itself stays in the browser's cookie.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: [u8; 32],
    pub user_id: UserId,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A live session and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user_id: UserId,
    pub username: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A stored event as kept: its exact canonical bytes, with the columns that locate it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub sequence: i64,
    pub version: i64,
    pub received_at: UnixMillis,
    /// RFC 8785 JSON of the stored record (see `stele_core::event::EventRecord`).
    pub canonical: Vec<u8>,
}

/// One stored event with the chain hash that covers it (what the event detail page shows).
#[derive(Debug, Clone, PartialEq)]
pub struct HashedEvent {
    pub event: StoredEvent,
    /// SHA-256 of the previous event's hash followed by `event.canonical`.
    pub hash: ChainHash,
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
    pub id: OrganizationId,
    pub name: String,
    pub external_id: Option<String>,
    pub metadata: Map<String, Value>,
    pub domains: Vec<OrganizationDomain>,
    /// Events received longer ago than this are purged; `None` keeps everything.
    pub retention_period_in_days: Option<i64>,
    /// WorkOS's optional billing reference, kept as given.
    pub stripe_customer_id: Option<String>,
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
    /// When not empty, only these organizations (an organization-restricted API key).
    pub ids: Vec<String>,
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
    pub id: EventId,
    pub organization_id: OrganizationId,
    pub event: EventInput,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppendedEvent {
    pub id: EventId,
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

/// An idempotency key claimed by a write whose response depends on what the write decides
/// (a version number, whether anything was created). `claim` reserves the key (its status
/// and body are placeholders); `respond` renders the real status and body from the result,
/// and both are stored in the write's own transaction.
pub struct IdempotentWrite<T> {
    pub claim: IdempotencyRecord,
    pub respond: RenderResponse<T>,
}

/// Renders the HTTP status and body a write answered with, from its result.
pub type RenderResponse<T> = Box<dyn FnOnce(&T) -> (u16, Vec<u8>) + Send>;

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
    pub first_break: Option<(OrganizationId, ChainBreak)>,
}

/// Which of one organization's events a search or export covers. Fields combine with AND;
/// the values within one list combine with OR; an empty list does not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventQuery {
    pub organization_id: OrganizationId,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub actor_ids: Vec<String>,
    #[serde(default)]
    pub actor_names: Vec<String>,
    #[serde(default)]
    pub target_types: Vec<String>,
    #[serde(default)]
    pub target_ids: Vec<String>,
    /// Inclusive bounds on `occurred_at`.
    #[serde(default)]
    pub occurred_from: Option<UnixMillis>,
    #[serde(default)]
    pub occurred_to: Option<UnixMillis>,
    /// Only events at or below this sequence (an export's snapshot).
    #[serde(default)]
    pub up_to_sequence: Option<i64>,
}

/// Where a search ordered by `occurred_at` (the `order_by=occurred_at` option) resumes:
/// the event's `occurred_at`, then its sequence, which breaks ties and never changes. A
/// new event takes a sequence above every stored one, so it can land before or after a
/// cursor but never moves an event already paged past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OccurredAtKey {
    pub occurred_at: UnixMillis,
    pub sequence: i64,
}

impl std::fmt::Display for OccurredAtKey {
    /// The cursor text: `{occurred_at in Unix milliseconds}_{sequence}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.occurred_at, self.sequence)
    }
}

impl std::str::FromStr for OccurredAtKey {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (occurred_at, sequence) = text.split_once('_').ok_or(())?;
        Ok(OccurredAtKey {
            occurred_at: occurred_at.parse().map_err(|_| ())?,
            sequence: sequence.parse().map_err(|_| ())?,
        })
    }
}

/// An export: a snapshot of the events matching `query` (whose `up_to_sequence` is set
/// when the export is created).
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub id: ExportId,
    pub query: EventQuery,
    pub format: ExportFormat,
    pub created_at: UnixMillis,
    /// False once retention has purged events the snapshot covered: its file can no
    /// longer be produced as it was, so it is not served at all.
    pub complete: bool,
}

/// Identifies one row of an imported file across runs (see `stele import-events`).
pub type ImportKey = [u8; 32];

/// What one call appending imported events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportedEvents {
    pub appended: u64,
    /// Events whose import key was already stored: imported before.
    pub skipped: u64,
}

/// What deleting an organization did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrganizationDeletion {
    /// Events purged with it.
    pub purged: u64,
    /// Events it had ever stored (its Merkle tree's size), purged ones included.
    pub tree_size: u64,
}

/// What one retention pass did to one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeOutcome {
    pub purged: u64,
    /// Whether older-than-cutoff events remain (the pass stopped at its batch size).
    pub more: bool,
}

/// A signed checkpoint of one organization's Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub organization_id: OrganizationId,
    pub tree_size: u64,
    pub root_hash: crate::merkle::Hash,
    /// The complete C2SP signed note, exactly as signed.
    pub note: String,
    /// Hex id of the key that signed it.
    pub key_id: String,
    pub created_at: UnixMillis,
}

/// A public key that has signed checkpoints, kept for as long as the database lives so
/// checkpoints signed before a key rotation stay verifiable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Hex key id (the C2SP key hash).
    pub key_id: String,
    /// The C2SP verifier key, `<name>+<key id>+<base64 key>`.
    pub verifier_key: String,
    pub created_at: UnixMillis,
}

/// An organization whose newest events are not yet covered by a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncheckpointedLog {
    pub organization_id: OrganizationId,
    pub tree_size: u64,
    /// Size of the newest checkpoint, 0 when there is none.
    pub checkpointed_size: u64,
}

/// What an Admin Portal link opens (WorkOS's `intent`). Stele serves these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalIntent {
    AuditLogs,
    LogStreams,
}

impl PortalIntent {
    /// Every intent this deployment serves, in the order error messages list them.
    pub const SERVED: [PortalIntent; 2] = [PortalIntent::AuditLogs, PortalIntent::LogStreams];

    /// The wire spelling (`audit_logs`, `log_streams`).
    pub fn as_str(self) -> &'static str {
        match self {
            PortalIntent::AuditLogs => "audit_logs",
            PortalIntent::LogStreams => "log_streams",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::SERVED
            .into_iter()
            .find(|intent| intent.as_str() == text)
    }
}

/// An Admin Portal link about to be stored. The secret itself is only in the link handed
/// to the vendor's app; the store keeps its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPortalLink {
    pub token_hash: [u8; 32],
    pub organization_id: OrganizationId,
    pub intent: PortalIntent,
    /// The vendor's id for the admin the link is for (what `revoke_link` names).
    pub external_user_id: Option<String>,
    /// Where "Back to <app>" leads.
    pub return_url: Option<String>,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A portal session about to be started from a link. The token stays in the browser's
/// cookie; the store keeps its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPortalSession {
    pub token_hash: [u8; 32],
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A live portal session: one organization, and what the link it came from said.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSession {
    pub organization_id: OrganizationId,
    pub intent: PortalIntent,
    pub external_user_id: Option<String>,
    pub return_url: Option<String>,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// What `revoke_link` ended: unopened links and live portal sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortalRevocation {
    pub links: u64,
    pub sessions: u64,
}
