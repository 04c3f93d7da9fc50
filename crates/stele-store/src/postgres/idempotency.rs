//! Idempotency records in PostgreSQL: claiming a key in the same transaction as the write.

use super::database_error;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::encoding::idempotency_record;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// Claims `(scope, key)` for `record` unless an unexpired record holds it; returns the
/// holder in that case. A concurrent claim of the same key by another transaction (another
/// replica) waits for that transaction and then sees its record. The outer error is the
/// database's (which the appender may retry); the inner one is a damaged stored record.
pub(super) async fn claim_idempotency_key(
    client: &impl GenericClient,
    record: &IdempotencyRecord,
) -> Result<StoreResult<Option<IdempotencyRecord>>, tokio_postgres::Error> {
    let claim = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, status = excluded.status,
                 body = excluded.body, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= $7",
        )
        .await?;
    let claimed = client
        .execute(
            &claim,
            &[
                &record.scope,
                &record.key,
                &record.fingerprint.as_slice(),
                &i32::from(record.status),
                &record.body,
                &record.created_at,
                &(record.created_at - REPLAY_WINDOW_MS),
            ],
        )
        .await?;
    if claimed == 1 {
        return Ok(Ok(None));
    }
    find_idempotency(client, &record.scope, &record.key, record.created_at).await
}

/// Claims many distinct keys in one statement (the appender's batch), in the order given,
/// which is the lock order (`ORDER BY` the array position, rather than relying on the order
/// in which UNNEST happens to produce rows). Returns, for each record, the unexpired record that held its key
/// (`None`: claimed now). The keys must be distinct: PostgreSQL refuses one statement that
/// touches a row twice. Keys found taken (rare) are read back one by one.
pub(super) async fn claim_idempotency_keys(
    client: &impl GenericClient,
    records: &[&IdempotencyRecord],
) -> Result<StoreResult<Vec<Option<IdempotencyRecord>>>, tokio_postgres::Error> {
    let claim = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             SELECT scope, key, fingerprint, status, body, created_at
             FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int4[], $5::bytea[], $6::int8[])
                  WITH ORDINALITY AS claim (scope, key, fingerprint, status, body, created_at, position)
             ORDER BY position
             ON CONFLICT (scope, key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, status = excluded.status,
                 body = excluded.body, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= excluded.created_at - $7
             RETURNING scope, key",
        )
        .await?;
    let claimed: std::collections::HashSet<(String, String)> = client
        .query(
            &claim,
            &[
                &records.iter().map(|r| r.scope.as_str()).collect::<Vec<_>>(),
                &records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
                &records
                    .iter()
                    .map(|r| r.fingerprint.as_slice())
                    .collect::<Vec<_>>(),
                &records
                    .iter()
                    .map(|r| i32::from(r.status))
                    .collect::<Vec<_>>(),
                &records
                    .iter()
                    .map(|r| r.body.as_slice())
                    .collect::<Vec<_>>(),
                &records.iter().map(|r| r.created_at).collect::<Vec<_>>(),
                &REPLAY_WINDOW_MS,
            ],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut held = Vec::with_capacity(records.len());
    for record in records {
        if claimed.contains(&(record.scope.clone(), record.key.clone())) {
            held.push(None);
            continue;
        }
        match find_idempotency(client, &record.scope, &record.key, record.created_at).await? {
            Ok(existing) => held.push(existing),
            Err(error) => return Ok(Err(error)),
        }
    }
    Ok(Ok(held))
}

pub(super) async fn find_idempotency(
    client: &impl GenericClient,
    scope: &str,
    key: &str,
    now: UnixMillis,
) -> Result<StoreResult<Option<IdempotencyRecord>>, tokio_postgres::Error> {
    let find = client
        .prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys
             WHERE scope = $1 AND key = $2 AND created_at > $3",
        )
        .await?;
    let row = client
        .query_opt(&find, &[&scope, &key, &(now - REPLAY_WINDOW_MS)])
        .await?;
    Ok(row
        .map(|row| {
            idempotency_record(
                scope,
                key,
                row.get(0),
                i64::from(row.get::<_, i32>(1)),
                row.get(2),
                row.get(3),
            )
        })
        .transpose())
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn find_idempotency_record(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let client = self.client().await?;
        find_idempotency(&client, scope, key, now)
            .await
            .map_err(database_error)?
    }

    async fn save_idempotency_record(
        &self,
        record: IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        let client = self.client().await?;
        Ok(claim_idempotency_key(&client, &record)
            .await
            .map_err(database_error)??
            .unwrap_or(record))
    }

    async fn purge_idempotency_records(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE created_at <= $1",
            &[&cutoff],
        )
        .await
    }
}
