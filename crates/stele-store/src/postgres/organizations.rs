//! Organizations in PostgreSQL: rows, external ids, and deletion with the purge of their events.

use super::database_error;
use super::execute_in;
use super::idempotency::claim_idempotency_key;
use super::is_unique_violation;
use super::query_in;
use super::retention::purge_events_in;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::encoding::{contains_pattern, json_text, parse_organization_json};
use crate::shared::search::keyset;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
use stele_core::chain::GENESIS;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::timestamp::{now_millis, UnixMillis};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub(super) const ORGANIZATION_COLUMNS: &str =
    "id, name, external_id, metadata, domains, created_at, updated_at, retention_period_in_days, stripe_customer_id";

pub(super) fn organization_from_row(row: &Row) -> StoreResult<Organization> {
    let id: String = row.get(0);
    let metadata: String = row.get(3);
    let domains: String = row.get(4);
    let (metadata, domains) = parse_organization_json(&id, &metadata, &domains)?;
    Ok(Organization {
        metadata,
        domains,
        name: row.get(1),
        external_id: row.get(2),
        created_at: row.get(5),
        updated_at: row.get(6),
        retention_period_in_days: row.get(7),
        stripe_customer_id: row.get(8),
        id: id.into(),
    })
}

/// Maps a unique violation on `organizations.external_id` to the organization holding it;
/// if the lookup fails, or the holder is gone by then, that error (or the violation) is
/// reported instead of a guess.
pub(super) async fn external_id_taken(
    client: &impl GenericClient,
    external_id: Option<&str>,
    violation: tokio_postgres::Error,
) -> StoreError {
    match query_in(
        client,
        "SELECT id FROM organizations WHERE external_id = $1",
        &[&external_id],
    )
    .await
    {
        Ok(rows) => match rows.first() {
            Some(row) => StoreError::ExternalIdTaken {
                existing: row.get(0),
            },
            None => database_error(violation),
        },
        Err(error) => error,
    }
}

