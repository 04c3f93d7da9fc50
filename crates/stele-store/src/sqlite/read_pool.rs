//! Read connections for SQLite. WAL mode lets any number of readers run beside the writer;
//! connections are reused because opening one costs more than most queries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::{StoreError, StoreResult};

/// Idle connections kept for reuse; more may be open at once under load.
const MAX_IDLE: usize = 16;

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Reads running right now, each on a connection of its own.
    in_use: AtomicUsize,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            idle: Mutex::new(Vec::new()),
            in_use: AtomicUsize::new(0),
        })
    }

    /// (connections reading now, idle connections kept for reuse).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let idle = self.idle.lock().map(|idle| idle.len()).unwrap_or(0);
        (self.in_use.load(Ordering::Relaxed), idle)
    }

    fn checkout(&self) -> StoreResult<Connection> {
        if let Some(connection) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(connection);
        }
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|error| StoreError::sqlite("opening a read connection", error))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|error| StoreError::sqlite("configuring a read connection", error))?;
        // Reads through a memory map share the operating system's page cache instead of
        // copying every page into each connection's small cache: a time-range search
        // walks tens of thousands of index entries, and measured about three times faster
        // this way (BENCHMARKS.md). SQLite caps the map at its compile-time maximum.
        connection
            .execute_batch("PRAGMA mmap_size = 2147418112;")
            .map_err(|error| StoreError::sqlite("configuring a read connection", error))?;
        connection.set_prepared_statement_cache_capacity(super::READER_STATEMENT_CACHE);
        super::keep_query_plans(&connection)?;
        super::organizations::register_case_fold(&connection)?;
        super::search_index::attach(&connection, &self.path)?;
        connection
            .execute_batch("PRAGMA search.mmap_size = 2147418112;")
            .map_err(|error| StoreError::sqlite("configuring a read connection", error))?;
        Ok(connection)
    }

    fn checkin(&self, connection: Connection) {
        // A connection left inside a transaction would serve every later read from that
        // transaction's snapshot: drop it instead.
        if !connection.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
    }

    /// Runs `work` on a pooled connection on the blocking thread pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let connection = pool.checkout()?;
            let result = {
                let _reading = InUse::enter(&pool.in_use);
                work(&connection)
            };
            pool.checkin(connection);
            result
        })
        .await
        .map_err(|error| StoreError::Internal(format!("read task failed: {error}")))?
    }
}

/// Counts one running read for as long as it lives, so a read that panics is uncounted too.
struct InUse<'a>(&'a AtomicUsize);

impl<'a> InUse<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
