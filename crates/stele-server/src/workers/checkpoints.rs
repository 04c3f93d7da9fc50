//! Signs checkpoints shortly after new events arrive: every interval, each organization
//! whose tree has grown past its newest checkpoint gets a new one.

use std::time::Duration;

use tokio::sync::watch;

use crate::services::jobs::JobService;
use crate::services::transparency::TransparencyService;

pub async fn run(
    transparency: TransparencyService,
    jobs: JobService,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    super::every_claimed(&jobs, "checkpoints", interval, shutdown, || async {
        let logs = match transparency.uncheckpointed_logs().await {
            Ok(logs) => logs,
            Err(error) => {
                tracing::warn!(%error, "listing logs to checkpoint failed; will retry");
                return;
            }
        };
        for log in logs {
            let signed = transparency.checkpoint_now(&log.organization_id).await;
            crate::metrics::record_checkpoint(signed.is_ok());
            if let Err(error) = signed {
                tracing::warn!(organization_id = %log.organization_id, %error, "signing a checkpoint failed; will retry");
            }
        }
    })
    .await
}
