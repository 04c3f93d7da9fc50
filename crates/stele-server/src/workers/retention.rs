//! Runs a retention pass every interval (see `services::retention`), and thins old
//! checkpoints (see `services::transparency::thin_old_checkpoints`).

use std::time::Duration;

use tokio::sync::watch;

use crate::services::retention::purge_expired;
use crate::services::transparency::thin_old_checkpoints;
use crate::state::AppState;

pub async fn run(state: AppState, interval: Duration, shutdown: watch::Receiver<bool>) {
    super::every_claimed(&state, "retention", interval, shutdown, || async {
        if let Err(error) = purge_expired(&state).await {
            tracing::warn!(%error, "retention pass failed; will retry next interval");
        }
        match thin_old_checkpoints(state.store.as_ref()).await {
            Ok(0) => {}
            Ok(thinned) => tracing::info!(thinned, "thinned checkpoints older than a day"),
            Err(error) => tracing::warn!(%error, "thinning checkpoints failed; will retry"),
        }
    })
    .await
}
