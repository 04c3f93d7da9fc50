//! The embedded SQLite store: one writer thread with group commit ([`writer`]), a pool of
//! read connections ([`read_pool`]), WAL journaling and `synchronous=FULL`, so a write is
//! on disk before its caller hears it succeeded. The search indexes are a second file,
//! derived from the first and kept up to date by a thread of their own ([`search_index`]).

mod checkpointer;
mod credentials;
mod events;
mod exports;
mod files;
mod idempotency;
mod jobs;
mod limits;
mod log_streams;
mod migrations;
mod organizations;
mod portal;
mod quarantine;
mod read_pool;
mod retention;
mod schemas;
mod search_index;
mod secrets;
mod sessions;
mod status;
#[cfg(test)]
mod tests;
mod tree;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use self::checkpointer::Checkpointer;
use self::read_pool::ReadPool;
use self::writer::Writer;
use crate::prelude::*;

/// A failed statement; the SQLite error is kept as the source.
pub(super) fn database_error(error: rusqlite::Error) -> StoreError {
    StoreError::sqlite("running a statement", error)
}

pub(super) fn is_unique_violation(error: &rusqlite::Error, column: &str) -> bool {
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

/// Whether this process keeps the search index file up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchIndexing {
    /// A thread of its own indexes what the writer commits (`stele serve`).
    #[default]
    Background,
    /// Nothing is indexed by this process: the index file is only created if missing (read
    /// connections attach it) and emptied if it was not built from this database. For
    /// one-off commands (`stele verify`, `api-keys`, `users`, `import`, `import-events`),
    /// which search nothing: a `verify` of a large backup without its index file would
    /// otherwise rebuild the whole index beside the check. A running server's indexer finds
    /// events such a command appends within seconds (see `search_index`), and a server
    /// started later indexes them first; searches read them from the tail until then.
    Off,
}

/// Prepared statements the writer's connection keeps (rusqlite's default is 16); its many
/// kinds of job use more distinct statements than that.
const WRITER_STATEMENT_CACHE: usize = 256;
/// Prepared statements each read connection keeps: searches spell their SQL per filter
/// combination, so a connection sees dozens of shapes. At most 16 read connections stay
/// open (`read_pool`), so this bounds their statements' memory too.
pub(super) const READER_STATEMENT_CACHE: usize = 64;

/// Makes a connection's prepared statements keep their query plan whatever values are
/// bound to them (SQLite's query planner stability guarantee, `SQLITE_DBCONFIG_ENABLE_QPSG`).
/// Set on every connection that runs queries: the writer, the readers and the indexer.
///
/// Without it, a statement with a `column = ?` term and an `ORDER BY`, `GROUP BY`,
/// `MIN`/`MAX` or a join is compiled again on nearly every run. Its planner asks whether the
/// bound value is an integer from -1 to 1 (a row-estimate rule), which marks the parameter
/// as one a plan depends on; rusqlite clears a cached statement's bindings when it goes
/// back to the cache, and clearing a marked parameter expires the statement. The append's
/// chain-head lookup (`... WHERE organization_id = ?1 ORDER BY sequence DESC LIMIT 1`) was
/// parsed and planned anew for nearly every event: 18% of the writer's time under
/// single-event load (bench/NOTES.md).
///
/// What the planner gives up is looking at bound values: that -1-to-1 rule, statistics
/// (there are none: `ANALYZE` never runs), the `LIKE` optimisation (the one `LIKE` with a
/// bound pattern, on organization names, sits in an `OR` that no index serves), and a
/// bound `LIMIT`'s row estimate. That last one can change a plan only where the planner
/// chooses between sorting and an index already in sort order for a small `LIMIT`: the
/// organization and action lists, small tables either way.
pub(super) fn keep_query_plans(connection: &Connection) -> StoreResult<()> {
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map(|_| ())
        .map_err(|error| StoreError::sqlite("configuring query plan stability", error))
}

/// Installs SQLite's page cache with the temporary page of B-tree rebalancing kept out of its
/// key range (`stele_page_cache`): without it, while a database file is under 1 GiB, the
/// end of each transaction that split a page walks every page the connection has cached.
/// Answers whether the wrapped cache is in place.
///
/// SQLite takes a page cache only before it is first used, and configuring it is not safe
/// while another thread starts using SQLite. So every way this process opens SQLite calls
/// this first: `stele`'s `main`, [`SqliteStore::open_with`], [`SqliteStore::migrate`], and
/// the tests' own connections. The first call configures SQLite; calls made meanwhile from
/// other threads wait for it, and later calls return its outcome.
pub fn install_page_cache() -> bool {
    match stele_page_cache::install() {
        stele_page_cache::Installation::Installed => true,
        stele_page_cache::Installation::TooLate(code) => {
            tracing::debug!(
                code,
                "SQLite was in use before the store opened; it keeps its default page cache"
            );
            false
        }
    }
}

