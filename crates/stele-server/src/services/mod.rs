//! Use cases shared by the HTTP API, the CLI and background workers. Services hold the
//! rules; they call `stele-core` for pure logic and the `Store` for persistence, and know
//! nothing about HTTP.

pub mod api_keys;
pub mod bootstrap;
pub mod error;
pub mod events;
pub mod exports;
pub mod filters;
pub mod organizations;
pub mod retention;
pub mod schemas;
pub mod sessions;
pub mod transparency;
pub mod users;

pub use error::ServiceError;

/// Builds the idempotency record to store in the same transaction as a write, from what is
/// being written (the new event's id, the new organization). The API layer supplies it
/// because only it knows the response body.
pub type IdempotencyRecordFor<T> =
    Box<dyn FnOnce(&T) -> stele_core::model::IdempotencyRecord + Send>;
