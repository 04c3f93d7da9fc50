//! The embedded SQLite store: one writer thread with group commit ([`writer`]), a pool of
//! read connections ([`read_pool`]), WAL journaling and `synchronous=FULL`, so a write is
//! on disk before its caller hears it succeeded.

mod merkle;
mod migrations;
mod read_pool;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};
use serde_json::Map;
use stele_core::chain::{link, ChainHash, ChainVerifier, StoredLink, GENESIS};
use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::merkle::Hash;
use stele_core::pagination::{Page, PageRequest, Scan};
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::{now_millis, UnixMillis};

use self::read_pool::ReadPool;
use self::writer::Writer;
use crate::stored::{json_text, parse_definition, parse_export_format, StoredExportFilters};
use crate::{Store, StoreError, StoreResult};
use stele_core::model::*;

fn database_error(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn is_unique_violation(error: &rusqlite::Error, column: &str) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, Some(message))
        if failure.code == ErrorCode::ConstraintViolation && message.contains(column))
}

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// The WAL is synced before every commit is acknowledged: an acknowledged event
    /// survives a process crash, an OS crash and a power loss.
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: an acknowledged event survives the process
    /// being killed (`kill -9`, a panic, an OOM kill), because it is already in the
    /// operating system's buffers, but the last commits may be lost if the machine itself
    /// crashes or loses power.
    Normal,
}

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReadPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, applying migrations first
    /// when `migrate` is set, with every commit synced ([`SyncMode::Full`]).
    pub fn open(path: &Path, migrate: bool) -> StoreResult<Self> {
        Self::open_with(path, migrate, SyncMode::Full)
    }

    /// [`SqliteStore::open`] with a chosen [`SyncMode`].
    pub fn open_with(path: &Path, migrate: bool, sync: SyncMode) -> StoreResult<Self> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Database(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let mut connection = Connection::open(path).map_err(database_error)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, which
        // is what makes an acknowledged event survive a crash or power loss. The writer's
        // page cache (128 MiB) keeps the index pages that random keys (idempotency keys,
        // actor and target ids) land on in memory; savepoint journals stay in memory too.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -131072;
                 PRAGMA journal_size_limit = 67108864;",
            )
            .map_err(database_error)?;
        if sync == SyncMode::Normal {
            connection
                .execute_batch("PRAGMA synchronous = NORMAL;")
                .map_err(database_error)?;
        }
        if migrate {
            let applied = migrations::migrate(&mut connection)?;
            if applied > 0 {
                tracing::info!(applied, path = %path.display(), "applied SQLite migrations");
            }
        }
        Ok(Self {
            writer: Writer::start(connection),
            readers: ReadPool::new(PathBuf::from(path)),
        })
    }

    /// Applies pending migrations and returns how many ran (for `stele migrate`).
    pub fn migrate(path: &Path) -> StoreResult<usize> {
        let mut connection = Connection::open(path).map_err(database_error)?;
        migrations::migrate(&mut connection)
    }
}

// --- row mapping -----------------------------------------------------------------------

const ORGANIZATION_COLUMNS: &str =
    "id, name, external_id, metadata, domains, created_at, updated_at, retention_period_in_days";

fn organization_from_row(row: &Row<'_>) -> rusqlite::Result<(Organization, String, String)> {
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
fn parse_organization(
    (mut organization, metadata, domains): (Organization, String, String),
) -> StoreResult<Organization> {
    organization.metadata = serde_json::from_str(&metadata).map_err(|error| {
        StoreError::Corrupt(format!(
            "organization {} metadata: {error}",
            organization.id
        ))
    })?;
    organization.domains = serde_json::from_str(&domains).map_err(|error| {
        StoreError::Corrupt(format!("organization {} domains: {error}", organization.id))
    })?;
    Ok(organization)
}

/// `WHERE`-clause fragment and `ORDER BY` direction for a keyset scan over `column`.
fn keyset(column: &str, scan: &Scan<'_, impl Sized>) -> (String, &'static str) {
    let condition = match scan.bound {
        None => "1 = 1".to_owned(),
        Some((_, true)) => format!("{column} > :bound"),
        Some((_, false)) => format!("{column} < :bound"),
    };
    (condition, if scan.descending { "DESC" } else { "ASC" })
}

// --- write-side helpers, run on the writer thread ----------------------------------------

/// Claims `(scope, key)` for `record` unless an unexpired record holds it; returns the
/// holder in that case.
fn claim_idempotency_key(
    connection: &Connection,
    record: &IdempotencyRecord,
) -> StoreResult<Option<IdempotencyRecord>> {
    let claimed = connection
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, status = excluded.status,
                 body = excluded.body, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= ?7",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                record.scope,
                record.key,
                record.fingerprint.as_slice(),
                record.status,
                record.body,
                record.created_at,
                record.created_at - REPLAY_WINDOW_MS,
            ])
        })
        .map_err(database_error)?;
    if claimed == 1 {
        return Ok(None);
    }
    find_idempotency(connection, &record.scope, &record.key, record.created_at)
}

