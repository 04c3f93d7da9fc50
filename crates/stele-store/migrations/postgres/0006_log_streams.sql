-- Log streams, as in SQLite's migration 0006. On PostgreSQL several replicas share the
-- table: a replica delivers a stream only while it holds the stream's lease
-- (`lease_owner` until `lease_expires_at`), so exactly one replica delivers each stream
-- at a time, and a killed replica's streams are taken over once their lease expires.
CREATE TABLE log_streams (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    organization_id    TEXT COLLATE "C" NOT NULL,
    type               TEXT NOT NULL,
    state              TEXT NOT NULL,
    settings           TEXT NOT NULL,
    sealed_secrets     BYTEA,
    delivered_sequence BIGINT NOT NULL DEFAULT 0,
    delivered_events   BIGINT NOT NULL DEFAULT 0,
    failures           BIGINT NOT NULL DEFAULT 0,
    last_synced_at     BIGINT,
    last_error         TEXT,
    next_attempt_at    BIGINT NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_expires_at   BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE INDEX log_streams_by_organization ON log_streams (organization_id, created_at, id);
