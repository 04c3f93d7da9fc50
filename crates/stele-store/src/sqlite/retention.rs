//! Retention in SQLite: periods and the purge of a chain's oldest events.

use super::database_error;
use super::tree::keep_purged_leaf_hashes;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::purge::{PrefixRow, PurgePlan};
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

pub(super) fn purge_events_now(
    connection: &Connection,
    organization_id: &str,
    cutoff: UnixMillis,
    batch: u32,
) -> StoreResult<PurgeOutcome> {
    let mut statement = connection
        .prepare_cached(
            "SELECT sequence, received_at, canonical, hash FROM events
             WHERE organization_id = ?1 ORDER BY sequence LIMIT ?2",
        )
        .map_err(database_error)?;
    let prefix: Vec<PrefixRow> = statement
        .query_map(params![organization_id, i64::from(batch)], |row| {
            Ok(PrefixRow {
                sequence: row.get(0)?,
                received_at: row.get(1)?,
                canonical: row.get(2)?,
                hash: row.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    let Some(plan) = PurgePlan::new(prefix, cutoff, batch) else {
        return Ok(PurgeOutcome::default());
    };
    keep_purged_leaf_hashes(connection, organization_id, &plan.leaves())?;
    // An event whose stored bytes cannot be read is damage to report, not data to drop
    // unseen (as on PostgreSQL, whose purge reads every purged event's targets to delete
    // their rows).
    plan.targets(organization_id)?;
    // The index file drops the purged events' search rows when its thread applies this
    // deletion (see `search_index`); until then searches leave them out, as they have no
    // `events` row.
    connection
        .prepare_cached(
            "INSERT INTO search_index_deletions (organization_id, up_to_sequence) VALUES (?1, ?2)",
        )
        .and_then(|mut statement| statement.execute(params![organization_id, plan.last_sequence()]))
        .map_err(database_error)?;
    let purged = connection
        .execute(
            "DELETE FROM events WHERE organization_id = ?1 AND sequence <= ?2",
            params![organization_id, plan.last_sequence()],
        )
        .map_err(database_error)? as u64;
    connection
        .execute(
            // Only forwards: a purge that read an older prefix than one committed meanwhile
            // (PostgreSQL's purges can overlap; kept alike here) must not move it back.
            "INSERT INTO chain_anchors (organization_id, first_sequence, previous_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (organization_id) DO UPDATE SET
                 first_sequence = excluded.first_sequence, previous_hash = excluded.previous_hash
             WHERE excluded.first_sequence > chain_anchors.first_sequence",
            params![organization_id, plan.last_sequence() + 1, plan.anchor_hash()],
        )
        .map_err(database_error)?;
    Ok(plan.outcome(purged))
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn set_retention(&self, organization_id: &str, days: Option<i64>) -> StoreResult<()> {
        let organization_id = organization_id.to_owned();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE organizations SET retention_period_in_days = ?2 WHERE id = ?1",
                        params![organization_id, days],
                    )
                    .map_err(database_error)?;
                if changed == 0 {
                    return Err(StoreError::OrganizationNotFound);
                }
                Ok(())
            })
            .await
    }

    async fn organizations_with_retention(&self) -> StoreResult<Vec<(String, i64)>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare(
                        "SELECT id, retention_period_in_days FROM organizations
                         WHERE retention_period_in_days IS NOT NULL ORDER BY id",
                    )
                    .map_err(database_error)?;
                let rows = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                rows
            })
            .await
    }

    async fn purge_events(
        &self,
        organization_id: &str,
        cutoff: UnixMillis,
        batch: u32,
    ) -> StoreResult<PurgeOutcome> {
        let organization_id = organization_id.to_owned();
        self.writer
            .write(move |connection| purge_events_now(connection, &organization_id, cutoff, batch))
            .await
    }
}
