//! Runs a retention pass every interval (see `services::retention`).

use std::time::Duration;

use tokio::sync::watch;

use crate::services::retention::purge_expired;
use crate::state::AppState;

pub async fn run(state: AppState, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(error) = purge_expired(&state).await {
            tracing::warn!(%error, "retention pass failed; will retry next interval");
        }
    }
}
