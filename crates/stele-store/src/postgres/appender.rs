//! Event appends with group commit, safe across replicas.
//!
//! Every append to one organization must take the next sequence number and chain to the
//! previous hash, whichever replica it reaches. The organization's `chain_heads` row is
//! that point of agreement: a transaction locks it (`FOR UPDATE`), appends, and moves it.
//!
//! A transaction per event would pay a commit (a WAL flush) and several round trips per
//! event, and would hold the head lock across its own commit, so one busy organization
//! would manage only one event per flush. Instead each process queues appends and a single
//! task runs everything queued (up to [`MAX_BATCH`]) in one transaction: it locks the heads
//! of the batch's organizations, claims the idempotency keys, inserts all events and
//! targets with one multi-row statement each, moves the heads, and commits once. While a
//! batch commits, the next one accumulates, so throughput grows with concurrency.
//!
//! Locks are always taken in the same order — heads sorted by organization id, then keys
//! sorted by (scope, key) — so two replicas' batches wait for each other but never
//! deadlock. Should PostgreSQL still report a deadlock or serialization failure, the batch
//! is retried from scratch, which is safe because nothing of it was committed.
//!
//! A job is a group of events (one for `POST /audit_logs/events`, up to a thousand for a
//! batch request); a group is never split across transactions, so it commits at once.
//! A batch takes whole groups until it holds [`MAX_BATCH`] events or more.
//!
//! Every check that can reject one job (unknown organization, key already used) happens
//! before any write, and writes nothing. A database error after writing rolls the whole
//! batch back (never a partial write); its jobs are then run one at a time, so only the
//! job at fault reports the error.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Pool;
use stele_core::chain::{link, ChainHash};
use stele_core::timestamp::now_millis;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;

use super::idempotency::{claim_idempotency_key, claim_idempotency_keys};
use super::pool_error;
use crate::error::describe_postgres as describe;
use crate::shared::encoding::{hash_from, PreparedEvent};
use crate::{StoreError, StoreResult};
use stele_core::model::{AppendedEvent, IdempotencyRecord, Idempotent, NewEvent};

const MAX_BATCH: usize = 512;
const QUEUE_CAPACITY: usize = 8192;
const MAX_ATTEMPTS: usize = 5;

type Outcome = StoreResult<Idempotent<AppendedEvent>>;

/// One event of a group, its record encoded on the caller's task (the append task runs
/// one batch at a time, and holds its organizations' head locks while it does).
struct AppendItem {
    prepared: PreparedEvent,
    idempotency: Option<IdempotencyRecord>,
}

/// A group of events that commit together, and who waits for their outcomes.
struct AppendJob {
    items: Vec<AppendItem>,
    reply: oneshot::Sender<StoreResult<Vec<Outcome>>>,
}

#[derive(Clone)]
pub(crate) struct Appender {
    queue: mpsc::Sender<AppendJob>,
}

impl Appender {
    /// Appends waiting for the next batch.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    pub(crate) fn start(pool: Pool) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(append_loop(pool, receiver));
        Self { queue }
    }

    pub(crate) async fn append(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> Outcome {
        self.append_group(vec![(event, idempotency)])
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Internal("append job did not run".into())))
    }

    /// Appends `events` in one transaction; each has its own outcome.
    pub(crate) async fn append_group(
        &self,
        events: Vec<(NewEvent, Option<IdempotencyRecord>)>,
    ) -> StoreResult<Vec<Outcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let items = events
            .into_iter()
            .map(|(event, idempotency)| {
                Ok(AppendItem {
                    prepared: PreparedEvent::new(event)?,
                    idempotency,
                })
            })
            .collect::<StoreResult<_>>()?;
        self.queue
            .send(AppendJob { items, reply })
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }
}

