//! The ports of the store: one trait per capability the service needs, each named after
//! its use cases rather than the SQL. [`crate::Store`] is their sum; the SQLite and
//! PostgreSQL backends implement every port, one file per port.

use async_trait::async_trait;
use stele_core::merkle::Hash;
use stele_core::pagination::{Page, PageRequest};
use stele_core::quarantine::{QuarantineCount, Quarantined, QuarantinedEvent};
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::UnixMillis;

use crate::StoreResult;
use stele_core::log_stream::{
    LogStream, LogStreamState, StreamDelivery, StreamEvents, StreamFailure, StreamPositions,
};
use stele_core::model::*;

/// API keys and dashboard users, and the first start that creates one of each.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Whether the database has neither API keys nor users (first start).
    async fn is_uninitialized(&self) -> StoreResult<bool>;

    /// Stores the first API key and the first user if the database has neither, as one
    /// decision (several processes may start on an empty database at once); returns
    /// whether they were stored.
    async fn initialize(&self, key: NewApiKey, user: NewUser) -> StoreResult<bool>;

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;

    /// The key whose secret hashes to `secret_hash`, revoked or not.
    async fn find_api_key(&self, secret_hash: [u8; 32]) -> StoreResult<Option<ApiKey>>;

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;

    /// Marks a key revoked; `false` when there is no such active key.
    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> StoreResult<bool>;

    async fn create_user(&self, user: NewUser) -> StoreResult<()>;

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;

    /// Replaces the password hash of `username` and ends every session of that user, in
    /// one write; `false` when there is no such user.
    async fn reset_user_password(&self, username: &str, password_hash: String)
        -> StoreResult<bool>;
}

/// Dashboard sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; sessions that have expired by `session.created_at` are
    /// deleted in the same write, so the table never grows without bound.
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;

    /// The unexpired session whose token hashes to `token_hash`.
    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<Session>>;

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()>;
}

/// Admin Portal links and the portal sessions redeemed from them. Each is pinned to one
/// organization and deleted with it.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Stores a new link; links and portal sessions that have expired by
    /// `link.created_at` are deleted in the same write, so the tables never grow without
    /// bound.
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()>;

    /// Redeems the link whose secret hashes to `link_hash`, if it is still unexpired at
    /// `session.created_at`: deletes it (a link works once) and starts `session` from it,
    /// in one write. `None`, and nothing written, when there is no such live link; two
    /// redemptions racing for one link start one session.
    async fn redeem_portal_link(
        &self,
        link_hash: [u8; 32],
        session: NewPortalSession,
    ) -> StoreResult<Option<PortalSession>>;

    /// The unexpired portal session whose token hashes to `token_hash`.
    async fn find_portal_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<PortalSession>>;

    async fn end_portal_session(&self, token_hash: [u8; 32]) -> StoreResult<()>;

    /// Deletes every link generated for `external_user_id` in `organization_id` and ends
    /// every portal session started from one, in one write.
    async fn revoke_portal_access(
        &self,
        organization_id: &str,
        external_user_id: &str,
    ) -> StoreResult<PortalRevocation>;
}

/// Organizations (the tenants whose logs Stele keeps).
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    async fn create_organization(
        &self,
        organization: Organization,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Organization>>;

    async fn get_organization(&self, id: &str) -> StoreResult<Option<Organization>>;

    async fn get_organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>>;

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<String>,
    ) -> StoreResult<Page<Organization>>;

    /// Replaces the stored organization with the same id.
    async fn update_organization(&self, organization: Organization) -> StoreResult<Organization>;

    /// Deletes an organization and purges its events, its exports and its import keys,
    /// in one transaction that also orders it with every append: an event acknowledged
    /// before is purged with the rest, an append after finds no organization. What
    /// verification needs stays (the chain anchor, kept leaf and subtree hashes,
    /// checkpoints), and the id is recorded as deleted, never to be given out again.
    ///
    /// `purged_beforehand` counts the events the caller already purged for this deletion
    /// with [`RetentionStore::purge_events`] (so that a large organization's events go in
    /// steps, not in this one transaction); the deletion records them in its count.
    async fn delete_organization(
        &self,
        id: &str,
        purged_beforehand: u64,
    ) -> StoreResult<OrganizationDeletion>;

    /// Removes an organization that an event named and created
    /// (`--auto-create-organizations`) when that event could not be stored, so it does not
    /// stay behind: only while it has never had an event, an export or a checkpoint, and
    /// without retiring its id (nothing was ever recorded under it). Returns whether it
    /// was removed.
    async fn discard_unused_organization(&self, id: &str) -> StoreResult<bool>;

    /// Ids of deleted organizations whose log had events (so kept tree hashes and perhaps
    /// checkpoints), sorted: `stele verify` still checks what they left.
    async fn deleted_organization_ids(&self) -> StoreResult<Vec<String>>;
}

