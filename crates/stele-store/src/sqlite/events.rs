//! The event log in SQLite: appends, search, single reads and the end-to-end chain check.

use super::database_error;
use super::idempotency::claim_idempotency_key;
use super::organizations::organization_exists;
use super::search_index::{
    time_range_density, INDEXED_POSITION, MIN_TIME_BLOCK_DENSITY, TIME_BLOCK,
};
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::chain::{chain_anchors, ChainWalk};
use crate::shared::encoding::hash_from;
use crate::shared::encoding::PreparedEvent;
use crate::shared::search::{
    has_selective_id, is_time_bounded_only, plan_search, Binder, SearchBound, SearchColumns,
    SearchScan, TargetRows,
};
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use rusqlite::Row;
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
use stele_core::chain::link;
use stele_core::chain::ChainHash;
use stele_core::chain::GENESIS;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::timestamp::{now_millis, UnixMillis};

/// Appends `prepared` at its organization's next sequence; the organization must exist.
pub(super) fn append_event_now(
    connection: &Connection,
    prepared: &PreparedEvent,
) -> StoreResult<AppendedEvent> {
    let new = &prepared.event;
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
            hash_from(
                &hash,
                &new.organization_id,
                Some(sequence),
                "the event's hash",
            )?,
        ),
    };
    let sequence = previous_sequence + 1;
    let received_at = now_millis();
    let canonical = prepared.complete(sequence, received_at)?;
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
    // The search rows (`event_search`, `event_targets`) are written off this path, in
    // large batches, by the indexer thread (see `search_index`).
    Ok(AppendedEvent {
        id: new.id.clone(),
        sequence,
        received_at,
    })
}

/// The predecessor of an organization's first retained event after a purge: its sequence
/// and hash, from which the next append continues the chain.
pub(super) fn chain_anchor(
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
        let previous = first_sequence - 1;
        let hash = hash_from(
            &hash,
            organization_id,
            Some(previous),
            "the chain anchor's hash",
        )?;
        Ok((previous, hash))
    })
    .transpose()
}

/// Every organization's retained-chain start: first retained sequence and its predecessor hash.
pub(super) fn all_chain_anchors(
    connection: &Connection,
) -> StoreResult<std::collections::HashMap<String, (i64, ChainHash)>> {
    let mut statement = connection
        .prepare("SELECT organization_id, first_sequence, previous_hash FROM chain_anchors")
        .map_err(database_error)?;
    let rows: Vec<(String, i64, Vec<u8>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    chain_anchors(rows)
}

pub(super) const STORED_EVENT_COLUMNS: &str =
    "e.id, e.organization_id, e.sequence, e.version, e.received_at, e.canonical";

pub(super) fn stored_event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        sequence: row.get(2)?,
        version: row.get(3)?,
        received_at: row.get(4)?,
        canonical: row.get(5)?,
    })
}

/// Binds search values SQLite's way: list values are spelled out (`= ?` for one,
/// `IN (?, ?)` for several) rather than passed as one JSON array, so SQLite sees each value
/// and picks the index that fits: a filter on one actor walks
/// `(organization_id, actor_id, sequence)` in order instead of scanning the organization.
struct SqliteBinder {
    values: Vec<SqlValue>,
}

impl Binder for SqliteBinder {
    const ORGANIZATION: &'static str = "?1";

    fn one_of(&mut self, column: &str, items: &[String]) -> String {
        let start = self.values.len() + 1;
        self.values
            .extend(items.iter().cloned().map(SqlValue::Text));
        if items.len() == 1 {
            format!("{column} = ?{start}")
        } else {
            let placeholders: Vec<String> = (start..start + items.len())
                .map(|n| format!("?{n}"))
                .collect();
            format!("{column} IN ({})", placeholders.join(", "))
        }
    }

    fn integer(&mut self, value: i64) -> String {
        self.values.push(SqlValue::Integer(value));
        format!("?{}", self.values.len())
    }
}