fn find_idempotency(
    connection: &Connection,
    scope: &str,
    key: &str,
    now: UnixMillis,
) -> StoreResult<Option<IdempotencyRecord>> {
    connection
        .prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys
             WHERE scope = ?1 AND key = ?2 AND created_at > ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![scope, key, now - REPLAY_WINDOW_MS], |row| {
                    let fingerprint: Vec<u8> = row.get(0)?;
                    Ok(IdempotencyRecord {
                        scope: scope.to_owned(),
                        key: key.to_owned(),
                        fingerprint: fingerprint.try_into().unwrap_or([0; 32]),
                        status: row.get(1)?,
                        body: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                })
                .optional()
        })
        .map_err(database_error)
}

fn organization_exists(connection: &Connection, id: &str) -> StoreResult<bool> {
    connection
        .prepare_cached("SELECT 1 FROM organizations WHERE id = ?1")
        .and_then(|mut statement| statement.exists([id]))
        .map_err(database_error)
}

/// Appends `new` at its organization's next sequence; the organization must exist.
fn append_event_now(connection: &Connection, new: &NewEvent) -> StoreResult<AppendedEvent> {
    let head: Option<(i64, Vec<u8>)> = connection
        .prepare_cached(
            "SELECT sequence, hash FROM events WHERE organization_id = ?1 ORDER BY sequence DESC LIMIT 1",
        )
        .and_then(|mut statement| {
            statement.query_row([&new.organization_id], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        })
        .map_err(database_error)?;
    let head = match head {
        Some(head) => Some(head),
        None => chain_anchor(connection, &new.organization_id)?
            .map(|(sequence, hash)| (sequence, hash.to_vec())),
    };
    let (previous_sequence, previous_hash): (i64, ChainHash) = match head {
        None => (0, GENESIS),
        Some((sequence, hash)) => (
            sequence,
            hash.try_into().map_err(|_| {
                StoreError::Corrupt(format!(
                    "event {sequence} of {} has a malformed hash",
                    new.organization_id
                ))
            })?,
        ),
    };
    let sequence = previous_sequence + 1;
    let received_at = now_millis();
    let canonical = new
        .event
        .canonical_record(&new.id, &new.organization_id, sequence, received_at)
        .map_err(|error| StoreError::Database(error.to_string()))?;
    let hash = link(&previous_hash, &canonical);
    connection
        .prepare_cached(
            "INSERT INTO events (organization_id, sequence, id, action, version, actor_id, actor_name,
                                 occurred_at, received_at, canonical, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                new.organization_id,
                sequence,
                new.id,
                new.event.action,
                new.event.version,
                new.event.actor.id,
                new.event.actor.name,
                new.event.occurred_at,
                received_at,
                canonical,
                hash.as_slice(),
            ])
        })
        .map_err(database_error)?;
    let mut insert_target = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO event_targets (organization_id, target_id, sequence, position, target_type)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(database_error)?;
    for (position, target) in new.event.targets.iter().enumerate() {
        insert_target
            .execute(params![
                new.organization_id,
                target.id,
                sequence,
                position as i64,
                target.kind
            ])
            .map_err(database_error)?;
    }
    Ok(AppendedEvent {
        id: new.id.clone(),
        sequence,
        received_at,
    })
}

fn load_schema_version(
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
        Ok(SchemaVersion {
            action: action.to_owned(),
            version,
            definition: parse_definition(action, version, &definition)?,
            created_by,
            created_at,
        })
    })
    .transpose()
}

