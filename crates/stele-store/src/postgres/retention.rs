//! Retention in PostgreSQL: periods and the purge of a chain's oldest events.

use super::database_error;
use super::execute_in;
use super::query_in;
use super::tree::keep_purged_leaf_hashes;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::purge::{PrefixRow, PurgePlan};
use async_trait::async_trait;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// Purges, inside the caller's transaction, up to `batch` of the organization's oldest
/// events received before `cutoff` (see [`RetentionStore::purge_events`]).
pub(super) async fn purge_events_in(
    transaction: &deadpool_postgres::Transaction<'_>,
    organization_id: &str,
    cutoff: UnixMillis,
    batch: u32,
) -> StoreResult<PurgeOutcome> {
    let prefix = query_in(
        transaction,
        "SELECT sequence, received_at, canonical, hash FROM events
         WHERE organization_id = $1 ORDER BY sequence LIMIT $2",
        &[&organization_id, &i64::from(batch)],
    )
    .await?
    .into_iter()
    .map(|row| PrefixRow {
        sequence: row.get(0),
        received_at: row.get(1),
        canonical: row.get(2),
        hash: row.get(3),
    })
    .collect();
    let Some(plan) = PurgePlan::new(prefix, cutoff, batch) else {
        return Ok(PurgeOutcome::default());
    };
    keep_purged_leaf_hashes(transaction, organization_id, &plan.leaves()).await?;
    let (target_ids, target_sequences): (Vec<String>, Vec<i64>) =
        plan.targets(organization_id)?.into_iter().unzip();
    execute_in(
        transaction,
        "DELETE FROM event_targets t
         USING UNNEST($2::text[], $3::int8[]) AS u(target_id, sequence)
         WHERE t.organization_id = $1 AND t.target_id = u.target_id AND t.sequence = u.sequence",
        &[&organization_id, &target_ids, &target_sequences],
    )
    .await?;
    let purged = execute_in(
        transaction,
        "DELETE FROM events WHERE organization_id = $1 AND sequence <= $2",
        &[&organization_id, &plan.last_sequence()],
    )
    .await?;
    execute_in(
        transaction,
        // Only forwards: a retention purge and a deletion's step can overlap on one
        // organization (the purge holds only a key-share lock), and the one that read the
        // shorter prefix may commit last; it must not move the anchor back below events
        // the other removed.
        "INSERT INTO chain_anchors (organization_id, first_sequence, previous_hash) VALUES ($1, $2, $3)
         ON CONFLICT (organization_id) DO UPDATE SET
             first_sequence = excluded.first_sequence, previous_hash = excluded.previous_hash
         WHERE excluded.first_sequence > chain_anchors.first_sequence",
        &[
            &organization_id,
            &(plan.last_sequence() + 1),
            &plan.anchor_hash(),
        ],
    )
    .await?;
    Ok(plan.outcome(purged))
}

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
        // Holding the organization's key keeps a deletion (which locks the row for update
        // first) from purging the same events meanwhile, which would leave this purge to
        // move the chain anchor back; once a deletion has committed, there is no row.
        let organization = query_in(
            &transaction,
            "SELECT 1 FROM organizations WHERE id = $1 FOR KEY SHARE",
            &[&organization_id],
        )
        .await?;
        if organization.is_empty() {
            return Ok(PurgeOutcome::default());
        }
        let outcome = purge_events_in(&transaction, organization_id, cutoff, batch).await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(outcome)
    }
}
