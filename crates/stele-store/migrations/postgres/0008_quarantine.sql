-- Quarantine: events refused by their schema (unknown action or version, undeclared
-- target type, metadata failing its JSON Schema), kept with the exact request body and
-- the errors they were refused with, until they are accepted (stored as events after a
-- schema fix), discarded, or expire. Deleting the organization deletes them.
CREATE TABLE quarantined_events (
    id                TEXT COLLATE "C" PRIMARY KEY, -- quarantine_<ULID>; ids sort by creation
    organization_id   TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    action            TEXT NOT NULL,
    version           BIGINT NOT NULL,              -- the version the event named
    body              BYTEA NOT NULL,               -- the request body, byte for byte
    errors            TEXT NOT NULL,                -- JSON array of {instancePath, message}
    reason            TEXT NOT NULL,                -- the first error, what counts group by
    idempotency_key   TEXT,                         -- scope and key of the refused request
    accepted_event_id TEXT,                         -- set just before an accept appends
    created_at        BIGINT NOT NULL
);

CREATE INDEX quarantined_events_by_organization ON quarantined_events (organization_id, id);
CREATE INDEX quarantined_events_by_age ON quarantined_events (created_at);
-- Behind an action's version history: "N quarantined events fail v3".
CREATE INDEX quarantined_events_by_action ON quarantined_events (action, version, id);
-- A retried request (same Idempotency-Key) is kept once.
CREATE UNIQUE INDEX quarantined_events_by_request
    ON quarantined_events (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
