//! [`StatusStore`] for PostgreSQL: the connection pool and the appender's queue.

use super::PostgresStore;
use crate::prelude::*;

impl StatusStore for PostgresStore {
    fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_connections: Some(status.max_size),
            in_use_connections: status.size.saturating_sub(status.available),
            idle_connections: status.available,
            waiting_requests: status.waiting,
            queued_writes: self.appender.queued(),
        }
    }
}
