//! Actions and schema versions in SQLite, and the "same as latest?" write.

use super::database_error;
use super::idempotency::claim_idempotency_key;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::schemas::{
    canonical_definition, decide_schema_write, schema_version, SchemaWrite,
};
use crate::shared::search::keyset;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::UnixMillis;

pub(super) fn load_schema_version(
    connection: &Connection,
    action: &str,
    version: Option<i64>,
) -> StoreResult<Option<SchemaVersion>> {
    let row: Option<(i64, String, String, i64)> = connection
        .prepare_cached(
            "SELECT v.version, v.definition, v.created_by, v.created_at
             FROM schema_versions v JOIN actions a ON a.id = v.action_id
             WHERE a.name = ?1 AND (?2 IS NULL OR v.version = ?2)
             ORDER BY v.version DESC LIMIT 1",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![action, version], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()
        })
        .map_err(database_error)?;
    row.map(|(version, definition, created_by, created_at)| {
        schema_version(action, version, &definition, created_by, created_at)
    })
    .transpose()
}

/// Creates the next version of `action` unless `canonical` equals the latest one. Deciding
/// "same as latest?" and inserting happen in one transaction, so two identical concurrent
/// submissions create one version.
pub(super) fn create_schema_version_now(
    connection: &Connection,
    action: String,
    definition: SchemaDefinition,
    created_by: String,
    at: UnixMillis,
    canonical: &str,
) -> StoreResult<(SchemaVersion, bool)> {
    let latest = load_schema_version(connection, &action, None)?;
    let version = match decide_schema_write(latest, canonical)? {
        SchemaWrite::Unchanged(latest) => return Ok((latest, false)),
        SchemaWrite::Create(version) => version,
    };

    connection
        .execute(
            "INSERT INTO actions (name, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at",
            params![action, at],
        )
        .map_err(database_error)?;
    connection
        .execute(
            "INSERT INTO schema_versions (action_id, version, definition, created_by, created_at)
             SELECT a.id, ?2, ?3, ?4, ?5 FROM actions a WHERE a.name = ?1",
            params![action, version, canonical, created_by, at],
        )
        .map_err(database_error)?;
    Ok((
        SchemaVersion {
            action,
            version,
            definition,
            created_by,
            created_at: at,
        },
        true,
    ))
}

#[async_trait]
impl SchemaStore for SqliteStore {
    async fn create_schema_version(
        &self,
        action: &str,
        definition: SchemaDefinition,
        created_by: &str,
        at: UnixMillis,
        idempotency: Option<IdempotentWrite<(SchemaVersion, bool)>>,
    ) -> StoreResult<Idempotent<(SchemaVersion, bool)>> {
        let action = action.to_owned();
        let created_by = created_by.to_owned();
        let canonical = canonical_definition(&definition)?;
        self.writer
            .write(move |connection| {
                if let Some(write) = &idempotency {
                    if let Some(existing) = claim_idempotency_key(connection, &write.claim)? {
                        return Ok(Idempotent::AlreadyDone(existing));
                    }
                }
                let outcome = create_schema_version_now(connection, action, definition, created_by, at, &canonical)?;
                if let Some(write) = idempotency {
                    let (status, body) = (write.respond)(&outcome);
                    connection
                        .execute(
                            "UPDATE idempotency_keys SET status = ?3, body = ?4 WHERE scope = ?1 AND key = ?2",
                            params![write.claim.scope, write.claim.key, status, body],
                        )
                        .map_err(database_error)?;
                }
                Ok(Idempotent::Done(outcome))
            })
            .await
    }

    async fn get_schema_version(
        &self,
        action: &str,
        version: i64,
    ) -> StoreResult<Option<SchemaVersion>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| load_schema_version(connection, &action, Some(version)))
            .await
    }

    async fn schema_version_numbers(&self, action: &str) -> StoreResult<Vec<i64>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT v.version FROM schema_versions v JOIN actions a ON a.id = v.action_id
                         WHERE a.name = ?1 ORDER BY v.version",
                    )
                    .map_err(database_error)?;
                let versions = statement
                    .query_map([action], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                versions
            })
            .await
    }

    async fn list_schema_versions(
        &self,
        action: &str,
        page: PageRequest<i64>,
    ) -> StoreResult<Option<Page<SchemaVersion>>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| {
                let action_id: Option<i64> = connection
                    .query_row("SELECT id FROM actions WHERE name = ?1", [&action], |row| row.get(0))
                    .optional()
                    .map_err(database_error)?;
                let Some(action_id) = action_id else { return Ok(None) };
                let scan = page.scan();
                let (condition, direction) = keyset("version", &scan, ":bound");
                let sql = format!(
                    "SELECT version, definition, created_by, created_at FROM schema_versions
                     WHERE action_id = :action_id AND {condition} ORDER BY version {direction} LIMIT :fetch"
                );
                let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
                let bound = scan.bound.map(|(key, _)| *key);
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":action_id", &action_id), (":fetch", &scan.fetch)];
                if bound.is_some() {
                    named.push((":bound", &bound));
                }
                let rows: Vec<(i64, String, String, i64)> = statement
                    .query_map(named.as_slice(), |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                    .and_then(Iterator::collect)
                    .map_err(database_error)?;
                let versions = rows
                    .into_iter()
                    .map(|(version, definition, created_by, created_at)| {
                        schema_version(&action, version, &definition, created_by, created_at)
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(Some(page.assemble(versions, |version| version.version.to_string())))
            })
            .await
    }

    async fn list_actions(&self, page: PageRequest<i64>) -> StoreResult<Page<ActionSummary>> {
        self.readers
            .read(move |connection| {
                let scan = page.scan();
                let (condition, direction) = keyset("a.id", &scan, ":bound");
                let sql = format!(
                    "SELECT a.id, a.name, a.created_at, a.updated_at, v.version, v.definition, v.created_by, v.created_at
                     FROM actions a JOIN schema_versions v ON v.action_id = a.id
                      AND v.version = (SELECT MAX(version) FROM schema_versions WHERE action_id = a.id)
                     WHERE {condition} ORDER BY a.id {direction} LIMIT :fetch"
                );
                let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
                let bound = scan.bound.map(|(key, _)| *key);
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":fetch", &scan.fetch)];
                if bound.is_some() {
                    named.push((":bound", &bound));
                }
                type ActionRow = (i64, String, i64, i64, i64, String, String, i64);
                let rows: Vec<ActionRow> = statement
                    .query_map(named.as_slice(), |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                            row.get(6)?,
                            row.get(7)?,
                        ))
                    })
                    .and_then(Iterator::collect)
                    .map_err(database_error)?;
                let actions = rows
                    .into_iter()
                    .map(|(position, name, created_at, updated_at, version, definition, created_by, version_created_at)| {
                        Ok(ActionSummary {
                            latest: schema_version(&name, version, &definition, created_by, version_created_at)?,
                            position,
                            name,
                            created_at,
                            updated_at,
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(page.assemble(actions, |action| action.position.to_string()))
            })
            .await
    }
}
