//! Runs a retention pass every interval (see `services::retention`).

use std::time::Duration;

use tokio::sync::watch;

use crate::services::retention::purge_expired;
use crate::state::AppState;

pub async fn run(state: AppState, interval: Duration, shutdown: watch::Receiver<bool>) {
    super::every(interval, shutdown, || async {
        if let Err(error) = purge_expired(&state).await {
            tracing::warn!(%error, "retention pass failed; will retry next interval");
        }
    })
    .await
}
