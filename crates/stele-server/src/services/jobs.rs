//! Background jobs shared by every process on one database: claiming a job's run, so a
//! job runs about once per interval however many replicas tick.

use std::sync::Arc;

use stele_core::timestamp::now_millis;
use stele_store::Store;

use crate::services::ServiceError;

#[derive(Clone)]
pub struct JobService {
    store: Arc<dyn Store>,
}

impl JobService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Whether this process may run `job` now: no process has run it within the last
    /// `min_gap_ms` (see `Store::claim_job_run`).
    pub async fn claim_run(&self, job: &str, min_gap_ms: i64) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .claim_job_run(job, now_millis(), min_gap_ms)
            .await?)
    }
}