#[async_trait]
impl OrganizationStore for PostgresStore {
    async fn create_organization(
        &self,
        organization: Organization,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Organization>> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
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
        // The id of a deleted organization (recorded since migration 0010, or one deleted
        // before that which left signed checkpoints, tree hashes or a chain anchor) is never
        // given to a new organization, whose log would otherwise start under another
        // tenant's signed history.
        let history: bool = transaction
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM deleted_organizations WHERE id = $1)
                     OR EXISTS(SELECT 1 FROM checkpoints WHERE organization_id = $1)
                     OR EXISTS(SELECT 1 FROM merkle_nodes WHERE organization_id = $1)
                     OR EXISTS(SELECT 1 FROM chain_anchors WHERE organization_id = $1)",
                &[&organization.id],
            )
            .await
            .map_err(database_error)?
            .get(0);
        if history {
            return Err(StoreError::OrganizationIdTaken);
        }
        let statement = transaction
            .prepare_cached(
                "INSERT INTO organizations (id, name, external_id, metadata, domains, created_at, updated_at, stripe_customer_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(database_error)?;
        let inserted = transaction
            .execute(
                &statement,
                &[
                    &organization.id,
                    &organization.name,
                    &organization.external_id,
                    &metadata,
                    &domains,
                    &organization.created_at,
                    &organization.updated_at,
                    &organization.stripe_customer_id,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error, "organizations_pkey") => {
                return Err(StoreError::OrganizationIdTaken);
            }
            Err(error) if is_unique_violation(&error, "organizations_external_id_key") => {
                drop(transaction);
                return Err(
                    external_id_taken(&client, organization.external_id.as_deref(), error).await,
                );
            }
            Err(error) => return Err(database_error(error)),
        }
        execute_in(
            &transaction,
            "INSERT INTO chain_heads (organization_id, sequence, hash) VALUES ($1, 0, $2)",
            &[&organization.id, &GENESIS.as_slice()],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Idempotent::Done(organization))
    }

    async fn get_organization(&self, id: &str) -> StoreResult<Option<Organization>> {
        self.query_opt(
            &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn get_organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>> {
        self.query_opt(
            &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE external_id = $1"),
            &[&external_id],
        )
        .await?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<String>,
    ) -> StoreResult<Page<Organization>> {
        let scan = page.scan();
        let (condition, direction) = keyset("id", &scan, "$5");
        let sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations
             WHERE ($1::text IS NULL OR name ILIKE $1 ESCAPE '\\')
               AND (cardinality($2::text[]) = 0 OR EXISTS (
                    SELECT 1 FROM jsonb_array_elements(domains::jsonb) AS owned
                    WHERE owned ->> 'domain' = ANY($2)))
               AND (cardinality($4::text[]) = 0 OR id = ANY($4))
               AND id <> '{ACTIVITY_LOG_ORGANIZATION_ID}'
               AND {condition}
             ORDER BY id {direction} LIMIT $3"
        );
        let pattern = filter.name_contains.as_deref().map(contains_pattern);
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map(|(key, _)| key.clone()).unwrap_or_default();
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&pattern, &filter.domains, &fetch, &filter.ids];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let rows = self.query(&sql, &params).await?;
        let organizations = rows
            .iter()
            .map(organization_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page.assemble(organizations, |organization| organization.id.to_string()))
    }

    async fn update_organization(&self, organization: Organization) -> StoreResult<Organization> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE organizations SET name = $2, external_id = $3, metadata = $4, domains = $5, updated_at = $6,
                                          stripe_customer_id = $7
                 WHERE id = $1",
            )
            .await
            .map_err(database_error)?;
        let updated = client
            .execute(
                &statement,
                &[
                    &organization.id,
                    &organization.name,
                    &organization.external_id,
                    &metadata,
                    &domains,
                    &organization.updated_at,
                    &organization.stripe_customer_id,
                ],
            )
            .await;
        match updated {
            Ok(0) => Err(StoreError::OrganizationNotFound),
            Ok(_) => Ok(organization),
            Err(error) if is_unique_violation(&error, "organizations_external_id_key") => {
                Err(external_id_taken(&client, organization.external_id.as_deref(), error).await)
            }
            Err(error) => Err(database_error(error)),
        }
    }

    async fn delete_organization(
        &self,
        id: &str,
        purged_beforehand: u64,
    ) -> StoreResult<OrganizationDeletion> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The chain head first, as every append batch locks it: an append committed before
        // this lock is granted is purged below (each statement here sees it), one waiting
        // for it finds no head afterwards and answers "not found". Then the organization
        // row, as appends do through the events' foreign key (same order, no deadlock),
        // which also waits for a running retention purge.
        let head = query_in(
            &transaction,
            "SELECT sequence FROM chain_heads WHERE organization_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
        if head.is_empty() {
            return Err(StoreError::OrganizationNotFound);
        }
        query_in(
            &transaction,
            "SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
        // Every event left, however recent, through the retention purge: it keeps the leaf
        // hashes no stored subtree covers and moves the chain anchor past the last event.
        let mut purged = purged_beforehand;
        loop {
            let outcome =
                purge_events_in(&transaction, id, UnixMillis::MAX, DELETION_PURGE_BATCH).await?;
            purged += outcome.purged;
            if !outcome.more {
                break;
            }
        }
        let tree_size = head.first().map_or(0, |row| row.get::<_, i64>(0));
        for table in [
            "exports",
            "imported_event_keys",
            "log_streams",
            "event_targets",
            "chain_heads",
        ] {
            execute_in(
                &transaction,
                &format!("DELETE FROM {table} WHERE organization_id = $1"),
                &[&id],
            )
            .await?;
        }
        execute_in(
            &transaction,
            "INSERT INTO deleted_organizations (id, tree_size, purged, deleted_at) VALUES ($1, $2, $3, $4)",
            &[&id, &tree_size, &(purged as i64), &now_millis()],
        )
        .await?;
        execute_in(
            &transaction,
            "DELETE FROM organizations WHERE id = $1",
            &[&id],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(OrganizationDeletion {
            purged,
            tree_size: tree_size as u64,
        })
    }

    async fn discard_unused_organization(&self, id: &str) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The head at sequence 0 (locked as appends lock it) means no event was ever stored.
        let unused = query_in(
            &transaction,
            "SELECT 1 FROM chain_heads WHERE organization_id = $1 AND sequence = 0 FOR UPDATE",
            &[&id],
        )
        .await?;
        if unused.is_empty() {
            return Ok(false);
        }
        let history: bool = transaction
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM exports WHERE organization_id = $1)
                     OR EXISTS(SELECT 1 FROM checkpoints WHERE organization_id = $1)
                     OR EXISTS(SELECT 1 FROM chain_anchors WHERE organization_id = $1)",
                &[&id],
            )
            .await
            .map_err(database_error)?
            .get(0);
        if history {
            return Ok(false);
        }
        execute_in(
            &transaction,
            "DELETE FROM chain_heads WHERE organization_id = $1",
            &[&id],
        )
        .await?;
        execute_in(
            &transaction,
            "DELETE FROM organizations WHERE id = $1",
            &[&id],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(true)
    }

    async fn deleted_organization_ids(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .query(
                "SELECT id FROM deleted_organizations WHERE tree_size > 0 ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }
}

/// How many events one purge step of a deletion reads and removes; the steps share one
/// transaction, so this bounds memory, not the transaction (the caller has purged most
/// events beforehand, in transactions of their own).
const DELETION_PURGE_BATCH: u32 = 5_000;
