//! Organizations in SQLite: rows, external ids, and deletion with the purge of their events.

use super::database_error;
use super::idempotency::claim_idempotency_key;
use super::is_unique_violation;
use super::retention::purge_events_now;
use super::tree::tree_size;
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
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::timestamp::{now_millis, UnixMillis};

/// Registers `stele_fold(text)` on a read connection: `text` with every character mapped to
/// one lowercase character. The organization list's name filter compares folded names, so
/// it is case-insensitive across Unicode as PostgreSQL's `ILIKE` is (SQLite's own `LIKE`
/// folds ASCII letters only): "ärzte" finds "Ärzte GmbH" on both backends.
///
/// Each character maps to the first character of its lowercase form, so the mapping is one
/// to one like the C `towlower` behind `ILIKE`: "İ" folds to "i", not to "i" and a
/// combining dot.
pub(super) fn register_case_fold(connection: &Connection) -> StoreResult<()> {
    use rusqlite::functions::FunctionFlags;
    connection
        .create_scalar_function(
            "stele_fold",
            1,
            FunctionFlags::SQLITE_UTF8
                | FunctionFlags::SQLITE_DETERMINISTIC
                | FunctionFlags::SQLITE_INNOCUOUS,
            |context| {
                Ok(context
                    .get::<Option<String>>(0)?
                    .map(|text| fold_case(&text)))
            },
        )
        .map_err(|error| StoreError::sqlite("registering stele_fold", error))
}

/// `text` with each character replaced by the first character of its lowercase form.
fn fold_case(text: &str) -> String {
    text.chars()
        .map(|character| character.to_lowercase().next().unwrap_or(character))
        .collect()
}

pub(super) const ORGANIZATION_COLUMNS: &str =
    "id, name, external_id, metadata, domains, created_at, updated_at, retention_period_in_days, stripe_customer_id";

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
            stripe_customer_id: row.get(8)?,
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

