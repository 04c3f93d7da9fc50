//! The search indexes: a database file of their own, built by a thread of their own.
//!
//! Acknowledging an event writes its `events` row and the keys durability and the chain need
//! (see migration 0010). Its search rows (`event_search`, `event_targets`) live in a second
//! SQLite file beside the database (`<database>-search`, see [`index_path`]), attached to
//! every read connection as `search`, and are written by the indexer thread
//! ([`SearchIndexer`]) in transactions of hundreds to thousands of events: the action, actor,
//! time and target index pages that a group commit of a few dozen events would each dirty on
//! its own are written once for many events, and none of that work sits between the writer
//! and the next acknowledgement. SQLite has one writer per file; with the indexes in their
//! own file, the two writers run side by side.
//!
//! Read-your-writes: `search_index_progress.indexed_position` is committed with the rows it
//! covers, so a reader's view of the index file splits `events` into the indexed part and
//! the tail above it, and a search reads both (see `events::search_sql`). The two files'
//! snapshots need not be taken at the same instant: an event the index covers but the
//! reader's `events` snapshot does not have yet finds no `events` row and is left out, and
//! every event of that snapshot is either at or below `indexed_position` (so indexed) or
//! above it (so in the tail).
//!
//! The index file holds nothing that `events` does not: a missing, stale or foreign one is
//! rebuilt from `events` (see [`prepare_index_file`]). Deletions (retention purges,
//! deleted organizations) are committed in the database with a row in
//! `search_index_deletions`, and the indexer applies them to the index file in the order
//! they were made, before it indexes anything newer. Until it has, the index may name
//! events that are gone: a purged prefix lies below the organization's first stored
//! sequence, which bounds the indexed rows a search reads (see `events::search_sql`), and a
//! deleted organization is not searched. Since neither a purge nor a deletion ever gives an
//! `(organization_id, sequence)` to a new event (purges keep the chain's numbering, deleted
//! organization ids are retired), a stale row never describes another event.
//!
//! Only the server indexes (`SearchIndexing::Background`); one-off commands open the store
//! without an indexer and only create or empty the file and bring its time summary up to
//! date (see [`add_time_blocks_schema`]). Should two processes index the
//! same file all the same (two servers started on one database by mistake), each step
//! takes the index file's write lock before it reads `events`, so their steps take turns
//! and neither writes rows from a snapshot older than a deletion the other has applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::database_error;
use crate::prelude::*;
use crate::shared::encoding::stored_targets;

/// Events indexed per transaction at most; a longer tail takes several in a row.
pub(super) const INDEX_STEP: i64 = 4_096;
/// How long the indexer lets acknowledged events gather after the writer's commit wakes it,
/// so that a step covers many events (and their index pages are written once for all of
/// them) instead of one group commit's worth. Searches read the events it has not indexed
/// yet from the tail, so this delays nothing a client sees; it bounds the tail to about
/// this long's worth of events. Measured under single-event load (bench/NOTES.md): 200 ms
/// acknowledged about a quarter more events than 50 ms, and 500 ms no more than 200 ms.
const GATHER: Duration = Duration::from_millis(200);
/// The most events acknowledged since the server started that the index may lag behind
/// by. Searches read the tail row by row, so a tail that grew without bound (ingest
/// outrunning the indexer for minutes, as batches at full speed can) would make every
/// search slower without bound; past this, the writer waits after each commit for the
/// indexer, so ingest runs at the indexer's pace. While the index is still catching up with
/// what was stored when the store opened (a rebuild) or what another process appended (an
/// import beside the server), ingest is not held back; nor while the indexer's steps fail.
pub(super) const MAX_TAIL: i64 = 16_384;
/// The longest the writer waits for the indexer after one commit, so that an indexer that
/// keeps failing slows ingest down instead of stopping it.
const HOLD_BACK_LIMIT: Duration = Duration::from_secs(1);
/// How often an idle indexer looks for events that no commit of its own woke it for: those
/// a one-off command (`stele import` beside the server) appended from another process.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How long the indexer sleeps after a failed step before it tries again.
const RETRY: Duration = Duration::from_secs(1);
/// The index file's page cache (KiB, as `PRAGMA cache_size` takes it when negative): the
/// actor, time and target index pages that random keys land on stay in memory.
const INDEX_CACHE_KIB: i64 = 65_536;

/// Sequences per run of `event_time_blocks`: a sequence-ordered page of a time range reads
/// the events of the runs whose time span overlaps the range, newest run first, so the most
/// it reads past its page is about one run on each side of the range. Smaller runs read less
/// past the page and add more summary rows to skip (one per run: about 10,000 for an
/// organization of 10 million events). Tests use tiny runs so that a handful of events
/// spans many.
pub(super) const TIME_BLOCK: i64 = if cfg!(test) { 4 } else { 1_024 };

/// The least share of the events in the runs overlapping a time range that must be
/// expected inside it for a sequence-ordered page to walk the runs (see
/// `events::walks_time_blocks`). Walking reads at most the overlapping runs' events, so
/// at a quarter it reads at most about four times the range's entries, each a table row
/// where the time index's plan reads an index entry; it usually stops after one run.
/// Below it, the time index's plan, whose cost is the range's entries, is taken.
pub(super) const MIN_TIME_BLOCK_DENSITY: f64 = 0.25;

/// The subquery, valid in any reader's snapshot, of the last position the search rows cover.
pub(super) const INDEXED_POSITION: &str =
    "(SELECT indexed_position FROM search_index_progress WHERE singleton = 1)";

/// The search index file of the database at `database`: `<database>-search`, beside it
/// (with its own `-wal` and `-shm` files).
pub(super) fn index_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-search");
    PathBuf::from(name)
}

/// Attaches the search index file of `database` to `connection` as `search`. Table names
/// are unique across the two files, so statements name tables without a schema.
pub(super) fn attach(connection: &Connection, database: &Path) -> StoreResult<()> {
    let path = index_path(database);
    connection
        .execute(
            "ATTACH DATABASE ?1 AS search",
            [path.to_string_lossy().as_ref()],
        )
        .map_err(|error| StoreError::sqlite("attaching the search index file", error))?;
    Ok(())
}

