//! The metrics the store records itself, through the `metrics` facade: what its group
//! commits (SQLite's writer thread, PostgreSQL's appender) do. The names are public so the
//! server's metrics module describes and exposes them with the rest; without an installed
//! recorder (tools, tests) recording costs next to nothing.

use std::time::Duration;

/// Histogram: jobs (writes) committed together in one transaction.
pub const GROUP_COMMIT_SIZE: &str = "stele_group_commit_size";
/// Histogram: seconds from the start of a group commit's transaction to its durable commit.
pub const GROUP_COMMIT_DURATION: &str = "stele_group_commit_duration_seconds";
/// Counter: group commits whose transaction did not commit as a whole.
pub const GROUP_COMMIT_FAILURES: &str = "stele_group_commit_failures_total";

/// The `backend` label of the store's metrics.
pub const SQLITE: &str = "sqlite";
pub const POSTGRES: &str = "postgres";

/// Records one group commit of `jobs` writes that took `elapsed`.
pub(crate) fn record_group_commit(
    backend: &'static str,
    jobs: usize,
    elapsed: Duration,
    committed: bool,
) {
    metrics::histogram!(GROUP_COMMIT_SIZE, "backend" => backend).record(jobs as f64);
    metrics::histogram!(GROUP_COMMIT_DURATION, "backend" => backend).record(elapsed.as_secs_f64());
    if !committed {
        metrics::counter!(GROUP_COMMIT_FAILURES, "backend" => backend).increment(1);
    }
}
