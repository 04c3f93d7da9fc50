//! Exports in PostgreSQL: the snapshot an export fixes, read back with its completeness.

use super::database_error;
use super::execute_in;
use super::idempotency::claim_idempotency_key;
use super::query_in;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::exports::{export_filters, snapshot, stored_export, StoredExport};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use stele_core::model::*;

/// The first retained sequence of an organization after retention purged its oldest events.
pub(super) async fn retained_from(
    client: &impl GenericClient,
    organization_id: &str,
) -> StoreResult<i64> {
    let rows = query_in(
        client,
        "SELECT first_sequence FROM chain_anchors WHERE organization_id = $1",
        &[&organization_id],
    )
    .await?;
    Ok(rows.first().map_or(1, |row| row.get(0)))
}

#[async_trait]
impl ExportStore for PostgresStore {
    async fn create_export(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Export>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        if let Some(record) = &idempotency {
            if let Some(existing) = claim_idempotency_key(&transaction, record)
                .await
                .map_err(database_error)??
            {
                return Ok(Idempotent::AlreadyDone(existing));
            }
        }
        let organization_id = export.query.organization_id.clone();
        // The head holds the newest committed sequence: the snapshot is exactly the events
        // acknowledged before the export was created (an append in flight is not yet).
        let Some(head) = query_in(
            &transaction,
            "SELECT sequence FROM chain_heads WHERE organization_id = $1",
            &[&organization_id],
        )
        .await?
        .into_iter()
        .next() else {
            return Err(StoreError::OrganizationNotFound);
        };
        let head: i64 = head.get(0);
        // Where the retained chain starts now: a later purge past it makes the export
        // incomplete (see `get_export`).
        let filters = export_filters(
            &export,
            retained_from(&transaction, &organization_id).await?,
        )?;
        execute_in(
            &transaction,
            "INSERT INTO exports (id, organization_id, filters, format, up_to_sequence, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &export.id,
                &organization_id,
                &filters,
                &export.format.name(),
                &head,
                &export.created_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Idempotent::Done(snapshot(export, head)))
    }

    async fn get_export(&self, id: &str) -> StoreResult<Option<Export>> {
        let Some(row) = self
            .query_opt(
                "SELECT x.organization_id, x.filters, x.format, x.up_to_sequence, x.created_at,
                        COALESCE(a.first_sequence, 1)
                 FROM exports x LEFT JOIN chain_anchors a ON a.organization_id = x.organization_id
                 WHERE x.id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let stored = StoredExport {
            organization_id: row.get(0),
            filters: row.get(1),
            format: row.get(2),
            up_to_sequence: row.get(3),
            created_at: row.get(4),
        };
        stored_export(id, stored, row.get(5)).map(Some)
    }
}
