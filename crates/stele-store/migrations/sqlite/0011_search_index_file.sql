-- The search indexes move to a file of their own (`<database>-search`, see
-- src/sqlite/search_index.rs), built by a thread of their own beside the writer. The tables
-- here are dropped; the server rebuilds the index file from `events` when it starts (while
-- it does, searches read the events not indexed yet from `events` itself: correct, and
-- slower on a large database until the rebuild is done).

DROP TABLE event_targets;
DROP TABLE event_search;
DROP TABLE search_index_progress;

-- Deletions the index file must follow, in order: a retention purge of an organization's
-- events up to `up_to_sequence`, or (NULL) all of a deleted organization's events. The
-- indexer applies each once and remembers the last it applied in the index file.
CREATE TABLE search_index_deletions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    up_to_sequence  INTEGER
);

-- This database's identity, which the index file records: an index file built from
-- another database is rebuilt rather than trusted.
CREATE TABLE database_identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id        BLOB NOT NULL
);

INSERT INTO database_identity (singleton, id) VALUES (1, randomblob(16));