/// The search SQL for `query` and its parameters, in order. The page's sequences are chosen
/// first, from the indexes alone where they cover the filters, and only those rows' stored
/// bytes are read. Events not yet indexed (the tail of `events` above
/// `search_index_progress`, see `search_index`) are matched from their own columns and
/// stored targets, so every acknowledged event is found. The tail is
/// read by position alone (`NOT INDEXED` keeps SQLite from walking the organization's
/// whole `(organization_id, sequence)` key instead; the position is the table's own key).
///
/// With `walk_time_blocks` (sequence order only; see [`walks_time_blocks`]), the indexed
/// rows are found through the summary of each run of sequences' time span
/// (`event_time_blocks`, see `search_index::add_time_blocks_schema`): runs newest first (in the
/// page's direction), those outside the range skipped from their summary row, and the
/// events of those that overlap read by sequence and checked, until the page is full.
pub(super) fn search_sql(
    query: &EventQuery,
    scan: &SearchScan,
    walk_time_blocks: bool,
) -> (String, Vec<SqlValue>) {
    let mut binder = SqliteBinder {
        values: vec![SqlValue::Text(query.organization_id.to_string())],
    };
    // The runs give pages in sequence order only.
    let walk_time_blocks = walk_time_blocks && !scan.by_occurred_at;
    // With an actor or target id, that selective index should drive and the time range and
    // action be checked row by row; `+` keeps SQLite (which has no statistics) from walking
    // a wide range of the time or action index instead. Walking the runs, the sequence key
    // drives the same way.
    let columns = if walk_time_blocks {
        SearchColumns::HINTED
    } else {
        SearchColumns::hinted_for(query)
    };
    let mut indexed = plan_search(query, scan, &mut binder, &columns);
    let mut indexed_from = "event_search e";
    if walk_time_blocks {
        indexed_from = "event_time_blocks b CROSS JOIN event_search e";
        let mut runs = vec![
            "b.organization_id = ?1".to_owned(),
            format!("e.sequence >= b.block * {TIME_BLOCK} AND e.sequence < b.block * {TIME_BLOCK} + {TIME_BLOCK}"),
        ];
        if let Some(from) = query.occurred_from {
            runs.push(format!("b.latest >= {}", binder.integer(from)));
        }
        if let Some(to) = query.occurred_to {
            runs.push(format!("b.earliest <= {}", binder.integer(to)));
        }
        // A later page's runs start at its cursor's.
        if let Some((SearchBound::Sequence(sequence), greater)) = scan.bound {
            let operator = if greater { ">=" } else { "<=" };
            runs.push(format!(
                "b.block {operator} {}",
                binder.integer(sequence.div_euclid(TIME_BLOCK))
            ));
        }
        indexed.conditions.extend(runs);
        let direction = scan.direction();
        indexed.order = format!("b.block {direction}, e.sequence {direction}");
    }
    let tail = plan_search(
        query,
        scan,
        &mut binder,
        &SearchColumns {
            targets: TargetRows::Json("CAST(e.canonical AS TEXT)"),
            ..SearchColumns::PLAIN
        },
    );
    // Ordered by `occurred_at`, a selective id's index drives and its few rows are sorted
    // (`+` keeps SQLite from walking the time index for its order instead).
    let indexed_order = if scan.by_occurred_at && has_selective_id(query) {
        let direction = scan.direction();
        format!("+e.occurred_at {direction}, e.sequence {direction}")
    } else {
        indexed.order.clone()
    };
    let order = &tail.order;
    // The index file and `events` are two files, read in two snapshots, and the index
    // file applies purges after `events` (see `search_index`). It may hold rows of events
    // this `events` snapshot does not have: newer ones, should the index's snapshot be the
    // newer, and a purged prefix, until the indexer has applied the purge. Bounding the
    // indexed rows by the organization's first and last sequence in this snapshot keeps
    // them from taking places in the page that their missing `events` rows would leave
    // empty (`+` keeps SQLite from choosing an index for the bounds).
    let sql = format!(
        "SELECT {STORED_EVENT_COLUMNS}, e.occurred_at FROM events e
         WHERE e.organization_id = ?1 AND e.sequence IN (
             SELECT sequence FROM (
                 SELECT e.sequence FROM {indexed_from} WHERE {}
                     AND +e.sequence BETWEEN (SELECT MIN(sequence) FROM events WHERE organization_id = ?1)
                                         AND (SELECT MAX(sequence) FROM events WHERE organization_id = ?1)
                 ORDER BY {indexed_order} LIMIT {})
             UNION ALL
             SELECT sequence FROM (
                 SELECT e.sequence FROM events e NOT INDEXED
                 WHERE e.log_position > {INDEXED_POSITION} AND {}
                 ORDER BY {order} LIMIT {}))
         ORDER BY {order} LIMIT {}",
        indexed.conditions.join(" AND "),
        indexed.fetch,
        tail.conditions.join(" AND "),
        tail.fetch,
        indexed.fetch,
    );
    (sql, binder.values)
}

