//! Schema migrations for PostgreSQL, tracked in `stele_migrations` (one row per applied
//! migration). Replicas starting together serialise on an advisory lock, so each migration
//! runs once; each runs in its own transaction with its bookkeeping row.

use tokio_postgres::Client;

use crate::shared::migrations::applied_migrations;
use crate::{StoreError, StoreResult};

fn database_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::postgres("migrating the schema", error)
}

pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_merkle.sql"),
    include_str!("../../migrations/postgres/0004_access.sql"),
    include_str!("../../migrations/postgres/0005_limits.sql"),
    include_str!("../../migrations/postgres/0006_log_streams.sql"),
    include_str!("../../migrations/postgres/0007_portal.sql"),
    include_str!("../../migrations/postgres/0008_quarantine.sql"),
    include_str!("../../migrations/postgres/0009_workos_compat.sql"),
];

/// The advisory lock key held while migrating ("stele mg" in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_656c_6520_6d67;

/// Applies every migration not yet applied; returns how many ran.
pub(crate) async fn migrate(client: &mut Client) -> StoreResult<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(database_error)?;
    let outcome = apply_pending(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(database_error);
    let applied = outcome?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> StoreResult<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS stele_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(database_error)?;
    let applied: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM stele_migrations",
            &[],
        )
        .await
        .map_err(database_error)?
        .get(0);
    let applied = applied_migrations(applied, MIGRATIONS.len())?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = client.transaction().await.map_err(database_error)?;
        transaction
            .batch_execute(sql)
            .await
            .map_err(database_error)?;
        transaction
            .execute(
                "INSERT INTO stele_migrations (version) VALUES ($1)",
                &[&((index + 1) as i64)],
            )
            .await
            .map_err(database_error)?;
        transaction.commit().await.map_err(database_error)?;
    }
    Ok(MIGRATIONS.len() - applied)
}

/// Whether every migration this binary knows has been applied.
pub(crate) async fn is_current(client: &Client) -> StoreResult<bool> {
    let row = client
        .query_one("SELECT to_regclass('stele_migrations') IS NOT NULL", &[])
        .await
        .map_err(database_error)?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    let applied: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM stele_migrations",
            &[],
        )
        .await
        .map_err(database_error)?
        .get(0);
    Ok(applied as usize == MIGRATIONS.len())
}
