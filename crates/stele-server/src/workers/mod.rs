//! Long-running background loops. Each stops when the shutdown signal fires.

pub mod idempotency_cleanup;
pub mod retention;
