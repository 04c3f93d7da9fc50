//! Stele's domain logic, free of I/O: what an audit event is, how it is checked against
//! an immutable schema version, the canonical bytes that get hashed, the hash chain, the
//! Merkle tree with its proofs, and signed checkpoints.
//!
//! Everything here is deterministic and synchronous so that the store, the HTTP layer and
//! offline verifiers can all share it.

pub mod access;
pub mod action_name;
pub mod canonical;
pub mod chain;
pub mod compatibility;
pub mod event;
pub mod export;
pub mod field_error;
pub mod idempotency;
pub mod ids;
pub mod log_stream;
pub mod merkle;
pub mod metadata;
pub mod model;
pub mod note;
pub mod pagination;
pub mod proven_jsonl;
pub mod quarantine;
pub mod schema;
pub mod timestamp;

pub use field_error::FieldError;
