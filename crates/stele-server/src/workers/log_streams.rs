//! Log stream delivery: every poll interval this process leases the streams that have
//! events to deliver (on PostgreSQL, a stream is leased to one replica at a time, and a
//! killed replica's leases expire and are taken over) and delivers each in a task of its
//! own until it is caught up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stele_core::ids::IdKind;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::services::log_streams::LogStreamService;

/// Most streams newly leased per pass (the streams already being delivered come on top).
pub const LEASE_BATCH: u32 = 64;
/// Most streams one process delivers at once: each delivery holds a task and, while it
/// reads or records, a database connection. Streams beyond it wait for a later pass (or
/// another replica).
pub const MAX_DELIVERIES: usize = 256;
/// How long shutdown waits for deliveries in flight before leaving them (their leases
/// expire and the batches are delivered again: at least once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(streams: LogStreamService, interval: Duration, shutdown: watch::Receiver<bool>) {
    // A fresh owner name per process: a restarted process never mistakes a lease of its
    // previous life for its own.
    let owner = format!("{}{}", IdKind::LogStream.prefix(), ulid_suffix());
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let tasks = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let pass_shutdown = shutdown.clone();
    super::every(interval, shutdown, || {
        let streams = streams.clone();
        let owner = owner.clone();
        let running = Arc::clone(&running);
        let tasks = Arc::clone(&tasks);
        let shutdown = pass_shutdown.clone();
        async move {
            // The streams this process is delivering qualify again (their lease is its
            // own), so they count on top of the batch: with a fixed limit, LEASE_BATCH
            // streams that always have events would keep every other stream from ever
            // being leased while ingest runs.
            let delivering = running.lock().map_or(0, |running| running.len());
            let fresh = (LEASE_BATCH as usize).min(MAX_DELIVERIES.saturating_sub(delivering));
            if fresh == 0 {
                return;
            }
            let limit = u32::try_from(delivering + fresh).unwrap_or(u32::MAX);
            let leased = match streams.lease_due(&owner, limit).await {
                Ok(leased) => leased,
                Err(error) => {
                    tracing::warn!(%error, "cannot lease log streams; will retry");
                    return;
                }
            };
            let mut tasks = tasks.lock().await;
            while tasks.try_join_next().is_some() {}
            for stream in leased {
                let start = running
                    .lock()
                    .map(|mut running| {
                        running.len() < MAX_DELIVERIES && running.insert(stream.id.clone())
                    })
                    .unwrap_or(false);
                if !start {
                    // Being delivered already, or over the cap: a stream leased but not
                    // started is released at once, so another replica can take it.
                    if !running
                        .lock()
                        .is_ok_and(|running| running.contains(&stream.id))
                    {
                        streams.release_lease(&stream, &owner).await;
                    }
                    continue;
                }
                let (streams, owner, running, shutdown) = (
                    streams.clone(),
                    owner.clone(),
                    Arc::clone(&running),
                    shutdown.clone(),
                );
                tasks.spawn(async move {
                    let id = stream.id.clone();
                    streams.deliver(stream, &owner, shutdown).await;
                    if let Ok(mut running) = running.lock() {
                        running.remove(&id);
                    }
                });
            }
        }
    })
    .await;
    let mut tasks = tasks.lock().await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// The ULID part of a fresh id (a unique owner name for this process).
fn ulid_suffix() -> String {
    let id = IdKind::LogStream.generate();
    id[IdKind::LogStream.prefix().len()..].to_owned()
}
