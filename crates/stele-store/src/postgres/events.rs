//! The event log in PostgreSQL: appends, search, single reads and the end-to-end chain check.

use super::database_error;
use super::execute_in;
use super::query_in;
use super::read_snapshot;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::chain::{chain_anchors, ChainWalk};
use crate::shared::encoding::hash_from;
use crate::shared::search::{
    is_time_bounded_only, plan_search, Binder, SearchBound, SearchColumns, SearchPlan, SearchScan,
};
use async_trait::async_trait;
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
use stele_core::chain::link;
use stele_core::model::*;
use stele_core::pagination::Page;
use stele_core::pagination::PageRequest;
use stele_core::timestamp::now_millis;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub(super) const STORED_EVENT_COLUMNS: &str =
    "e.id, e.organization_id, e.sequence, e.version, e.received_at, e.canonical";

pub(super) fn stored_event_from_row(row: &Row) -> StoredEvent {
    StoredEvent {
        id: row.get(0),
        organization_id: row.get(1),
        sequence: row.get(2),
        version: row.get(3),
        received_at: row.get(4),
        canonical: row.get(5),
    }
}

/// A text or integer bound to one placeholder of a generated query.
pub(super) enum Param {
    Text(String),
    TextList(Vec<String>),
    Integer(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(value) => value,
            Param::TextList(values) => values,
            Param::Integer(value) => value,
        }
    }
}

/// Binds search values PostgreSQL's way: lists as arrays (`= ANY($n)`), which the planner
/// matches against the `(organization_id, column, sequence)` indexes like an `IN` list.
struct PostgresBinder {
    values: Vec<Param>,
}

impl Binder for PostgresBinder {
    const ORGANIZATION: &'static str = "$1";

    fn one_of(&mut self, column: &str, items: &[String]) -> String {
        self.values.push(Param::TextList(items.to_vec()));
        format!("{column} = ANY(${})", self.values.len())
    }

    fn integer(&mut self, value: i64) -> String {
        self.values.push(Param::Integer(value));
        format!("${}", self.values.len())
    }
}

/// The search SQL for `query` and its parameters, in order; it returns each event's
/// `occurred_at` after the stored event's columns.
pub(super) fn search_sql(
    query: &EventQuery,
    scan: &SearchScan,
    sort_time_range: bool,
) -> (String, Vec<Param>) {
    let mut binder = PostgresBinder {
        values: vec![Param::Text(query.organization_id.to_string())],
    };
    let SearchPlan {
        conditions,
        fetch,
        direction,
        order,
    } = plan_search(query, scan, &mut binder, &SearchColumns::PLAIN);
    let sql = if sort_time_range {
        // `+ 0` is an order no index provides: the planner reads the range's sequences
        // through the time index (from the index alone when only time and sequence
        // bounds apply), keeps the page's worth, and only those rows are then fetched.
        format!(
            "SELECT {STORED_EVENT_COLUMNS}, e.occurred_at FROM events e
             WHERE e.organization_id = $1 AND e.sequence IN (
                 SELECT e.sequence FROM events e WHERE {} ORDER BY e.sequence + 0 {direction} LIMIT {fetch})
             ORDER BY e.sequence {direction}",
            conditions.join(" AND "),
        )
    } else {
        format!(
            "SELECT {STORED_EVENT_COLUMNS}, e.occurred_at FROM events e WHERE {} ORDER BY {order} LIMIT {fetch}",
            conditions.join(" AND "),
        )
    };
    (sql, binder.values)
}

/// How far the sequence index may be walked before a time-filtered page is chosen from
/// the time index instead (walking 10,000 rows takes a few milliseconds).
pub(super) const SHORT_SEQUENCE_WALK: i64 = 10_000;

pub(super) const VERIFY_FETCH: i32 = 1000;