/// A plain connection to `path` for tests, opened the way every connection must be: after
/// [`install_page_cache`].
#[cfg(test)]
pub(super) fn open_for_test(path: impl AsRef<Path>) -> Connection {
    install_page_cache();
    Connection::open(path).expect("open a test connection")
}

pub struct SqliteStore {
    pub(super) writer: Writer,
    pub(super) readers: Arc<ReadPool>,
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Opens the database file at `path` with every commit synced ([`SyncMode::Full`]).
    /// With `migrate` set, the file (and its directory) is created if needed and pending
    /// migrations are applied; without it, the file must already exist with a current
    /// schema, and nothing is created.
    pub fn open(path: &Path, migrate: bool) -> StoreResult<Self> {
        Self::open_with(path, migrate, SyncMode::Full, SearchIndexing::Background)
    }

    /// [`SqliteStore::open`] with a chosen [`SyncMode`] and [`SearchIndexing`].
    pub fn open_with(
        path: &Path,
        migrate: bool,
        sync: SyncMode,
        indexing: SearchIndexing,
    ) -> StoreResult<Self> {
        install_page_cache();
        // Serving (which migrates) creates the data directory and database, privately;
        // other commands only open an existing one.
        if migrate {
            files::prepare_private_files(path)?;
        } else {
            files::warn_if_shared_files(path);
        }
        let flags = if migrate {
            OpenFlags::default()
        } else {
            OpenFlags::default().difference(OpenFlags::SQLITE_OPEN_CREATE)
        };
        let mut connection = Connection::open_with_flags(path, flags)
            .map_err(|error| StoreError::sqlite("opening the database", error))?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, which
        // is what makes an acknowledged event survive a crash or power loss. The writer's
        // page cache (128 MiB) keeps the index pages that random keys (idempotency keys,
        // actor and target ids) land on in memory; savepoint journals stay in memory too.
        // Most checkpoint work runs on a thread of its own (see `checkpointer`); the
        // writer checkpoints itself only when the WAL reaches 64 MiB, which finishes what
        // the thread copied and lets the WAL start over.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -131072;
                 PRAGMA journal_size_limit = 67108864;
                 PRAGMA wal_autocheckpoint = 16384;",
            )
            .map_err(|error| StoreError::sqlite("configuring the connection", error))?;
        // Every statement the writer runs is prepared once: jobs of many kinds share this
        // connection, and rusqlite's default cache (16 statements) evicted the append's
        // own statements whenever other jobs ran between group commits, so SQLite parsed
        // them again.
        connection.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        keep_query_plans(&connection)?;
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
        } else if !migrations::is_current(&connection)? {
            return Err(StoreError::Incompatible(format!(
                "the SQLite schema of {} is not up to date; run `stele migrate` or start with --migrate-on-start true",
                path.display()
            )));
        }
        let indexer_connection = search_index::prepare_index_file(path)?;
        let after_commit: writer::AfterCommit = match indexing {
            SearchIndexing::Background => {
                let mut indexer = search_index::SearchIndexer::start(indexer_connection)?;
                Box::new(move |connection| indexer.after_commit(connection))
            }
            SearchIndexing::Off => Box::new(|_| {}),
        };
        Ok(Self {
            writer: Writer::start(connection, after_commit),
            readers: ReadPool::new(PathBuf::from(path)),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// How many acknowledged events the search index file does not cover yet (searches
    /// find them all the same, reading them from `events`).
    pub async fn unindexed_events(&self) -> StoreResult<i64> {
        self.readers.read(search_index::tail_length).await
    }

    /// Applies pending migrations and returns how many ran (for `stele migrate`).
    pub fn migrate(path: &Path) -> StoreResult<usize> {
        install_page_cache();
        files::prepare_private_files(path)?;
        let mut connection = Connection::open(path)
            .map_err(|error| StoreError::sqlite("opening the database", error))?;
        migrations::migrate(&mut connection)
    }
}
