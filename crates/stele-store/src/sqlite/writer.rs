//! The single SQLite writer thread, with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. Rather than
//! every request paying for its own, write jobs queue on a channel; the writer takes
//! everything queued (up to [`MAX_BATCH`]), runs the jobs in one transaction, commits once,
//! and only then answers every job. While one batch is being synced the next one
//! accumulates, so throughput grows with concurrency.
//!
//! A job that fails must leave no trace in the shared transaction. Ordinary jobs run inside
//! their own SAVEPOINT, which is rolled back when they fail. Savepoints are not free (SQLite
//! copies every page a job first touches into a statement journal), so the hot event-append
//! path runs *unguarded*: such a job does all its checks before its first write, and if one
//! nevertheless fails after writing (a database error), the whole batch is rolled back and
//! every job in it reports the failure, never a partial write.
//!
//! Work that no acknowledgement waits for (building the search indexes, see `search_index`)
//! runs on threads of its own; after every commit the writer calls the [`AfterCommit`]
//! handed to [`Writer::start`], which tells them that there is something new (and may hold
//! the writer back while they are too far behind).

use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

const MAX_BATCH: usize = 1024;
const QUEUE_CAPACITY: usize = 8192;

/// How a job left the shared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobEffect {
    /// Succeeded, or failed without leaving any change behind.
    Clean,
    /// Failed after changing rows that cannot be undone on their own: the batch must go.
    Poisoned,
}

/// A queued job, type-erased so jobs with different results share one queue.
trait PendingWrite: Send {
    fn run(&mut self, connection: &Connection) -> JobEffect;
    /// Delivers the job's result once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct TypedWrite<T, F> {
    work: Option<F>,
    guarded: bool,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

fn run_caught<T>(
    work: impl FnOnce(&Connection) -> StoreResult<T>,
    connection: &Connection,
) -> StoreResult<T> {
    catch_unwind(AssertUnwindSafe(|| work(connection)))
        .unwrap_or_else(|_| Err(StoreError::Internal("write job panicked".into())))
}

impl<T, F> PendingWrite for TypedWrite<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, connection: &Connection) -> JobEffect {
        let Some(work) = self.work.take() else {
            return JobEffect::Clean;
        };
        let database_error = |error| StoreError::sqlite("ending a write's savepoint", error);
        if !self.guarded {
            let changes_before = connection.total_changes();
            let result = run_caught(work, connection);
            let poisoned = result.is_err() && connection.total_changes() != changes_before;
            self.result = Some(result);
            return if poisoned {
                JobEffect::Poisoned
            } else {
                JobEffect::Clean
            };
        }
        let result = match connection
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
        {
            Err(error) => Err(database_error(error)),
            Ok(_) => {
                let result = run_caught(work, connection);
                let end = if result.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job"
                };
                let ended = connection
                    .prepare_cached(end)
                    .and_then(|mut s| s.execute([]));
                // ROLLBACK TO leaves the savepoint open; release it too.
                let released = if result.is_ok() {
                    Ok(0)
                } else {
                    connection
                        .prepare_cached("RELEASE job")
                        .and_then(|mut s| s.execute([]))
                };
                match ended.and(released) {
                    Ok(_) => result,
                    Err(error) => {
                        self.result = Some(Err(database_error(error)));
                        return JobEffect::Poisoned;
                    }
                }
            }
        };
        self.result = Some(result);
        JobEffect::Clean
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (commit, self.result) {
            (_, None) => Err(StoreError::Internal("write job did not run".into())),
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

/// Called after every successful commit, on the writer thread, with its connection, once
/// the commit's jobs have their answers; the next group commit waits for it.
pub(crate) type AfterCommit = Box<dyn FnMut(&Connection) + Send>;

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn PendingWrite>>,
}

