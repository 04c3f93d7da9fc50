//! Signs checkpoints shortly after new events arrive: every interval, each organization
//! whose tree has grown past its newest checkpoint gets a new one.

use std::time::Duration;

use tokio::sync::watch;

use crate::services::transparency::checkpoint_now;
use crate::state::AppState;

pub async fn run(state: AppState, interval: Duration, shutdown: watch::Receiver<bool>) {
    super::every_claimed(&state, "checkpoints", interval, shutdown, || async {
        let logs = match state.store.uncheckpointed_logs().await {
            Ok(logs) => logs,
            Err(error) => {
                tracing::warn!(%error, "listing logs to checkpoint failed; will retry");
                return;
            }
        };
        for log in logs {
            if let Err(error) = checkpoint_now(&state, &log.organization_id).await {
                tracing::warn!(organization_id = %log.organization_id, %error, "signing a checkpoint failed; will retry");
            }
        }
    })
    .await
}