async fn append_loop(pool: Pool, mut receiver: mpsc::Receiver<AppendJob>) {
    let mut jobs: Vec<AppendJob> = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut events = first.items.len();
        jobs.push(first);
        while events < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    events += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut groups = Vec::with_capacity(jobs.len());
        let mut batch: Vec<AppendItem> = Vec::with_capacity(events);
        for job in jobs.drain(..) {
            groups.push((job.items.len(), job.reply));
            batch.extend(job.items);
        }
        let mut committed = true;
        let results: Vec<StoreResult<Vec<Outcome>>> = match run_with_retries(&pool, &batch).await {
            Ok(outcomes) => split_by_group(outcomes, &groups),
            // An error PostgreSQL reports that is not a conflict may come from one job's
            // data (which the checks before writing should have refused). Rather than fail
            // every client in the batch, each group is run alone, so only that one fails.
            Err(BatchError::Postgres(error))
                if groups.len() > 1 && error.as_db_error().is_some() =>
            {
                tracing::warn!(error = %describe(&error), jobs = groups.len(), "append batch failed; running its jobs one by one");
                committed = false;
                let mut results = Vec::with_capacity(groups.len());
                let mut start = 0;
                for (size, _) in &groups {
                    let group = &batch[start..start + size];
                    start += size;
                    results.push(
                        run_with_retries(&pool, group)
                            .await
                            .map_err(BatchError::into_store_error),
                    );
                }
                results
            }
            Err(error) => {
                tracing::warn!(%error, jobs = groups.len(), "append batch failed");
                committed = false;
                let error = error.into_store_error();
                groups.iter().map(|_| Err(error.clone())).collect()
            }
        };
        crate::telemetry::record_group_commit(
            crate::telemetry::POSTGRES,
            events,
            started.elapsed(),
            committed,
        );
        tracing::trace!(jobs = groups.len(), events, elapsed = ?started.elapsed(), "append batch");
        for ((_, reply), result) in groups.into_iter().zip(results) {
            // The requester may have gone away (client disconnected); the write stands.
            let _ = reply.send(result);
        }
    }
}

/// Splits a batch's outcomes back into its groups (`groups` holds each one's size).
fn split_by_group<R>(
    outcomes: Vec<Outcome>,
    groups: &[(usize, R)],
) -> Vec<StoreResult<Vec<Outcome>>> {
    let mut outcomes = outcomes.into_iter();
    groups
        .iter()
        .map(|(size, _)| {
            let group: Vec<Outcome> = outcomes.by_ref().take(*size).collect();
            if group.len() == *size {
                Ok(group)
            } else {
                Err(StoreError::Internal("append job did not run".into()))
            }
        })
        .collect()
}

