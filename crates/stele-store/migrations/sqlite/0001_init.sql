-- Stele's initial SQLite schema. Times are Unix milliseconds (UTC).

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    external_id TEXT UNIQUE,
    metadata    TEXT NOT NULL,          -- JSON object
    domains     TEXT NOT NULL,          -- JSON array of domain objects
    retention_period_in_days INTEGER,   -- NULL keeps events forever
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,   -- SHA-256 of the secret; the secret itself is never stored
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,        -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

CREATE TABLE actions (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Immutable: rows are only ever inserted.
CREATE TABLE schema_versions (
    action_id  INTEGER NOT NULL REFERENCES actions(id),
    version    INTEGER NOT NULL,
    definition TEXT NOT NULL,           -- RFC 8785 JSON of the definition
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (action_id, version)
) WITHOUT ROWID;

-- Append-only. `canonical` holds the exact bytes that `hash` chains, never re-serialised.
-- The other columns are copies of fields inside `canonical`, kept for searching.
CREATE TABLE events (
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    sequence        INTEGER NOT NULL,
    id              TEXT NOT NULL UNIQUE,
    action          TEXT NOT NULL,
    version         INTEGER NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    canonical       BLOB NOT NULL,
    hash            BLOB NOT NULL,
    UNIQUE (organization_id, sequence)
);

-- Search indexes: each ends in `sequence` so a filtered first page is an index range scan
-- in sequence order, whatever the organization's size.
CREATE INDEX events_by_action ON events (organization_id, action, sequence);
CREATE INDEX events_by_actor ON events (organization_id, actor_id, sequence);
CREATE INDEX events_by_occurred_at ON events (organization_id, occurred_at, sequence);

-- One row per target of each event, for the target filters.
CREATE TABLE event_targets (
    organization_id TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    target_type     TEXT NOT NULL,
    PRIMARY KEY (organization_id, target_id, sequence, position)
) WITHOUT ROWID;

CREATE INDEX event_targets_by_type ON event_targets (organization_id, target_type, sequence);

-- Where each organization's retained chain starts once retention has purged its oldest
-- events: the first retained sequence and the hash it chains from.
CREATE TABLE chain_anchors (
    organization_id TEXT PRIMARY KEY,
    first_sequence  INTEGER NOT NULL,
    previous_hash   BLOB NOT NULL
);

-- Exports are snapshots: the events of one organization up to `up_to_sequence` that
-- match the filters. Their content is produced when downloaded.
CREATE TABLE exports (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    filters         TEXT NOT NULL,      -- JSON: actions, actor_names, actor_ids, target_types, ranges
    format          TEXT NOT NULL,      -- csv | jsonl
    up_to_sequence  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE INDEX exports_by_organization ON exports (organization_id, created_at);

-- Deployment-wide secrets shared by every process (e.g. the export URL signing key).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,          -- the API key the request was made with
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