/// Creates the index file's tables if they are missing; the caller has attached it.
pub(super) fn create_schema(connection: &Connection) -> StoreResult<()> {
    connection
        .execute_batch(
            "PRAGMA search.journal_mode = WAL;
             -- The searchable fields of each indexed event, keyed like `events`. A rowid
             -- table: as a WITHOUT ROWID table keyed by `(organization_id, sequence)`, SQLite
             -- (which has no statistics here) walks that key instead of the actor index for
             -- an actor's page.
             CREATE TABLE IF NOT EXISTS search.event_search (
                 organization_id TEXT NOT NULL,
                 sequence        INTEGER NOT NULL,
                 action          TEXT NOT NULL,
                 actor_id        TEXT NOT NULL,
                 actor_name      TEXT,
                 occurred_at     INTEGER NOT NULL,
                 UNIQUE (organization_id, sequence)
             );
             -- Each index ends in `sequence`, the order pages are read in.
             CREATE INDEX IF NOT EXISTS search.event_search_by_action
                 ON event_search (organization_id, action, sequence);
             CREATE INDEX IF NOT EXISTS search.event_search_by_actor
                 ON event_search (organization_id, actor_id, sequence, occurred_at);
             CREATE INDEX IF NOT EXISTS search.event_search_by_occurred_at
                 ON event_search (organization_id, occurred_at, sequence);
             CREATE TABLE IF NOT EXISTS search.event_targets (
                 organization_id TEXT NOT NULL,
                 target_id       TEXT NOT NULL,
                 sequence        INTEGER NOT NULL,
                 position        INTEGER NOT NULL,
                 target_type     TEXT NOT NULL,
                 PRIMARY KEY (organization_id, target_id, sequence, position)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS search.event_targets_by_type
                 ON event_targets (organization_id, target_type, sequence);
             -- Every event with `log_position <= indexed_position` has its rows, committed
             -- in the same transaction as this value; every deletion up to
             -- `deletions_applied` is applied. `database_id` is the database's
             -- (`database_identity`) this file was built from. `event_time_blocks` covers
             -- every event up to `time_blocks_position`, in runs of `time_block_sequences`
             -- (see `catch_up_time_blocks`).
             CREATE TABLE IF NOT EXISTS search.search_index_progress (
                 singleton         INTEGER PRIMARY KEY CHECK (singleton = 1),
                 indexed_position  INTEGER NOT NULL,
                 deletions_applied INTEGER NOT NULL,
                 database_id       BLOB NOT NULL,
                 time_blocks_position INTEGER NOT NULL DEFAULT 0,
                 time_block_sequences INTEGER NOT NULL DEFAULT 0
             );",
        )
        .map_err(|error| StoreError::sqlite("creating the search index tables", error))?;
    add_time_blocks_schema(connection)
}

/// Runs `work` in a transaction that takes the index file's write lock with its first
/// statement (a write that changes nothing), before anything is read: no other process
/// indexes meanwhile, and what `work` reads of `events` is never older than another
/// indexer's last commit (see the module docs). The transaction is deferred, so the
/// database's own write lock is never taken. Rolled back if `work` fails.
fn with_index_write_lock<T>(
    connection: &Connection,
    work: impl FnOnce() -> StoreResult<T>,
) -> StoreResult<T> {
    let execute = |sql: &str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map_err(database_error)
    };
    let done = execute("BEGIN").and_then(|_| {
        execute("UPDATE search.search_index_progress SET indexed_position = indexed_position")?;
        let done = work()?;
        execute("COMMIT")?;
        Ok(done)
    });
    if done.is_err() && !connection.is_autocommit() {
        let _ = execute("ROLLBACK");
    }
    done
}

/// Adds the time summary to an index file that lacks it: the `event_time_blocks` table and
/// the two `search_index_progress` columns that say what it covers, in one transaction
/// that holds the index file's write lock from its first statement, so no other process
/// indexes meanwhile. [`bring_time_blocks_up_to_date`] then fills it, once [`adopt`] has
/// kept the file (an emptied file needs nothing).
///
/// The summary holds, for each organization and each run of [`TIME_BLOCK`] sequences
/// (`block` is the sequence divided by it), the earliest and latest `occurred_at` of its
/// indexed events. Events usually arrive in about the order they occurred, so a run spans a
/// short time, and a time range in sequence order reads only the runs that overlap it (see
/// `events::walks_time_blocks`). A run whose span is wider than its events' (events that
/// arrived far out of order; events purged or indexed again since) makes a search read
/// more, never miss one; a run missing or narrower than its events would, so searches walk
/// the runs only while `search_index_progress` says they cover every indexed event.
fn add_time_blocks_schema(connection: &Connection) -> StoreResult<()> {
    let query_bool = |sql: &str| -> StoreResult<bool> {
        connection
            .query_row(sql, [], |row| row.get(0))
            .map_err(database_error)
    };
    with_index_write_lock(connection, || {
        let had_table = query_bool(
            "SELECT EXISTS (SELECT 1 FROM search.sqlite_master WHERE name = 'event_time_blocks')",
        )?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS search.event_time_blocks (
                     organization_id TEXT NOT NULL,
                     block           INTEGER NOT NULL,
                     earliest        INTEGER NOT NULL,
                     latest          INTEGER NOT NULL,
                     PRIMARY KEY (organization_id, block)
                 ) WITHOUT ROWID;",
            )
            .map_err(database_error)?;
        // Files indexed by a version from before the summary lack its two columns.
        for column in ["time_blocks_position", "time_block_sequences"] {
            let present = query_bool(&format!(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info('search_index_progress', 'search')
                                WHERE name = '{column}')"
            ))?;
            if !present {
                connection
                    .execute_batch(&format!(
                        "ALTER TABLE search.search_index_progress
                             ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                    ))
                    .map_err(database_error)?;
            }
        }
        if !had_table {
            // A new table covers nothing, whatever the position says.
            connection
                .execute_batch("UPDATE search.search_index_progress SET time_blocks_position = 0")
                .map_err(database_error)?;
        }
        Ok(())
    })
}

/// [`catch_up_time_blocks`] in a transaction of its own that holds the index file's write
/// lock: at open, after [`adopt`], so that the file a server or command opens has a summary
/// that covers it (about 16 s for 10 million events when it has to be built from every
/// indexed row, before the server answers).
fn bring_time_blocks_up_to_date(connection: &Connection) -> StoreResult<()> {
    with_index_write_lock(connection, || catch_up_time_blocks(connection))
}

