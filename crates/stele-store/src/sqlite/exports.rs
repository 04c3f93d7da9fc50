//! Exports in SQLite: the snapshot an export fixes, read back with its completeness.

use super::database_error;
use super::events::chain_anchor;
use super::idempotency::claim_idempotency_key;
use super::organizations::organization_exists;
use super::SqliteStore;
use crate::prelude::*;
use crate::stored::json_text;
use crate::stored::parse_export_format;
use crate::stored::StoredExportFilters;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use stele_core::model::*;

pub(super) fn load_export(connection: &Connection, id: &str) -> StoreResult<Option<Export>> {
    let row: Option<(String, String, String, i64, i64)> = connection
        .prepare_cached("SELECT organization_id, filters, format, up_to_sequence, created_at FROM exports WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
                .optional()
        })
        .map_err(database_error)?;
    row.map(
        |(organization_id, filters, format, up_to_sequence, created_at)| {
            let stored: StoredExportFilters = serde_json::from_str(&filters)
                .map_err(|error| StoreError::Corrupt(format!("export {id} filters: {error}")))?;
            let retained_now =
                chain_anchor(connection, &organization_id)?.map_or(1, |(previous, _)| previous + 1);
            let mut query = stored.query;
            query.organization_id = organization_id.into();
            query.up_to_sequence = Some(up_to_sequence);
            Ok(Export {
                id: id.into(),
                query,
                format: parse_export_format(id, &format)?,
                created_at,
                complete: retained_now <= stored.retained_from,
            })
        },
    )
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
                // snapshot holds exactly the events stored when the export was created.
                let head: i64 = connection
                    .query_row(
                        "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE organization_id = ?1",
                        [&export.query.organization_id],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                // Where the retained chain starts now: a later purge past it makes the
                // export incomplete (see `load_export`).
                let retained_from = chain_anchor(connection, &export.query.organization_id)?
                    .map_or(1, |(previous, _)| previous + 1);
                let filters = json_text(&StoredExportFilters { query: export.query.clone(), retained_from })?;
                connection
                    .execute(
                        "INSERT INTO exports (id, organization_id, filters, format, up_to_sequence, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![export.id, export.query.organization_id, filters, export.format.name(), head, export.created_at],
                    )
                    .map_err(database_error)?;
                let mut query = export.query;
                query.up_to_sequence = Some(head);
                Ok(Idempotent::Done(Export { query, ..export }))
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
