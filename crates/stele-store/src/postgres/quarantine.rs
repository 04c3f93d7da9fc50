//! The quarantine in PostgreSQL: refused events kept until accepted, discarded or expired.
//! Keeping one locks the organization's row (`FOR NO KEY UPDATE`, which event appends'
//! foreign-key checks do not wait for), so replicas check the per-organization cap and
//! insert as one decision.

use super::database_error;
use super::execute_in;
use super::query_in;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::quarantine::{errors_text, QuarantineRow, QUARANTINE_COLUMNS};
use crate::shared::search::keyset;
use async_trait::async_trait;
use stele_core::pagination::{Page, PageRequest};
use stele_core::quarantine::{QuarantineCount, Quarantined, QuarantinedEvent};
use stele_core::timestamp::UnixMillis;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<QuarantinedEvent> {
    QuarantineRow {
        id: row.get(0),
        organization_id: row.get(1),
        action: row.get(2),
        version: row.get(3),
        body: row.get(4),
        errors: row.get(5),
        reason: row.get(6),
        request_key: row.get(7),
        accepted_event_id: row.get(8),
        created_at: row.get(9),
    }
    .decode()
}

#[async_trait]
impl QuarantineStore for PostgresStore {
    async fn quarantine_event(
        &self,
        event: QuarantinedEvent,
        limit: u64,
    ) -> StoreResult<Quarantined> {
        let errors = errors_text(&event.errors)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        let organization = query_in(
            &transaction,
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            &[&event.organization_id.as_str()],
        )
        .await?;
        if organization.is_empty() {
            return Err(StoreError::OrganizationNotFound);
        }
        if let Some(key) = &event.request_key {
            let existing = query_in(
                &transaction,
                "SELECT id FROM quarantined_events WHERE organization_id = $1 AND idempotency_key = $2",
                &[&event.organization_id.as_str(), key],
            )
            .await?;
            if let Some(row) = existing.first() {
                return Ok(Quarantined::Kept(row.get(0)));
            }
        }
        let held: i64 = query_in(
            &transaction,
            "SELECT COUNT(*) FROM quarantined_events WHERE organization_id = $1",
            &[&event.organization_id.as_str()],
        )
        .await?
        .first()
        .map_or(0, |row| row.get(0));
        if held as u64 >= limit {
            return Ok(Quarantined::Full);
        }
        execute_in(
            &transaction,
            "INSERT INTO quarantined_events
                 (id, organization_id, action, version, body, errors, reason,
                  idempotency_key, accepted_event_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
            &[
                &event.id,
                &event.organization_id.as_str(),
                &event.action,
                &event.version,
                &event.body,
                &errors,
                &event.reason,
                &event.request_key,
                &event.created_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Quarantined::Kept(event.id))
    }

    async fn list_quarantined(
        &self,
        organization_id: &str,
        page: PageRequest<String>,
    ) -> StoreResult<Page<QuarantinedEvent>> {
        let scan = page.scan();
        let (condition, direction) = keyset("id", &scan, "$3");
        let sql = format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
             WHERE organization_id = $1 AND {condition}
             ORDER BY id {direction} LIMIT $2"
        );
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map(|(key, _)| key.clone()).unwrap_or_default();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&organization_id, &fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let rows = self.query(&sql, &params).await?;
        let entries = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        Ok(page.assemble(entries, |entry| entry.id.clone()))
    }

    async fn get_quarantined(
        &self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<QuarantinedEvent>> {
        self.query_opt(
            &format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
                 WHERE id = $1 AND organization_id = $2"
            ),
            &[&id, &organization_id],
        )
        .await?
        .as_ref()
        .map(decode)
        .transpose()
    }

    async fn claim_quarantine_acceptance(
        &self,
        organization_id: &str,
        id: &str,
        event_id: &str,
    ) -> StoreResult<Option<String>> {
        // The row lock taken by the UPDATE makes a concurrent claim wait and then see ours.
        self.execute(
            "UPDATE quarantined_events SET accepted_event_id = $3
             WHERE id = $1 AND organization_id = $2 AND accepted_event_id IS NULL",
            &[&id, &organization_id, &event_id],
        )
        .await?;
        Ok(self
            .query_opt(
                "SELECT accepted_event_id FROM quarantined_events WHERE id = $1 AND organization_id = $2",
                &[&id, &organization_id],
            )
            .await?
            .and_then(|row| row.get(0)))
    }

    async fn discard_quarantined(&self, organization_id: &str, id: &str) -> StoreResult<bool> {
        Ok(self
            .execute(
                "DELETE FROM quarantined_events WHERE id = $1 AND organization_id = $2",
                &[&id, &organization_id],
            )
            .await?
            > 0)
    }

    async fn quarantine_counts(&self, organization_id: &str) -> StoreResult<Vec<QuarantineCount>> {
        let rows = self
            .query(
                "SELECT action, version, reason, COUNT(*) FROM quarantined_events
                 WHERE organization_id = $1
                 GROUP BY action, version, reason
                 ORDER BY COUNT(*) DESC, action COLLATE \"C\", version, reason COLLATE \"C\"",
                &[&organization_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| QuarantineCount {
                action: row.get(0),
                version: row.get(1),
                reason: row.get(2),
                count: row.get::<_, i64>(3) as u64,
            })
            .collect())
    }

    async fn quarantine_counts_of_action(&self, action: &str) -> StoreResult<Vec<(i64, u64)>> {
        let rows = self
            .query(
                "SELECT version, COUNT(*) FROM quarantined_events
                 WHERE action = $1 GROUP BY version ORDER BY version",
                &[&action],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn quarantined_of_action(
        &self,
        action: &str,
        version: i64,
        after_id: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<QuarantinedEvent>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantined_events
                     WHERE action = $1 AND version = $2 AND id > $3
                     ORDER BY id LIMIT $4"
                ),
                &[
                    &action,
                    &version,
                    &after_id.unwrap_or_default(),
                    &i64::from(limit),
                ],
            )
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn purge_quarantine(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM quarantined_events WHERE created_at <= $1",
            &[&cutoff],
        )
        .await
    }
}