/// Makes `event_time_blocks` cover every indexed event, inside the caller's transaction,
/// which holds the index file's write lock. `time_blocks_position` is how far it covers,
/// and `time_block_sequences` the run size it was built with. They fall behind
/// `indexed_position` when a version that keeps no summary indexed the file (at another
/// time, or beside this one: two servers on one database by mistake, or a rolling
/// upgrade); [`index_tail`] never moves a position that is behind. From a known position,
/// the runs of the events indexed since are widened, read from `events` by position;
/// otherwise (never built, built for a file since emptied, or with another run size) the
/// summary is built again from every indexed row: about 16 s for 10 million events.
fn catch_up_time_blocks(connection: &Connection) -> StoreResult<()> {
    let positions: Option<(i64, i64, i64)> = connection
        .query_row(
            "SELECT indexed_position, time_blocks_position, time_block_sequences
             FROM search.search_index_progress",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(database_error)?;
    let Some((indexed, covered, run_size)) = positions else {
        return Ok(());
    };
    if covered == indexed && run_size == TIME_BLOCK {
        return Ok(());
    }
    if covered > 0 && covered < indexed && run_size == TIME_BLOCK {
        connection
            .execute(
                &widen_runs_with("FROM main.events WHERE log_position > ?1 AND log_position <= ?2"),
                [covered, indexed],
            )
            .map_err(database_error)?;
    } else {
        connection
            .execute_batch(&format!(
                "DELETE FROM search.event_time_blocks; {};",
                widen_runs_with("FROM search.event_search WHERE TRUE")
            ))
            .map_err(database_error)?;
    }
    connection
        .execute(
            "UPDATE search.search_index_progress
             SET time_blocks_position = indexed_position, time_block_sequences = ?1",
            [TIME_BLOCK],
        )
        .map_err(database_error)?;
    Ok(())
}

/// How a run's summary row takes in more events: its span widens to cover theirs.
const WIDEN_RUN: &str = "ON CONFLICT (organization_id, block) DO UPDATE
    SET earliest = MIN(earliest, excluded.earliest), latest = MAX(latest, excluded.latest)";

/// The statement that widens (or adds) the runs of the rows of `rows`, a `FROM ... WHERE
/// ...` clause over a table with `organization_id`, `sequence` and `occurred_at`. (SQLite's
/// documentation asks for a `WHERE` in an `INSERT ... SELECT` with an upsert clause, so
/// that the clause's `ON` is never read as a join's.)
fn widen_runs_with(rows: &str) -> String {
    format!(
        "INSERT INTO search.event_time_blocks (organization_id, block, earliest, latest)
             SELECT organization_id, sequence / {TIME_BLOCK}, MIN(occurred_at), MAX(occurred_at)
             {rows} GROUP BY 1, 2 {WIDEN_RUN}"
    )
}

/// The share of the events in the runs of `organization_id` overlapping `[from, to]` that
/// the summary expects inside the range: each run's share is the part of its time span
/// inside the range, as if its events were spread evenly over its span (1 when no run
/// overlaps: walking reads nothing then). A run widened by one event far out of order
/// looks as sparse as it is for most ranges it overlaps. `None` while the summary does not
/// cover every indexed event (see [`catch_up_time_blocks`]): the runs must not be walked
/// then. Reads every summary row of the organization (one per 1,024 events: about 10,000
/// at 10 million), checking each against the range.
pub(super) fn time_range_density(
    connection: &Connection,
    organization_id: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> StoreResult<Option<f64>> {
    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    // Each bound is clamped to the run's own span first, so no difference overflows.
    let (covered, runs, expected): (bool, i64, f64) = connection
        .prepare_cached(&format!(
            "SELECT (SELECT time_blocks_position = indexed_position
                            AND time_block_sequences = {TIME_BLOCK}
                     FROM search_index_progress),
                    COUNT(*),
                    TOTAL((MIN(latest, ?3) - MAX(earliest, ?2) + 1) * 1.0 / (latest - earliest + 1))
             FROM event_time_blocks
             WHERE organization_id = ?1 AND latest >= ?2 AND earliest <= ?3"
        ))
        .and_then(|mut statement| {
            statement.query_row(params![organization_id, from, to], |row| {
                Ok((
                    row.get::<_, Option<bool>>(0)?.unwrap_or(false),
                    row.get(1)?,
                    row.get(2)?,
                ))
            })
        })
        .map_err(database_error)?;
    Ok(covered.then(|| {
        if runs == 0 {
            1.0
        } else {
            expected / runs as f64
        }
    }))
}

/// How many acknowledged events have no search rows yet.
pub(super) fn tail_length(connection: &Connection) -> StoreResult<i64> {
    connection
        .prepare_cached(&format!(
            "SELECT COALESCE((SELECT MAX(log_position) FROM events), 0) - {INDEXED_POSITION}"
        ))
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(database_error)
}

/// Makes the attached index file one built from this database: a new file is started
/// empty, and one built from another database (or from a later state of this one, as when
/// the database was restored from a backup beside a newer index file) is emptied, so the
/// indexer rebuilds it from `events`. Returns whether it was emptied.
pub(super) fn adopt(connection: &Connection) -> StoreResult<bool> {
    // The index file is read first: in this deferred transaction each file's snapshot is
    // taken at its first read, so the database's is the later one, and a server indexing
    // meanwhile cannot make the index look ahead of the database (and get it emptied).
    let progress: Option<(i64, i64, Vec<u8>)> = connection
        .query_row(
            "SELECT indexed_position, deletions_applied, database_id FROM search_index_progress",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(database_error)?;
    let database_id: Vec<u8> = connection
        .query_row(
            "SELECT id FROM database_identity WHERE singleton = 1",
            [],
            |row| row.get(0),
        )
        .map_err(database_error)?;
    // Positions come from AUTOINCREMENT, so `sqlite_sequence` holds the largest ever given.
    let (last_position, last_deletion): (i64, i64) = connection
        .query_row(
            "SELECT COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'events'), 0),
                    COALESCE((SELECT MAX(id) FROM search_index_deletions), 0)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(database_error)?;
    let emptied = match progress {
        None => false,
        Some((position, applied, id)) => {
            if id == database_id && position <= last_position && applied <= last_deletion {
                return Ok(false);
            }
            true
        }
    };
    // A new or emptied file covers no event and has nothing to delete: every deletion so
    // far is already reflected in `events`.
    connection
        .execute_batch(
            "DELETE FROM event_search; DELETE FROM event_targets; DELETE FROM event_time_blocks;
             DELETE FROM search_index_progress;",
        )
        .map_err(database_error)?;
    connection
        .execute(
            "INSERT INTO search_index_progress
                 (singleton, indexed_position, deletions_applied, database_id, time_block_sequences)
             VALUES (1, 0, ?1, ?2, ?3)",
            params![last_deletion, database_id, TIME_BLOCK],
        )
        .map_err(database_error)?;
    Ok(emptied)
}

/// Applies the deletions made since the last step (in order) to the index rows; runs inside
/// the caller's transaction.
fn apply_deletions(connection: &Connection) -> StoreResult<usize> {
    let pending: Vec<(i64, String, Option<i64>)> = connection
        .prepare_cached(
            "SELECT id, organization_id, up_to_sequence FROM search_index_deletions
             WHERE id > (SELECT deletions_applied FROM search_index_progress WHERE singleton = 1)
             ORDER BY id",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .and_then(Iterator::collect)
        })
        .map_err(database_error)?;
    let execute = |sql: &str, values: &[&dyn rusqlite::ToSql]| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(values))
            .map_err(database_error)
    };
    for (_, organization_id, up_to) in &pending {
        match up_to {
            None => {
                execute(
                    "DELETE FROM event_search WHERE organization_id = ?1",
                    &[organization_id],
                )?;
                execute(
                    "DELETE FROM event_targets WHERE organization_id = ?1",
                    &[organization_id],
                )?;
                execute(
                    "DELETE FROM event_time_blocks WHERE organization_id = ?1",
                    &[organization_id],
                )?;
            }
            Some(up_to) => {
                execute(
                    "DELETE FROM event_search WHERE organization_id = ?1 AND sequence <= ?2",
                    &[organization_id, up_to],
                )?;
                // Runs wholly purged; the run the purge ends in keeps its span, which
                // still covers every event left in it.
                execute(
                    &format!(
                        "DELETE FROM event_time_blocks
                         WHERE organization_id = ?1 AND block < (?2 + 1) / {TIME_BLOCK}"
                    ),
                    &[organization_id, up_to],
                )?;
                // Target rows are keyed by target id; `event_targets_by_type` reaches a
                // purged prefix type by type, and an organization has few target types.
                let mut target_type = String::new();
                while let Some(next) = connection
                    .prepare_cached(
                        "SELECT target_type FROM event_targets
                         WHERE organization_id = ?1 AND target_type > ?2
                         ORDER BY target_type LIMIT 1",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![organization_id, target_type], |row| row.get(0))
                            .optional()
                    })
                    .map_err(database_error)?
                {
                    target_type = next;
                    execute(
                        "DELETE FROM event_targets
                         WHERE organization_id = ?1 AND target_type = ?2 AND sequence <= ?3",
                        &[organization_id, &target_type, up_to],
                    )?;
                }
            }
        }
    }
    if let Some((last, _, _)) = pending.last() {
        execute(
            "UPDATE search_index_progress SET deletions_applied = ?1 WHERE singleton = 1",
            &[last],
        )?;
    }
    Ok(pending.len())
}

