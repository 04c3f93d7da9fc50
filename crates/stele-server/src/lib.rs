//! The `stele` server: HTTP API ([`api`]), web dashboard ([`dashboard`]), use cases
//! ([`services`]), background loops ([`workers`]) and the configuration that wires them
//! to a store.

pub mod api;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod services;
pub mod state;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stele_store::postgres::PostgresStore;
use stele_store::sqlite::SqliteStore;
use stele_store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{DatabaseLocation, DatabaseOptions};
use crate::state::AppState;

/// Opens the store a database URL names, applying pending migrations when `migrate`.
pub async fn open_store(
    database_url: &str,
    options: &DatabaseOptions,
    migrate: bool,
) -> Result<Arc<dyn Store>, StoreError> {
    match DatabaseLocation::parse_with(database_url, options).map_err(StoreError::Incompatible)? {
        DatabaseLocation::Sqlite { path, sync } => {
            Ok(Arc::new(SqliteStore::open_with(&path, migrate, sync)?))
        }
        DatabaseLocation::Postgres(options) => {
            Ok(Arc::new(PostgresStore::open(&options, migrate).await?))
        }
    }
}

/// Applies pending migrations to the database a URL names; returns how many ran.
pub async fn migrate(database_url: &str, options: &DatabaseOptions) -> Result<usize, StoreError> {
    match DatabaseLocation::parse_with(database_url, options).map_err(StoreError::Incompatible)? {
        DatabaseLocation::Sqlite { path, .. } => SqliteStore::migrate(&path),
        DatabaseLocation::Postgres(options) => PostgresStore::migrate(&options).await,
    }
}

/// Serves the API on `listener` until `shutdown` completes, running the background
/// workers alongside; in-flight requests finish before it returns.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_workers, worker_shutdown) = watch::channel(false);
    let cleanup_interval =
        Duration::from_secs(state.config.idempotency_cleanup_interval_secs.max(1));
    let cleanup = tokio::spawn(workers::idempotency_cleanup::run(
        state.clone(),
        cleanup_interval,
        worker_shutdown,
    ));
    let retention = tokio::spawn(workers::retention::run(
        state.clone(),
        Duration::from_secs(state.config.retention_interval_secs.max(1)),
        stop_workers.subscribe(),
    ));
    if let Err(error) = state.transparency.register(state.store.as_ref()).await {
        return Err(std::io::Error::other(format!(
            "recording the checkpoint signing key: {error}"
        )));
    }
    let checkpoints = tokio::spawn(workers::checkpoints::run(
        state.clone(),
        Duration::from_secs(state.config.checkpoint_interval_secs.max(1)),
        stop_workers.subscribe(),
    ));
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_workers.send(true);
    let _ = cleanup.await;
    let _ = retention.await;
    let _ = checkpoints.await;
    served
}
