-- Counters shared by every process on the database: per-key request rate limits and the
-- dashboard's sign-in throttle.

-- Requests taken from one fixed window of one subject (`api_key:<id>`). `granted` is what
-- the latest take handed out, so a take learns in one statement how much it got.
CREATE TABLE rate_limit_windows (
    subject      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used         INTEGER NOT NULL,
    granted      INTEGER NOT NULL,
    PRIMARY KEY (subject, window_start)
) WITHOUT ROWID;

-- Consecutive failed sign-ins per (lower-cased) username, and until when the username is
-- blocked (a lockout, or a check in progress).
CREATE TABLE sign_in_throttle (
    username        TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER NOT NULL DEFAULT 0,
    blocked_until   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX sign_in_throttle_by_last_failure ON sign_in_throttle (last_failure_at);
