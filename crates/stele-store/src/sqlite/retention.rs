//! Retention in SQLite: periods and the purge of a chain's oldest events.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

pub(super) type PrefixRow = (i64, i64, Vec<u8>, Vec<u8>);

pub(super) fn purge_events_now(
    connection: &Connection,
    organization_id: &str,
    cutoff: UnixMillis,
    batch: u32,
) -> StoreResult<PurgeOutcome> {
    // The oldest events in sequence order, up to the first one received at or after the
    // cutoff: a purge only ever removes a prefix of the chain.
    let mut statement = connection
        .prepare_cached(
            "SELECT sequence, received_at, canonical, hash FROM events
             WHERE organization_id = ?1 ORDER BY sequence LIMIT ?2",
        )
        .map_err(database_error)?;
    let prefix: Vec<PrefixRow> = statement
        .query_map(params![organization_id, i64::from(batch)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    let expired: Vec<&PrefixRow> = prefix
        .iter()
        .take_while(|(_, received_at, _, _)| *received_at < cutoff)
        .collect();
    let Some((last_sequence, _, _, last_hash)) = expired.last().copied() else {
        return Ok(PurgeOutcome::default());
    };
    let purged_leaves: Vec<(i64, &[u8])> = expired
        .iter()
        .map(|(sequence, _, canonical, _)| (*sequence, canonical.as_slice()))
        .collect();
    super::tree::keep_purged_leaf_hashes(connection, organization_id, &purged_leaves)?;
    let mut delete_target = connection
        .prepare_cached("DELETE FROM event_targets WHERE organization_id = ?1 AND target_id = ?2 AND sequence = ?3")
        .map_err(database_error)?;
    for (sequence, _, canonical, _) in &expired {
        let stored: serde_json::Value = serde_json::from_slice(canonical).map_err(|error| {
            StoreError::Corrupt(format!("event {sequence} of {organization_id}: {error}"))
        })?;
        for target in stored["targets"].as_array().into_iter().flatten() {
            delete_target
                .execute(params![
                    organization_id,
                    target["id"].as_str().unwrap_or_default(),
                    sequence
                ])
                .map_err(database_error)?;
        }
    }
    let purged = connection
        .execute(
            "DELETE FROM events WHERE organization_id = ?1 AND sequence <= ?2",
            params![organization_id, last_sequence],
        )
        .map_err(database_error)? as u64;
    connection
        .execute(
            "INSERT INTO chain_anchors (organization_id, first_sequence, previous_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (organization_id) DO UPDATE SET
                 first_sequence = excluded.first_sequence, previous_hash = excluded.previous_hash",
            params![organization_id, last_sequence + 1, last_hash],
        )
        .map_err(database_error)?;
    Ok(PurgeOutcome {
        purged,
        more: expired.len() == batch as usize,
    })
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
