//! Long-running background loops. Each takes the services it needs and stops when the
//! shutdown signal fires; the composition root (`crate::app`) starts them.

pub mod checkpoints;
pub mod idempotency_cleanup;
pub mod log_streams;
pub mod quarantine_expiry;
pub mod retention;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::services::jobs::JobService;

/// Runs `pass` once per `interval` (the first right away) until `shutdown` fires.
pub async fn every<F, Pass>(interval: Duration, mut shutdown: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Pass,
    Pass: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => pass().await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs `pass` as job `job` about once per `interval` across every process sharing the
/// database: each process ticks on its own, and a tick runs the pass only if it claims the
/// job's run (see [`JobService::claim_run`]). The claim accepts a run a tenth of
/// an interval early, so a process's own next tick, which may land a few milliseconds
/// earlier relative to its previous claim, is not mistaken for a second run.
pub async fn every_claimed<F, Pass>(
    jobs: &JobService,
    job: &str,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Pass,
    Pass: Future<Output = ()>,
{
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    every(interval, shutdown, || {
        let claim = jobs.claim_run(job, interval_ms - interval_ms / 10);
        let run = pass();
        async move {
            match claim.await {
                Ok(true) => run.await,
                Ok(false) => tracing::debug!(job, "another process ran this job; skipping"),
                Err(error) => tracing::warn!(job, %error, "cannot claim the job; will retry"),
            }
        }
    })
    .await
}
