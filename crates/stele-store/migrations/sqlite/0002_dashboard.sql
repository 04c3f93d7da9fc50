-- Dashboard sessions, and the index behind "the most recent stored events of an action"
-- (the schema change review checks up to 1,000 of them).

-- One row per signed-in browser. Only a SHA-256 of the cookie's token is kept, so a copy
-- of the database does not hand out live sessions.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Read backwards: newest first within one action, without sorting the action's events.
CREATE INDEX events_by_action_recency ON events (action, received_at, id);
