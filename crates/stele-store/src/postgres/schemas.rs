//! Actions and schema versions in PostgreSQL, and the "same as latest?" write.

use super::database_error;
use super::execute_in;
use super::idempotency::claim_idempotency_key;
use super::query_in;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::schemas::{
    canonical_definition, decide_schema_write, schema_version, SchemaWrite,
};
use crate::shared::search::keyset;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::UnixMillis;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub(super) fn schema_version_from_row(
    action: &str,
    row: &Row,
    offset: usize,
) -> StoreResult<SchemaVersion> {
    schema_version(
        action,
        row.get(offset),
        row.get(offset + 1),
        row.get(offset + 2),
        row.get(offset + 3),
    )
}

pub(super) async fn load_schema_version(
    client: &impl GenericClient,
    action: &str,
    version: Option<i64>,
) -> StoreResult<Option<SchemaVersion>> {
    let rows = query_in(
        client,
        "SELECT v.version, v.definition, v.created_by, v.created_at
         FROM schema_versions v JOIN actions a ON a.id = v.action_id
         WHERE a.name = $1 AND ($2::int8 IS NULL OR v.version = $2)
         ORDER BY v.version DESC LIMIT 1",
        &[&action, &version],
    )
    .await?;
    rows.first()
        .map(|row| schema_version_from_row(action, row, 0))
        .transpose()
}

#[async_trait]
impl SchemaStore for PostgresStore {
    async fn create_schema_version(
        &self,
        action: &str,
        definition: SchemaDefinition,
        created_by: &str,
        at: UnixMillis,
        idempotency: Option<IdempotentWrite<(SchemaVersion, bool)>>,
    ) -> StoreResult<Idempotent<(SchemaVersion, bool)>> {
        let canonical = canonical_definition(&definition)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        if let Some(write) = &idempotency {
            if let Some(existing) = claim_idempotency_key(&transaction, &write.claim)
                .await
                .map_err(database_error)??
            {
                return Ok(Idempotent::AlreadyDone(existing));
            }
        }
        // The action's row, locked, makes "same as the latest version?" and the insert one
        // decision across replicas: a concurrent identical submission waits here, then
        // sees the version this one created.
        execute_in(
            &transaction,
            "INSERT INTO actions (name, created_at, updated_at) VALUES ($1, $2, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&action, &at],
        )
        .await?;
        let action_id: i64 = query_in(
            &transaction,
            "SELECT id FROM actions WHERE name = $1 FOR UPDATE",
            &[&action],
        )
        .await?
        .first()
        .map(|row| row.get(0))
        .ok_or_else(|| StoreError::Internal(format!("action {action} vanished while locked")))?;
        let latest = load_schema_version(&transaction, action, None).await?;
        let outcome = match decide_schema_write(latest, &canonical)? {
            SchemaWrite::Unchanged(latest) => (latest, false),
            SchemaWrite::Create(version) => {
                execute_in(
                    &transaction,
                    "INSERT INTO schema_versions (action_id, version, definition, created_by, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&action_id, &version, &canonical, &created_by, &at],
                )
                .await?;
                execute_in(
                    &transaction,
                    "UPDATE actions SET updated_at = $2 WHERE id = $1",
                    &[&action_id, &at],
                )
                .await?;
                (
                    SchemaVersion {
                        action: action.to_owned(),
                        version,
                        definition,
                        created_by: created_by.to_owned(),
                        created_at: at,
                    },
                    true,
                )
            }
        };
        if let Some(write) = idempotency {
            let (status, body) = (write.respond)(&outcome);
            execute_in(
                &transaction,
                "UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2",
                &[
                    &write.claim.scope,
                    &write.claim.key,
                    &i32::from(status),
                    &body,
                ],
            )
            .await?;
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(Idempotent::Done(outcome))
    }

    async fn get_schema_version(
        &self,
        action: &str,
        version: i64,
    ) -> StoreResult<Option<SchemaVersion>> {
        let client = self.client().await?;
        load_schema_version(&client, action, Some(version)).await
    }

    async fn schema_version_numbers(&self, action: &str) -> StoreResult<Vec<i64>> {
        let rows = self
            .query(
                "SELECT v.version FROM schema_versions v JOIN actions a ON a.id = v.action_id
                 WHERE a.name = $1 ORDER BY v.version",
                &[&action],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn list_schema_versions(
        &self,
        action: &str,
        page: PageRequest<i64>,
    ) -> StoreResult<Option<Page<SchemaVersion>>> {
        let Some(action_row) = self
            .query_opt("SELECT id FROM actions WHERE name = $1", &[&action])
            .await?
        else {
            return Ok(None);
        };
        let action_id: i64 = action_row.get(0);
        let scan = page.scan();
        let (condition, direction) = keyset("version", &scan, "$3");
        let sql = format!(
            "SELECT version, definition, created_by, created_at FROM schema_versions
             WHERE action_id = $1 AND {condition} ORDER BY version {direction} LIMIT $2"
        );
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map_or(0, |(key, _)| *key);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&action_id, &fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let versions = self
            .query(&sql, &params)
            .await?
            .iter()
            .map(|row| schema_version_from_row(action, row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(
            page.assemble(versions, |version| version.version.to_string()),
        ))
    }

    async fn list_actions(&self, page: PageRequest<i64>) -> StoreResult<Page<ActionSummary>> {
        let scan = page.scan();
        let (condition, direction) = keyset("a.id", &scan, "$2");
        let sql = format!(
            "SELECT a.id, a.name, a.created_at, a.updated_at, v.version, v.definition, v.created_by, v.created_at
             FROM actions a JOIN schema_versions v ON v.action_id = a.id
              AND v.version = (SELECT MAX(version) FROM schema_versions WHERE action_id = a.id)
             WHERE {condition} ORDER BY a.id {direction} LIMIT $1"
        );
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map_or(0, |(key, _)| *key);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let actions = self
            .query(&sql, &params)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.get(1);
                Ok(ActionSummary {
                    latest: schema_version_from_row(&name, row, 4)?,
                    position: row.get(0),
                    created_at: row.get(2),
                    updated_at: row.get(3),
                    name,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page.assemble(actions, |action| action.position.to_string()))
    }
}
