//! Schema migrations for SQLite, tracked with `PRAGMA user_version`: migration N has run
//! when `user_version >= N`. Each runs in its own transaction.

use rusqlite::Connection;

use crate::shared::migrations::applied_migrations;
use crate::{StoreError, StoreResult};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_dashboard.sql"),
    include_str!("../../migrations/sqlite/0003_merkle.sql"),
    include_str!("../../migrations/sqlite/0004_access.sql"),
    include_str!("../../migrations/sqlite/0005_limits.sql"),
    include_str!("../../migrations/sqlite/0006_log_streams.sql"),
    include_str!("../../migrations/sqlite/0007_portal.sql"),
    include_str!("../../migrations/sqlite/0008_quarantine.sql"),
    include_str!("../../migrations/sqlite/0009_workos_compat.sql"),
    include_str!("../../migrations/sqlite/0010_search_index.sql"),
    include_str!("../../migrations/sqlite/0011_search_index_file.sql"),
];

/// Whether every migration this binary knows has been applied.
pub(crate) fn is_current(connection: &Connection) -> StoreResult<bool> {
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|error| StoreError::sqlite("reading the schema version", error))?;
    Ok(version == MIGRATIONS.len() as i64)
}

/// Applies every migration not yet applied; returns how many ran.
pub(crate) fn migrate(connection: &mut Connection) -> StoreResult<usize> {
    let database_error = |error| StoreError::sqlite("migrating the schema", error);
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(database_error)?;
    let applied = applied_migrations(version, MIGRATIONS.len())?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(database_error)?;
        transaction.execute_batch(sql).map_err(database_error)?;
        transaction
            .pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(database_error)?;
        transaction.commit().map_err(database_error)?;
    }
    Ok(MIGRATIONS.len() - applied)
}