/// Whether a page of `query` scanned as `scan` should find its indexed rows through the
/// runs of sequences (see [`search_sql`]): a time range in sequence order, with no actor
/// or target id (whose own indexes drive better), whose overlapping runs are mostly
/// events of the range.
///
/// No index is ordered by time for the range and by sequence for the page at once.
/// Without the runs, SQLite reads every entry of the range from the time index and sorts
/// their sequences to keep a page: 86,400 entries for six hours at four events a second,
/// however small the page. With them, a page reads about one run past itself when events
/// arrive in about the order they occurred. When they do not (a backfill of old events
/// interleaved with live ones), every run's span is wide, each overlaps many ranges while
/// holding few of their events, and walking them could read far more than the range
/// holds; `search_index::time_range_density` tells the two apart from the summary alone.
pub(super) fn walks_time_blocks(
    connection: &Connection,
    query: &EventQuery,
    scan: &SearchScan,
) -> StoreResult<bool> {
    if scan.by_occurred_at || !is_time_bounded_only(query) {
        return Ok(false);
    }
    let density = time_range_density(
        connection,
        &query.organization_id,
        query.occurred_from,
        query.occurred_to,
    )?;
    Ok(density.is_some_and(|density| density >= MIN_TIME_BLOCK_DENSITY))
}

/// The events of one page of a search, each with its `occurred_at`.
pub(super) fn run_search(
    connection: &Connection,
    query: &EventQuery,
    scan: &SearchScan,
) -> StoreResult<Vec<(StoredEvent, UnixMillis)>> {
    if scan.by_occurred_at || !is_time_bounded_only(query) || !connection.is_autocommit() {
        let walk_time_blocks = walks_time_blocks(connection, query, scan)?;
        return run_search_planned(connection, query, scan, walk_time_blocks);
    }
    // One read transaction, so that the page reads the index file in the snapshot in
    // which the summary was found to cover every indexed event. (The index file is read
    // first, so `events` is read in the same or a later snapshot, which the search allows:
    // see `search_index`.)
    connection.execute_batch("BEGIN").map_err(database_error)?;
    let rows = walks_time_blocks(connection, query, scan)
        .and_then(|walk| run_search_planned(connection, query, scan, walk));
    let ended = connection.execute_batch(if rows.is_ok() { "COMMIT" } else { "ROLLBACK" });
    if !connection.is_autocommit() {
        // A failed end would leave the pooled connection reading this snapshot.
        let _ = connection.execute_batch("ROLLBACK");
    }
    let rows = rows?;
    ended.map_err(database_error)?;
    Ok(rows)
}

/// [`run_search`] with the choice of [`walks_time_blocks`] made by the caller.
pub(super) fn run_search_planned(
    connection: &Connection,
    query: &EventQuery,
    scan: &SearchScan,
    walk_time_blocks: bool,
) -> StoreResult<Vec<(StoredEvent, UnixMillis)>> {
    let (sql, values) = search_sql(query, scan, walk_time_blocks);
    let mut statement = connection.prepare_cached(&sql).map_err(database_error)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            Ok((stored_event_from_row(row)?, row.get(6)?))
        })
        .and_then(Iterator::collect)
        .map_err(database_error);
    rows
}

