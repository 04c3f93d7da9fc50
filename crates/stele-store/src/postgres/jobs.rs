//! Background-job coordination in PostgreSQL.

use super::PostgresStore;
use crate::prelude::*;
use async_trait::async_trait;
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl JobStore for PostgresStore {
    async fn claim_job_run(
        &self,
        job: &str,
        now: UnixMillis,
        interval_ms: i64,
    ) -> StoreResult<bool> {
        // The row lock makes this one decision across replicas: the first replica to ask
        // once the interval has passed moves `last_started_at` and runs the job; the others
        // see the moved value and skip it.
        let claimed = self
            .execute(
                "INSERT INTO job_runs (name, last_started_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET last_started_at = excluded.last_started_at
                 WHERE job_runs.last_started_at <= $2 - $3",
                &[&job, &now, &interval_ms],
            )
            .await?;
        Ok(claimed == 1)
    }
}