#[async_trait]
impl EventStore for PostgresStore {
    async fn append_event(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<AppendedEvent>> {
        self.appender.append(event, idempotency).await
    }

    async fn append_imported_events(
        &self,
        organization_id: &str,
        events: Vec<(ImportKey, NewEvent)>,
    ) -> StoreResult<ImportedEvents> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The chain head, locked as every append batch locks it, so these events take the
        // next sequences on whichever replica appends live events meanwhile.
        let head = query_in(
            &transaction,
            "SELECT sequence, hash FROM chain_heads WHERE organization_id = $1 FOR UPDATE",
            &[&organization_id],
        )
        .await?;
        let Some(head) = head.first() else {
            return Err(StoreError::OrganizationNotFound);
        };
        let mut sequence: i64 = head.get(0);
        let mut previous = hash_from(
            head.get(1),
            organization_id,
            Some(sequence),
            "the chain head's hash",
        )?;
        let mut outcome = ImportedEvents::default();
        for (key, new) in &events {
            if new.organization_id.as_str() != organization_id {
                return Err(StoreError::Internal(
                    "an imported event names another organization".into(),
                ));
            }
            let claimed = execute_in(
                &transaction,
                "INSERT INTO imported_event_keys (organization_id, import_key, event_id)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&organization_id, &key.as_slice(), &new.id.as_str()],
            )
            .await?;
            if claimed == 0 {
                outcome.skipped += 1;
                continue;
            }
            sequence += 1;
            let received_at = now_millis();
            let canonical = new
                .event
                .canonical_record(&new.id, &new.organization_id, sequence, received_at)
                .map_err(|error| {
                    StoreError::Internal(format!("cannot encode the event: {error}"))
                })?;
            let hash = link(&previous, &canonical);
            execute_in(
                &transaction,
                "INSERT INTO events (organization_id, sequence, id, action, version, actor_id, actor_name,
                                     occurred_at, received_at, canonical, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &organization_id,
                    &sequence,
                    &new.id.as_str(),
                    &new.event.action,
                    &new.event.version,
                    &new.event.actor.id,
                    &new.event.actor.name,
                    &new.event.occurred_at,
                    &received_at,
                    &canonical,
                    &hash.as_slice(),
                ],
            )
            .await?;
            for (position, target) in new.event.targets.iter().enumerate() {
                execute_in(
                    &transaction,
                    "INSERT INTO event_targets (organization_id, target_id, sequence, position, target_type)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &organization_id,
                        &target.id,
                        &sequence,
                        &(position as i32),
                        &target.kind,
                    ],
                )
                .await?;
            }
            previous = hash;
            outcome.appended += 1;
        }
        execute_in(
            &transaction,
            "UPDATE chain_heads SET sequence = $2, hash = $3 WHERE organization_id = $1",
            &[&organization_id, &sequence, &previous.as_slice()],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(outcome)
    }

    async fn append_events(
        &self,
        events: Vec<EventToAppend>,
    ) -> StoreResult<Vec<StoreResult<Idempotent<AppendedEvent>>>> {
        self.appender
            .append_group(
                events
                    .into_iter()
                    .map(|item| (item.event, item.idempotency))
                    .collect(),
            )
            .await
    }

    async fn search_events(
        &self,
        query: EventQuery,
        page: PageRequest<i64>,
    ) -> StoreResult<Page<StoredEvent>> {
        let scan = SearchScan::by_sequence(&page.scan());
        // Events arrive roughly in time order, so `occurred_at` and `sequence` go together,
        // which the planner cannot know: for "newest 10 in this time range" it walks the
        // sequence index from the newest event expecting matches soon, and reads most of
        // the organization when the range lies far back. For a page filtered by time and
        // not by actor or target id (which have selective indexes of their own), one entry
        // of the time index tells how far that walk would go; if far, the page's sequences
        // are chosen from the range's entries in the time index instead. Exports keep the
        // sequence walk, which reads each row once across all their pages.
        let sort_time_range =
            is_time_bounded_only(&query) && !self.sequence_walk_is_short(&query, &scan).await?;
        let (sql, values) = search_sql(&query, &scan, sort_time_range);
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Param::as_sql).collect();
        let rows = self.query(&sql, &params).await?;
        let events = rows.iter().map(stored_event_from_row).collect();
        Ok(page.assemble(events, |event: &StoredEvent| event.sequence.to_string()))
    }

    async fn search_events_by_occurred_at(
        &self,
        query: EventQuery,
        page: PageRequest<OccurredAtKey>,
    ) -> StoreResult<Page<StoredEvent>> {
        // Ordered by `occurred_at`, the `(organization_id, occurred_at, sequence)` index
        // gives a time range's page in order and stops after it.
        let (sql, values) = search_sql(&query, &SearchScan::by_occurred_at(&page.scan()), false);
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Param::as_sql).collect();
        let rows = self.query(&sql, &params).await?;
        let events = rows
            .iter()
            .map(|row| (stored_event_from_row(row), row.get::<_, i64>(6)))
            .collect();
        Ok(page
            .assemble(events, |(event, occurred_at)| {
                OccurredAtKey {
                    occurred_at: *occurred_at,
                    sequence: event.sequence,
                }
                .to_string()
            })
            .map(|(event, _)| event))
    }

    async fn get_event(&self, organization_id: &str, id: &str) -> StoreResult<Option<HashedEvent>> {
        // Matching the organization too keeps one organization's link from reaching
        // another's event.
        let row = self
            .query_opt(
                &format!(
                    "SELECT {STORED_EVENT_COLUMNS}, e.hash FROM events e
                     WHERE e.organization_id = $1 AND e.id = $2"
                ),
                &[&organization_id, &id],
            )
            .await?;
        row.map(|row| {
            let event = stored_event_from_row(&row);
            let hash = hash_from(
                row.get(6),
                &event.organization_id,
                Some(event.sequence),
                "the event's hash",
            )?;
            Ok(HashedEvent { event, hash })
        })
        .transpose()
    }

    async fn recent_events_of_action(
        &self,
        action: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {STORED_EVENT_COLUMNS} FROM events e
                     WHERE e.action = $1 AND e.organization_id <> '{ACTIVITY_LOG_ORGANIZATION_ID}' ORDER BY e.received_at DESC, e.id DESC LIMIT $2"
                ),
                &[&action, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(stored_event_from_row).collect())
    }

    async fn verify_log(
        &self,
        organization_id: Option<String>,
        mut progress: Box<dyn FnMut(u64) + Send>,
    ) -> StoreResult<VerifyReport> {
        let mut client = self.client().await?;
        // One snapshot for the anchors and the whole log, so a purge committing meanwhile
        // cannot pair an old anchor with a newer log; the rows stream through a portal
        // (a server-side cursor) VERIFY_FETCH at a time, in bounded memory.
        let transaction = read_snapshot(&mut client).await?;
        let anchors = chain_anchors(
            query_in(
                &transaction,
                "SELECT organization_id, first_sequence, previous_hash FROM chain_anchors",
                &[],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2))),
        )?;
        let portal = transaction
            .bind(
                "SELECT organization_id, sequence, canonical, hash FROM events
                 WHERE ($1::text IS NULL OR organization_id = $1)
                 ORDER BY organization_id, sequence",
                &[&organization_id],
            )
            .await
            .map_err(database_error)?;
        let mut walk = ChainWalk::new(anchors, progress.as_mut());
        loop {
            let rows = transaction
                .query_portal(&portal, VERIFY_FETCH)
                .await
                .map_err(database_error)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if !walk.push(row.get(0), row.get(1), row.get(2), row.get(3)) {
                    return Ok(walk.finish());
                }
            }
        }
        Ok(walk.finish())
    }
}

