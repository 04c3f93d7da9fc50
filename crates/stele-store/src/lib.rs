//! Persistence for Stele. The [`ports`] name every use case the service needs, one trait
//! per capability, and [`Store`] is their sum; the embedded
//! SQLite implementation lives in [`sqlite`], the PostgreSQL one (for several replicas on
//! one database) in [`postgres`]. No other crate contains SQL.

mod error;
pub mod ports;
pub mod postgres;
mod shared;
pub mod sqlite;
pub mod telemetry;

pub use error::{StoreError, StoreResult};
pub use ports::*;

/// Everything Stele persists: the sum of the ports, so one `Arc<dyn Store>` reaches every
/// capability. Implemented for any type that implements every port; bring the ports into
/// scope (`use stele_store::prelude::*`) to call their methods.
pub trait Store:
    CredentialStore
    + SessionStore
    + PortalStore
    + OrganizationStore
    + SchemaStore
    + EventStore
    + ExportStore
    + QuarantineStore
    + RetentionStore
    + TreeStore
    + IdempotencyStore
    + JobStore
    + SecretStore
    + StatusStore
    + LogStreamStore
    + LimitStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: CredentialStore
        + SessionStore
        + PortalStore
        + OrganizationStore
        + SchemaStore
        + EventStore
        + ExportStore
        + QuarantineStore
        + RetentionStore
        + TreeStore
        + IdempotencyStore
        + JobStore
        + SecretStore
        + StatusStore
        + LogStreamStore
        + LimitStore
        + Send
        + Sync
        + 'static
{
}

/// [`Store`] and every port, for callers that use the store through `dyn Store`.
pub mod prelude {
    pub use crate::ports::*;
    pub use crate::{Store, StoreError, StoreResult};
}
