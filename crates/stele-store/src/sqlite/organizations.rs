//! Organizations in SQLite: rows, external ids and the rule that only an empty one is deleted.

use super::database_error;
use super::idempotency::claim_idempotency_key;
use super::is_unique_violation;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::encoding::{contains_pattern, json_text, parse_organization_json};
use crate::shared::search::keyset;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use rusqlite::Row;
use serde_json::Map;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;

pub(super) const ORGANIZATION_COLUMNS: &str =
    "id, name, external_id, metadata, domains, created_at, updated_at, retention_period_in_days";

pub(super) fn organization_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<(Organization, String, String)> {
    Ok((
        Organization {
            id: row.get(0)?,
            name: row.get(1)?,
            external_id: row.get(2)?,
            metadata: Map::new(),
            domains: Vec::new(),
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
            retention_period_in_days: row.get(7)?,
        },
        row.get(3)?,
        row.get(4)?,
    ))
}

/// Completes an organization row by parsing its JSON columns.
pub(super) fn parse_organization(
    (mut organization, metadata, domains): (Organization, String, String),
) -> StoreResult<Organization> {
    (organization.metadata, organization.domains) =
        parse_organization_json(&organization.id, &metadata, &domains)?;
    Ok(organization)
}

pub(super) fn organization_exists(connection: &Connection, id: &str) -> StoreResult<bool> {
    connection
        .prepare_cached("SELECT 1 FROM organizations WHERE id = ?1")
        .and_then(|mut statement| statement.exists([id]))
        .map_err(database_error)
}

/// Whether an organization deleted earlier left signed checkpoints or tree hashes under
/// `id`: such an id is never given to a new organization, whose log would otherwise
/// start under another tenant's signed history.
fn id_has_signed_history(connection: &Connection, id: &str) -> StoreResult<bool> {
    connection
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM checkpoints WHERE organization_id = ?1)
                 OR EXISTS(SELECT 1 FROM merkle_nodes WHERE organization_id = ?1)",
        )
        .and_then(|mut statement| statement.query_row([id], |row| row.get(0)))
        .map_err(database_error)
}