/// The predecessor of an organization's first retained event after a purge: its sequence
/// and hash, from which the next append continues the chain.
fn chain_anchor(
    connection: &Connection,
    organization_id: &str,
) -> StoreResult<Option<(i64, ChainHash)>> {
    let row: Option<(i64, Vec<u8>)> = connection
        .prepare_cached(
            "SELECT first_sequence, previous_hash FROM chain_anchors WHERE organization_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([organization_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(database_error)?;
    row.map(|(first_sequence, hash)| {
        let hash: ChainHash = hash.try_into().map_err(|_| {
            StoreError::Corrupt(format!(
                "chain anchor of {organization_id} has a malformed hash"
            ))
        })?;
        Ok((first_sequence - 1, hash))
    })
    .transpose()
}

/// Every organization's retained-chain start: first retained sequence and its predecessor hash.
fn all_chain_anchors(
    connection: &Connection,
) -> StoreResult<std::collections::HashMap<String, (i64, ChainHash)>> {
    let mut statement = connection
        .prepare("SELECT organization_id, first_sequence, previous_hash FROM chain_anchors")
        .map_err(database_error)?;
    let rows: Vec<(String, i64, Vec<u8>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    rows.into_iter()
        .map(|(organization, first_sequence, hash)| {
            let hash: ChainHash = hash.try_into().map_err(|_| {
                StoreError::Corrupt(format!(
                    "chain anchor of {organization} has a malformed hash"
                ))
            })?;
            Ok((organization, (first_sequence, hash)))
        })
        .collect()
}

const STORED_EVENT_COLUMNS: &str =
    "e.id, e.organization_id, e.sequence, e.version, e.received_at, e.canonical";

fn stored_event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        sequence: row.get(2)?,
        version: row.get(3)?,
        received_at: row.get(4)?,
        canonical: row.get(5)?,
    })
}

/// The search SQL for `query` and its parameters, in order. Only the filters in use appear,
/// and list values are spelled out (`= ?` for one, `IN (?, ?)` for several) rather than
/// passed as one JSON array, so SQLite sees each value and picks the index that fits: a
/// filter on one actor walks `(organization_id, actor_id, sequence)` in order instead of
/// scanning the organization. The page's sequences are chosen first, from the indexes
/// alone where they cover the filters, and only those rows' stored bytes are read.
fn search_sql(query: &EventQuery, scan: &Scan<'_, i64>) -> (String, Vec<SqlValue>) {
    let mut values: Vec<SqlValue> = vec![SqlValue::Text(query.organization_id.to_string())];
    let mut conditions = vec!["e.organization_id = ?1".to_owned()];
    let one_of = |column: &str, items: &[String], values: &mut Vec<SqlValue>| {
        let start = values.len() + 1;
        values.extend(items.iter().cloned().map(SqlValue::Text));
        if items.len() == 1 {
            format!("{column} = ?{start}")
        } else {
            let placeholders: Vec<String> = (start..start + items.len())
                .map(|n| format!("?{n}"))
                .collect();
            format!("{column} IN ({})", placeholders.join(", "))
        }
    };
    for (column, items) in [
        ("e.action", &query.actions),
        ("e.actor_id", &query.actor_ids),
        ("e.actor_name", &query.actor_names),
    ] {
        if !items.is_empty() {
            let condition = one_of(column, items, &mut values);
            conditions.push(condition);
        }
    }
    if !query.target_ids.is_empty() {
        // Target ids are selective: let their index drive.
        let condition = one_of("t.target_id", &query.target_ids, &mut values);
        conditions.push(format!(
            "e.sequence IN (SELECT t.sequence FROM event_targets t WHERE t.organization_id = ?1 AND {condition})"
        ));
    }
    if !query.target_types.is_empty() {
        // Target types are not (most events of an action share them): check them per
        // candidate row instead of collecting every matching sequence first.
        let condition = one_of("t.target_type", &query.target_types, &mut values);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM event_targets t
                     WHERE t.organization_id = e.organization_id AND {condition} AND t.sequence = e.sequence)"
        ));
    }
    // With an actor or target id, that selective index should drive and the time range be
    // checked row by row; `+` keeps SQLite (which has no statistics about the range) from
    // walking a wide range of the time index instead.
    let time = if query.actor_ids.is_empty() && query.target_ids.is_empty() {
        "e.occurred_at"
    } else {
        "+e.occurred_at"
    };
    let (from, to) = (format!("{time} >="), format!("{time} <="));
    for (condition, bound) in [
        (from.as_str(), query.occurred_from),
        (to.as_str(), query.occurred_to),
        ("e.sequence <=", query.up_to_sequence),
        (
            "e.sequence >",
            scan.bound
                .filter(|(_, greater)| *greater)
                .map(|(key, _)| *key),
        ),
        (
            "e.sequence <",
            scan.bound
                .filter(|(_, greater)| !*greater)
                .map(|(key, _)| *key),
        ),
    ] {
        if let Some(bound) = bound {
            values.push(SqlValue::Integer(bound));
            conditions.push(format!("{condition} ?{}", values.len()));
        }
    }
    values.push(SqlValue::Integer(i64::from(scan.fetch)));
    let direction = if scan.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM events e
         WHERE e.organization_id = ?1 AND e.sequence IN (
             SELECT e.sequence FROM events e WHERE {} ORDER BY e.sequence {direction} LIMIT ?{})
         ORDER BY e.sequence {direction}",
        conditions.join(" AND "),
        values.len()
    );
    (sql, values)
}

