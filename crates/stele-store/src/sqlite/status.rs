//! [`StatusStore`] for SQLite: the read connections and the writer's queue.

use super::SqliteStore;
use crate::prelude::*;

impl StatusStore for SqliteStore {
    fn pool_status(&self) -> PoolStatus {
        let (in_use, idle) = self.readers.usage();
        PoolStatus {
            max_connections: None,
            in_use_connections: in_use,
            idle_connections: idle,
            // A read never waits for a connection: it opens one when none is idle.
            waiting_requests: 0,
            queued_writes: self.writer.queued(),
        }
    }
}
