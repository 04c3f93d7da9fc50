//! Deletes idempotency records once their 24-hour replay window has passed. Expired records
//! are already ignored by lookups; this only reclaims their space.

use std::time::Duration;

use tokio::sync::watch;

use crate::services::idempotency::IdempotencyService;
use crate::services::jobs::JobService;

pub async fn run(
    idempotency: IdempotencyService,
    jobs: JobService,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::every_claimed(&jobs, "idempotency_cleanup", interval, shutdown, || async {
        match idempotency.purge_expired().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired idempotency records"),
            Err(error) => tracing::warn!(%error, "idempotency cleanup failed; will retry"),
        }
    })
    .await
}
