//! Long-running background loops. Each stops when the shutdown signal fires.

pub mod checkpoints;
pub mod idempotency_cleanup;
pub mod retention;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

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
