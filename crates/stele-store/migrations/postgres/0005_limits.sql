-- Counters shared by every replica: per-key request rate limits and the dashboard's
-- sign-in throttle.

-- Requests taken from one fixed window of one subject (`api_key:<id>`). `granted` is what
-- the latest take handed out, so a take learns in one statement how much it got.
CREATE TABLE rate_limit_windows (
    subject      TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    granted      BIGINT NOT NULL,
    PRIMARY KEY (subject, window_start)
);

-- Consecutive failed sign-ins per (lower-cased) username, and until when the username is
-- blocked (a lockout, or a check in progress).
CREATE TABLE sign_in_throttle (
    username        TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL DEFAULT 0,
    last_failure_at BIGINT NOT NULL DEFAULT 0,
    blocked_until   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sign_in_throttle_by_last_failure ON sign_in_throttle (last_failure_at);
