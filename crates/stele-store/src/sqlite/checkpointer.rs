//! WAL checkpoints, mostly off the writer thread.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: the
//! committing connection copies the WAL's pages into the database file and syncs it before
//! its commit returns, and every acknowledgement queued behind that commit waits. Under
//! load that is many times a second, and each time the hot pages (the last leaf of the
//! events table, each organization's sequence leaf) are copied again.
//!
//! This thread, on a connection of its own, runs a `PASSIVE` checkpoint every [`INTERVAL`]:
//! it copies what the writer committed into the database file without blocking the writer
//! or readers. A passive checkpoint alone cannot bound the WAL under sustained writes: the
//! WAL starts over only when a checkpoint has copied every frame, and the writer keeps
//! appending while the thread copies (measured: gigabytes of WAL in 30 s). So the writer
//! still checkpoints itself, but only at 16,384 pages (64 MiB, the `journal_size_limit`):
//! by then the thread has copied nearly everything, the writer's checkpoint finishes the
//! rest, and the WAL starts over at the next commit.
//!
//! Durability does not depend on checkpoints: a commit is durable once its WAL frames are
//! synced. A checkpoint only moves them into the database file.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use crate::prelude::*;

/// How often a checkpoint runs. One with nothing new to copy does no I/O; under load each
/// copies what the writer committed since the last (the writer's backstop at 16,384 pages
/// is what bounds the WAL).
const INTERVAL: Duration = Duration::from_millis(250);

/// Stops the checkpointer thread when dropped: it wakes, runs a last checkpoint and ends
/// (not waited for; the WAL is recovered on the next open if the process exits first).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own to the database at `path`.
    pub(crate) fn start(path: &Path) -> StoreResult<Self> {
        let connection = Connection::open(path)
            .map_err(|error| StoreError::sqlite("opening the checkpoint connection", error))?;
        connection
            // FULL: the database file is synced before the WAL may start over, whatever
            // the build's default.
            .execute_batch(
                "PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = FULL;",
            )
            .map_err(|error| StoreError::sqlite("configuring the checkpoint connection", error))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("stele-sqlite-checkpointer".into())
            .spawn(move || run(&connection, &stopped))
            .map_err(|error| StoreError::Internal(format!("starting the checkpointer: {error}")))?;
        Ok(Self { _stop: stop })
    }
}

fn run(connection: &Connection, stopped: &mpsc::Receiver<()>) {
    loop {
        // Woken by the interval, or by the store going away (a last checkpoint, then out).
        let stopping = !matches!(
            stopped.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; will retry");
        }
        if stopping {
            return;
        }
    }
}
