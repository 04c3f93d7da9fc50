//! Log streams in PostgreSQL: rows, cursor, backoff, and the lease that lets exactly one
//! replica deliver a stream at a time.

use super::{database_error, query_in, read_snapshot, PostgresStore};
use crate::prelude::*;
use crate::shared::encoding::json_text;
use crate::shared::log_streams::{
    assemble_stream_events, decode_positions, StreamRow, STREAM_COLUMNS,
};
use async_trait::async_trait;
use stele_core::log_stream::{
    LogStream, LogStreamState, StreamDelivery, StreamEvents, StreamFailure, StreamPositions,
};
use stele_core::timestamp::UnixMillis;
use tokio_postgres::Row;

fn stream_row(row: &Row) -> StreamRow {
    StreamRow {
        id: row.get(0),
        organization_id: row.get(1),
        stream_type: row.get(2),
        state: row.get(3),
        settings: row.get(4),
        sealed_secrets: row.get(5),
        delivered_sequence: row.get(6),
        delivered_events: row.get(7),
        failures: row.get(8),
        last_synced_at: row.get(9),
        last_error: row.get(10),
        next_attempt_at: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
    }
}

fn decode_all(rows: &[Row]) -> StoreResult<Vec<LogStream>> {
    rows.iter().map(|row| stream_row(row).decode()).collect()
}

impl PostgresStore {
    async fn load_stream(&self, organization_id: &str, id: &str) -> StoreResult<Option<LogStream>> {
        self.query_opt(
            &format!(
                "SELECT {STREAM_COLUMNS} FROM log_streams WHERE organization_id = $1 AND id = $2"
            ),
            &[&organization_id, &id],
        )
        .await?
        .map(|row| stream_row(&row).decode())
        .transpose()
    }
}

/// Every stream with its organization's newest sequence (the chain head, which purges
/// keep) and its lag.
const POSITIONS: &str = "
    WITH positions AS (
        SELECT s.id, s.organization_id, s.type, s.state, s.delivered_sequence,
               COALESCE(h.sequence, 0) AS newest
        FROM log_streams s LEFT JOIN chain_heads h ON h.organization_id = s.organization_id)";

#[async_trait]
impl LogStreamStore for PostgresStore {
    async fn create_log_stream(&self, stream: LogStream) -> StoreResult<LogStream> {
        let settings = json_text(&stream.settings)?;
        // Inserting only when the organization exists, in one statement, so a concurrent
        // deletion cannot leave a stream behind.
        let inserted = self
            .execute(
                "INSERT INTO log_streams (id, organization_id, type, state, settings,
                     sealed_secrets, delivered_sequence, delivered_events, failures,
                     last_synced_at, last_error, next_attempt_at, created_at, updated_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
                 FROM organizations WHERE id = $2",
                &[
                    &stream.id,
                    &stream.organization_id.as_str(),
                    &stream.stream_type.as_str(),
                    &stream.state.as_str(),
                    &settings,
                    &stream.sealed_secrets,
                    &stream.delivered_sequence,
                    &stream.delivered_events,
                    &stream.failures,
                    &stream.last_synced_at,
                    &stream.last_error,
                    &stream.next_attempt_at,
                    &stream.created_at,
                    &stream.updated_at,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::OrganizationNotFound);
        }
        Ok(stream)
    }

    async fn list_log_streams(&self, organization_id: &str) -> StoreResult<Vec<LogStream>> {
        decode_all(
            &self
                .query(
                    &format!(
                        "SELECT {STREAM_COLUMNS} FROM log_streams WHERE organization_id = $1
                         ORDER BY created_at, id"
                    ),
                    &[&organization_id],
                )
                .await?,
        )
    }