impl Writer {
    /// Writes waiting for the next group commit.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    pub(crate) fn start(connection: Connection, after_commit: AfterCommit) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("stele-sqlite-writer".into())
            .spawn(move || write_loop(connection, receiver, after_commit))
            .map(|_| ())
            .unwrap_or_else(
                |error| tracing::error!(%error, "cannot start the SQLite writer thread"),
            );
        Self { queue }
    }

    /// Runs `work` in the next group commit, inside a savepoint, and returns its result
    /// once it is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Like [`Writer::write`] without a savepoint, for hot paths whose job makes every
    /// check before its first write. A failure after writing rolls back the whole batch.
    pub(crate) async fn write_unguarded<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, false).await
    }

    async fn submit<T, F>(&self, work: F, guarded: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn PendingWrite> = Box::new(TypedWrite {
            work: Some(work),
            guarded,
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

fn write_loop(
    connection: Connection,
    mut receiver: mpsc::Receiver<Box<dyn PendingWrite>>,
    mut after_commit: AfterCommit,
) {
    let mut batch: Vec<Box<dyn PendingWrite>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let commit = commit_batch(&connection, &mut batch);
        crate::telemetry::record_group_commit(
            crate::telemetry::SQLITE,
            batch.len(),
            started.elapsed(),
            commit.is_ok(),
        );
        match &commit {
            Ok(timing) => {
                tracing::trace!(jobs = batch.len(), run_us = timing.0, commit_us = timing.1, total = ?started.elapsed(), "group commit")
            }
            Err(error) => {
                tracing::error!(%error, jobs = batch.len(), "group commit failed; every job in it is reported as failed")
            }
        }
        for job in batch.drain(..) {
            job.finish(commit.clone().map(|_| ()));
        }
        if commit.is_ok() {
            after_commit(&connection);
        }
    }
}

/// Runs and commits a batch; returns the microseconds spent running jobs and committing.
fn commit_batch(
    connection: &Connection,
    batch: &mut [Box<dyn PendingWrite>],
) -> Result<(u128, u128), StoreError> {
    let started = std::time::Instant::now();
    let execute = |sql: &str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
    };
    execute("BEGIN IMMEDIATE")
        .map_err(|error| StoreError::sqlite("starting a group commit", error))?;
    for job in batch.iter_mut() {
        // On some errors (disk full, I/O, out of memory) SQLite rolls the whole transaction
        // back by itself; jobs after that would run, and commit, outside it.
        if job.run(connection) == JobEffect::Poisoned || connection.is_autocommit() {
            let _ = execute("ROLLBACK");
            return Err(StoreError::BatchRolledBack);
        }
    }
    let ran = started.elapsed().as_micros();
    if let Err(error) = execute("COMMIT") {
        let _ = execute("ROLLBACK");
        return Err(StoreError::sqlite("committing a group commit", error));
    }
    Ok((ran, started.elapsed().as_micros() - ran))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let connection = crate::sqlite::open_for_test(dir.path().join("w.db"));
        connection
            .execute_batch("CREATE TABLE t (v INTEGER)")
            .expect("schema");
        (Writer::start(connection, Box::new(|_| {})), dir)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let connection = crate::sqlite::open_for_test(dir.path().join("w.db"));
        connection
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("count")
    }

    fn insert(connection: &Connection) -> StoreResult<()> {
        connection
            .execute("INSERT INTO t VALUES (1)", [])
            .map(|_| ())
            .map_err(|error| StoreError::sqlite("inserting", error))
    }

    type BoxedJob<T> = (bool, Box<dyn FnOnce(&Connection) -> StoreResult<T> + Send>);

    /// Holds the writer busy while `jobs` are queued, so they all share the next batch.
    async fn in_one_batch<T: Send + 'static>(
        writer: &Writer,
        jobs: Vec<BoxedJob<T>>,
    ) -> Vec<StoreResult<T>> {
        let blocker = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut handles = Vec::new();
        for (guarded, job) in jobs {
            let writer = writer.clone();
            handles.push(tokio::spawn(async move {
                if guarded {
                    writer.write(job).await
                } else {
                    writer.write_unguarded(job).await
                }
            }));
            // Keep submission order stable: give each task time to enqueue.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.expect("job task"));
        }
        blocker.await.expect("blocker task").expect("blocker job");
        results
    }

    #[tokio::test]
    async fn a_failed_guarded_job_leaves_no_trace_and_others_commit() {
        let (writer, dir) = writer();
        let failing: BoxedJob<()> = (
            true,
            Box::new(|c| {
                insert(c)?;
                Err(StoreError::OrganizationNotFound)
            }),
        );
        let results = in_one_batch(
            &writer,
            vec![(true, Box::new(insert)), failing, (false, Box::new(insert))],
        )
        .await;
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(matches!(results[1], Err(StoreError::OrganizationNotFound)));
        assert_eq!(count(&dir), 2);
    }

    #[tokio::test]
    async fn an_unguarded_job_failing_after_writing_rolls_back_its_batch() {
        let (writer, dir) = writer();
        let poisoned: BoxedJob<()> = (
            false,
            Box::new(|c| {
                insert(c)?;
                Err(StoreError::Internal("disk on fire".into()))
            }),
        );
        let results = in_one_batch(
            &writer,
            vec![
                (true, Box::new(insert)),
                poisoned,
                (false, Box::new(insert)),
            ],
        )
        .await;
        assert!(results.iter().all(Result::is_err), "{results:?}");
        assert_eq!(count(&dir), 0, "nothing of the batch was committed");
        // The writer keeps working afterwards.
        writer
            .write_unguarded(insert)
            .await
            .expect("next batch commits");
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test]
    async fn an_unguarded_job_failing_before_writing_spares_its_batch() {
        let (writer, dir) = writer();
        let clean_failure: BoxedJob<()> =
            (false, Box::new(|_| Err(StoreError::OrganizationNotFound)));
        let results = in_one_batch(
            &writer,
            vec![
                (false, Box::new(insert)),
                clean_failure,
                (false, Box::new(insert)),
            ],
        )
        .await;
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(count(&dir), 2);
    }
}
