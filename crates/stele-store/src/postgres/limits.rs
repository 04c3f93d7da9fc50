//! Rate-limit windows and the sign-in throttle in PostgreSQL: each call is one statement,
//! so replicas sharing the database decide together.

use super::{database_error, query_in, PostgresStore};
use crate::prelude::*;
use async_trait::async_trait;
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl LimitStore for PostgresStore {
    async fn take_from_window(
        &self,
        subject: &str,
        window_start: UnixMillis,
        want: u32,
        limit: u32,
    ) -> StoreResult<u32> {
        // The row lock taken by the upsert serialises takes of one window across replicas;
        // SET reads the old row, so `granted` is exactly what this take added. The commit
        // does not wait for the disk (7 ms → about 1 ms here): a crash can lose only the
        // latest takes of a one-minute window, which can let a client make a few more
        // requests in that window, never refuses one wrongly.
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        transaction
            .batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(database_error)?;
        let rows = query_in(
                &transaction,
                "WITH forgotten AS (
                     DELETE FROM rate_limit_windows WHERE subject = $1 AND window_start < $2::bigint
                 )
                 INSERT INTO rate_limit_windows AS w (subject, window_start, used, granted)
                 VALUES ($1, $2::bigint, LEAST($3::bigint, $4::bigint), LEAST($3::bigint, $4::bigint))
                 ON CONFLICT (subject, window_start) DO UPDATE
                 SET granted = GREATEST(LEAST(w.used + $3, $4) - w.used, 0),
                     used = GREATEST(LEAST(w.used + $3, $4), w.used)
                 RETURNING granted",
                &[&subject, &window_start, &i64::from(want), &i64::from(limit)],
            )
            .await?;
        transaction.commit().await.map_err(database_error)?;
        let granted: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(u32::try_from(granted).unwrap_or(0))
    }

    async fn begin_sign_in(
        &self,
        username: &str,
        now: UnixMillis,
        hold_until: UnixMillis,
    ) -> StoreResult<Option<UnixMillis>> {
        let claimed = self
            .execute(
                "INSERT INTO sign_in_throttle AS t (username, blocked_until) VALUES ($1, $3)
                 ON CONFLICT (username) DO UPDATE SET blocked_until = $3
                 WHERE t.blocked_until <= $2",
                &[&username, &now, &hold_until],
            )
            .await?;
        if claimed == 1 {
            return Ok(None);
        }
        let row = self
            .query_opt(
                "SELECT blocked_until FROM sign_in_throttle WHERE username = $1",
                &[&username],
            )
            .await?;
        Ok(Some(row.map_or(now, |row| row.get(0))))
    }

    async fn record_sign_in_failure(
        &self,
        username: &str,
        now: UnixMillis,
        forget_before: UnixMillis,
    ) -> StoreResult<u32> {
        let row = self
            .query_opt(
                "WITH forgotten AS (
                     DELETE FROM sign_in_throttle
                     WHERE username <> $1 AND last_failure_at < $3 AND blocked_until < $2
                 )
                 INSERT INTO sign_in_throttle AS t (username, failures, last_failure_at)
                 VALUES ($1, 1, $2)
                 ON CONFLICT (username) DO UPDATE
                 SET failures = CASE WHEN t.last_failure_at < $3 THEN 1 ELSE t.failures + 1 END,
                     last_failure_at = $2
                 RETURNING failures",
                &[&username, &now, &forget_before],
            )
            .await?;
        let failures: i64 = row.map_or(1, |row| row.get(0));
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    async fn block_sign_in(&self, username: &str, until: UnixMillis) -> StoreResult<()> {
        self.execute(
            "UPDATE sign_in_throttle SET blocked_until = $2 WHERE username = $1",
            &[&username, &until],
        )
        .await?;
        Ok(())
    }

    async fn clear_sign_in(&self, username: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sign_in_throttle WHERE username = $1",
            &[&username],
        )
        .await?;
        Ok(())
    }
}