fn run_search(
    connection: &Connection,
    query: &EventQuery,
    page: &PageRequest<i64>,
) -> StoreResult<Vec<StoredEvent>> {
    let (sql, values) = search_sql(query, &page.scan());
    let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(values), stored_event_from_row)
        .and_then(Iterator::collect)
        .map_err(database_error);
    rows
}

fn load_export(connection: &Connection, id: &str) -> StoreResult<Option<Export>> {
    let row: Option<(String, String, String, i64, i64)> = connection
        .prepare_cached("SELECT organization_id, filters, format, up_to_sequence, created_at FROM exports WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
                .optional()
        })
        .map_err(database_error)?;
    row.map(
        |(organization_id, filters, format, up_to_sequence, created_at)| {
            let stored: StoredExportFilters = serde_json::from_str(&filters)
                .map_err(|error| StoreError::Corrupt(format!("export {id} filters: {error}")))?;
            let retained_now =
                chain_anchor(connection, &organization_id)?.map_or(1, |(previous, _)| previous + 1);
            let mut query = stored.query;
            query.organization_id = organization_id.into();
            query.up_to_sequence = Some(up_to_sequence);
            Ok(Export {
                id: id.into(),
                query,
                format: parse_export_format(id, &format)?,
                created_at,
                complete: retained_now <= stored.retained_from,
            })
        },
    )
    .transpose()
}

type PrefixRow = (i64, i64, Vec<u8>, Vec<u8>);