/// Writes the search rows of up to `limit` events of the tail, oldest first, and moves
/// `indexed_position` past them; runs inside the caller's transaction. Returns how many
/// events it indexed.
pub(super) fn index_tail(connection: &Connection, limit: i64) -> StoreResult<usize> {
    // The step size changes with nearly every step; the connection keeps its plans
    // (`keep_query_plans`), so a new `LIMIT` value does not compile the statement again.
    let mut select = connection
        .prepare_cached(&format!(
            "SELECT log_position, organization_id, sequence, action, actor_id, actor_name,
                    occurred_at, canonical
             FROM events WHERE log_position > {INDEXED_POSITION}
             ORDER BY log_position LIMIT ?1"
        ))
        .map_err(database_error)?;
    let mut insert_search = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO event_search
                 (organization_id, sequence, action, actor_id, actor_name, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(database_error)?;
    let mut insert_target = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO event_targets (organization_id, target_id, sequence, position, target_type)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(database_error)?;
    let mut rows = select.query([limit]).map_err(database_error)?;
    let mut indexed = 0;
    let mut last_position = None;
    // Each run's span among this step's events, written once per run below.
    let mut spans: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(database_error)? {
        let position: i64 = row.get(0).map_err(database_error)?;
        let organization_id: String = row.get(1).map_err(database_error)?;
        let sequence: i64 = row.get(2).map_err(database_error)?;
        let occurred_at: i64 = row.get(6).map_err(database_error)?;
        insert_search
            .execute(params![
                organization_id,
                sequence,
                row.get::<_, String>(3).map_err(database_error)?,
                row.get::<_, String>(4).map_err(database_error)?,
                row.get::<_, Option<String>>(5).map_err(database_error)?,
                occurred_at,
            ])
            .map_err(database_error)?;
        spans
            .entry((organization_id.clone(), sequence / TIME_BLOCK))
            .and_modify(|(earliest, latest)| {
                *earliest = (*earliest).min(occurred_at);
                *latest = (*latest).max(occurred_at);
            })
            .or_insert((occurred_at, occurred_at));
        let canonical = row
            .get_ref(7)
            .and_then(|value| Ok(value.as_blob()?))
            .map_err(database_error)?;
        for (index, target) in stored_targets(canonical, &organization_id, sequence)?
            .iter()
            .enumerate()
        {
            insert_target
                .execute(params![
                    organization_id,
                    target.id,
                    sequence,
                    index as i64,
                    target.kind
                ])
                .map_err(database_error)?;
        }
        indexed += 1;
        last_position = Some(position);
    }
    let mut widen_span = connection
        .prepare_cached(&format!(
            "INSERT INTO event_time_blocks (organization_id, block, earliest, latest)
                 VALUES (?1, ?2, ?3, ?4) {WIDEN_RUN}"
        ))
        .map_err(database_error)?;
    for ((organization_id, block), (earliest, latest)) in &spans {
        widen_span
            .execute(params![organization_id, block, earliest, latest])
            .map_err(database_error)?;
    }
    if let Some(position) = last_position {
        connection
            .prepare_cached(
                "UPDATE search_index_progress
                 SET time_blocks_position = CASE WHEN time_blocks_position = indexed_position
                                                 THEN ?1 ELSE time_blocks_position END,
                     indexed_position = ?1
                 WHERE singleton = 1",
            )
            .and_then(|mut statement| statement.execute([position]))
            .map_err(database_error)?;
    }
    Ok(indexed)
}

/// One indexing transaction: the pending deletions, the time summary's catch-up (only ever
/// needed after another version indexed the file), then up to `limit` events of the tail.
/// Returns how many events it indexed.
///
/// The transaction is deferred (`BEGIN IMMEDIATE` would lock every attached file, the
/// database included): it writes only the index file, so it never takes the database's
/// write lock. Its commit is not synced (the index file runs
/// with `synchronous = NORMAL`): the rows are derived from events that are already durable,
/// and if a power loss takes the last steps, `indexed_position` goes with them and they are
/// redone.
pub(super) fn index_step(connection: &Connection, limit: i64) -> StoreResult<usize> {
    // The index file's write lock first, then the snapshot of `events`: a step never writes
    // rows read before another indexer's step committed (see the module docs).
    with_index_write_lock(connection, || {
        apply_deletions(connection)?;
        // Only after a version without the summary indexed beside this one.
        catch_up_time_blocks(connection)?;
        index_tail(connection, limit)
    })
}

/// The indexer thread: keeps the index file up to date with `events`.
///
/// After every group commit the writer wakes it ([`SearchIndexer::after_commit`]); it lets events
/// gather for [`GATHER`], then indexes the tail in steps of up to [`INDEX_STEP`] until it
/// has caught up. Events another process appended wake nothing: after a step that indexed
/// some it looks again within [`GATHER`], and while idle every [`IDLE_POLL`]. It stops
/// when the store is dropped (the writer, which holds the waking end, ends), after the
/// step it is in.
pub(super) struct SearchIndexer {
    wake: mpsc::SyncSender<()>,
    progress: Arc<Progress>,
    /// The last position stored by others than this process's writer, as far as the writer
    /// has seen: when the server started, and whenever another process (`stele import`
    /// beside the server) commits. The index has that backlog to catch up with before the
    /// writer's own events can be held to its pace.
    backlog_end: i64,
    /// `PRAGMA data_version` as the writer's connection last read it; it changes when
    /// another connection, so another process, commits to the database (every write of
    /// this process goes through the writer).
    data_version: Option<i64>,
}

/// The indexer's `indexed_position`, published after every step for the writer, and
/// whether its last step failed (or the thread is gone): the writer never waits for an
/// indexer that is not moving.
#[derive(Default)]
struct Progress {
    indexed: Mutex<i64>,
    advanced: Condvar,
    failing: AtomicBool,
    /// Commits after which the writer waited for the indexer.
    #[cfg(test)]
    waits: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn publish(&self, indexed: i64) {
        if let Ok(mut published) = self.indexed.lock() {
            *published = indexed;
        }
        self.advanced.notify_all();
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
        self.advanced.notify_all();
    }
}

/// Marks the indexer as failing when its thread ends, however it ends (a panic included).
struct ThreadEnd<'a>(&'a Progress);

impl Drop for ThreadEnd<'_> {
    fn drop(&mut self) {
        self.0.set_failing(true);
    }
}

/// The last position given to an acknowledged event.
fn last_position(connection: &Connection) -> StoreResult<i64> {
    connection
        .prepare_cached("SELECT COALESCE(MAX(log_position), 0) FROM events")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(database_error)
}

/// The database's `PRAGMA data_version` as `connection` sees it.
fn data_version(connection: &Connection) -> StoreResult<i64> {
    connection
        .prepare_cached("PRAGMA main.data_version")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(database_error)
}

/// Opens a connection to `database` with its index file attached and ready: created if
/// missing, emptied if it was not built from this database (see [`adopt`]).
pub(super) fn prepare_index_file(database: &Path) -> StoreResult<Connection> {
    super::files::prepare_private_files(&index_path(database))?;
    let connection = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::sqlite("opening the indexer's connection", error))?;
    connection
        .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -2048;")
        .map_err(|error| StoreError::sqlite("configuring the indexer's connection", error))?;
    super::keep_query_plans(&connection)?;
    attach(&connection, database)?;
    connection
        .execute_batch(&format!(
            "PRAGMA search.synchronous = NORMAL; PRAGMA search.cache_size = -{INDEX_CACHE_KIB};"
        ))
        .map_err(|error| StoreError::sqlite("configuring the indexer's connection", error))?;
    create_schema(&connection)?;
    let emptied = (|| {
        connection.execute_batch("BEGIN").map_err(database_error)?;
        let emptied = adopt(&connection)?;
        connection.execute_batch("COMMIT").map_err(database_error)?;
        Ok::<_, StoreError>(emptied)
    })();
    if emptied.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    if emptied? {
        tracing::warn!(
            path = %index_path(database).display(),
            "the search index file was not built from this database; emptied it, and the server rebuilds it from the stored events"
        );
    }
    bring_time_blocks_up_to_date(&connection)?;
    Ok(connection)
}

impl SearchIndexer {
    /// Starts the indexer thread on a connection from [`prepare_index_file`].
    pub(super) fn start(connection: Connection) -> StoreResult<Self> {
        let backlog_end = last_position(&connection)?;
        let progress = Arc::new(Progress::default());
        progress.publish(indexed_position(&connection)?);
        let (wake, woken) = mpsc::sync_channel(1);
        let published = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("stele-sqlite-indexer".into())
            .spawn(move || run(&connection, &woken, &published))
            .map_err(|error| StoreError::Internal(format!("starting the indexer: {error}")))?;
        Ok(Self {
            wake,
            progress,
            backlog_end,
            data_version: None,
        })
    }

    /// An indexer whose thread never runs, over `connection` (from [`prepare_index_file`]):
    /// its index stays where it is, so a test decides exactly what lags.
    #[cfg(test)]
    pub(super) fn without_thread(connection: &Connection) -> StoreResult<Self> {
        let progress = Arc::new(Progress::default());
        progress.publish(indexed_position(connection)?);
        let (wake, _) = mpsc::sync_channel(1);
        Ok(Self {
            wake,
            progress,
            backlog_end: last_position(connection)?,
            data_version: None,
        })
    }

