//! Deletes quarantined events once they are older than the quarantine retention period
//! (`--quarantine-retention-days`, 30 by default).

use std::time::Duration;

use stele_core::timestamp::now_millis;
use tokio::sync::watch;

use crate::services::jobs::JobService;
use crate::services::quarantine::QuarantineService;

pub async fn run(
    quarantine: QuarantineService,
    jobs: JobService,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::every_claimed(&jobs, "quarantine_expiry", interval, shutdown, || async {
        match quarantine.purge_expired(now_millis()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired quarantined events"),
            Err(error) => tracing::warn!(%error, "quarantine expiry failed; will retry"),
        }
    })
    .await
}