/// Whether `id` belonged to a deleted organization (recorded since migration 0010, or
/// one deleted before that which left signed checkpoints, tree hashes or a chain anchor):
/// such an id is never given to a new organization, whose log would otherwise start
/// under another tenant's signed history.
pub(super) fn id_is_retired(connection: &Connection, id: &str) -> StoreResult<bool> {
    connection
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM deleted_organizations WHERE id = ?1)
                 OR EXISTS(SELECT 1 FROM checkpoints WHERE organization_id = ?1)
                 OR EXISTS(SELECT 1 FROM merkle_nodes WHERE organization_id = ?1)
                 OR EXISTS(SELECT 1 FROM chain_anchors WHERE organization_id = ?1)",
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
                    || id_is_retired(connection, &organization.id)?
                {
                    return Err(StoreError::OrganizationIdTaken);
                }
                let inserted = connection.execute(
                    "INSERT INTO organizations (id, name, external_id, metadata, domains, created_at, updated_at, stripe_customer_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        organization.id,
                        organization.name,
                        organization.external_id,
                        metadata,
                        domains,
                        organization.created_at,
                        organization.updated_at,
                        organization.stripe_customer_id
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
        let ids = (!filter.ids.is_empty())
            .then(|| json_text(&filter.ids))
            .transpose()?;
        self.readers
            .read(move |connection| {
                let scan = page.scan();
                let (condition, direction) = keyset("id", &scan, ":bound");
                let sql = format!(
                    "SELECT {ORGANIZATION_COLUMNS} FROM organizations
                     WHERE (:pattern IS NULL OR stele_fold(name) LIKE stele_fold(:pattern) ESCAPE '\\')
                       AND (:domains IS NULL OR EXISTS (
                            SELECT 1 FROM json_each(organizations.domains) AS owned
                            WHERE json_extract(owned.value, '$.domain') IN (SELECT value FROM json_each(:domains))))
                       AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
                       AND id <> '{ACTIVITY_LOG_ORGANIZATION_ID}'
                       AND {condition}
                     ORDER BY id {direction} LIMIT :fetch"
                );
                let pattern = filter.name_contains.as_deref().map(contains_pattern);
                let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
                let bound = scan.bound.map(|(key, _)| key.clone());
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> =
                    vec![(":pattern", &pattern), (":domains", &domains), (":ids", &ids), (":fetch", &scan.fetch)];
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
                    "UPDATE organizations SET name = ?2, external_id = ?3, metadata = ?4, domains = ?5, updated_at = ?6,
                                              stripe_customer_id = ?7
                     WHERE id = ?1",
                    params![
                        organization.id,
                        organization.name,
                        organization.external_id,
                        metadata,
                        domains,
                        organization.updated_at,
                        organization.stripe_customer_id
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

    async fn delete_organization(
        &self,
        id: &str,
        purged_beforehand: u64,
    ) -> StoreResult<OrganizationDeletion> {
        let id = id.to_owned();
        // One write job: the writer runs jobs one after another, so every append is
        // ordered before this (and purged with the rest) or after it (and finds no
        // organization). The savepoint undoes a half-done deletion.
        self.writer
            .write(move |connection| {
                delete_organization_now(connection, &id, purged_beforehand, now_millis())
            })
            .await
    }

    async fn discard_unused_organization(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                if id_is_retired(connection, &id)? {
                    return Ok(false);
                }
                let removed = connection
                    .execute(
                        "DELETE FROM organizations WHERE id = ?1
                           AND NOT EXISTS (SELECT 1 FROM events WHERE organization_id = ?1)
                           AND NOT EXISTS (SELECT 1 FROM exports WHERE organization_id = ?1)",
                        [&id],
                    )
                    .map_err(database_error)?;
                Ok(removed > 0)
            })
            .await
    }

    async fn deleted_organization_ids(&self) -> StoreResult<Vec<String>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT id FROM deleted_organizations WHERE tree_size > 0 ORDER BY id",
                    )
                    .map_err(database_error)?;
                let ids = statement
                    .query_map([], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                ids
            })
            .await
    }
}

/// How many events one purge step of a deletion reads and removes; the steps share one
/// transaction, so this bounds memory, not the transaction (the caller has purged most
/// events beforehand, in transactions of their own).
const DELETION_PURGE_BATCH: u32 = 5_000;

fn delete_organization_now(
    connection: &Connection,
    id: &str,
    purged_beforehand: u64,
    at: UnixMillis,
) -> StoreResult<OrganizationDeletion> {
    if !organization_exists(connection, id)? {
        return Err(StoreError::OrganizationNotFound);
    }
    // Every event left, however recent, through the retention purge: it keeps the leaf
    // hashes no stored subtree covers and moves the chain anchor past the last event.
    let mut purged = purged_beforehand;
    loop {
        let outcome = purge_events_now(connection, id, UnixMillis::MAX, DELETION_PURGE_BATCH)?;
        purged += outcome.purged;
        if !outcome.more {
            break;
        }
    }
    let tree_size = tree_size(connection, id)?;
    for table in ["exports", "imported_event_keys", "log_streams"] {
        connection
            .execute(
                &format!("DELETE FROM {table} WHERE organization_id = ?1"),
                [id],
            )
            .map_err(database_error)?;
    }
    // The purges above already name every event; this drops whatever else the index file
    // holds for the organization (see `search_index`).
    connection
        .execute(
            "INSERT INTO search_index_deletions (organization_id, up_to_sequence) VALUES (?1, NULL)",
            [id],
        )
        .map_err(database_error)?;
    connection
        .execute(
            "INSERT INTO deleted_organizations (id, tree_size, purged, deleted_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, tree_size as i64, purged as i64, at],
        )
        .map_err(database_error)?;
    connection
        .execute("DELETE FROM organizations WHERE id = ?1", [id])
        .map_err(database_error)?;
    Ok(OrganizationDeletion { purged, tree_size })
}