/// Runs `jobs` as one transaction, again from scratch after a deadlock or serialization
/// failure (nothing of a failed attempt was committed).
async fn run_with_retries(pool: &Pool, jobs: &[AppendItem]) -> Result<Vec<Outcome>, BatchError> {
    let mut attempt = 1;
    loop {
        match run_batch(pool, jobs).await {
            Err(error) if attempt < MAX_ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(%error, attempt, "append batch conflicted; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Why a batch did not commit: a database error (possibly worth retrying) or a store error.
#[derive(Debug)]
enum BatchError {
    Postgres(tokio_postgres::Error),
    Store(StoreError),
}

impl BatchError {
    fn into_store_error(self) -> StoreError {
        match self {
            BatchError::Postgres(error) => StoreError::postgres("appending events", error),
            BatchError::Store(error) => error,
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Postgres(error) => f.write_str(&describe(error)),
            BatchError::Store(error) => write!(f, "{error}"),
        }
    }
}

fn is_retryable(error: &BatchError) -> bool {
    matches!(error, BatchError::Postgres(error)
        if matches!(error.code(), Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE))
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(error: tokio_postgres::Error) -> Self {
        BatchError::Postgres(error)
    }
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        BatchError::Store(error)
    }
}

/// One event's row values, computed once its sequence is known.
struct EventRow {
    sequence: i64,
    received_at: i64,
    canonical: Vec<u8>,
    hash: ChainHash,
}

async fn run_batch(pool: &Pool, batch: &[AppendItem]) -> Result<Vec<Outcome>, BatchError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let transaction = client.transaction().await?;

    // 1. Lock the heads, sorted by organization id (the lock order every replica uses).
    let organizations: Vec<&str> = batch
        .iter()
        .map(|job| job.prepared.event.organization_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let lock_heads = transaction
        .prepare_cached(
            "SELECT organization_id, sequence, hash FROM chain_heads
             WHERE organization_id = ANY($1) ORDER BY organization_id FOR UPDATE",
        )
        .await?;
    let mut heads: HashMap<String, (i64, ChainHash)> = HashMap::new();
    for row in transaction.query(&lock_heads, &[&organizations]).await? {
        let organization: String = row.get(0);
        let sequence: i64 = row.get(1);
        let hash = hash_from(
            row.get(2),
            &organization,
            Some(sequence),
            "the chain head's hash",
        )?;
        heads.insert(organization, (sequence, hash));
    }

    // 2. Claim idempotency keys, sorted by (scope, key). Statements sent together are
    // pipelined on the connection and still run in the order they were sent.
    let mut outcomes: Vec<Option<Outcome>> = batch
        .iter()
        .map(|job| {
            (!heads.contains_key(job.prepared.event.organization_id.as_str()))
                .then_some(Err(StoreError::OrganizationNotFound))
        })
        .collect();
    let mut claims: Vec<(usize, &IdempotencyRecord)> = batch
        .iter()
        .enumerate()
        .filter(|(index, _)| outcomes[*index].is_none())
        .filter_map(|(index, job)| job.idempotency.as_ref().map(|record| (index, record)))
        .collect();
    claims.sort_by(|(a_index, a), (b_index, b)| {
        (&a.scope, &a.key, a_index).cmp(&(&b.scope, &b.key, b_index))
    });
    // Claims are made one after another when one key appears twice in the batch, so the
    // second sees the first's row; otherwise all of them in one statement.
    let distinct = claims
        .iter()
        .map(|(_, record)| (&record.scope, &record.key))
        .collect::<BTreeSet<_>>()
        .len();
    let held: Vec<Option<IdempotencyRecord>> = if claims.is_empty() {
        Vec::new()
    } else if distinct == claims.len() {
        let records: Vec<&IdempotencyRecord> = claims.iter().map(|(_, record)| *record).collect();
        claim_idempotency_keys(&transaction, &records).await??
    } else {
        let mut held = Vec::with_capacity(claims.len());
        for (_, record) in &claims {
            held.push(claim_idempotency_key(&transaction, record).await??);
        }
        held
    };
    for ((index, _), existing) in claims.iter().zip(held) {
        if let Some(existing) = existing {
            outcomes[*index] = Some(Ok(Idempotent::AlreadyDone(existing)));
        }
    }

    // 3. Number, hash and insert the remaining events in arrival order.
    let mut rows: Vec<Option<EventRow>> = Vec::with_capacity(batch.len());
    for (job, outcome) in batch.iter().zip(&outcomes) {
        if outcome.is_some() {
            rows.push(None);
            continue;
        }
        let Some(head) = heads.get_mut(job.prepared.event.organization_id.as_str()) else {
            rows.push(None);
            continue;
        };
        let sequence = head.0 + 1;
        let received_at = now_millis();
        let canonical = job.prepared.complete(sequence, received_at)?;
        let hash = link(&head.1, &canonical);
        *head = (sequence, hash);
        rows.push(Some(EventRow {
            sequence,
            received_at,
            canonical,
            hash,
        }));
    }
    insert_rows(&transaction, batch, &rows).await?;
    let moved: Vec<(&str, i64, Vec<u8>)> = heads
        .iter()
        .map(|(organization, (sequence, hash))| (organization.as_str(), *sequence, hash.to_vec()))
        .collect();
    let move_heads = transaction
        .prepare_cached(
            "UPDATE chain_heads h SET sequence = u.sequence, hash = u.hash
             FROM UNNEST($1::text[], $2::int8[], $3::bytea[]) AS u(organization_id, sequence, hash)
             WHERE h.organization_id = u.organization_id AND h.sequence <> u.sequence",
        )
        .await?;
    transaction
        .execute(
            &move_heads,
            &[
                &moved.iter().map(|m| m.0).collect::<Vec<_>>(),
                &moved.iter().map(|m| m.1).collect::<Vec<_>>(),
                &moved.iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
            ],
        )
        .await?;
    transaction.commit().await?;

    Ok(batch
        .iter()
        .zip(outcomes)
        .zip(rows)
        .map(|((job, outcome), row)| match (outcome, row) {
            (Some(outcome), _) => outcome,
            (None, Some(row)) => Ok(Idempotent::Done(AppendedEvent {
                id: job.prepared.event.id.clone(),
                sequence: row.sequence,
                received_at: row.received_at,
            })),
            (None, None) => Err(StoreError::Internal("append job did not run".into())),
        })
        .collect())
}

/// Inserts the batch's events and their targets, one multi-row statement each.
async fn insert_rows(
    transaction: &deadpool_postgres::Transaction<'_>,
    batch: &[AppendItem],
    rows: &[Option<EventRow>],
) -> Result<(), BatchError> {
    let mut organization_ids = Vec::new();
    let mut sequences = Vec::new();
    let mut ids = Vec::new();
    let mut actions = Vec::new();
    let mut versions = Vec::new();
    let mut actor_ids = Vec::new();
    let mut actor_names = Vec::new();
    let mut occurred_ats = Vec::new();
    let mut received_ats = Vec::new();
    let mut canonicals = Vec::new();
    let mut hashes = Vec::new();
    let (mut target_organizations, mut target_ids, mut target_sequences) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut target_positions, mut target_types) = (Vec::new(), Vec::new());
    for (job, row) in batch.iter().zip(rows) {
        let Some(row) = row else { continue };
        let new = &job.prepared.event;
        organization_ids.push(new.organization_id.as_str());
        sequences.push(row.sequence);
        ids.push(new.id.as_str());
        actions.push(new.event.action.as_str());
        versions.push(new.event.version);
        actor_ids.push(new.event.actor.id.as_str());
        actor_names.push(new.event.actor.name.as_deref());
        occurred_ats.push(new.event.occurred_at);
        received_ats.push(row.received_at);
        canonicals.push(row.canonical.as_slice());
        hashes.push(row.hash.as_slice());
        for (position, target) in new.event.targets.iter().enumerate() {
            target_organizations.push(new.organization_id.as_str());
            target_ids.push(target.id.as_str());
            target_sequences.push(row.sequence);
            target_positions.push(position as i32);
            target_types.push(target.kind.as_str());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let insert_events = transaction
        .prepare_cached(
            "INSERT INTO events (organization_id, sequence, id, action, version, actor_id, actor_name,
                                 occurred_at, received_at, canonical, hash)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[],
                                  $6::text[], $7::text[], $8::int8[], $9::int8[], $10::bytea[], $11::bytea[])",
        )
        .await?;
    transaction
        .execute(
            &insert_events,
            &[
                &organization_ids,
                &sequences,
                &ids,
                &actions,
                &versions,
                &actor_ids,
                &actor_names,
                &occurred_ats,
                &received_ats,
                &canonicals,
                &hashes,
            ],
        )
        .await?;
    if !target_ids.is_empty() {
        let insert_targets = transaction
            .prepare_cached(
                "INSERT INTO event_targets (organization_id, target_id, sequence, position, target_type)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int4[], $5::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        transaction
            .execute(
                &insert_targets,
                &[
                    &target_organizations,
                    &target_ids,
                    &target_sequences,
                    &target_positions,
                    &target_types,
                ],
            )
            .await?;
    }
    Ok(())
}
