//! The `stele` server: HTTP API ([`api`]), web dashboard ([`dashboard`]), use cases
//! ([`services`]), background loops ([`workers`]), the composition root that wires them
//! ([`app`]) and the configuration that opens the store.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error_code;
pub mod metrics;
pub mod origin;
pub mod portal;
pub mod private_file;
pub mod responses;
pub mod services;
pub mod state;
pub mod workers;
pub mod workos_source;

use std::sync::Arc;

use stele_store::postgres::PostgresStore;
pub use stele_store::sqlite::SearchIndexing;
use stele_store::sqlite::SqliteStore;
use stele_store::{Store, StoreError};

pub use crate::app::{build_state, serve, serve_with_metrics};
use crate::config::{DatabaseLocation, DatabaseOptions};

/// Why a database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The database URL or its options do not name a usable database.
    #[error("database error: {0}")]
    Location(String),
    /// Only `serve`, `migrate` and `import` create a database; other commands name what they looked
    /// for instead of leaving an empty one behind.
    #[error(
        "no Stele database at {path} (from --database-url {url}{relative}); run this command \
         where `stele serve` keeps its data, or point --database-url or STELE_DATABASE_URL at \
         that database"
    )]
    Missing {
        path: String,
        url: String,
        relative: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the store a database URL names. With `migrate`, a missing SQLite file is created and
/// pending migrations are applied; without it, the database must exist and be current.
/// `indexing` says whether this process keeps SQLite's search index file up to date (the
/// server does, one-off commands do not; PostgreSQL indexes as it writes).
pub async fn open_store(
    database_url: &str,
    options: &DatabaseOptions,
    migrate: bool,
    indexing: SearchIndexing,
) -> Result<Arc<dyn Store>, OpenStoreError> {
    match DatabaseLocation::parse_with(database_url, options).map_err(OpenStoreError::Location)? {
        DatabaseLocation::Sqlite { path, sync } => {
            if !migrate && !path.exists() {
                let relative = match std::env::current_dir() {
                    Ok(dir) if path.is_relative() => {
                        format!(", relative to the current directory {}", dir.display())
                    }
                    _ => String::new(),
                };
                return Err(OpenStoreError::Missing {
                    path: path.display().to_string(),
                    url: database_url.to_owned(),
                    relative,
                });
            }
            Ok(Arc::new(SqliteStore::open_with(
                &path, migrate, sync, indexing,
            )?))
        }
        DatabaseLocation::Postgres(options) => {
            Ok(Arc::new(PostgresStore::open(&options, migrate).await?))
        }
    }
}

/// Applies pending migrations to the database a URL names; returns how many ran.
pub async fn migrate(
    database_url: &str,
    options: &DatabaseOptions,
) -> Result<usize, OpenStoreError> {
    match DatabaseLocation::parse_with(database_url, options).map_err(OpenStoreError::Location)? {
        DatabaseLocation::Sqlite { path, .. } => Ok(SqliteStore::migrate(&path)?),
        DatabaseLocation::Postgres(options) => Ok(PostgresStore::migrate(&options).await?),
    }
}
