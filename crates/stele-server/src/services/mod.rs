//! Use cases shared by the HTTP API, the CLI and background workers. Services hold the
//! rules; they call `stele-core` for pure logic and the `Store` for persistence, and know
//! nothing about HTTP.

pub mod api_keys;
pub mod bootstrap;
pub mod error;
pub mod events;
pub mod organizations;
pub mod schemas;

pub use error::ServiceError;
