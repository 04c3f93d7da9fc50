//! The PostgreSQL store, for running several stateless `stele` replicas on one database.
//!
//! Everything shared between replicas lives in the database and is decided there: the next
//! sequence of an organization (its `chain_heads` row, locked by the appender, see
//! [`appender`]), idempotency keys (the primary key of `idempotency_keys`, claimed in the
//! same transaction as the write), the latest schema version of an action (its `actions`
//! row, locked while deciding), and which replica runs a background job
//! ([`JobStore::claim_job_run`](crate::JobStore::claim_job_run)). Commits are synchronous
//! (`synchronous_commit` as configured on the server, `on` by default), so an acknowledged
//! write is on the primary's disk.

mod appender;
mod credentials;
mod events;
mod exports;
mod idempotency;
mod jobs;
mod limits;
mod log_streams;
mod migrations;
mod organizations;
mod portal;
mod quarantine;
mod retention;
mod schemas;
mod secrets;
mod sessions;
mod status;
mod tls;
mod tree;

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use self::appender::Appender;
use crate::error::describe_postgres;
use crate::prelude::*;

/// How to reach the database and how much of it one process may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A `postgres://` (or `postgresql://`) URL, as libpq accepts it.
    pub url: String,
    /// Most connections this process opens (appends use one at a time).
    pub pool_size: usize,
    /// Longest a single statement may run before the server cancels it; zero disables.
    pub statement_timeout: Duration,
    /// Longest to wait for a new connection, or for a free one from the pool.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    /// Whether `url` is a connection URL Stele accepts (including its TLS parameters and
    /// a readable `sslrootcert`), with the reason if not.
    pub fn check_url(url: &str) -> Result<(), String> {
        let split = tls::split_url(url)?;
        split
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|error| format!("invalid PostgreSQL URL: {error}"))?;
        tls::connector(&split.tls)?;
        Ok(())
    }

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A failed statement; the PostgreSQL error is kept as the source.
pub(crate) fn database_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::postgres("running a statement", error)
}

pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => StoreError::postgres("connecting", error),
        deadpool_postgres::PoolError::Closed => StoreError::Unavailable,
        other => StoreError::Pool {
            source: other.into(),
        },
    }
}

pub(super) fn is_unique_violation(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

pub struct PostgresStore {
    pub(super) pool: Pool,
    pub(super) appender: Appender,
}

/// The tokio-postgres configuration and the TLS connector the URL asks for.
fn connection_config(
    options: &PostgresOptions,
) -> StoreResult<(tokio_postgres::Config, MakeRustlsConnect)> {
    let split = tls::split_url(&options.url).map_err(StoreError::Incompatible)?;
    let mut config: tokio_postgres::Config = split
        .url
        .parse()
        .map_err(|error| StoreError::postgres("parsing the connection URL", error))?;
    let (ssl_mode, connector) = tls::connector(&split.tls).map_err(StoreError::Incompatible)?;
    config.ssl_mode(ssl_mode);
    config.connect_timeout(options.connect_timeout);
    config.application_name("stele");
    // Appended to whatever options the URL carries; later settings win.
    let existing = config.get_options().unwrap_or_default().to_owned();
    config.options(format!(
        "{existing} -c statement_timeout={} -c idle_in_transaction_session_timeout=60000",
        options.statement_timeout.as_millis()
    ));
    Ok((config, connector))
}

async fn connect(options: &PostgresOptions) -> StoreResult<tokio_postgres::Client> {
    let (config, connector) = connection_config(options)?;
    let (client, connection) = config
        .connect(connector)
        .await
        .map_err(|error| StoreError::postgres("connecting", error))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %describe_postgres(&error), "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects, applying pending migrations first when `migrate` is set; without it, a
    /// database whose schema is not current is refused.
    pub async fn open(options: &PostgresOptions, migrate: bool) -> StoreResult<Self> {
        let mut client = connect(options).await?;
        if migrate {
            let applied = migrations::migrate(&mut client).await?;
            if applied > 0 {
                tracing::info!(applied, "applied PostgreSQL migrations");
            }
        } else if !migrations::is_current(&client).await? {
            return Err(StoreError::Incompatible(
                "the PostgreSQL schema is not up to date; run `stele migrate` or start with --migrate-on-start true".into(),
            ));
        }
        drop(client);
        let (config, connector) = connection_config(options)?;
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| StoreError::Internal(format!("cannot build the pool: {error}")))?;
        Ok(Self {
            appender: Appender::start(pool.clone()),
            pool,
        })
    }

    /// Applies pending migrations and returns how many ran (for `stele migrate`).
    pub async fn migrate(options: &PostgresOptions) -> StoreResult<usize> {
        let mut client = connect(options).await?;
        migrations::migrate(&mut client).await
    }

    pub(super) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one query on a pooled connection with a cached prepared statement.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        query_in(&self.client().await?, sql, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        execute_in(&self.client().await?, sql, params).await
    }
}

/// Starts a read-only transaction whose statements all see one snapshot (REPEATABLE
/// READ), for reads that must agree with each other while writers commit.
pub(super) async fn read_snapshot(
    client: &mut deadpool_postgres::Object,
) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(database_error)
}

pub(super) async fn query_in(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .query(&statement, params)
        .await
        .map_err(database_error)
}

pub(super) async fn execute_in(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .execute(&statement, params)
        .await
        .map_err(database_error)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