/// Maps a unique violation on `organizations.external_id` to the organization holding it;
/// if the lookup fails, or the holder is gone by then, that error (or the violation) is
/// reported instead of a guess.
pub(super) fn external_id_taken(
    connection: &Connection,
    external_id: Option<&str>,
    violation: rusqlite::Error,
) -> StoreError {
    match connection
        .query_row(
            "SELECT id FROM organizations WHERE external_id = ?1",
            [external_id],
            |row| row.get(0),
        )
        .optional()
    {
        Ok(Some(existing)) => StoreError::ExternalIdTaken { existing },
        Ok(None) => database_error(violation),
        Err(error) => database_error(error),
    }
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn create_organization(
        &self,
        organization: Organization,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Organization>> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
        self.writer
            .write(move |connection| {
                if let Some(record) = &idempotency {
                    if let Some(existing) = claim_idempotency_key(connection, record)? {
                        return Ok(Idempotent::AlreadyDone(existing));
                    }
                }
                if organization_exists(connection, &organization.id)?
                    || id_has_signed_history(connection, &organization.id)?
                {
                    return Err(StoreError::OrganizationIdTaken);
                }
                let inserted = connection.execute(
                    "INSERT INTO organizations (id, name, external_id, metadata, domains, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        organization.id,
                        organization.name,
                        organization.external_id,
                        metadata,
                        domains,
                        organization.created_at,
                        organization.updated_at
                    ],
                );
                match inserted {
                    Ok(_) => Ok(Idempotent::Done(organization)),
                    Err(error) if is_unique_violation(&error, "organizations.external_id") => {
                        Err(external_id_taken(connection, organization.external_id.as_deref(), error))
                    }
                    Err(error) => Err(database_error(error)),
                }
            })
            .await
    }

    async fn get_organization(&self, id: &str) -> StoreResult<Option<Organization>> {
        let id = id.to_owned();
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(&format!(
                        "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = ?1"
                    ))
                    .and_then(|mut statement| {
                        statement.query_row([id], organization_from_row).optional()
                    })
                    .map_err(database_error)?
                    .map(parse_organization)
                    .transpose()
            })
            .await
    }

    async fn get_organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>> {
        let external_id = external_id.to_owned();
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(&format!(
                        "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE external_id = ?1"
                    ))
                    .and_then(|mut statement| {
                        statement
                            .query_row([external_id], organization_from_row)
                            .optional()
                    })
                    .map_err(database_error)?
                    .map(parse_organization)
                    .transpose()
            })
            .await
    }

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<String>,
    ) -> StoreResult<Page<Organization>> {
        let domains = (!filter.domains.is_empty())
            .then(|| json_text(&filter.domains))
            .transpose()?;
        self.readers
            .read(move |connection| {
                let scan = page.scan();
                let (condition, direction) = keyset("id", &scan, ":bound");
                let sql = format!(
                    "SELECT {ORGANIZATION_COLUMNS} FROM organizations
                     WHERE (:pattern IS NULL OR name LIKE :pattern ESCAPE '\\')
                       AND (:domains IS NULL OR EXISTS (
                            SELECT 1 FROM json_each(organizations.domains) AS owned
                            WHERE json_extract(owned.value, '$.domain') IN (SELECT value FROM json_each(:domains))))
                       AND {condition}
                     ORDER BY id {direction} LIMIT :fetch"
                );
                let pattern = filter.name_contains.as_deref().map(contains_pattern);
                let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
                let bound = scan.bound.map(|(key, _)| key.clone());
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> =
                    vec![(":pattern", &pattern), (":domains", &domains), (":fetch", &scan.fetch)];
                if bound.is_some() {
                    named.push((":bound", &bound));
                }
                let rows = statement
                    .query_map(named.as_slice(), organization_from_row)
                    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                    .map_err(database_error)?;
                let organizations = rows.into_iter().map(parse_organization).collect::<StoreResult<Vec<_>>>()?;
                Ok(page.assemble(organizations, |organization| organization.id.to_string()))
            })
            .await
    }

    async fn update_organization(&self, organization: Organization) -> StoreResult<Organization> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
        self.writer
            .write(move |connection| {
                let updated = connection.execute(
                    "UPDATE organizations SET name = ?2, external_id = ?3, metadata = ?4, domains = ?5, updated_at = ?6
                     WHERE id = ?1",
                    params![
                        organization.id,
                        organization.name,
                        organization.external_id,
                        metadata,
                        domains,
                        organization.updated_at
                    ],
                );
                match updated {
                    Ok(0) => Err(StoreError::OrganizationNotFound),
                    Ok(_) => Ok(organization),
                    Err(error) if is_unique_violation(&error, "organizations.external_id") => {
                        Err(external_id_taken(connection, organization.external_id.as_deref(), error))
                    }
                    Err(error) => Err(database_error(error)),
                }
            })
            .await
    }

    async fn delete_organization(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                let count: i64 = connection
                    .query_row(
                        "SELECT COUNT(*) FROM events WHERE organization_id = ?1",
                        [&id],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                if count > 0 {
                    return Err(StoreError::OrganizationHasEvents { count });
                }
                for table in ["chain_anchors", "exports", "log_streams"] {
                    connection
                        .execute(
                            &format!("DELETE FROM {table} WHERE organization_id = ?1"),
                            [&id],
                        )
                        .map_err(database_error)?;
                }
                match connection
                    .execute("DELETE FROM organizations WHERE id = ?1", [&id])
                    .map_err(database_error)?
                {
                    0 => Err(StoreError::OrganizationNotFound),
                    _ => Ok(()),
                }
            })
            .await
    }
}
