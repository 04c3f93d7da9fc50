//! Rate-limit windows and the sign-in throttle in SQLite: each call is one write on the
//! writer thread, so it is decided atomically like on PostgreSQL.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl LimitStore for SqliteStore {
    async fn take_from_window(
        &self,
        subject: &str,
        window_start: UnixMillis,
        want: u32,
        limit: u32,
    ) -> StoreResult<u32> {
        let subject = subject.to_owned();
        let (want, limit) = (i64::from(want), i64::from(limit));
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM rate_limit_windows WHERE subject = ?1 AND window_start < ?2",
                        params![subject, window_start],
                    )
                    .map_err(database_error)?;
                // SET reads the old row, so `granted` is exactly what this take added.
                let granted: i64 = connection
                    .query_row(
                        "INSERT INTO rate_limit_windows AS w (subject, window_start, used, granted)
                         VALUES (?1, ?2, min(?3, ?4), min(?3, ?4))
                         ON CONFLICT (subject, window_start) DO UPDATE
                         SET granted = max(min(w.used + ?3, ?4) - w.used, 0),
                             used = max(min(w.used + ?3, ?4), w.used)
                         RETURNING granted",
                        params![subject, window_start, want, limit],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                Ok(u32::try_from(granted).unwrap_or(0))
            })
            .await
    }

    async fn begin_sign_in(
        &self,
        username: &str,
        now: UnixMillis,
        hold_until: UnixMillis,
    ) -> StoreResult<Option<UnixMillis>> {
        let username = username.to_owned();
        self.writer
            .write(move |connection| {
                let claimed = connection
                    .execute(
                        "INSERT INTO sign_in_throttle AS t (username, blocked_until) VALUES (?1, ?3)
                         ON CONFLICT (username) DO UPDATE SET blocked_until = ?3
                         WHERE t.blocked_until <= ?2",
                        params![username, now, hold_until],
                    )
                    .map_err(database_error)?;
                if claimed == 1 {
                    return Ok(None);
                }
                let until: Option<i64> = connection
                    .query_row(
                        "SELECT blocked_until FROM sign_in_throttle WHERE username = ?1",
                        [&username],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(database_error)?;
                Ok(Some(until.unwrap_or(now)))
            })
            .await
    }

    async fn record_sign_in_failure(
        &self,
        username: &str,
        now: UnixMillis,
        forget_before: UnixMillis,
    ) -> StoreResult<u32> {
        let username = username.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sign_in_throttle
                         WHERE username <> ?1 AND last_failure_at < ?3 AND blocked_until < ?2",
                        params![username, now, forget_before],
                    )
                    .map_err(database_error)?;
                let failures: i64 = connection
                    .query_row(
                        "INSERT INTO sign_in_throttle AS t (username, failures, last_failure_at)
                         VALUES (?1, 1, ?2)
                         ON CONFLICT (username) DO UPDATE
                         SET failures = CASE WHEN t.last_failure_at < ?3 THEN 1 ELSE t.failures + 1 END,
                             last_failure_at = ?2
                         RETURNING failures",
                        params![username, now, forget_before],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                Ok(u32::try_from(failures).unwrap_or(u32::MAX))
            })
            .await
    }

    async fn block_sign_in(&self, username: &str, until: UnixMillis) -> StoreResult<()> {
        let username = username.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE sign_in_throttle SET blocked_until = ?2 WHERE username = ?1",
                        params![username, until],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }

    async fn clear_sign_in(&self, username: &str) -> StoreResult<()> {
        let username = username.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sign_in_throttle WHERE username = ?1",
                        [&username],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }
}