fn purge_events_now(
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
    merkle::keep_purged_leaf_hashes(connection, organization_id, &purged_leaves)?;
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

/// Re-checks the chains inside the caller's read transaction (see `verify_log`).
fn verify_chains(
    connection: &Connection,
    organization_id: Option<String>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> StoreResult<VerifyReport> {
    let anchors = all_chain_anchors(connection)?;
    let mut statement = connection
        .prepare(
            "SELECT organization_id, sequence, canonical, hash FROM events
             WHERE (?1 IS NULL OR organization_id = ?1)
             ORDER BY organization_id, sequence",
        )
        .map_err(database_error)?;
    let mut rows = statement.query([organization_id]).map_err(database_error)?;
    let mut report = VerifyReport {
        organizations: 0,
        events: 0,
        first_break: None,
    };
    let mut current: Option<(String, ChainVerifier)> = None;
    while let Some(row) = rows.next().map_err(database_error)? {
        let organization: String = row.get(0).map_err(database_error)?;
        let sequence: i64 = row.get(1).map_err(database_error)?;
        let canonical = row
            .get_ref(2)
            .and_then(|value| Ok(value.as_bytes()?))
            .map_err(database_error)?;
        let hash = row
            .get_ref(3)
            .and_then(|value| Ok(value.as_bytes()?))
            .map_err(database_error)?;
        if current.as_ref().is_none_or(|(id, _)| *id != organization) {
            report.organizations += 1;
            let verifier = match anchors.get(&organization) {
                Some((first_sequence, previous_hash)) => {
                    ChainVerifier::new(*first_sequence, *previous_hash)
                }
                None => ChainVerifier::from_genesis(),
            };
            current = Some((organization.clone(), verifier));
        }
        if let Some((_, verifier)) = current.as_mut() {
            if let Err(chain_break) = verifier.push(&StoredLink {
                sequence,
                canonical_bytes: canonical,
                hash,
            }) {
                report.first_break = Some((organization.into(), chain_break));
                return Ok(report);
            }
        }
        report.events += 1;
        if report.events.is_multiple_of(10_000) {
            progress(report.events);
        }
    }
    progress(report.events);
    Ok(report)
}

/// Creates the next version of `action` unless `canonical` equals the latest one. Deciding
/// "same as latest?" and inserting happen in one transaction, so two identical concurrent
/// submissions create one version.
fn create_schema_version_now(
    connection: &Connection,
    action: String,
    definition: SchemaDefinition,
    created_by: String,
    at: UnixMillis,
    canonical: &str,
) -> StoreResult<(SchemaVersion, bool)> {
    if let Some(latest) = load_schema_version(connection, &action, None)? {
        if String::from_utf8(latest.definition.canonical_bytes())
            .ok()
            .as_deref()
            == Some(canonical)
        {
            return Ok((latest, false));
        }
    }

    connection
        .execute(
            "INSERT INTO actions (name, created_at, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at",
            params![action, at],
        )
        .map_err(database_error)?;
    let version: i64 = connection
        .query_row(
            "INSERT INTO schema_versions (action_id, version, definition, created_by, created_at)
             SELECT a.id, COALESCE((SELECT MAX(version) FROM schema_versions WHERE action_id = a.id), 0) + 1,
                    ?2, ?3, ?4
             FROM actions a WHERE a.name = ?1
             RETURNING version",
            params![action, canonical, created_by, at],
            |row| row.get(0),
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
impl Store for SqliteStore {
    async fn is_uninitialized(&self) -> StoreResult<bool> {
        self.readers
            .read(|connection| {
                connection
                    .query_row(
                        "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                        [],
                        |row| row.get(0),
                    )
                    .map_err(database_error)
            })
            .await
    }

    async fn initialize(&self, key: NewApiKey, user: NewUser) -> StoreResult<bool> {
        self.writer
            .write(move |connection| {
                let empty: bool = connection
                    .query_row(
                        "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                        [],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                if !empty {
                    return Ok(false);
                }
                connection
                    .execute(
                        "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![key.id, key.name, key.secret_hash.as_slice(), key.created_at],
                    )
                    .map_err(database_error)?;
                connection
                    .execute(
                        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![user.id, user.username, user.password_hash, user.created_at],
                    )
                    .map_err(database_error)?;
                Ok(true)
            })
            .await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![key.id, key.name, key.secret_hash.as_slice(), key.created_at],
                    )
                    .map_err(database_error)?;
                Ok(ApiKey { id: key.id, name: key.name, created_at: key.created_at, revoked_at: None })
            })
            .await
    }

    async fn find_api_key(&self, secret_hash: [u8; 32]) -> StoreResult<Option<ApiKey>> {
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached("SELECT id, name, created_at, revoked_at FROM api_keys WHERE secret_hash = ?1")
                    .and_then(|mut statement| {
                        statement
                            .query_row([secret_hash.as_slice()], |row| {
                                Ok(ApiKey {
                                    id: row.get(0)?,
                                    name: row.get(1)?,
                                    created_at: row.get(2)?,
                                    revoked_at: row.get(3)?,
                                })
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY id")
                    .map_err(database_error)?;
                let keys = statement
                    .query_map([], |row| {
                        Ok(ApiKey {
                            id: row.get(0)?,
                            name: row.get(1)?,
                            created_at: row.get(2)?,
                            revoked_at: row.get(3)?,
                        })
                    })
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                keys
            })
            .await
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                        params![id, at],
                    )
                    .map(|changed| changed == 1)
                    .map_err(database_error)
            })
            .await
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![user.id, user.username, user.password_hash, user.created_at],
                    )
                    .map(|_| ())
                    .map_err(|error| {
                        if is_unique_violation(&error, "users.username") {
                            StoreError::UsernameTaken
                        } else {
                            database_error(error)
                        }
                    })
            })
            .await
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT id, username, password_hash, created_at FROM users WHERE username = ?1",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row([username], |row| {
                                Ok(User {
                                    id: row.get(0)?,
                                    username: row.get(1)?,
                                    password_hash: row.get(2)?,
                                    created_at: row.get(3)?,
                                })
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sessions WHERE expires_at <= ?1",
                        [session.created_at],
                    )
                    .map_err(database_error)?;
                connection
                    .execute(
                        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            session.token_hash.as_slice(),
                            session.user_id,
                            session.created_at,
                            session.expires_at
                        ],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }

    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<Session>> {
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT s.user_id, u.username, s.created_at, s.expires_at
                         FROM sessions s JOIN users u ON u.id = s.user_id
                         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![token_hash.as_slice(), now], |row| {
                                Ok(Session {
                                    user_id: row.get(0)?,
                                    username: row.get(1)?,
                                    created_at: row.get(2)?,
                                    expires_at: row.get(3)?,
                                })
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sessions WHERE token_hash = ?1",
                        [token_hash.as_slice()],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }

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
                        Err(external_id_taken(connection, organization.external_id.as_deref()))
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
                let (condition, direction) = keyset("id", &scan);
                let sql = format!(
                    "SELECT {ORGANIZATION_COLUMNS} FROM organizations
                     WHERE (:pattern IS NULL OR name LIKE :pattern ESCAPE '\\')
                       AND (:domains IS NULL OR EXISTS (
                            SELECT 1 FROM json_each(organizations.domains) AS owned
                            WHERE json_extract(owned.value, '$.domain') IN (SELECT value FROM json_each(:domains))))
                       AND {condition}
                     ORDER BY id {direction} LIMIT :fetch"
                );
                let pattern = filter.name_contains.map(|text| {
                    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    format!("%{escaped}%")
                });
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
                        Err(external_id_taken(connection, organization.external_id.as_deref()))
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
                for table in ["chain_anchors", "exports"] {
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
        let canonical = String::from_utf8(definition.canonical_bytes())
            .map_err(|error| StoreError::Database(error.to_string()))?;
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
                let (condition, direction) = keyset("version", &scan);
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
                        Ok(SchemaVersion {
                            definition: parse_definition(&action, version, &definition)?,
                            action: action.clone(),
                            version,
                            created_by,
                            created_at,
                        })
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
                let (condition, direction) = keyset("a.id", &scan);
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
                            latest: SchemaVersion {
                                definition: parse_definition(&name, version, &definition)?,
                                action: name.clone(),
                                version,
                                created_by,
                                created_at: version_created_at,
                            },
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

    async fn append_event(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<AppendedEvent>> {
        // The hot path runs without a savepoint (see `writer`): every check that can fail
        // comes before the first write, and claiming the key writes nothing when it is taken.
        self.writer
            .write_unguarded(move |connection| {
                if !organization_exists(connection, &event.organization_id)? {
                    return Err(StoreError::OrganizationNotFound);
                }
                if let Some(record) = &idempotency {
                    if let Some(existing) = claim_idempotency_key(connection, record)? {
                        return Ok(Idempotent::AlreadyDone(existing));
                    }
                }
                append_event_now(connection, &event).map(Idempotent::Done)
            })
            .await
    }

    async fn search_events(
        &self,
        query: EventQuery,
        page: PageRequest<i64>,
    ) -> StoreResult<Page<StoredEvent>> {
        self.readers
            .read(move |connection| {
                let rows = run_search(connection, &query, &page)?;
                Ok(page.assemble(rows, |event| event.sequence.to_string()))
            })
            .await
    }

    async fn get_event(&self, organization_id: &str, id: &str) -> StoreResult<Option<HashedEvent>> {
        let (organization_id, id) = (organization_id.to_owned(), id.to_owned());
        self.readers
            .read(move |connection| {
                // `id` is unique across organizations; matching the organization too keeps
                // one organization's link from reaching another's event.
                let row: Option<(StoredEvent, Vec<u8>)> = connection
                    .prepare_cached(&format!(
                        "SELECT {STORED_EVENT_COLUMNS}, e.hash FROM events e
                         WHERE e.id = ?1 AND e.organization_id = ?2"
                    ))
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![id, organization_id], |row| {
                                Ok((stored_event_from_row(row)?, row.get(6)?))
                            })
                            .optional()
                    })
                    .map_err(database_error)?;
                row.map(|(event, hash)| {
                    let hash: ChainHash = hash.try_into().map_err(|_| {
                        StoreError::Corrupt(format!("event {id} has a malformed hash"))
                    })?;
                    Ok(HashedEvent { event, hash })
                })
                .transpose()
            })
            .await
    }

    async fn create_export(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Export>> {
        self.writer
            .write(move |connection| {
                if let Some(record) = &idempotency {
                    if let Some(existing) = claim_idempotency_key(connection, record)? {
                        return Ok(Idempotent::AlreadyDone(existing));
                    }
                }
                if !organization_exists(connection, &export.query.organization_id)? {
                    return Err(StoreError::OrganizationNotFound);
                }
                // Runs on the writer, after every acknowledged event has committed: the
                // snapshot holds exactly the events stored when the export was created.
                let head: i64 = connection
                    .query_row(
                        "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE organization_id = ?1",
                        [&export.query.organization_id],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                // Where the retained chain starts now: a later purge past it makes the
                // export incomplete (see `load_export`).
                let retained_from = chain_anchor(connection, &export.query.organization_id)?
                    .map_or(1, |(previous, _)| previous + 1);
                let filters = json_text(&StoredExportFilters { query: export.query.clone(), retained_from })?;
                connection
                    .execute(
                        "INSERT INTO exports (id, organization_id, filters, format, up_to_sequence, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![export.id, export.query.organization_id, filters, export.format.name(), head, export.created_at],
                    )
                    .map_err(database_error)?;
                let mut query = export.query;
                query.up_to_sequence = Some(head);
                Ok(Idempotent::Done(Export { query, ..export }))
            })
            .await
    }

    async fn get_export(&self, id: &str) -> StoreResult<Option<Export>> {
        let id = id.to_owned();
        self.readers
            .read(move |connection| load_export(connection, &id))
            .await
    }

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

    async fn shared_secret(&self, name: &str, generate: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
                        params![name, generate],
                    )
                    .map_err(database_error)?;
                connection
                    .query_row(
                        "SELECT value FROM settings WHERE name = ?1",
                        [&name],
                        |row| row.get(0),
                    )
                    .map_err(database_error)
            })
            .await
    }

    async fn recent_events_of_action(
        &self,
        action: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let action = action.to_owned();
        self.readers
            .read(move |connection| {
                // Walks `events_by_action_recency` backwards; ids break ties within one
                // millisecond because they are monotonic.
                let mut statement = connection
                    .prepare_cached(&format!(
                        "SELECT {STORED_EVENT_COLUMNS} FROM events e
                             WHERE e.action = ?1 ORDER BY e.received_at DESC, e.id DESC LIMIT ?2"
                    ))
                    .map_err(database_error)?;
                let events = statement
                    .query_map(params![action, limit], stored_event_from_row)
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                events
            })
            .await
    }

    async fn verify_log(
        &self,
        organization_id: Option<String>,
        mut progress: Box<dyn FnMut(u64) + Send>,
    ) -> StoreResult<VerifyReport> {
        self.readers
            .read(move |connection| {
                // One read transaction, so a purge committing meanwhile cannot pair an old
                // anchor with a newer log.
                connection.execute_batch("BEGIN").map_err(database_error)?;
                let report = verify_chains(connection, organization_id, progress.as_mut());
                let _ = connection.execute_batch("COMMIT");
                report
            })
            .await
    }

    async fn tree_size(&self, organization_id: &str) -> StoreResult<u64> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| merkle::tree_size(connection, &organization_id))
            .await
    }

    async fn leaf_hashes(
        &self,
        organization_id: &str,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Hash>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                // One read transaction: a purge between the two queries inside must not
                // hide a leaf from both.
                connection.execute_batch("BEGIN").map_err(database_error)?;
                let hashes = merkle::leaf_hashes(connection, &organization_id, start, end);
                let _ = connection.execute_batch("COMMIT");
                hashes
            })
            .await
    }

    async fn tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                merkle::tree_nodes(connection, &organization_id, level, start, end)
            })
            .await
    }

    async fn tree_node_count(&self, organization_id: &str, level: u8) -> StoreResult<u64> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| merkle::tree_node_count(connection, &organization_id, level))
            .await
    }

    async fn store_tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        nodes: Vec<(u64, Hash)>,
    ) -> StoreResult<()> {
        let organization_id = organization_id.to_owned();
        self.writer
            .write(move |connection| {
                merkle::store_tree_nodes(connection, &organization_id, level, &nodes)
            })
            .await
    }

    async fn save_checkpoint(&self, checkpoint: Checkpoint) -> StoreResult<Checkpoint> {
        self.writer
            .write(move |connection| merkle::save_checkpoint(connection, &checkpoint))
            .await
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> StoreResult<Option<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                Ok(merkle::query_checkpoints(
                    connection,
                    "organization_id = ?1 ORDER BY tree_size DESC LIMIT 1",
                    [organization_id],
                )?
                .pop())
            })
            .await
    }

    async fn checkpoint_covering(
        &self,
        organization_id: &str,
        min_size: u64,
    ) -> StoreResult<Option<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                Ok(merkle::query_checkpoints(
                    connection,
                    "organization_id = ?1 AND tree_size >= ?2 ORDER BY tree_size LIMIT 1",
                    params![organization_id, min_size as i64],
                )?
                .pop())
            })
            .await
    }

    async fn list_checkpoints(
        &self,
        organization_id: &str,
        after_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                merkle::query_checkpoints(
                    connection,
                    "organization_id = ?1 AND tree_size > ?2 ORDER BY tree_size LIMIT ?3",
                    params![organization_id, after_size as i64, limit],
                )
            })
            .await
    }

    async fn thin_checkpoints(
        &self,
        older_than: UnixMillis,
        keep_one_per_ms: i64,
    ) -> StoreResult<u64> {
        self.writer
            .write(move |connection| {
                merkle::thin_checkpoints(connection, older_than, keep_one_per_ms)
            })
            .await
    }

    async fn uncheckpointed_logs(&self) -> StoreResult<Vec<UncheckpointedLog>> {
        self.readers.read(merkle::uncheckpointed_logs).await
    }

    async fn register_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
        self.writer
            .write(move |connection| merkle::register_signing_key(connection, &key))
            .await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.readers.read(merkle::list_signing_keys).await
    }

    async fn event_bytes(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                merkle::event_bytes(connection, &organization_id, after_sequence, limit)
            })
            .await
    }

    async fn organization_ids(&self) -> StoreResult<Vec<String>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare_cached("SELECT id FROM organizations ORDER BY id")
                    .map_err(database_error)?;
                let ids = statement
                    .query_map([], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                ids
            })
            .await
    }

    async fn find_idempotency_record(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.readers
            .read(move |connection| find_idempotency(connection, &scope, &key, now))
            .await
    }

    async fn save_idempotency_record(
        &self,
        record: IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        self.writer
            .write(move |connection| {
                Ok(claim_idempotency_key(connection, &record)?.unwrap_or(record))
            })
            .await
    }

    async fn purge_idempotency_records(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM idempotency_keys WHERE created_at <= ?1",
                        [cutoff],
                    )
                    .map(|deleted| deleted as u64)
                    .map_err(database_error)
            })
            .await
    }
}

