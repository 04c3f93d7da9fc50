//! The single SQLite writer thread, with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. Rather than
//! every request paying for its own, write jobs queue on a channel; the writer takes
//! everything queued (up to [`MAX_BATCH`]), runs each job inside its own SAVEPOINT in one
//! transaction, commits once, and only then answers every job. While one batch is being
//! fsynced the next one accumulates, so throughput grows with concurrency.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

const MAX_BATCH: usize = 1024;
const QUEUE_CAPACITY: usize = 8192;

/// A queued job, type-erased so jobs with different results share one queue.
trait PendingWrite: Send {
    /// Runs the job inside the open transaction; its effects are undone if it failed.
    fn run(&mut self, connection: &Connection);
    /// Delivers the job's result once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct TypedWrite<T, F> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> PendingWrite for TypedWrite<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, connection: &Connection) {
        let Some(work) = self.work.take() else { return };
        let result = match connection.execute_batch("SAVEPOINT job") {
            Err(error) => Err(StoreError::Database(error.to_string())),
            Ok(()) => {
                let result = catch_unwind(AssertUnwindSafe(|| work(connection)))
                    .unwrap_or_else(|_| Err(StoreError::Database("write job panicked".into())));
                let end = if result.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match connection.execute_batch(end) {
                    Ok(()) => result,
                    Err(error) => Err(StoreError::Database(error.to_string())),
                }
            }
        };
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (commit, self.result) {
            (_, None) => Err(StoreError::Database("write job did not run".into())),
            (Ok(()), Some(result)) => result,
            // A job that failed on its own reports its own error; the others learn that
            // the commit they depended on did not happen.
            (Err(_), Some(Err(own))) => Err(own),
            (Err(commit_error), Some(Ok(_))) => Err(commit_error),
        };
        // The requester may have gone away (client disconnected); the write stands anyway.
        let _ = self.reply.send(result);
    }
}

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn PendingWrite>>,
}

impl Writer {
    pub(crate) fn start(connection: Connection) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("stele-sqlite-writer".into())
            .spawn(move || write_loop(connection, receiver))
            .map(|_| ())
            .unwrap_or_else(
                |error| tracing::error!(%error, "cannot start the SQLite writer thread"),
            );
        Self { queue }
    }

    /// Runs `work` in the next group commit and returns its result once it is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn PendingWrite> = Box::new(TypedWrite {
            work: Some(work),
            result: None,
            reply,
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }
}

fn write_loop(connection: Connection, mut receiver: mpsc::Receiver<Box<dyn PendingWrite>>) {
    let mut batch: Vec<Box<dyn PendingWrite>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = commit_batch(&connection, &mut batch);
        if let Err(error) = &commit {
            tracing::error!(%error, jobs = batch.len(), "group commit failed; every job in it is reported as failed");
        }
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
}

fn commit_batch(
    connection: &Connection,
    batch: &mut [Box<dyn PendingWrite>],
) -> Result<(), StoreError> {
    let database_error = |error: rusqlite::Error| StoreError::Database(error.to_string());
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(database_error)?;
    for job in batch.iter_mut() {
        job.run(connection);
    }
    if let Err(error) = connection.execute_batch("COMMIT") {
        let _ = connection.execute_batch("ROLLBACK");
        return Err(database_error(error));
    }
    Ok(())
}
