//! Idempotency records outside a write's own transaction: looking up a key's first
//! response, recording responses of requests that store nothing themselves, and forgetting
//! records once their replay window has passed.

use std::sync::Arc;

use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::model::IdempotencyRecord;
use stele_core::timestamp::{now_millis, UnixMillis};
use stele_store::Store;

use crate::services::ServiceError;

#[derive(Clone)]
pub struct IdempotencyService {
    store: Arc<dyn Store>,
}

impl IdempotencyService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The response recorded for `key` of `scope` that is still replayable at `now`.
    pub async fn find(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<IdempotencyRecord>, ServiceError> {
        Ok(self.store.find_idempotency_record(scope, key, now).await?)
    }

    /// Records `record` unless its key already holds one; returns the record in force.
    pub async fn save(&self, record: IdempotencyRecord) -> Result<IdempotencyRecord, ServiceError> {
        Ok(self.store.save_idempotency_record(record).await?)
    }

    /// Deletes records past their 24-hour replay window; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        Ok(self
            .store
            .purge_idempotency_records(now_millis() - REPLAY_WINDOW_MS)
            .await?)
    }
}