impl PostgresStore {
    /// Whether walking the sequence index from where the page starts (the cursor, or the
    /// newest or oldest event) reaches the time range within [`SHORT_SEQUENCE_WALK`] rows.
    /// Where the range's near edge lies in sequence order is read from one entry of the
    /// time index; since events arrive roughly in time order, that is where the walk
    /// starts finding matches.
    async fn sequence_walk_is_short(
        &self,
        query: &EventQuery,
        scan: &SearchScan,
    ) -> StoreResult<bool> {
        let (edge_sql, edge_time) = if scan.descending {
            (
                "SELECT sequence FROM events WHERE organization_id = $1 AND occurred_at <= $2
                 ORDER BY occurred_at DESC, sequence DESC LIMIT 1",
                query.occurred_to,
            )
        } else {
            (
                "SELECT sequence FROM events WHERE organization_id = $1 AND occurred_at >= $2
                 ORDER BY occurred_at, sequence LIMIT 1",
                query.occurred_from,
            )
        };
        // A range open on the side the walk starts from is entered at once.
        let Some(edge_time) = edge_time else {
            return Ok(true);
        };
        let Some(edge) = self
            .query_opt(edge_sql, &[&query.organization_id, &edge_time])
            .await?
            .map(|row| row.get::<_, i64>(0))
        else {
            return Ok(false);
        };
        let start = match (scan.bound, scan.descending) {
            (Some((SearchBound::Sequence(bound), _)), _) => bound,
            // Only sequence-ordered pages walk the sequence index.
            (Some((SearchBound::OccurredAt(_), _)), _) => return Ok(true),
            (None, false) => 0,
            (None, true) => self
                .query_opt(
                    "SELECT sequence FROM chain_heads WHERE organization_id = $1",
                    &[&query.organization_id],
                )
                .await?
                .map_or(0, |row| row.get::<_, i64>(0)),
        };
        Ok((start - edge).abs() <= SHORT_SEQUENCE_WALK)
    }
}
