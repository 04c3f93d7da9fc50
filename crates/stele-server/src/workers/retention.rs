//! Runs a retention pass every interval (see `services::retention`), and thins old
//! checkpoints (see `TransparencyService::thin_old_checkpoints`).

use std::time::Duration;

use tokio::sync::watch;

use crate::services::jobs::JobService;
use crate::services::retention::RetentionService;
use crate::services::transparency::TransparencyService;

pub async fn run(
    retention: RetentionService,
    transparency: TransparencyService,
    jobs: JobService,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::every_claimed(&jobs, "retention", interval, shutdown, || async {
        if let Err(error) = retention.purge_expired().await {
            tracing::warn!(%error, "retention pass failed; will retry next interval");
        }
        match transparency.thin_old_checkpoints().await {
            Ok(0) => {}
            Ok(thinned) => tracing::info!(thinned, "thinned checkpoints older than a day"),
            Err(error) => tracing::warn!(%error, "thinning checkpoints failed; will retry"),
        }
    })
    .await
}
