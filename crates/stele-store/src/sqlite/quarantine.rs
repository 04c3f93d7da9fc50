//! The quarantine in SQLite: refused events kept until accepted, discarded or expired.
//! Keeping one runs on the single writer, so the per-organization cap is checked and the
//! row inserted as one decision.

use super::database_error;
use super::organizations::organization_exists;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::quarantine::{errors_text, QuarantineRow, QUARANTINE_COLUMNS};
use crate::shared::search::keyset;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::{Connection, OptionalExtension, Row};
use stele_core::pagination::{Page, PageRequest};
use stele_core::quarantine::{QuarantineCount, Quarantined, QuarantinedEvent};
use stele_core::timestamp::UnixMillis;

fn quarantine_row(row: &Row<'_>) -> rusqlite::Result<QuarantineRow> {
    Ok(QuarantineRow {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        action: row.get(2)?,
        version: row.get(3)?,
        body: row.get(4)?,
        errors: row.get(5)?,
        reason: row.get(6)?,
        request_key: row.get(7)?,
        accepted_event_id: row.get(8)?,
        created_at: row.get(9)?,
    })
}

fn find_by_request(
    connection: &Connection,
    organization_id: &str,
    request_key: &str,
) -> StoreResult<Option<String>> {
    connection
        .prepare_cached(
            "SELECT id FROM quarantined_events WHERE organization_id = ?1 AND idempotency_key = ?2",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![organization_id, request_key], |row| row.get(0))
                .optional()
        })
        .map_err(database_error)
}

fn collect_rows(
    connection: &Connection,
    sql: &str,
    values: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<QuarantinedEvent>> {
    let mut statement = connection.prepare_cached(sql).map_err(database_error)?;
    let rows: Vec<QuarantineRow> = statement
        .query_map(values, quarantine_row)
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    rows.into_iter().map(QuarantineRow::decode).collect()
}

#[async_trait]
impl QuarantineStore for SqliteStore {
    async fn quarantine_event(
        &self,
        event: QuarantinedEvent,
        limit: u64,
    ) -> StoreResult<Quarantined> {
        let errors = errors_text(&event.errors)?;
        self.writer
            .write(move |connection| {
                if !organization_exists(connection, &event.organization_id)? {
                    return Err(StoreError::OrganizationNotFound);
                }
                if let Some(key) = &event.request_key {
                    if let Some(id) = find_by_request(connection, &event.organization_id, key)? {
                        return Ok(Quarantined::Kept(id));
                    }
                }
                let held: i64 = connection
                    .prepare_cached(
                        "SELECT COUNT(*) FROM quarantined_events WHERE organization_id = ?1",
                    )
                    .and_then(|mut statement| {
                        statement.query_row([&event.organization_id], |row| row.get(0))
                    })
                    .map_err(database_error)?;
                if held as u64 >= limit {
                    return Ok(Quarantined::Full);
                }
                connection
                    .prepare_cached(
                        "INSERT INTO quarantined_events
                             (id, organization_id, action, version, body, errors, reason,
                              idempotency_key, accepted_event_id, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![
                            event.id,
                            event.organization_id,
                            event.action,
                            event.version,
                            event.body,
                            errors,
                            event.reason,
                            event.request_key,
                            event.created_at,
                        ])
                    })
                    .map_err(database_error)?;
                Ok(Quarantined::Kept(event.id))
            })
            .await
    }

    async fn list_quarantined(
        &self,
        organization_id: &str,
        page: PageRequest<String>,
    ) -> StoreResult<Page<QuarantinedEvent>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                let scan = page.scan();
                let (condition, direction) = keyset("id", &scan, "?2");
                let sql = format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
                     WHERE organization_id = ?1 AND {condition}
                     ORDER BY id {direction} LIMIT ?3"
                );
                let bound = scan.bound.map(|(key, _)| key.clone()).unwrap_or_default();
                let rows = collect_rows(
                    connection,
                    &sql,
                    &[&organization_id, &bound, &i64::from(scan.fetch)],
                )?;
                Ok(page.assemble(rows, |row| row.id.clone()))
            })
            .await
    }

    async fn get_quarantined(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<QuarantinedEvent>> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.readers
            .read(move |connection| {
                let rows = collect_rows(
                    connection,
                    &format!(
                        "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
                         WHERE id = ?1 AND organization_id = ?2"
                    ),
                    &[&id, &organization_id],
                )?;
                Ok(rows.into_iter().next())
            })
            .await
    }

    async fn claim_quarantine_acceptance(
        &self,
        organization_id: &str,
        id: &str,
        event_id: &str,
    ) -> StoreResult<Option<String>> {
        let (organization_id, id, event_id) = (
            organization_id.to_owned(),
            id.to_owned(),
            event_id.to_owned(),
        );
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE quarantined_events SET accepted_event_id = ?3
                         WHERE id = ?1 AND organization_id = ?2 AND accepted_event_id IS NULL",
                        params![id, organization_id, event_id],
                    )
                    .map_err(database_error)?;
                connection
                    .query_row(
                        "SELECT accepted_event_id FROM quarantined_events
                         WHERE id = ?1 AND organization_id = ?2",
                        params![id, organization_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(database_error)
            })
            .await
    }

    async fn discard_quarantined(&self, organization_id: &str, id: &str) -> StoreResult<bool> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM quarantined_events WHERE id = ?1 AND organization_id = ?2",
                        params![id, organization_id],
                    )
                    .map(|deleted| deleted > 0)
                    .map_err(database_error)
            })
            .await
    }

    async fn quarantine_counts(&self, organization_id: &str) -> StoreResult<Vec<QuarantineCount>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT action, version, reason, COUNT(*) FROM quarantined_events
                         WHERE organization_id = ?1
                         GROUP BY action, version, reason
                         ORDER BY COUNT(*) DESC, action, version, reason",
                    )
                    .map_err(database_error)?;
                let counts = statement
                    .query_map([&organization_id], |row| {
                        Ok(QuarantineCount {
                            action: row.get(0)?,
                            version: row.get(1)?,
                            reason: row.get(2)?,
                            count: row.get::<_, i64>(3)? as u64,
                        })
                    })
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                counts
            })
            .await
    }

    async fn quarantine_counts_of_action(&self, action: &str) -> StoreResult<Vec<(i64, u64)>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT version, COUNT(*) FROM quarantined_events
                         WHERE action = ?1 GROUP BY version ORDER BY version",
                    )
                    .map_err(database_error)?;
                let counts = statement
                    .query_map([&action], |row| {
                        Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                    })
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                counts
            })
            .await
    }

    async fn quarantined_of_action(
        &self,
        action: &str,
        version: i64,
        after_id: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<QuarantinedEvent>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| {
                collect_rows(
                    connection,
                    &format!(
                        "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
                         WHERE action = ?1 AND version = ?2 AND id > ?3
                         ORDER BY id LIMIT ?4"
                    ),
                    &[
                        &action,
                        &version,
                        &after_id.unwrap_or_default(),
                        &i64::from(limit),
                    ],
                )
            })
            .await
    }

    async fn purge_quarantine(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM quarantined_events WHERE created_at <= ?1",
                        [cutoff],
                    )
                    .map(|deleted| deleted as u64)
                    .map_err(database_error)
            })
            .await
    }
}