/// Actions and their immutable, numbered schema versions.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Creates version latest+1 of `action` (version 1 of a new action) unless `definition`
    /// equals the latest version, decided atomically; returns the version and whether it is new.
    async fn create_schema_version(
        &self,
        action: &str,
        definition: SchemaDefinition,
        created_by: &str,
        at: UnixMillis,
        idempotency: Option<IdempotentWrite<(SchemaVersion, bool)>>,
    ) -> StoreResult<Idempotent<(SchemaVersion, bool)>>;

    async fn get_schema_version(
        &self,
        action: &str,
        version: i64,
    ) -> StoreResult<Option<SchemaVersion>>;

    /// Version numbers of `action`, ascending; empty when the action is unknown.
    async fn schema_version_numbers(&self, action: &str) -> StoreResult<Vec<i64>>;

    /// `None` when the action does not exist.
    async fn list_schema_versions(
        &self,
        action: &str,
        page: PageRequest<i64>,
    ) -> StoreResult<Option<Page<SchemaVersion>>>;

    async fn list_actions(&self, page: PageRequest<i64>) -> StoreResult<Page<ActionSummary>>;
}

/// The tamper-evident event log: appends, reads and the end-to-end chain check.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event at the organization's next sequence number, chained to its
    /// predecessor, durably. With an idempotency record, the record is stored in the same
    /// transaction; if the key is already taken the stored record is returned instead.
    async fn append_event(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<AppendedEvent>>;

    /// Appends events loaded by `stele import-events`, in order and in one transaction,
    /// each with its import key; an event whose key the organization already holds (from
    /// an earlier run, or earlier in `events`) is skipped. Returns how many were appended
    /// and how many skipped.
    async fn append_imported_events(
        &self,
        organization_id: &str,
        events: Vec<(ImportKey, NewEvent)>,
    ) -> StoreResult<ImportedEvents>;

    /// Appends `events` in order, each with its optional idempotency record, in one
    /// transaction and one durable commit. Each item succeeds or fails on its own (an
    /// unknown organization, a key already holding a record, also one claimed earlier in
    /// the same call) and a failed item writes nothing; the outer error means nothing of
    /// the call was stored.
    async fn append_events(
        &self,
        events: Vec<EventToAppend>,
    ) -> StoreResult<Vec<StoreResult<Idempotent<AppendedEvent>>>>;

    /// One page of an organization's events matching `query`, keyed by sequence.
    async fn search_events(
        &self,
        query: EventQuery,
        page: PageRequest<i64>,
    ) -> StoreResult<Page<StoredEvent>>;

    /// One page of an organization's events matching `query`, ordered by `occurred_at`
    /// with ties broken by sequence; the page's cursors are [`OccurredAtKey`]s.
    async fn search_events_by_occurred_at(
        &self,
        query: EventQuery,
        page: PageRequest<OccurredAtKey>,
    ) -> StoreResult<Page<StoredEvent>>;

    /// One of an organization's events by id, with its chain hash; `None` when the
    /// organization has no such event (another organization's event included).
    async fn get_event(&self, organization_id: &str, id: &str) -> StoreResult<Option<HashedEvent>>;

    /// The `limit` most recently stored events of `action` across all organizations,
    /// newest first (what a proposed schema version is tried against).
    async fn recent_events_of_action(
        &self,
        action: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// Re-checks every stored chain (or one organization's), calling `progress` with the
    /// running count. Runs in bounded memory.
    async fn verify_log(
        &self,
        organization_id: Option<String>,
        progress: Box<dyn FnMut(u64) + Send>,
    ) -> StoreResult<VerifyReport>;
}

/// Events refused by their schema, kept with their body and errors until they are
/// accepted, discarded or expire.
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Keeps `event` unless its organization already holds `limit` quarantined events,
    /// decided atomically. A request kept before (same `request_key`) is not kept twice:
    /// its existing id is returned. `OrganizationNotFound` when the organization does not
    /// exist.
    async fn quarantine_event(
        &self,
        event: QuarantinedEvent,
        limit: u64,
    ) -> StoreResult<Quarantined>;

    /// One page of the organization's quarantined events, keyed by id (oldest first when
    /// ascending).
    async fn list_quarantined(
        &self,
        organization_id: &str,
        page: PageRequest<String>,
    ) -> StoreResult<Page<QuarantinedEvent>>;

    /// One of the organization's quarantined events; `None` for another organization's.
    async fn get_quarantined(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<QuarantinedEvent>>;

    /// Records that an accept is about to append the entry as event `event_id`, unless an
    /// earlier accept recorded one; returns the event id in force, `None` when the
    /// organization has no such entry.
    async fn claim_quarantine_acceptance(
        &self,
        organization_id: &str,
        id: &str,
        event_id: &str,
    ) -> StoreResult<Option<String>>;

    /// Deletes one entry; `false` when the organization has no such entry.
    async fn discard_quarantined(&self, organization_id: &str, id: &str) -> StoreResult<bool>;

    /// The organization's quarantined events counted per action, named version and first
    /// error, largest count first.
    async fn quarantine_counts(&self, organization_id: &str) -> StoreResult<Vec<QuarantineCount>>;

    /// Quarantined events of `action` across organizations, per version they named,
    /// ascending by version.
    async fn quarantine_counts_of_action(&self, action: &str) -> StoreResult<Vec<(i64, u64)>>;

    /// Up to `limit` quarantined events of `action` that named `version`, across
    /// organizations, with ids greater than `after_id`, in id order.
    async fn quarantined_of_action(
        &self,
        action: &str,
        version: i64,
        after_id: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<QuarantinedEvent>>;

    /// Deletes entries quarantined at or before `cutoff`; returns how many.
    async fn purge_quarantine(&self, cutoff: UnixMillis) -> StoreResult<u64>;
}

/// One item of [`EventStore::append_events`].
#[derive(Debug, Clone)]
pub struct EventToAppend {
    pub event: NewEvent,
    /// Stored in the same transaction as the event; a key already holding a record makes
    /// the item `Idempotent::AlreadyDone` with that record.
    pub idempotency: Option<IdempotencyRecord>,
}

/// Exports and the snapshot each one fixes.
#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Stores an export, fixing its snapshot at the newest event committed so far.
    async fn create_export(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Export>>;

    async fn get_export(&self, id: &str) -> StoreResult<Option<Export>>;
}

/// Retention periods and the purges they drive.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Sets or clears an organization's retention period.
    async fn set_retention(&self, organization_id: &str, days: Option<i64>) -> StoreResult<()>;

    /// Organizations that have a retention period, with it.
    async fn organizations_with_retention(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Purges, oldest first, up to `batch` of the organization's events received before
    /// `cutoff`, and records where the retained chain starts. Leaf hashes of purged events
    /// whose 256-leaf block has no stored level-8 node are kept, so proofs stay possible.
    async fn purge_events(
        &self,
        organization_id: &str,
        cutoff: UnixMillis,
        batch: u32,
    ) -> StoreResult<PurgeOutcome>;
}

/// The per-organization Merkle trees: leaves, stored subtree nodes, signed checkpoints and the keys that sign them.
#[async_trait]
pub trait TreeStore: Send + Sync {
    /// How many events the organization has ever stored (purged ones included): the size
    /// of its Merkle tree.
    async fn tree_size(&self, organization_id: &str) -> StoreResult<u64>;

    /// Leaf hashes of leaves `[start, end)` (leaf `i` is sequence `i + 1`): from the stored
    /// bytes, or from the hashes kept for purged events. `Corrupt` when one is missing.
    async fn leaf_hashes(
        &self,
        organization_id: &str,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Hash>>;

    /// Stored perfect-subtree hashes at `level` whose index is in `[start, end)`, by index.
    async fn tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<(u64, Hash)>>;

    /// How many nodes are stored at `level` (they are written from index 0 up, no gaps).
    async fn tree_node_count(&self, organization_id: &str, level: u8) -> StoreResult<u64>;

    /// Stores subtree hashes; a node already stored is left as it is.
    async fn store_tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        nodes: Vec<(u64, Hash)>,
    ) -> StoreResult<()>;

    /// Stores a checkpoint unless one of that size exists; returns the one in force.
    async fn save_checkpoint(&self, checkpoint: Checkpoint) -> StoreResult<Checkpoint>;

    async fn latest_checkpoint(&self, organization_id: &str) -> StoreResult<Option<Checkpoint>>;

    /// The smallest checkpoint of at least `min_size` leaves.
    async fn checkpoint_covering(
        &self,
        organization_id: &str,
        min_size: u64,
    ) -> StoreResult<Option<Checkpoint>>;

    /// Up to `limit` checkpoints larger than `after_size`, smallest first.
    async fn list_checkpoints(
        &self,
        organization_id: &str,
        after_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<Checkpoint>>;

    /// Thins checkpoints created before `older_than` down to the newest of each
    /// `keep_one_per_ms` period (per organization); returns how many were deleted.
    async fn thin_checkpoints(
        &self,
        older_than: UnixMillis,
        keep_one_per_ms: i64,
    ) -> StoreResult<u64>;

    /// Organizations with events that no checkpoint covers yet.
    async fn uncheckpointed_logs(&self) -> StoreResult<Vec<UncheckpointedLog>>;

    /// When the oldest event that no signed checkpoint covers yet was received, across
    /// every organization; `None` when every stored event is covered.
    async fn oldest_unsigned_event_received_at(&self) -> StoreResult<Option<UnixMillis>>;

    /// Records a signing key (no-op when known).
    async fn register_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()>;

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    /// Up to `limit` of the organization's stored events after `after_sequence`, as
    /// `(sequence, canonical bytes)` in sequence order.
    async fn event_bytes(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>>;

    /// Every organization id, sorted.
    async fn organization_ids(&self) -> StoreResult<Vec<String>>;
}

/// Stored responses to requests made with an idempotency key.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The unexpired record for `(scope, key)`.
    async fn find_idempotency_record(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    /// Stores a completed response unless the key already holds an unexpired one;
    /// returns the record that is in force afterwards.
    async fn save_idempotency_record(
        &self,
        record: IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord>;

    /// Deletes records created before `cutoff`; returns how many.
    async fn purge_idempotency_records(&self, cutoff: UnixMillis) -> StoreResult<u64>;
}

/// Coordination of background jobs between processes sharing one database.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Whether this process should run background job `job` now: true for the first
    /// caller once `interval_ms` has passed since the job last started anywhere, so a job
    /// runs once per interval however many processes share the database. The default
    /// suits a store only one process opens (SQLite): always true.
    async fn claim_job_run(
        &self,
        _job: &str,
        _now: UnixMillis,
        _interval_ms: i64,
    ) -> StoreResult<bool> {
        Ok(true)
    }
}

/// Deployment-wide secrets kept in the database.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// A deployment-wide secret, created with `generate` the first time it is asked for.
    async fn shared_secret(&self, name: &str, generate: Vec<u8>) -> StoreResult<Vec<u8>>;

    /// The secret stored under `name`, without creating one.
    async fn find_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes the secret stored under `name` (once it lives elsewhere); no-op when absent.
    async fn delete_secret(&self, name: &str) -> StoreResult<()>;
}

/// Counters every process on the database shares: per-key request rate limits and the
/// dashboard's sign-in throttle. Each call is one atomic decision in the database, so
/// replicas on PostgreSQL count together.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Takes up to `want` of the `limit` requests `subject` may make in the window that
    /// starts at `window_start`, and returns how many were granted: fewer than `want` (0
    /// included) once the window's limit is used up. Rows of the subject's earlier windows
    /// are deleted in the same write, so each subject keeps at most one row.
    async fn take_from_window(
        &self,
        subject: &str,
        window_start: UnixMillis,
        want: u32,
        limit: u32,
    ) -> StoreResult<u32>;

    /// Starts a sign-in check for `username` unless one is blocked: returns `None` and
    /// blocks the username until `hold_until` (when the check will have finished), or
    /// `Some(until)` when an earlier block (a lockout, or a check in progress) holds until
    /// then. Every username's state is one row, decided atomically across processes.
    async fn begin_sign_in(
        &self,
        username: &str,
        now: UnixMillis,
        hold_until: UnixMillis,
    ) -> StoreResult<Option<UnixMillis>>;

    /// Counts a failed sign-in of `username` (failures before `forget_before` are
    /// forgotten first) and returns the consecutive failures so far. Rows of other
    /// usernames untouched since `forget_before` and no longer blocked are deleted.
    async fn record_sign_in_failure(
        &self,
        username: &str,
        now: UnixMillis,
        forget_before: UnixMillis,
    ) -> StoreResult<u32>;

    /// Blocks `username` until `until` (the lockout that its failures earned).
    async fn block_sign_in(&self, username: &str, until: UnixMillis) -> StoreResult<()>;

    /// Forgets `username`'s failures and block (after a successful sign-in).
    async fn clear_sign_in(&self, username: &str) -> StoreResult<()>;
}

/// What the store reports about its own machinery, for monitoring (no I/O).
pub trait StatusStore: Send + Sync {
    /// Database connections and queued writes right now.
    fn pool_status(&self) -> PoolStatus;
}

/// A snapshot of a store's connections and write queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Most connections the pool opens; `None` where it has no fixed bound (SQLite's read
    /// connections, one per concurrent read).
    pub max_connections: Option<usize>,
    /// Connections serving a request right now.
    pub in_use_connections: usize,
    /// Open connections waiting for work.
    pub idle_connections: usize,
    /// Requests waiting for a connection to become free.
    pub waiting_requests: usize,
    /// Writes queued for the next group commit (SQLite's writer, PostgreSQL's appender).
    pub queued_writes: usize,
}

/// Log streams: their configuration, durable cursor, state and backoff, the lease that
/// lets exactly one process deliver a stream at a time, and the events they read.
#[async_trait]
pub trait LogStreamStore: Send + Sync {
    /// Stores a new stream; `OrganizationNotFound` when the organization does not exist.
    async fn create_log_stream(&self, stream: LogStream) -> StoreResult<LogStream>;

    /// An organization's streams, oldest first.
    async fn list_log_streams(&self, organization_id: &str) -> StoreResult<Vec<LogStream>>;

    /// One of an organization's streams (`None` for another organization's).
    async fn get_log_stream(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<LogStream>>;

    /// Deletes one of an organization's streams; `false` when there is no such stream.
    async fn delete_log_stream(&self, organization_id: &str, id: &str) -> StoreResult<bool>;

    /// Pauses (`Inactive`) or resumes (`Active`) a stream; resuming clears the backoff so
    /// delivery starts at once. `None` when there is no such stream.
    async fn set_log_stream_state(
        &self,
        organization_id: &str,
        id: &str,
        state: LogStreamState,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>>;

    /// Moves the cursor to `delivered_sequence` (a replay starts after it) and clears the
    /// backoff. `None` when there is no such stream.
    async fn rewind_log_stream(
        &self,
        organization_id: &str,
        id: &str,
        delivered_sequence: i64,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>>;

    /// Leases up to `limit` streams that have something to deliver (events after the
    /// cursor, or events retention purged before they were delivered), are not paused,
    /// are past their backoff, and whose lease is free, expired or already `owner`'s:
    /// each is `owner`'s until `lease_until`. Across processes sharing the database, a
    /// stream is leased to one of them at a time.
    async fn lease_log_streams(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<LogStream>>;

    /// Extends `owner`'s lease on a stream; `false` when the lease is no longer `owner`'s
    /// (it expired and another process took it, or the stream was deleted) or the stream
    /// was paused: a delivery renews before every batch, so pausing a stream stops a
    /// delivery in progress after the batch it is sending, even one that new events would
    /// otherwise keep from ever catching up.
    async fn renew_log_stream_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<bool>;

    /// Gives up `owner`'s lease on a stream (nothing when it is not `owner`'s).
    async fn release_log_stream_lease(&self, id: &str, owner: &str) -> StoreResult<()>;

    /// Advances the cursor after the destination acknowledged a batch, clears the error
    /// and backoff and extends the lease; only if the lease is still the owner's and the
    /// cursor is where the batch started (`false` otherwise, and nothing changes).
    async fn record_log_stream_delivery(&self, delivery: StreamDelivery) -> StoreResult<bool>;

    /// Records a failed attempt (state, reason, backoff) and releases the lease; only if
    /// the lease is still the owner's. A paused stream stays paused.
    async fn record_log_stream_failure(&self, failure: StreamFailure) -> StoreResult<bool>;

    /// Up to `limit` of the organization's events after `after_sequence`, in sequence order,
    /// read in one snapshot with the chain hash they follow from and any gap retention
    /// purged right after `after_sequence`. `Corrupt` when the stored log has a hole that
    /// no purge explains.
    async fn log_stream_events(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<StreamEvents>;

    /// Where every stream stands, for monitoring, in one snapshot: the count and largest
    /// lag per (type, state) over all streams, and the `limit` most lagging streams (ties
    /// by id), each with its cursor and its organization's newest sequence. One query per
    /// part across all streams (an index lookup of the newest sequence per stream), so the
    /// cost grows with the number of streams, never with the number of events.
    async fn log_stream_positions(&self, limit: u32) -> StoreResult<StreamPositions>;
}
