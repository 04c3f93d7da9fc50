//! Log streams in SQLite: rows, cursor, backoff and lease (one process opens the file, so
//! the lease is always this process's, but the rules are PostgreSQL's).

use super::database_error;
use super::organizations::organization_exists;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::encoding::json_text;
use crate::shared::log_streams::{
    assemble_stream_events, decode_positions, PositionRow, StreamRow, TotalsRow, STREAM_COLUMNS,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use stele_core::log_stream::{
    LogStream, LogStreamState, StreamDelivery, StreamEvents, StreamFailure, StreamPositions,
};
use stele_core::timestamp::UnixMillis;

fn stream_row(row: &Row<'_>) -> rusqlite::Result<StreamRow> {
    Ok(StreamRow {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        stream_type: row.get(2)?,
        state: row.get(3)?,
        settings: row.get(4)?,
        sealed_secrets: row.get(5)?,
        delivered_sequence: row.get(6)?,
        delivered_events: row.get(7)?,
        failures: row.get(8)?,
        last_synced_at: row.get(9)?,
        last_error: row.get(10)?,
        next_attempt_at: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
    })
}

fn load_stream(
    connection: &Connection,
    organization_id: &str,
    id: &str,
) -> StoreResult<Option<LogStream>> {
    connection
        .prepare_cached(&format!(
            "SELECT {STREAM_COLUMNS} FROM log_streams WHERE organization_id = ?1 AND id = ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_row([organization_id, id], stream_row)
                .optional()
        })
        .map_err(database_error)?
        .map(StreamRow::decode)
        .transpose()
}

fn read_events(
    connection: &Connection,
    organization_id: &str,
    after_sequence: i64,
    limit: u32,
) -> StoreResult<StreamEvents> {
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = connection
        .prepare_cached(
            "SELECT sequence, canonical, hash FROM events
             WHERE organization_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![organization_id, after_sequence, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
        })
        .map_err(database_error)?;
    let anchor: Option<(i64, Vec<u8>)> = connection
        .prepare_cached(
            "SELECT first_sequence, previous_hash FROM chain_anchors WHERE organization_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([organization_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(database_error)?;
    let cursor_hash: Option<Vec<u8>> = connection
        .prepare_cached("SELECT hash FROM events WHERE organization_id = ?1 AND sequence = ?2")
        .and_then(|mut statement| {
            statement
                .query_row(params![organization_id, after_sequence], |row| row.get(0))
                .optional()
        })
        .map_err(database_error)?;
    assemble_stream_events(organization_id, after_sequence, cursor_hash, anchor, rows)
}

/// Every stream with its organization's newest sequence (the newest stored event, read
/// from the primary key, or the anchor retention left when it purged them all) and its lag.
const POSITIONS: &str = "
    WITH positions AS (
        SELECT s.id, s.organization_id, s.type, s.state, s.delivered_sequence,
               COALESCE((SELECT MAX(e.sequence) FROM events e
                         WHERE e.organization_id = s.organization_id),
                        (SELECT a.first_sequence - 1 FROM chain_anchors a
                         WHERE a.organization_id = s.organization_id),
                        0) AS newest
        FROM log_streams s)";

fn read_positions(connection: &Connection, limit: u32) -> StoreResult<StreamPositions> {
    let streams: Vec<PositionRow> = connection
        .prepare_cached(&format!(
            "{POSITIONS}
             SELECT id, organization_id, type, state, delivered_sequence, newest FROM positions
             ORDER BY MAX(newest - delivered_sequence, 0) DESC, id LIMIT ?1"
        ))
        .and_then(|mut statement| {
            statement
                .query_map([limit], |row| row.try_into())?
                .collect()
        })
        .map_err(database_error)?;
    let totals: Vec<TotalsRow> = connection
        .prepare_cached(&format!(
            "{POSITIONS}
             SELECT type, state, COUNT(*), MAX(MAX(newest - delivered_sequence, 0))
             FROM positions GROUP BY type, state"
        ))
        .and_then(|mut statement| statement.query_map([], |row| row.try_into())?.collect())
        .map_err(database_error)?;
    decode_positions(streams, totals)
}

#[async_trait]
impl LogStreamStore for SqliteStore {
    async fn create_log_stream(&self, stream: LogStream) -> StoreResult<LogStream> {
        self.writer
            .write(move |connection| {
                if !organization_exists(connection, stream.organization_id.as_str())? {
                    return Err(StoreError::OrganizationNotFound);
                }
                connection
                    .execute(
                        "INSERT INTO log_streams (id, organization_id, type, state, settings,
                             sealed_secrets, delivered_sequence, delivered_events, failures,
                             last_synced_at, last_error, next_attempt_at, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                        params![
                            stream.id,
                            stream.organization_id.as_str(),
                            stream.stream_type.as_str(),
                            stream.state.as_str(),
                            json_text(&stream.settings)?,
                            stream.sealed_secrets,
                            stream.delivered_sequence,
                            stream.delivered_events,
                            stream.failures,
                            stream.last_synced_at,
                            stream.last_error,
                            stream.next_attempt_at,
                            stream.created_at,
                            stream.updated_at
                        ],
                    )
                    .map_err(database_error)?;
                Ok(stream)
            })
            .await
    }

    async fn list_log_streams(&self, organization_id: &str) -> StoreResult<Vec<LogStream>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                let rows: Vec<StreamRow> = connection
                    .prepare_cached(&format!(
                        "SELECT {STREAM_COLUMNS} FROM log_streams WHERE organization_id = ?1
                         ORDER BY created_at, id"
                    ))
                    .and_then(|mut statement| {
                        statement
                            .query_map([&organization_id], stream_row)?
                            .collect()
                    })
                    .map_err(database_error)?;
                rows.into_iter().map(StreamRow::decode).collect()
            })
            .await
    }

    async fn get_log_stream(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<LogStream>> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.readers
            .read(move |connection| load_stream(connection, &organization_id, &id))
            .await
    }

    async fn delete_log_stream(&self, organization_id: &str, id: &str) -> StoreResult<bool> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                let deleted = connection
                    .execute(
                        "DELETE FROM log_streams WHERE organization_id = ?1 AND id = ?2",
                        [&organization_id, &id],
                    )
                    .map_err(database_error)?;
                Ok(deleted == 1)
            })
            .await
    }

    async fn set_log_stream_state(
        &self,
        organization_id: &str,
        id: &str,
        state: LogStreamState,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE log_streams SET state = ?3, failures = 0, next_attempt_at = 0,
                             updated_at = ?4
                         WHERE organization_id = ?1 AND id = ?2",
                        params![organization_id, id, state.as_str(), at],
                    )
                    .map_err(database_error)?;
                load_stream(connection, &organization_id, &id)
            })
            .await
    }

    async fn rewind_log_stream(
        &self,
        organization_id: &str,
        id: &str,
        delivered_sequence: i64,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE log_streams SET delivered_sequence = ?3, failures = 0,
                             next_attempt_at = 0, updated_at = ?4
                         WHERE organization_id = ?1 AND id = ?2",
                        params![organization_id, id, delivered_sequence, at],
                    )
                    .map_err(database_error)?;
                load_stream(connection, &organization_id, &id)
            })
            .await
    }

    async fn lease_log_streams(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<LogStream>> {
        let owner = owner.to_owned();
        self.writer
            .write(move |connection| {
                let rows: Vec<StreamRow> = connection
                    .prepare_cached(&format!(
                        "UPDATE log_streams SET lease_owner = ?1, lease_expires_at = ?3
                         WHERE id IN (
                             SELECT s.id FROM log_streams s
                             WHERE s.state <> 'inactive' AND s.next_attempt_at <= ?2
                               AND (s.lease_owner IS NULL OR s.lease_owner = ?1
                                    OR s.lease_expires_at <= ?2)
                               AND (EXISTS (SELECT 1 FROM events e
                                            WHERE e.organization_id = s.organization_id
                                              AND e.sequence > s.delivered_sequence)
                                    OR EXISTS (SELECT 1 FROM chain_anchors a
                                               WHERE a.organization_id = s.organization_id
                                                 AND a.first_sequence - 1 > s.delivered_sequence))
                             ORDER BY s.next_attempt_at, s.id LIMIT ?4)
                         RETURNING {STREAM_COLUMNS}"
                    ))
                    .and_then(|mut statement| {
                        statement
                            .query_map(params![owner, now, lease_until, limit], stream_row)?
                            .collect()
                    })
                    .map_err(database_error)?;
                rows.into_iter().map(StreamRow::decode).collect()
            })
            .await
    }

    async fn renew_log_stream_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<bool> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.writer
            .write(move |connection| {
                let renewed = connection
                    .execute(
                        "UPDATE log_streams SET lease_expires_at = ?3
                         WHERE id = ?1 AND lease_owner = ?2 AND state <> 'inactive'",
                        params![id, owner, lease_until],
                    )
                    .map_err(database_error)?;
                Ok(renewed == 1)
            })
            .await
    }

    async fn release_log_stream_lease(&self, id: &str, owner: &str) -> StoreResult<()> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE log_streams SET lease_owner = NULL, lease_expires_at = NULL
                         WHERE id = ?1 AND lease_owner = ?2",
                        [&id, &owner],
                    )
                    .map_err(database_error)?;
                Ok(())
            })
            .await
    }

    async fn record_log_stream_delivery(&self, delivery: StreamDelivery) -> StoreResult<bool> {
        self.writer
            .write(move |connection| {
                let updated = connection
                    .execute(
                        "UPDATE log_streams SET delivered_sequence = ?4,
                             delivered_events = delivered_events + ?5, last_synced_at = ?6,
                             last_error = NULL, failures = 0, next_attempt_at = 0,
                             state = CASE WHEN state = 'inactive' THEN 'inactive' ELSE 'active' END,
                             lease_expires_at = ?7
                         WHERE id = ?1 AND lease_owner = ?2 AND delivered_sequence = ?3",
                        params![
                            delivery.stream_id,
                            delivery.lease_owner,
                            delivery.expected_sequence,
                            delivery.delivered_sequence,
                            delivery.delivered_events,
                            delivery.at,
                            delivery.lease_until
                        ],
                    )
                    .map_err(database_error)?;
                Ok(updated == 1)
            })
            .await
    }

    async fn record_log_stream_failure(&self, failure: StreamFailure) -> StoreResult<bool> {
        self.writer
            .write(move |connection| {
                let updated = connection
                    .execute(
                        "UPDATE log_streams SET
                             state = CASE WHEN state = 'inactive' THEN 'inactive' ELSE ?3 END,
                             last_error = ?4, failures = failures + 1, next_attempt_at = ?5,
                             lease_owner = NULL, lease_expires_at = NULL
                         WHERE id = ?1 AND lease_owner = ?2",
                        params![
                            failure.stream_id,
                            failure.lease_owner,
                            failure.state.as_str(),
                            failure.error,
                            failure.next_attempt_at
                        ],
                    )
                    .map_err(database_error)?;
                Ok(updated == 1)
            })
            .await
    }

    async fn log_stream_events(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<StreamEvents> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                // One read transaction: the events, the anchor and the cursor's hash come
                // from the same snapshot even while retention purges.
                let snapshot = connection.unchecked_transaction().map_err(database_error)?;
                let read = read_events(&snapshot, &organization_id, after_sequence, limit);
                snapshot.finish().map_err(database_error)?;
                read
            })
            .await
    }

    async fn log_stream_positions(&self, limit: u32) -> StoreResult<StreamPositions> {
        self.readers
            .read(move |connection| {
                // One read transaction: the totals and the listed streams agree.
                let snapshot = connection.unchecked_transaction().map_err(database_error)?;
                let read = read_positions(&snapshot, limit);
                snapshot.finish().map_err(database_error)?;
                read
            })
            .await
    }
}
