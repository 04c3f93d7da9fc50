//! Deletes idempotency records once their 24-hour replay window has passed. Expired records
//! are already ignored by lookups; this only reclaims their space.

use std::time::Duration;

use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::timestamp::now_millis;
use tokio::sync::watch;

use crate::state::AppState;

pub async fn run(state: AppState, interval: Duration, shutdown: watch::Receiver<bool>) {
    super::every_claimed(
        &state,
        "idempotency_cleanup",
        interval,
        shutdown,
        || async {
            match state
                .store
                .purge_idempotency_records(now_millis() - REPLAY_WINDOW_MS)
                .await
            {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired idempotency records"),
                Err(error) => tracing::warn!(%error, "idempotency cleanup failed; will retry"),
            }
        },
    )
    .await
}
