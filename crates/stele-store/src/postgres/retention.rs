//! Retention in PostgreSQL: periods and the purge of a chain's oldest events.

use super::database_error;
use super::execute_in;
use super::query_in;
use super::PostgresStore;
use crate::prelude::*;
use async_trait::async_trait;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn set_retention(&self, organization_id: &str, days: Option<i64>) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE organizations SET retention_period_in_days = $2 WHERE id = $1",
                &[&organization_id, &days],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::OrganizationNotFound);
        }
        Ok(())
    }

    async fn organizations_with_retention(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = self
            .query(
                "SELECT id, retention_period_in_days FROM organizations
                 WHERE retention_period_in_days IS NOT NULL ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn purge_events(
        &self,
        organization_id: &str,
        cutoff: UnixMillis,
        batch: u32,
    ) -> StoreResult<PurgeOutcome> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The oldest events in sequence order, up to the first one received at or after
        // the cutoff: a purge only ever removes a prefix of the chain.
        let prefix = query_in(
            &transaction,
            "SELECT sequence, received_at, hash, canonical FROM events
             WHERE organization_id = $1 ORDER BY sequence LIMIT $2",
            &[&organization_id, &i64::from(batch)],
        )
        .await?;
        let expired = prefix
            .iter()
            .take_while(|row| row.get::<_, i64>(1) < cutoff)
            .count();
        let Some(last) = expired.checked_sub(1).map(|index| &prefix[index]) else {
            return Ok(PurgeOutcome::default());
        };
        let last_sequence: i64 = last.get(0);
        let last_hash: Vec<u8> = last.get(2);
        let purged_leaves: Vec<(i64, &[u8])> = prefix[..expired]
            .iter()
            .map(|row| (row.get(0), row.get(3)))
            .collect();
        super::tree::keep_purged_leaf_hashes(&transaction, organization_id, &purged_leaves).await?;
        // Target rows are keyed by target id; the ids come from the stored events.
        let (mut target_ids, mut target_sequences) = (Vec::new(), Vec::new());
        for row in &prefix[..expired] {
            let sequence: i64 = row.get(0);
            let stored: serde_json::Value =
                serde_json::from_slice(row.get(3)).map_err(|error| {
                    StoreError::Corrupt(format!("event {sequence} of {organization_id}: {error}"))
                })?;
            for target in stored["targets"].as_array().into_iter().flatten() {
                target_ids.push(target["id"].as_str().unwrap_or_default().to_owned());
                target_sequences.push(sequence);
            }
        }
        execute_in(
            &transaction,
            "DELETE FROM event_targets t
             USING UNNEST($2::text[], $3::int8[]) AS u(target_id, sequence)
             WHERE t.organization_id = $1 AND t.target_id = u.target_id AND t.sequence = u.sequence",
            &[&organization_id, &target_ids, &target_sequences],
        )
        .await?;
        let purged = execute_in(
            &transaction,
            "DELETE FROM events WHERE organization_id = $1 AND sequence <= $2",
            &[&organization_id, &last_sequence],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO chain_anchors (organization_id, first_sequence, previous_hash) VALUES ($1, $2, $3)
             ON CONFLICT (organization_id) DO UPDATE SET
                 first_sequence = excluded.first_sequence, previous_hash = excluded.previous_hash",
            &[&organization_id, &(last_sequence + 1), &last_hash],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(PurgeOutcome {
            purged,
            more: expired == batch as usize,
        })
    }
}
