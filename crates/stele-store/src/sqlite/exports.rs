//! Exports in SQLite: the snapshot an export fixes, read back with its completeness.

use super::database_error;
use super::events::chain_anchor;
use super::idempotency::claim_idempotency_key;
use super::organizations::organization_exists;
use super::tree::tree_size;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::exports::{export_filters, snapshot, stored_export, StoredExport};
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use stele_core::model::*;

/// Where the organization's retained chain starts now (1 until a purge).
fn retained_from(connection: &Connection, organization_id: &str) -> StoreResult<i64> {
    Ok(chain_anchor(connection, organization_id)?.map_or(1, |(previous, _)| previous + 1))
}

pub(super) fn load_export(connection: &Connection, id: &str) -> StoreResult<Option<Export>> {
    let row: Option<StoredExport> = connection
        .prepare_cached("SELECT organization_id, filters, format, up_to_sequence, created_at FROM exports WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([id], |row| {
                    Ok(StoredExport {
                        organization_id: row.get(0)?,
                        filters: row.get(1)?,
                        format: row.get(2)?,
                        up_to_sequence: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })
                .optional()
        })
        .map_err(database_error)?;
    row.map(|row| {
        let retained_now = retained_from(connection, &row.organization_id)?;
        stored_export(id, row, retained_now)
    })
    .transpose()
}

#[async_trait]
impl ExportStore for SqliteStore {
    async fn create_export(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Export>> {
        self.writer
            .write(move |connection| {
                if let Some(record) = &idempotency {
                    if let Some(existing) = claim_idempotency_key(connection, record)? {
                        return Ok(Idempotent::AlreadyDone(existing));
                    }
                }
                if !organization_exists(connection, &export.query.organization_id)? {
                    return Err(StoreError::OrganizationNotFound);
                }
                // Runs on the writer, after every acknowledged event has committed: the
                // snapshot holds exactly the events stored when the export was created. The
                // tree size, not the newest remaining event, so a log that retention purged
                // entirely still snapshots at its newest sequence.
                let head = tree_size(connection, &export.query.organization_id)? as i64;
                // Where the retained chain starts now: a later purge past it makes the
                // export incomplete (see `load_export`).
                let filters = export_filters(&export, retained_from(connection, &export.query.organization_id)?)?;
                connection
                    .execute(
                        "INSERT INTO exports (id, organization_id, filters, format, up_to_sequence, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![export.id, export.query.organization_id, filters, export.format.name(), head, export.created_at],
                    )
                    .map_err(database_error)?;
                Ok(Idempotent::Done(snapshot(export, head)))
            })
            .await
    }

    async fn get_export(&self, id: &str) -> StoreResult<Option<Export>> {
        let id = id.to_owned();
        self.readers
            .read(move |connection| load_export(connection, &id))
            .await
    }
}
