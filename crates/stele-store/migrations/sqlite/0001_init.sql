-- Stele's initial SQLite schema. Times are Unix milliseconds (UTC).

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    external_id TEXT UNIQUE,
    metadata    TEXT NOT NULL,          -- JSON object
    domains     TEXT NOT NULL,          -- JSON array of domain objects
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
CREATE TABLE events (
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    sequence        INTEGER NOT NULL,
    id              TEXT NOT NULL UNIQUE,
    action          TEXT NOT NULL,
    version         INTEGER NOT NULL,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    canonical       BLOB NOT NULL,
    hash            BLOB NOT NULL,
    UNIQUE (organization_id, sequence)
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