fn external_id_taken(connection: &Connection, external_id: Option<&str>) -> StoreError {
    let existing = connection
        .query_row(
            "SELECT id FROM organizations WHERE external_id = ?1",
            [external_id],
            |row| row.get(0),
        )
        .unwrap_or_default();
    StoreError::ExternalIdTaken { existing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stele_core::event::parse_create_event;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("stele.db"), true).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn sessions_expire_and_expired_ones_are_swept_on_the_next_sign_in() {
        let (_dir, store) = open();
        store
            .create_user(NewUser {
                id: "user_1".into(),
                username: "admin".into(),
                password_hash: "x".into(),
                created_at: 0,
            })
            .await
            .expect("user");
        let session = |token: u8, created_at, expires_at| NewSession {
            token_hash: [token; 32],
            user_id: "user_1".into(),
            created_at,
            expires_at,
        };
        store
            .create_session(session(1, 0, 100))
            .await
            .expect("first");
        let found = store.find_session([1; 32], 50).await.expect("read");
        assert_eq!(found.map(|s| s.username), Some("admin".to_owned()));
        assert_eq!(store.find_session([1; 32], 100).await.expect("read"), None);
        assert_eq!(store.find_session([2; 32], 50).await.expect("read"), None);

        store
            .create_session(session(2, 200, 300))
            .await
            .expect("second");
        let remaining: i64 = store
            .readers
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
                    .map_err(database_error)
            })
            .await
            .expect("count");
        assert_eq!(remaining, 1, "the expired session was deleted");
        store.delete_session([2; 32]).await.expect("delete");
        assert_eq!(store.find_session([2; 32], 250).await.expect("read"), None);
    }

    #[tokio::test]
    async fn recent_events_of_an_action_are_newest_first_and_limited() {
        let (_dir, store) = open();
        let organization = Organization {
            id: "org_1".into(),
            name: "Acme".into(),
            external_id: None,
            metadata: Map::new(),
            domains: Vec::new(),
            retention_period_in_days: None,
            created_at: 0,
            updated_at: 0,
        };
        store
            .create_organization(organization, None)
            .await
            .expect("organization");
        for (index, action) in ["a", "b", "a", "a"].iter().enumerate() {
            let request = parse_create_event(&json!({
                "organization_id": "org_1",
                "event": {
                    "action": action, "occurred_at": "2022-09-08T19:46:03.435Z",
                    "actor": {"id": "u", "type": "user"}, "targets": [],
                    "context": {"location": "1.2.3.4"}
                }
            }))
            .expect("valid");
            store
                .append_event(
                    NewEvent {
                        id: format!("audit_log_event_{index}").into(),
                        organization_id: "org_1".into(),
                        event: request.event,
                    },
                    None,
                )
                .await
                .expect("append");
        }
        let recent = store.recent_events_of_action("a", 2).await.expect("read");
        let ids: Vec<&str> = recent.iter().map(|event| event.id.as_str()).collect();
        assert_eq!(ids, ["audit_log_event_3", "audit_log_event_2"]);
        let record: serde_json::Value =
            serde_json::from_slice(&recent[0].canonical).expect("canonical JSON");
        assert_eq!(record["action"], "a");
        assert_eq!(recent[0].sequence, 4);
    }
}
