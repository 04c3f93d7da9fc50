//! Idempotency records in SQLite: claiming a key in the same transaction as the write.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::encoding::idempotency_record;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// Claims `(scope, key)` for `record` unless an unexpired record holds it; returns the
/// holder in that case.
pub(super) fn claim_idempotency_key(
    connection: &Connection,
    record: &IdempotencyRecord,
) -> StoreResult<Option<IdempotencyRecord>> {
    let claimed = connection
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, status = excluded.status,
                 body = excluded.body, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= ?7",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                record.scope,
                record.key,
                record.fingerprint.as_slice(),
                record.status,
                record.body,
                record.created_at,
                record.created_at - REPLAY_WINDOW_MS,
            ])
        })
        .map_err(database_error)?;
    if claimed == 1 {
        return Ok(None);
    }
    find_idempotency(connection, &record.scope, &record.key, record.created_at)
}

pub(super) fn find_idempotency(
    connection: &Connection,
    scope: &str,
    key: &str,
    now: UnixMillis,
) -> StoreResult<Option<IdempotencyRecord>> {
    type RecordRow = (Vec<u8>, i64, Vec<u8>, i64);
    let row: Option<RecordRow> = connection
        .prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys
             WHERE scope = ?1 AND key = ?2 AND created_at > ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![scope, key, now - REPLAY_WINDOW_MS], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()
        })
        .map_err(database_error)?;
    row.map(|(fingerprint, status, body, created_at)| {
        idempotency_record(scope, key, &fingerprint, status, body, created_at)
    })
    .transpose()
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn find_idempotency_record(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.readers
            .read(move |connection| find_idempotency(connection, &scope, &key, now))
            .await
    }

    async fn save_idempotency_record(
        &self,
        record: IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        self.writer
            .write(move |connection| {
                Ok(claim_idempotency_key(connection, &record)?.unwrap_or(record))
            })
            .await
    }

    async fn purge_idempotency_records(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM idempotency_keys WHERE created_at <= ?1",
                        [cutoff],
                    )
                    .map(|deleted| deleted as u64)
                    .map_err(database_error)
            })
            .await
    }
}
