//! Use cases shared by the HTTP API, the dashboard, the CLI and background workers.
//! Services hold the rules; they call `stele-core` for pure logic and the `Store` for
//! persistence, and know nothing about HTTP. Each is a struct built from what it needs
//! (the store, caches, other services) by the composition root (`crate::app`); clones
//! share their caches.

pub mod activity;
pub mod api_keys;
pub mod bootstrap;
pub mod error;
pub mod events;
pub mod exports;
pub mod filters;
pub mod idempotency;
pub mod import;
pub mod jobs;
pub mod log_streams;
pub mod organizations;
pub mod portal;
pub mod quarantine;
pub mod rate_limits;
pub mod retention;
pub mod schemas;
pub mod sessions;
pub mod transparency;
pub mod users;

pub use error::{QuarantineNote, ServiceError};

/// Builds the idempotency record to store in the same transaction as a write, from what is
/// being written (the new event's id, the new organization). The API layer supplies it
/// because only it knows the response body; encoding that body may fail.
pub type IdempotencyRecordFor<T> =
    Box<dyn FnOnce(&T) -> Result<stele_core::model::IdempotencyRecord, ServiceError> + Send>;