    async fn get_log_stream(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<LogStream>> {
        self.load_stream(organization_id, id).await
    }

    async fn delete_log_stream(&self, organization_id: &str, id: &str) -> StoreResult<bool> {
        let deleted = self
            .execute(
                "DELETE FROM log_streams WHERE organization_id = $1 AND id = $2",
                &[&organization_id, &id],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn set_log_stream_state(
        &self,
        organization_id: &str,
        id: &str,
        state: LogStreamState,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>> {
        self.execute(
            "UPDATE log_streams SET state = $3, failures = 0, next_attempt_at = 0, updated_at = $4
             WHERE organization_id = $1 AND id = $2",
            &[&organization_id, &id, &state.as_str(), &at],
        )
        .await?;
        self.load_stream(organization_id, id).await
    }

    async fn rewind_log_stream(
        &self,
        organization_id: &str,
        id: &str,
        delivered_sequence: i64,
        at: UnixMillis,
    ) -> StoreResult<Option<LogStream>> {
        self.execute(
            "UPDATE log_streams SET delivered_sequence = $3, failures = 0, next_attempt_at = 0,
                 updated_at = $4
             WHERE organization_id = $1 AND id = $2",
            &[&organization_id, &id, &delivered_sequence, &at],
        )
        .await?;
        self.load_stream(organization_id, id).await
    }

    async fn lease_log_streams(
        &self,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<LogStream>> {
        // FOR UPDATE SKIP LOCKED: two replicas leasing at once never pick the same row, and
        // a row another replica just leased is re-checked against the conditions (its new
        // lease is not expired) before it could be taken.
        decode_all(
            &self
                .query(
                    &format!(
                        "UPDATE log_streams SET lease_owner = $1, lease_expires_at = $3
                         WHERE id IN (
                             SELECT s.id FROM log_streams s
                             WHERE s.state <> 'inactive' AND s.next_attempt_at <= $2
                               AND (s.lease_owner IS NULL OR s.lease_owner = $1
                                    OR s.lease_expires_at <= $2)
                               AND (EXISTS (SELECT 1 FROM events e
                                            WHERE e.organization_id = s.organization_id
                                              AND e.sequence > s.delivered_sequence)
                                    OR EXISTS (SELECT 1 FROM chain_anchors a
                                               WHERE a.organization_id = s.organization_id
                                                 AND a.first_sequence - 1 > s.delivered_sequence))
                             ORDER BY s.next_attempt_at, s.id LIMIT $4
                             FOR UPDATE SKIP LOCKED)
                         RETURNING {STREAM_COLUMNS}"
                    ),
                    &[&owner, &now, &lease_until, &i64::from(limit)],
                )
                .await?,
        )
    }

    async fn renew_log_stream_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until: UnixMillis,
    ) -> StoreResult<bool> {
        let renewed = self
            .execute(
                "UPDATE log_streams SET lease_expires_at = $3
                 WHERE id = $1 AND lease_owner = $2 AND state <> 'inactive'",
                &[&id, &owner, &lease_until],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn release_log_stream_lease(&self, id: &str, owner: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE log_streams SET lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_owner = $2",
            &[&id, &owner],
        )
        .await?;
        Ok(())
    }

    async fn record_log_stream_delivery(&self, delivery: StreamDelivery) -> StoreResult<bool> {
        let updated = self
            .execute(
                "UPDATE log_streams SET delivered_sequence = $4,
                     delivered_events = delivered_events + $5, last_synced_at = $6,
                     last_error = NULL, failures = 0, next_attempt_at = 0,
                     state = CASE WHEN state = 'inactive' THEN 'inactive' ELSE 'active' END,
                     lease_expires_at = $7
                 WHERE id = $1 AND lease_owner = $2 AND delivered_sequence = $3",
                &[
                    &delivery.stream_id,
                    &delivery.lease_owner,
                    &delivery.expected_sequence,
                    &delivery.delivered_sequence,
                    &delivery.delivered_events,
                    &delivery.at,
                    &delivery.lease_until,
                ],
            )
            .await?;
        Ok(updated == 1)
    }

    async fn record_log_stream_failure(&self, failure: StreamFailure) -> StoreResult<bool> {
        let updated = self
            .execute(
                "UPDATE log_streams SET
                     state = CASE WHEN state = 'inactive' THEN 'inactive' ELSE $3 END,
                     last_error = $4, failures = failures + 1, next_attempt_at = $5,
                     lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1 AND lease_owner = $2",
                &[
                    &failure.stream_id,
                    &failure.lease_owner,
                    &failure.state.as_str(),
                    &failure.error,
                    &failure.next_attempt_at,
                ],
            )
            .await?;
        Ok(updated == 1)
    }

    async fn log_stream_events(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<StreamEvents> {
        let mut client = self.client().await?;
        // One snapshot: the events, the anchor and the cursor's hash agree even while
        // retention purges.
        let transaction = read_snapshot(&mut client).await?;
        let rows = query_in(
            &transaction,
            "SELECT sequence, canonical, hash FROM events
             WHERE organization_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            &[&organization_id, &after_sequence, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
        let anchor = query_in(
            &transaction,
            "SELECT first_sequence, previous_hash FROM chain_anchors WHERE organization_id = $1",
            &[&organization_id],
        )
        .await?
        .first()
        .map(|row| (row.get(0), row.get(1)));
        let cursor_hash = query_in(
            &transaction,
            "SELECT hash FROM events WHERE organization_id = $1 AND sequence = $2",
            &[&organization_id, &after_sequence],
        )
        .await?
        .first()
        .map(|row| row.get(0));
        transaction.commit().await.map_err(database_error)?;
        assemble_stream_events(organization_id, after_sequence, cursor_hash, anchor, rows)
    }

    async fn log_stream_positions(&self, limit: u32) -> StoreResult<StreamPositions> {
        let mut client = self.client().await?;
        // One snapshot: the totals and the listed streams agree.
        let transaction = read_snapshot(&mut client).await?;
        let streams = query_in(
            &transaction,
            &format!(
                "{POSITIONS}
                 SELECT id, organization_id, type, state, delivered_sequence, newest
                 FROM positions
                 ORDER BY GREATEST(newest - delivered_sequence, 0) DESC, id LIMIT $1"
            ),
            &[&i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            )
        })
        .collect();
        let totals = query_in(
            &transaction,
            &format!(
                "{POSITIONS}
                 SELECT type, state, COUNT(*), MAX(GREATEST(newest - delivered_sequence, 0))
                 FROM positions GROUP BY type, state"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
        transaction.commit().await.map_err(database_error)?;
        decode_positions(streams, totals)
    }
}