    /// How many commits the writer waited for the indexer after.
    #[cfg(test)]
    pub(super) fn waits(&self) -> u64 {
        self.progress.waits.load(Ordering::Relaxed)
    }

    /// Called by the writer after every commit: wakes the thread (never blocking: a
    /// wake-up already pending covers this one), then, while the index lags more than
    /// [`MAX_TAIL`] events behind, waits for the thread (at most [`HOLD_BACK_LIMIT`]).
    ///
    /// Only the writer's own events are held back. Events another process appended (an
    /// import beside the server) join the backlog, as those stored before the start do:
    /// waiting would not slow that process down, only this server's acknowledgements, by
    /// up to a second each while the indexer works through the import. Until the indexer
    /// has caught up with such a backlog, the tail may grow past [`MAX_TAIL`] by what this
    /// server appends meanwhile.
    pub(super) fn after_commit(&mut self, connection: &Connection) {
        let _ = self.wake.try_send(());
        // The version first: another process's commit between the two reads then counts
        // as news at the next commit, instead of being taken as seen without its events.
        let Ok(version) = data_version(connection) else {
            return;
        };
        let Ok(last) = last_position(connection) else {
            return;
        };
        // The first reading has nothing to compare with: others may have appended since
        // the start, so it counts as a change.
        if self.data_version.replace(version) != Some(version) {
            self.backlog_end = self.backlog_end.max(last);
        }
        let Ok(mut indexed) = self.progress.indexed.lock() else {
            return;
        };
        let must_wait = |indexed: i64| {
            indexed >= self.backlog_end
                && last - indexed > MAX_TAIL
                && !self.progress.failing.load(Ordering::Relaxed)
        };
        #[cfg(test)]
        if must_wait(*indexed) {
            self.progress.waits.fetch_add(1, Ordering::Relaxed);
        }
        let started = std::time::Instant::now();
        while must_wait(*indexed) {
            let left = HOLD_BACK_LIMIT.saturating_sub(started.elapsed());
            if left.is_zero() {
                tracing::warn!(
                    lag = last - *indexed,
                    "the search indexer is not keeping up; acknowledging anyway"
                );
                return;
            }
            indexed = match self.progress.advanced.wait_timeout(indexed, left) {
                Ok((indexed, _)) => indexed,
                Err(_) => return,
            };
        }
    }
}

