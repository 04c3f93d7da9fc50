-- The append-first write path: acknowledging an event writes only what durability and the
-- chain need (the `events` row, its `(organization_id, sequence)` and `id` keys, the
-- idempotency record). The search indexes move to `event_search` and `event_targets`, which
-- the writer fills between group commits, thousands of events per transaction, so an index
-- page is written once for many events instead of once per commit (see
-- src/sqlite/search_index.rs). Searches read the events not yet indexed from the tail of
-- `events` (`log_position` above `search_index_progress.indexed_position`), so an
-- acknowledged event is searchable at once.
--
-- `events` is rebuilt with an explicit `log_position`: AUTOINCREMENT never reuses a value,
-- even after the newest rows are purged, and VACUUM keeps it (it may renumber an implicit
-- rowid), so "indexed up to position N" stays true. On a large database this migration
-- copies every event once.

CREATE TABLE events_by_position (
    log_position    INTEGER PRIMARY KEY AUTOINCREMENT,
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

INSERT INTO events_by_position (log_position, organization_id, sequence, id, action, version,
                                actor_id, actor_name, occurred_at, received_at, canonical, hash)
    SELECT rowid, organization_id, sequence, id, action, version,
           actor_id, actor_name, occurred_at, received_at, canonical, hash
    FROM events ORDER BY rowid;

DROP TABLE events;
ALTER TABLE events_by_position RENAME TO events;
-- Behind "the most recent stored events of an action" (the schema-change review).
CREATE INDEX events_by_action_recency ON events (action, received_at, id);

-- The searchable fields of each indexed event, keyed like `events`. A rowid table, like
-- `events` was: as a WITHOUT ROWID table keyed by `(organization_id, sequence)`, SQLite
-- (which has no statistics here) walks that key instead of the actor index for an actor's
-- page.
CREATE TABLE event_search (
    organization_id TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    action          TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT,
    occurred_at     INTEGER NOT NULL,
    UNIQUE (organization_id, sequence)
);

INSERT INTO event_search (organization_id, sequence, action, actor_id, actor_name, occurred_at)
    SELECT organization_id, sequence, action, actor_id, actor_name, occurred_at FROM events;

-- The indexes `events` had; each still ends in `sequence`.
CREATE INDEX event_search_by_action ON event_search (organization_id, action, sequence);
CREATE INDEX event_search_by_actor ON event_search (organization_id, actor_id, sequence, occurred_at);
CREATE INDEX event_search_by_occurred_at ON event_search (organization_id, occurred_at, sequence);

-- Every event with `log_position <= indexed_position` has its `event_search` and
-- `event_targets` rows, committed in the same transaction as this value; the rest are the
-- tail. `event_targets` already holds every existing event's targets.
CREATE TABLE search_index_progress (
    singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
    indexed_position INTEGER NOT NULL
);

INSERT INTO search_index_progress (singleton, indexed_position)
    VALUES (1, COALESCE((SELECT MAX(log_position) FROM events), 0));
