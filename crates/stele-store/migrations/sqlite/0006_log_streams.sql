-- Log streams: each organization's events pushed to its SIEM or bucket. One row per
-- stream holds its destination, its durable cursor (the last sequence the destination
-- acknowledged), its state and backoff, and the delivery lease. Times are Unix
-- milliseconds. SQLite is opened by one process, so the lease columns only matter on
-- PostgreSQL, but both backends keep the same schema and rules.
CREATE TABLE log_streams (
    id                 TEXT PRIMARY KEY,
    organization_id    TEXT NOT NULL,
    type               TEXT NOT NULL,              -- Datadog | Splunk | S3 | GoogleCloudStorage | GenericHttps
    state              TEXT NOT NULL,              -- active | inactive | error | invalid
    settings           TEXT NOT NULL,              -- JSON object: the settings that are not secret
    sealed_secrets     BLOB,                       -- secret settings, sealed with the stream key
    delivered_sequence INTEGER NOT NULL DEFAULT 0, -- the cursor
    delivered_events   INTEGER NOT NULL DEFAULT 0,
    failures           INTEGER NOT NULL DEFAULT 0, -- failed attempts since the last delivery
    last_synced_at     INTEGER,
    last_error         TEXT,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT,                       -- the process delivering it now
    lease_expires_at   INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE INDEX log_streams_by_organization ON log_streams (organization_id, created_at, id);