/// Re-checks the chains inside the caller's read transaction (see `verify_log`).
pub(super) fn verify_chains(
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
    let mut walk = ChainWalk::new(anchors, progress);
    while let Some(row) = rows.next().map_err(database_error)? {
        let organization = row
            .get_ref(0)
            .and_then(|value| Ok(value.as_str()?))
            .map_err(database_error)?;
        let sequence: i64 = row.get(1).map_err(database_error)?;
        let canonical = row
            .get_ref(2)
            .and_then(|value| Ok(value.as_bytes()?))
            .map_err(database_error)?;
        let hash = row
            .get_ref(3)
            .and_then(|value| Ok(value.as_bytes()?))
            .map_err(database_error)?;
        if !walk.push(organization, sequence, canonical, hash) {
            break;
        }
    }
    Ok(walk.finish())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_event(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<AppendedEvent>> {
        let event = PreparedEvent::new(event)?;
        // The hot path runs without a savepoint (see `writer`): every check that can fail
        // comes before the first write, and claiming the key writes nothing when it is taken.
        self.writer
            .write_unguarded(move |connection| {
                if !organization_exists(connection, &event.event.organization_id)? {
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

    async fn append_imported_events(
        &self,
        organization_id: &str,
        events: Vec<(ImportKey, NewEvent)>,
    ) -> StoreResult<ImportedEvents> {
        let organization_id = organization_id.to_owned();
        let events = events
            .into_iter()
            .map(|(key, event)| Ok((key, PreparedEvent::new(event)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        // One write job with its savepoint: all of `events` or none.
        self.writer
            .write(move |connection| {
                if !organization_exists(connection, &organization_id)? {
                    return Err(StoreError::OrganizationNotFound);
                }
                let mut outcome = ImportedEvents::default();
                for (key, event) in &events {
                    if event.event.organization_id.as_str() != organization_id {
                        return Err(StoreError::Internal(
                            "an imported event names another organization".into(),
                        ));
                    }
                    let claimed = connection
                        .prepare_cached(
                            "INSERT OR IGNORE INTO imported_event_keys (organization_id, import_key, event_id)
                             VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut statement| {
                            statement.execute(params![organization_id, key.as_slice(), event.event.id])
                        })
                        .map_err(database_error)?;
                    if claimed == 0 {
                        outcome.skipped += 1;
                        continue;
                    }
                    append_event_now(connection, event)?;
                    outcome.appended += 1;
                }
                Ok(outcome)
            })
            .await
    }

    async fn append_events(
        &self,
        events: Vec<EventToAppend>,
    ) -> StoreResult<Vec<StoreResult<Idempotent<AppendedEvent>>>> {
        let events = events
            .into_iter()
            .map(|EventToAppend { event, idempotency }| {
                Ok((PreparedEvent::new(event)?, idempotency))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // One job, so one transaction and one commit. Like `append_event` it runs without
        // a savepoint: each item makes its checks before its first write, so a refused
        // item leaves nothing, and an error after writing rolls the whole call back.
        self.writer
            .write_unguarded(move |connection| {
                let mut known = std::collections::HashMap::<String, bool>::new();
                let mut outcomes = Vec::with_capacity(events.len());
                for (event, idempotency) in &events {
                    let organization_id = &event.event.organization_id;
                    let exists = match known.get(organization_id.as_str()) {
                        Some(exists) => *exists,
                        None => {
                            let exists = organization_exists(connection, organization_id)?;
                            known.insert(organization_id.to_string(), exists);
                            exists
                        }
                    };
                    if !exists {
                        outcomes.push(Err(StoreError::OrganizationNotFound));
                        continue;
                    }
                    if let Some(record) = idempotency {
                        if let Some(existing) = claim_idempotency_key(connection, record)? {
                            outcomes.push(Ok(Idempotent::AlreadyDone(existing)));
                            continue;
                        }
                    }
                    outcomes.push(Ok(Idempotent::Done(append_event_now(connection, event)?)));
                }
                Ok(outcomes)
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
                let rows = run_search(connection, &query, &SearchScan::by_sequence(&page.scan()))?;
                let events = rows.into_iter().map(|(event, _)| event).collect();
                Ok(page.assemble(events, |event: &StoredEvent| event.sequence.to_string()))
            })
            .await
    }

    async fn search_events_by_occurred_at(
        &self,
        query: EventQuery,
        page: PageRequest<OccurredAtKey>,
    ) -> StoreResult<Page<StoredEvent>> {
        self.readers
            .read(move |connection| {
                let rows = run_search(
                    connection,
                    &query,
                    &SearchScan::by_occurred_at(&page.scan()),
                )?;
                Ok(page
                    .assemble(rows, |(event, occurred_at)| {
                        OccurredAtKey {
                            occurred_at: *occurred_at,
                            sequence: event.sequence,
                        }
                        .to_string()
                    })
                    .map(|(event, _)| event))
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
                    let hash = hash_from(
                        &hash,
                        &event.organization_id,
                        Some(event.sequence),
                        "the event's hash",
                    )?;
                    Ok(HashedEvent { event, hash })
                })
                .transpose()
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
                             WHERE e.action = ?1 AND e.organization_id <> '{ACTIVITY_LOG_ORGANIZATION_ID}' ORDER BY e.received_at DESC, e.id DESC LIMIT ?2"
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
}