fn run(connection: &Connection, woken: &mpsc::Receiver<()>, progress: &Progress) {
    let _end = ThreadEnd(progress);
    loop {
        let step = index_step(connection, INDEX_STEP);
        if let Ok(position) = indexed_position(connection) {
            progress.publish(position);
        }
        progress.set_failing(step.is_err());
        // Events keep coming after a step that found some, maybe from another process
        // whose commits wake nothing here: look again soon.
        let wait = match &step {
            Ok(indexed) if *indexed > 0 => GATHER,
            _ => IDLE_POLL,
        };
        match step {
            // More to do, unless the store is gone.
            Ok(indexed) if indexed as i64 == INDEX_STEP => {
                if let Err(mpsc::TryRecvError::Disconnected) = woken.try_recv() {
                    return;
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                // Searches stay correct (they read the tail), only slower.
                tracing::error!(%error, "indexing acknowledged events for search failed");
                std::thread::sleep(RETRY);
            }
        }
        match woken.recv_timeout(wait) {
            Ok(()) => std::thread::sleep(GATHER),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The last position the search rows cover.
pub(super) fn indexed_position(connection: &Connection) -> StoreResult<i64> {
    connection
        .query_row(
            "SELECT indexed_position FROM search_index_progress WHERE singleton = 1",
            [],
            |row| row.get(0),
        )
        .map_err(database_error)
}

#[cfg(test)]
mod tests {
    //! The indexer's view against a full scan: searches over any split of `events` into
    //! indexed rows and tail find exactly what filtering every event would, and the rows the
    //! indexer writes are exactly those derived from the events.

    use proptest::prelude::*;
    use serde_json::json;
    use stele_core::event::parse_create_event;
    use stele_core::model::{EventQuery, NewEvent, OccurredAtKey, StoredEvent};
    use stele_core::pagination::{Cursor, PageRequest, SortOrder};

    use super::*;
    use crate::shared::encoding::PreparedEvent;
    use crate::shared::search::SearchScan;
    use crate::sqlite::events::{append_event_now, run_search, run_search_planned};
    use crate::sqlite::migrations::migrate;

    const ORGANIZATIONS: [&str; 2] = ["org_a", "org_b"];
    const ACTIONS: [&str; 3] = ["user.signed_in", "user.signed_out", "doc.updated"];
    const ACTORS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const NAMES: [&str; 2] = ["Alice", "Bob"];
    const TARGET_IDS: [&str; 4] = ["t1", "t2", "t3", "t4"];
    const TARGET_TYPES: [&str; 2] = ["team", "document"];

    /// An event as the test generates it, with what a full scan compares against.
    #[derive(Debug, Clone)]
    struct Spec {
        organization: usize,
        action: usize,
        actor: usize,
        name: Option<usize>,
        targets: Vec<(usize, usize)>,
        second: u32,
    }

    struct Stored {
        spec: Spec,
        sequence: i64,
        occurred_at: i64,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..ORGANIZATIONS.len(),
            0..ACTIONS.len(),
            0..ACTORS.len(),
            proptest::option::of(0..NAMES.len()),
            proptest::collection::vec((0..TARGET_IDS.len(), 0..TARGET_TYPES.len()), 0..3),
            0..20u32,
        )
            .prop_map(
                |(organization, action, actor, name, targets, second)| Spec {
                    organization,
                    action,
                    actor,
                    name,
                    targets,
                    second,
                },
            )
    }

    fn subset<T: Copy + std::fmt::Debug + 'static>(
        items: &'static [T],
    ) -> impl Strategy<Value = Vec<T>> {
        proptest::sample::subsequence(items, 0..=2)
    }

    fn query() -> impl Strategy<Value = (EventQuery, u32, bool)> {
        (
            (
                0..ORGANIZATIONS.len(),
                subset(&ACTIONS),
                subset(&ACTORS),
                subset(&NAMES),
                subset(&TARGET_IDS),
                subset(&TARGET_TYPES),
            ),
            (
                proptest::option::of(0..20i64),
                proptest::option::of(0..20i64),
                proptest::option::of(1..40i64),
                1..5u32,
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (organization, actions, actors, names, target_ids, target_types),
                    (from, to, up_to, limit, descending),
                )| {
                    let strings = |items: Vec<&str>| items.into_iter().map(String::from).collect();
                    let query = EventQuery {
                        organization_id: ORGANIZATIONS[organization].into(),
                        actions: strings(actions),
                        actor_ids: strings(actors),
                        actor_names: strings(names),
                        target_ids: strings(target_ids),
                        target_types: strings(target_types),
                        occurred_from: from.map(second_to_millis),
                        occurred_to: to.map(second_to_millis),
                        up_to_sequence: up_to,
                    };
                    (query, limit, descending)
                },
            )
    }

    fn second_to_millis(second: i64) -> i64 {
        1_640_995_200_000 + second * 1_000
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stele.db");
        let mut connection = crate::sqlite::open_for_test(&path);
        migrate(&mut connection).expect("migrate");
        attach(&connection, &path).expect("attach the index file");
        create_schema(&connection).expect("index schema");
        adopt(&connection).expect("adopt the index file");
        for organization in ORGANIZATIONS {
            connection
                .execute(
                    "INSERT INTO organizations (id, name, metadata, domains, created_at, updated_at)
                     VALUES (?1, ?1, '{}', '[]', 0, 0)",
                    [organization],
                )
                .expect("organization");
        }
        (dir, connection)
    }

    fn append(connection: &Connection, index: usize, spec: &Spec) -> Stored {
        let mut actor = json!({"id": ACTORS[spec.actor], "type": "user"});
        if let Some(name) = spec.name {
            actor["name"] = json!(NAMES[name]);
        }
        let targets: Vec<_> = spec
            .targets
            .iter()
            .map(|(id, kind)| json!({"id": TARGET_IDS[*id], "type": TARGET_TYPES[*kind]}))
            .collect();
        let request = parse_create_event(&json!({
            "organization_id": ORGANIZATIONS[spec.organization],
            "event": {
                "action": ACTIONS[spec.action],
                "occurred_at": format!("2022-01-01T00:00:{:02}.000Z", spec.second),
                "actor": actor, "targets": targets, "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid event");
        let occurred_at = request.event.occurred_at;
        let event = PreparedEvent::new(NewEvent {
            id: format!("audit_log_event_{index:026}").into(),
            organization_id: ORGANIZATIONS[spec.organization].into(),
            event: request.event,
        })
        .expect("encode");
        let appended = append_event_now(connection, &event).expect("append");
        Stored {
            spec: spec.clone(),
            sequence: appended.sequence,
            occurred_at,
        }
    }

    /// What filtering every event gives, in list order.
    fn full_scan(events: &[Stored], query: &EventQuery, descending: bool) -> Vec<i64> {
        let any =
            |filter: &[String], value: &str| filter.is_empty() || filter.iter().any(|v| v == value);
        let mut sequences: Vec<i64> = events
            .iter()
            .filter(|event| {
                let spec = &event.spec;
                ORGANIZATIONS[spec.organization] == query.organization_id.as_str()
                    && any(&query.actions, ACTIONS[spec.action])
                    && any(&query.actor_ids, ACTORS[spec.actor])
                    && (query.actor_names.is_empty()
                        || spec
                            .name
                            .is_some_and(|name| any(&query.actor_names, NAMES[name])))
                    && (query.target_ids.is_empty()
                        || spec
                            .targets
                            .iter()
                            .any(|(id, _)| any(&query.target_ids, TARGET_IDS[*id])))
                    && (query.target_types.is_empty()
                        || spec
                            .targets
                            .iter()
                            .any(|(_, kind)| any(&query.target_types, TARGET_TYPES[*kind])))
                    && query
                        .occurred_from
                        .is_none_or(|from| event.occurred_at >= from)
                    && query.occurred_to.is_none_or(|to| event.occurred_at <= to)
                    && query
                        .up_to_sequence
                        .is_none_or(|up_to| event.sequence <= up_to)
            })
            .map(|event| event.sequence)
            .collect();
        sequences.sort_unstable();
        if descending {
            sequences.reverse();
        }
        sequences
    }

    /// Every page of a search, following the `after` cursor, planned as the store plans it.
    fn search_all(
        connection: &Connection,
        query: &EventQuery,
        limit: u32,
        descending: bool,
    ) -> Vec<i64> {
        search_all_planned(connection, query, limit, descending, None)
    }

    /// Every page of a search, with the runs walked or not as `walk_time_blocks` says
    /// (`None`: as the store chooses).
    fn search_all_planned(
        connection: &Connection,
        query: &EventQuery,
        limit: u32,
        descending: bool,
        walk_time_blocks: Option<bool>,
    ) -> Vec<i64> {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let page = PageRequest {
                limit,
                order: if descending {
                    SortOrder::Desc
                } else {
                    SortOrder::Asc
                },
                cursor: cursor.map(Cursor::After),
            };
            let scan = SearchScan::by_sequence(&page.scan());
            let rows = match walk_time_blocks {
                None => run_search(connection, query, &scan),
                Some(walk) => run_search_planned(connection, query, &scan, walk),
            }
            .expect("search");
            let events = rows.into_iter().map(|(event, _)| event).collect();
            let page = page.assemble(events, |event: &StoredEvent| event.sequence.to_string());
            found.extend(page.data.iter().map(|event| event.sequence));
            match page.after {
                Some(after) => cursor = Some(after.parse().expect("cursor")),
                None => return found,
            }
        }
    }

    /// What filtering every event gives, ordered by `occurred_at` then sequence.
    fn full_scan_by_occurred_at(
        events: &[Stored],
        query: &EventQuery,
        descending: bool,
    ) -> Vec<i64> {
        let mut keys: Vec<(i64, i64)> = full_scan(events, query, false)
            .into_iter()
            .map(|sequence| {
                let event = events
                    .iter()
                    .find(|event| {
                        event.sequence == sequence
                            && ORGANIZATIONS[event.spec.organization]
                                == query.organization_id.as_str()
                    })
                    .expect("scanned event");
                (event.occurred_at, sequence)
            })
            .collect();
        keys.sort_unstable();
        if descending {
            keys.reverse();
        }
        keys.into_iter().map(|(_, sequence)| sequence).collect()
    }

    /// Every page of a search ordered by `occurred_at`, following the `after` cursor.
    fn search_all_by_occurred_at(
        connection: &Connection,
        query: &EventQuery,
        limit: u32,
        descending: bool,
    ) -> Vec<i64> {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let page = PageRequest::<OccurredAtKey> {
                limit,
                order: if descending {
                    SortOrder::Desc
                } else {
                    SortOrder::Asc
                },
                cursor: cursor.map(Cursor::After),
            };
            let rows = run_search(connection, query, &SearchScan::by_occurred_at(&page.scan()))
                .expect("search");
            let page = page.assemble(rows, |(event, occurred_at)| {
                OccurredAtKey {
                    occurred_at: *occurred_at,
                    sequence: event.sequence,
                }
                .to_string()
            });
            found.extend(page.data.iter().map(|(event, _)| event.sequence));
            match page.after {
                Some(after) => cursor = Some(after.parse().expect("cursor")),
                None => return found,
            }
        }
    }

    /// `(organization, sequence, action, actor, name, occurred_at)` rows and target rows.
    type IndexRows = (
        Vec<(String, i64, String, String, Option<String>, i64)>,
        Vec<(String, String, i64, i64, String)>,
    );

    fn index_rows(connection: &Connection) -> IndexRows {
        let search = connection
            .prepare("SELECT organization_id, sequence, action, actor_id, actor_name, occurred_at FROM event_search ORDER BY 1, 2")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))
            .and_then(Iterator::collect)
            .expect("search rows");
        let targets = connection
            .prepare("SELECT organization_id, target_id, sequence, position, target_type FROM event_targets ORDER BY 1, 2, 3, 4")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .and_then(Iterator::collect)
            .expect("target rows");
        (search, targets)
    }

    /// The rows of `event_time_blocks`.
    fn time_blocks(connection: &Connection) -> BTreeMap<(String, i64), (i64, i64)> {
        connection
            .prepare("SELECT organization_id, block, earliest, latest FROM event_time_blocks")
            .expect("prepare")
            .query_map([], |row| {
                Ok(((row.get(0)?, row.get(1)?), (row.get(2)?, row.get(3)?)))
            })
            .and_then(Iterator::collect)
            .expect("time blocks")
    }

    /// Puts the summary back to `runs`, covering events up to `position`: what a version
    /// without the summary leaves after indexing past it.
    fn restore_time_blocks(
        connection: &Connection,
        runs: &BTreeMap<(String, i64), (i64, i64)>,
        position: i64,
    ) {
        connection
            .execute_batch("DELETE FROM event_time_blocks")
            .expect("empty the summary");
        connection
            .execute(
                "UPDATE search_index_progress SET time_blocks_position = ?1",
                [position],
            )
            .expect("its position");
        for ((organization, block), (earliest, latest)) in runs {
            connection
                .execute(
                    "INSERT INTO event_time_blocks VALUES (?1, ?2, ?3, ?4)",
                    params![organization, block, earliest, latest],
                )
                .expect("a run");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn searches_over_index_and_tail_equal_a_full_scan(
            specs in proptest::collection::vec(spec(), 1..40),
            indexed_fraction in 0.0..=1.0f64,
            queries in proptest::collection::vec(query(), 1..6),
        ) {
            let (_dir, connection) = database();
            let events: Vec<Stored> = specs.iter().enumerate().map(|(index, spec)| append(&connection, index, spec)).collect();
            let indexed = (events.len() as f64 * indexed_fraction) as i64;
            index_tail(&connection, indexed).expect("index");
            prop_assert_eq!(tail_length(&connection).expect("tail"), events.len() as i64 - indexed);
            for (query, limit, descending) in &queries {
                // As the store plans it, and with the runs walked and not (both must be
                // right whichever the summary's density picks).
                for walk in [None, Some(true), Some(false)] {
                    prop_assert_eq!(
                        search_all_planned(&connection, query, *limit, *descending, walk),
                        full_scan(&events, query, *descending),
                        "query {:?}, limit {}, runs walked {:?}, {} of {} events indexed",
                        query, limit, walk, indexed, events.len()
                    );
                }
                prop_assert_eq!(
                    search_all_by_occurred_at(&connection, query, *limit, *descending),
                    full_scan_by_occurred_at(&events, query, *descending),
                    "by occurred_at: query {:?}, limit {}, {} of {} events indexed", query, limit, indexed, events.len()
                );
            }
            // The rows the indexer writes are those derived from every event: indexing the
            // rest in two steps gives what indexing each event as it was stored gave before.
            index_tail(&connection, 1).expect("index one");
            index_tail(&connection, INDEX_STEP).expect("index the rest");
            prop_assert_eq!(tail_length(&connection).expect("tail"), 0);
            let expected_search: Vec<_> = {
                let mut rows: Vec<_> = events.iter().map(|event| {
                    let spec = &event.spec;
                    (ORGANIZATIONS[spec.organization].to_owned(), event.sequence, ACTIONS[spec.action].to_owned(),
                     ACTORS[spec.actor].to_owned(), spec.name.map(|name| NAMES[name].to_owned()), event.occurred_at)
                }).collect();
                rows.sort();
                rows
            };
            let expected_targets: Vec<_> = {
                let mut rows: Vec<_> = events.iter().flat_map(|event| {
                    event.spec.targets.iter().enumerate().map(move |(position, (id, kind))| {
                        (ORGANIZATIONS[event.spec.organization].to_owned(), TARGET_IDS[*id].to_owned(),
                         event.sequence, position as i64, TARGET_TYPES[*kind].to_owned())
                    })
                }).collect();
                rows.sort();
                rows
            };
            let (search, targets) = index_rows(&connection);
            prop_assert_eq!(search, expected_search);
            prop_assert_eq!(targets, expected_targets);
            // Each run's span is that of its events, however the steps split them.
            let mut expected_spans: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
            for event in &events {
                let key = (ORGANIZATIONS[event.spec.organization].to_owned(), event.sequence / TIME_BLOCK);
                let span = expected_spans.entry(key).or_insert((event.occurred_at, event.occurred_at));
                *span = (span.0.min(event.occurred_at), span.1.max(event.occurred_at));
            }
            prop_assert_eq!(time_blocks(&connection), expected_spans);
            prop_assert_eq!(indexed_position(&connection).expect("position"), events.len() as i64);
        }
    }

    /// An event of the first organization, action and actor, with `targets`.
    fn plain_spec(targets: Vec<(usize, usize)>) -> Spec {
        Spec {
            organization: 0,
            action: 0,
            actor: 0,
            name: None,
            targets,
            second: 0,
        }
    }

    /// The index file may be newer than a reader's `events` snapshot (two files, two
    /// snapshots): rows of events that snapshot does not have yet must not take places in a
    /// page, or the page ends early and the rest of the list is lost to the client.
    #[test]
    fn index_rows_of_events_a_snapshot_lacks_take_no_place_in_a_page() {
        let (_dir, connection) = database();
        let spec = plain_spec(Vec::new());
        let events: Vec<Stored> = (0..5)
            .map(|index| append(&connection, index, &spec))
            .collect();
        index_tail(&connection, INDEX_STEP).expect("index");
        for sequence in [6, 7] {
            connection
                .execute(
                    "INSERT INTO event_search (organization_id, sequence, action, actor_id, actor_name, occurred_at)
                     VALUES (?1, ?2, ?3, ?4, NULL, 0)",
                    params![ORGANIZATIONS[0], sequence, ACTIONS[0], ACTORS[0]],
                )
                .expect("a row of an event not in this snapshot");
        }
        let query = EventQuery {
            organization_id: ORGANIZATIONS[0].into(),
            ..EventQuery::default()
        };
        for limit in 1..=3 {
            assert_eq!(
                search_all(&connection, &query, limit, true),
                full_scan(&events, &query, true),
                "limit {limit}"
            );
        }
    }

    /// Between a purge and the indexer applying it, the index still holds the purged
    /// prefix; those rows must not take places in a page either (an ascending page, or an
    /// export, would otherwise come back short or empty).
    #[test]
    fn index_rows_of_a_purged_prefix_take_no_place_in_a_page() {
        let (_dir, connection) = database();
        let spec = plain_spec(Vec::new());
        let events: Vec<Stored> = (0..8)
            .map(|index| append(&connection, index, &spec))
            .collect();
        index_tail(&connection, INDEX_STEP).expect("index");
        // What a purge of the first five leaves until the indexer applies it.
        connection
            .execute(
                "DELETE FROM events WHERE organization_id = ?1 AND sequence <= 5",
                [ORGANIZATIONS[0]],
            )
            .expect("purge");
        let kept: Vec<Stored> = events
            .into_iter()
            .filter(|event| event.sequence > 5)
            .collect();
        let query = EventQuery {
            organization_id: ORGANIZATIONS[0].into(),
            ..EventQuery::default()
        };
        for limit in 1..=3 {
            for descending in [false, true] {
                assert_eq!(
                    search_all(&connection, &query, limit, descending),
                    full_scan(&kept, &query, descending),
                    "limit {limit}, descending {descending}"
                );
            }
        }
    }

    /// Deletions reach the index file in order: a purge drops the purged prefix's rows (of
    /// every target type), an organization's deletion drops all of its rows, and another
    /// organization's rows stay.
    #[test]
    fn the_indexer_applies_purges_and_deletions_to_the_index_file() {
        let (_dir, connection) = database();
        for index in 0..40 {
            let spec = Spec {
                organization: index % 2,
                action: index % 3,
                actor: index % 4,
                name: None,
                targets: vec![(index % 4, 0), ((index + 1) % 4, 1)],
                second: 0,
            };
            append(&connection, index, &spec);
        }
        index_step(&connection, INDEX_STEP).expect("index");
        let count =
            |sql: &str| -> i64 { connection.query_row(sql, [], |row| row.get(0)).expect(sql) };
        assert_eq!(count("SELECT COUNT(*) FROM event_search"), 40);
        assert_eq!(count("SELECT COUNT(*) FROM event_targets"), 80);
        let delete = |organization: &str, up_to: Option<i64>| {
            connection
                .execute(
                    "INSERT INTO search_index_deletions (organization_id, up_to_sequence) VALUES (?1, ?2)",
                    params![organization, up_to],
                )
                .expect("deletion");
        };
        delete("org_a", Some(5));
        index_step(&connection, INDEX_STEP).expect("apply the purge");
        let left = |organization: &str| {
            count(&format!(
                "SELECT COUNT(*) FROM event_search WHERE organization_id = '{organization}'"
            ))
        };
        let left_targets = |organization: &str| {
            count(&format!(
                "SELECT COUNT(*) FROM event_targets WHERE organization_id = '{organization}'"
            ))
        };
        assert_eq!(left("org_a"), 15);
        assert_eq!(left_targets("org_a"), 30);
        // Runs of four sequences: 0 to 3 is gone, 4 to 7 keeps its span (6 and 7 are
        // left in it).
        assert_eq!(TIME_BLOCK, 4);
        assert_eq!(
            connection
                .query_row(
                    "SELECT MIN(block) FROM event_time_blocks WHERE organization_id = 'org_a'",
                    [],
                    |row| row.get::<_, i64>(0)
                )
                .expect("first run"),
            1
        );
        assert_eq!(
            count("SELECT MIN(sequence) FROM event_targets WHERE organization_id = 'org_a'"),
            6
        );
        assert_eq!((left("org_b"), left_targets("org_b")), (20, 40));
        delete("org_a", None);
        index_step(&connection, INDEX_STEP).expect("apply the deletion");
        assert_eq!((left("org_a"), left_targets("org_a")), (0, 0));
        let runs = |organization: &str| {
            count(&format!(
                "SELECT COUNT(*) FROM event_time_blocks WHERE organization_id = '{organization}'"
            ))
        };
        assert_eq!(runs("org_a"), 0);
        // org_b's sequences 1 to 20: runs 0 to 5.
        assert_eq!(runs("org_b"), 6);
        assert_eq!((left("org_b"), left_targets("org_b")), (20, 40));
        assert_eq!(
            count("SELECT deletions_applied FROM search_index_progress"),
            count("SELECT MAX(id) FROM search_index_deletions")
        );
    }

    /// An index file the database does not recognise (another database's, or one ahead of
    /// a database restored from a backup) is emptied and rebuilt; the database's own is kept.
    #[test]
    fn an_index_file_not_built_from_this_database_is_rebuilt() {
        let (_dir, connection) = database();
        let spec = plain_spec(vec![(0, 0)]);
        for index in 0..10 {
            append(&connection, index, &spec);
        }
        index_step(&connection, INDEX_STEP).expect("index");
        assert!(!adopt(&connection).expect("adopt"), "its own file is kept");
        assert_eq!(indexed_position(&connection).expect("position"), 10);
        connection
            .execute_batch("UPDATE search_index_progress SET database_id = x'00'")
            .expect("another database's file");
        assert!(adopt(&connection).expect("adopt"));
        assert_eq!(indexed_position(&connection).expect("position"), 0);
        assert_eq!(tail_length(&connection).expect("tail"), 10);
        index_step(&connection, INDEX_STEP).expect("index again");
        connection
            .execute_batch("UPDATE search_index_progress SET indexed_position = 11")
            .expect("a file ahead of the database");
        assert!(adopt(&connection).expect("adopt"));
        assert_eq!(
            connection
                .query_row("SELECT COUNT(*) FROM event_search", [], |row| row
                    .get::<_, i64>(0))
                .expect("count"),
            0
        );
    }

    /// An index file indexed without the time summary gets it at open, as the indexer would
    /// have written it: a file from before the summary (no table, no position), one an
    /// earlier version indexed more events in since, and one emptied and rebuilt since.
    #[test]
    fn an_index_file_indexed_without_the_time_summary_gets_it_at_open() {
        let (_dir, connection) = database();
        let append_some = |range: std::ops::Range<usize>| {
            for index in range {
                let spec = Spec {
                    second: (index * 7 % 20) as u32,
                    ..plain_spec(Vec::new())
                };
                append(&connection, index, &spec);
            }
        };
        append_some(0..10);
        index_step(&connection, INDEX_STEP).expect("index");
        let first_ten = time_blocks(&connection);
        append_some(10..30);
        index_step(&connection, INDEX_STEP).expect("index");
        let written = time_blocks(&connection);
        assert_eq!(written.len(), 8, "sequences 1 to 30 in runs of four");
        assert_ne!(first_ten, written);
        let reopened = || {
            // What `prepare_index_file` does around `adopt`, which keeps this file.
            create_schema(&connection).expect("open the file again");
            bring_time_blocks_up_to_date(&connection).expect("catch the summary up");
            let position: i64 = connection
                .query_row(
                    "SELECT time_blocks_position FROM search_index_progress",
                    [],
                    |row| row.get(0),
                )
                .expect("position");
            assert_eq!(position, 30);
            time_blocks(&connection)
        };

        connection
            .execute_batch(
                "DROP TABLE event_time_blocks;
                 ALTER TABLE search_index_progress DROP COLUMN time_blocks_position;
                 ALTER TABLE search_index_progress DROP COLUMN time_block_sequences;",
            )
            .expect("a file from before the summary");
        assert_eq!(reopened(), written);
        assert_eq!(reopened(), written, "and again: nothing to do");
        connection
            .execute_batch("DROP TABLE event_time_blocks")
            .expect("the summary alone lost");
        assert_eq!(reopened(), written);

        // Events 11 to 30 indexed by a version that kept no summary.
        restore_time_blocks(&connection, &first_ten, 10);
        assert_eq!(reopened(), written);

        // Built with runs of another size.
        connection
            .execute_batch(
                "UPDATE event_time_blocks SET earliest = 0, latest = 0;
                 UPDATE search_index_progress SET time_block_sequences = 8;",
            )
            .expect("runs of eight");
        assert_eq!(reopened(), written);

        // Emptied and rebuilt by such a version: the runs left are of no use.
        connection
            .execute_batch(
                "UPDATE event_time_blocks SET earliest = 0, latest = 0;
                 INSERT INTO event_time_blocks VALUES ('org_b', 99, 0, 0);
                 UPDATE search_index_progress SET time_blocks_position = 0, time_block_sequences = 0;",
            )
            .expect("stale runs");
        assert_eq!(reopened(), written);
    }

    /// A version without the summary indexing beside this one (a rolling upgrade, or two
    /// servers on one database) leaves events that no run covers: until the next step
    /// catches the summary up, searches do not walk the runs, and this version's own steps
    /// never mark the gap covered.
    #[test]
    fn events_indexed_by_a_version_without_the_summary_are_not_searched_through_it() {
        let (_dir, connection) = database();
        let add = |range: std::ops::Range<usize>| -> Vec<Stored> {
            range
                .map(|index| {
                    let spec = Spec {
                        second: (index % 20) as u32,
                        ..plain_spec(Vec::new())
                    };
                    append(&connection, index, &spec)
                })
                .collect()
        };
        let mut events = add(0..10);
        index_step(&connection, INDEX_STEP).expect("index");
        let first_ten = time_blocks(&connection);
        events.extend(add(10..20));
        // What the other version leaves: rows and `indexed_position` for events 11 to 20,
        // no runs for them and `time_blocks_position` where it was.
        index_tail(&connection, INDEX_STEP).expect("index");
        restore_time_blocks(&connection, &first_ten, 10);
        let query = EventQuery {
            organization_id: ORGANIZATIONS[0].into(),
            occurred_from: Some(second_to_millis(0)),
            occurred_to: Some(second_to_millis(19)),
            ..EventQuery::default()
        };
        let density = || {
            time_range_density(
                &connection,
                ORGANIZATIONS[0],
                query.occurred_from,
                query.occurred_to,
            )
            .expect("density")
        };
        assert_eq!(density(), None, "the runs do not cover events 11 to 20");
        assert_eq!(
            search_all(&connection, &query, 3, true),
            full_scan(&events, &query, true)
        );
        // Writing rows on top (`index_tail`, the part of a step after its catch-up) does
        // not hide the gap.
        events.extend(add(20..21));
        index_tail(&connection, INDEX_STEP).expect("index one more");
        assert_eq!(density(), None);
        // Its next step catches the summary up.
        index_step(&connection, INDEX_STEP).expect("a step");
        assert!(density().is_some());
        let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
        for event in &events {
            let span = expected
                .entry((ORGANIZATIONS[0].to_owned(), event.sequence / TIME_BLOCK))
                .or_insert((event.occurred_at, event.occurred_at));
            *span = (span.0.min(event.occurred_at), span.1.max(event.occurred_at));
        }
        assert_eq!(time_blocks(&connection), expected);
        assert_eq!(
            search_all(&connection, &query, 3, true),
            full_scan(&events, &query, true)
        );
    }
}
