//! The search indexes, built off the acknowledgement path.
//!
//! Acknowledging an event writes its `events` row and the keys durability and the chain need
//! (see migration 0010). Its search rows (`event_search`, `event_targets`) are written here,
//! by the writer thread between group commits, in transactions of hundreds to thousands of
//! events: the action, time and per-organization index pages that a group commit of a few
//! dozen events each dirtied on its own are then written once for thousands of events.
//!
//! Read-your-writes: `search_index_progress.indexed_position` is committed with the rows it
//! covers, so every reader's snapshot splits `events` into the indexed part and the tail
//! above it, and a search reads both (see `events::search_sql`). The tail stays short: the
//! writer indexes whenever it is idle, and under load as soon as the tail reaches
//! [`INDEX_TRIGGER`] events. After a crash the tail is simply longer; the writer catches up
//! as soon as it starts.

use rusqlite::{params, Connection};

use super::database_error;
use crate::prelude::*;
use crate::shared::encoding::stored_targets;

/// Under load, the tail length from which the writer indexes after every group commit.
/// Searches read at most a few times this many events from the tail.
pub(super) const INDEX_TRIGGER: i64 = 1_024;
/// Events indexed per transaction while the writer is idle.
pub(super) const INDEX_STEP: i64 = 4_096;
/// Under load, the fewest events an index step takes: below this the index pages that
/// consecutive events share are written once per handful of events, and most of the
/// append-first path's gain is lost.
pub(super) const INDEX_STEP_UNDER_LOAD_MIN: i64 = 128;

/// The subquery, valid in any reader's snapshot, of the last position the search rows cover.
pub(super) const INDEXED_POSITION: &str =
    "(SELECT indexed_position FROM search_index_progress WHERE singleton = 1)";

/// How many acknowledged events have no search rows yet.
pub(super) fn tail_length(connection: &Connection) -> StoreResult<i64> {
    connection
        .prepare_cached(&format!(
            "SELECT COALESCE((SELECT MAX(log_position) FROM events), 0) - {INDEXED_POSITION}"
        ))
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(database_error)
}

/// Writes the search rows of up to `limit` events of the tail, oldest first, and moves
/// `indexed_position` past them; runs inside the caller's transaction. Returns how many
/// events it indexed.
pub(super) fn index_tail(connection: &Connection, limit: i64) -> StoreResult<usize> {
    // `LIMIT CAST(?1 AS INTEGER)`, not `LIMIT ?1`: SQLite re-prepares a statement whose
    // LIMIT is a bare parameter every time that parameter's value changes, and the step
    // size changes with nearly every step under load (the profile showed the writer
    // parsing this statement again on most steps).
    let mut select = connection
        .prepare_cached(&format!(
            "SELECT log_position, organization_id, sequence, action, actor_id, actor_name,
                    occurred_at, canonical
             FROM events WHERE log_position > {INDEXED_POSITION}
             ORDER BY log_position LIMIT CAST(?1 AS INTEGER)"
        ))
        .map_err(database_error)?;
    let mut insert_search = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO event_search
                 (organization_id, sequence, action, actor_id, actor_name, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(database_error)?;
    let mut insert_target = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO event_targets (organization_id, target_id, sequence, position, target_type)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(database_error)?;
    let mut rows = select.query([limit]).map_err(database_error)?;
    let mut indexed = 0;
    let mut last_position = None;
    while let Some(row) = rows.next().map_err(database_error)? {
        let position: i64 = row.get(0).map_err(database_error)?;
        let organization_id: String = row.get(1).map_err(database_error)?;
        let sequence: i64 = row.get(2).map_err(database_error)?;
        insert_search
            .execute(params![
                organization_id,
                sequence,
                row.get::<_, String>(3).map_err(database_error)?,
                row.get::<_, String>(4).map_err(database_error)?,
                row.get::<_, Option<String>>(5).map_err(database_error)?,
                row.get::<_, i64>(6).map_err(database_error)?,
            ])
            .map_err(database_error)?;
        let canonical = row
            .get_ref(7)
            .and_then(|value| Ok(value.as_blob()?))
            .map_err(database_error)?;
        for (index, target) in stored_targets(canonical, &organization_id, sequence)?
            .iter()
            .enumerate()
        {
            insert_target
                .execute(params![
                    organization_id,
                    target.id,
                    sequence,
                    index as i64,
                    target.kind
                ])
                .map_err(database_error)?;
        }
        indexed += 1;
        last_position = Some(position);
    }
    if let Some(position) = last_position {
        connection
            .prepare_cached(
                "UPDATE search_index_progress SET indexed_position = ?1 WHERE singleton = 1",
            )
            .and_then(|mut statement| statement.execute([position]))
            .map_err(database_error)?;
    }
    Ok(indexed)
}

/// One indexing transaction of up to `limit` events; returns the tail length left.
///
/// Its commit is not synced: the rows are derived from events that are already durable,
/// and if a crash loses them, `indexed_position` goes with them and they are rebuilt. The
/// next acknowledged commit's sync covers these WAL frames too, since the WAL is written in
/// order.
fn index_step(connection: &Connection, limit: i64) -> StoreResult<i64> {
    let execute = |sql: &str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map_err(database_error)
    };
    let synchronous: i64 = connection
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .map_err(database_error)?;
    connection
        .execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(database_error)?;
    let indexed = execute("BEGIN IMMEDIATE").and_then(|_| {
        let indexed = index_tail(connection, limit)?;
        execute("COMMIT")?;
        Ok(indexed)
    });
    if indexed.is_err() && !connection.is_autocommit() {
        let _ = execute("ROLLBACK");
    }
    if let Err(error) = connection.execute_batch(&format!("PRAGMA synchronous = {synchronous}")) {
        // Acknowledging on a connection that no longer syncs would break the durability
        // promise; ending the writer makes every later write fail instead.
        panic!("cannot restore PRAGMA synchronous after indexing: {error}");
    }
    indexed?;
    tail_length(connection)
}

/// The writer's work between group commits (see `writer::BetweenCommits`).
///
/// When nothing is waiting (`idle`), one indexing step of [`INDEX_STEP`]. Under load, once
/// the tail reaches [`INDEX_TRIGGER`], one step after every group commit, as large as that
/// commit (what the tail grew since the previous call, at least
/// [`INDEX_STEP_UNDER_LOAD_MIN`]) plus a quarter of the tail's excess over the trigger (at
/// most [`INDEX_STEP`]). Index work so keeps pace
/// with acknowledgements in slices proportional to each commit: the requests queued behind
/// a step wait for about one commit's worth of it, never for a large step that a thousand
/// earlier acknowledgements built up. The tail stays near the trigger however large the
/// group commits, and a long one (after a restart under load) shrinks geometrically.
#[derive(Debug, Default)]
pub(super) struct SearchIndexer {
    /// The tail length after the previous call (0 before the first).
    tail_seen: i64,
}

impl SearchIndexer {
    /// Runs the work due now; returns whether events are still waiting to be indexed.
    pub(super) fn between_commits(&mut self, connection: &Connection, idle: bool) -> bool {
        let outcome = (|| -> StoreResult<i64> {
            let tail = tail_length(connection)?;
            let grown = (tail - self.tail_seen).max(0);
            self.tail_seen = tail;
            if tail == 0 || (!idle && tail < INDEX_TRIGGER) {
                return Ok(tail);
            }
            let limit = if idle {
                INDEX_STEP
            } else {
                // The commit's share is never capped (a commit of batches can hold far
                // more than a step), so the tail cannot grow from commit to commit.
                grown.max(INDEX_STEP_UNDER_LOAD_MIN) + ((tail - INDEX_TRIGGER) / 4).min(INDEX_STEP)
            };
            let left = index_step(connection, limit)?;
            self.tail_seen = left;
            Ok(left)
        })();
        match outcome {
            Ok(tail) => tail > 0,
            Err(error) => {
                // Searches stay correct (they read the tail), only slower; the next commit
                // tries again. Reporting "nothing left" keeps a persistent failure from
                // spinning the writer while idle.
                tracing::error!(%error, "indexing acknowledged events for search failed");
                false
            }
        }
    }
}

/// The last position the search rows cover, for tests and diagnostics.
#[cfg(test)]
pub(super) fn indexed_position(connection: &Connection) -> StoreResult<i64> {
    connection
        .query_row(
            "SELECT indexed_position FROM search_index_progress WHERE singleton = 1",
            [],
            |row| row.get(0),
        )
        .map_err(database_error)
}

#[cfg(test)]
mod tests {
    //! The indexer's view against a full scan: searches over any split of `events` into
    //! indexed rows and tail find exactly what filtering every event would, and the rows the
    //! indexer writes are exactly those derived from the events.

    use proptest::prelude::*;
    use serde_json::json;
    use stele_core::event::parse_create_event;
    use stele_core::model::{EventQuery, NewEvent, OccurredAtKey, StoredEvent};
    use stele_core::pagination::{Cursor, PageRequest, SortOrder};

    use super::*;
    use crate::shared::search::SearchScan;
    use crate::sqlite::events::{append_event_now, run_search};
    use crate::sqlite::migrations::migrate;

    const ORGANIZATIONS: [&str; 2] = ["org_a", "org_b"];
    const ACTIONS: [&str; 3] = ["user.signed_in", "user.signed_out", "doc.updated"];
    const ACTORS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const NAMES: [&str; 2] = ["Alice", "Bob"];
    const TARGET_IDS: [&str; 4] = ["t1", "t2", "t3", "t4"];
    const TARGET_TYPES: [&str; 2] = ["team", "document"];

    /// An event as the test generates it, with what a full scan compares against.
    #[derive(Debug, Clone)]
    struct Spec {
        organization: usize,
        action: usize,
        actor: usize,
        name: Option<usize>,
        targets: Vec<(usize, usize)>,
        second: u32,
    }

    struct Stored {
        spec: Spec,
        sequence: i64,
        occurred_at: i64,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..ORGANIZATIONS.len(),
            0..ACTIONS.len(),
            0..ACTORS.len(),
            proptest::option::of(0..NAMES.len()),
            proptest::collection::vec((0..TARGET_IDS.len(), 0..TARGET_TYPES.len()), 0..3),
            0..20u32,
        )
            .prop_map(
                |(organization, action, actor, name, targets, second)| Spec {
                    organization,
                    action,
                    actor,
                    name,
                    targets,
                    second,
                },
            )
    }

    fn subset<T: Copy + std::fmt::Debug + 'static>(
        items: &'static [T],
    ) -> impl Strategy<Value = Vec<T>> {
        proptest::sample::subsequence(items, 0..=2)
    }

    fn query() -> impl Strategy<Value = (EventQuery, u32, bool)> {
        (
            (
                0..ORGANIZATIONS.len(),
                subset(&ACTIONS),
                subset(&ACTORS),
                subset(&NAMES),
                subset(&TARGET_IDS),
                subset(&TARGET_TYPES),
            ),
            (
                proptest::option::of(0..20i64),
                proptest::option::of(0..20i64),
                proptest::option::of(1..40i64),
                1..5u32,
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (organization, actions, actors, names, target_ids, target_types),
                    (from, to, up_to, limit, descending),
                )| {
                    let strings = |items: Vec<&str>| items.into_iter().map(String::from).collect();
                    let query = EventQuery {
                        organization_id: ORGANIZATIONS[organization].into(),
                        actions: strings(actions),
                        actor_ids: strings(actors),
                        actor_names: strings(names),
                        target_ids: strings(target_ids),
                        target_types: strings(target_types),
                        occurred_from: from.map(second_to_millis),
                        occurred_to: to.map(second_to_millis),
                        up_to_sequence: up_to,
                    };
                    (query, limit, descending)
                },
            )
    }

    fn second_to_millis(second: i64) -> i64 {
        1_640_995_200_000 + second * 1_000
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut connection = Connection::open(dir.path().join("stele.db")).expect("open");
        migrate(&mut connection).expect("migrate");
        for organization in ORGANIZATIONS {
            connection
                .execute(
                    "INSERT INTO organizations (id, name, metadata, domains, created_at, updated_at)
                     VALUES (?1, ?1, '{}', '[]', 0, 0)",
                    [organization],
                )
                .expect("organization");
        }
        (dir, connection)
    }

    fn append(connection: &Connection, index: usize, spec: &Spec) -> Stored {
        let mut actor = json!({"id": ACTORS[spec.actor], "type": "user"});
        if let Some(name) = spec.name {
            actor["name"] = json!(NAMES[name]);
        }
        let targets: Vec<_> = spec
            .targets
            .iter()
            .map(|(id, kind)| json!({"id": TARGET_IDS[*id], "type": TARGET_TYPES[*kind]}))
            .collect();
        let request = parse_create_event(&json!({
            "organization_id": ORGANIZATIONS[spec.organization],
            "event": {
                "action": ACTIONS[spec.action],
                "occurred_at": format!("2022-01-01T00:00:{:02}.000Z", spec.second),
                "actor": actor, "targets": targets, "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid event");
        let occurred_at = request.event.occurred_at;
        let appended = append_event_now(
            connection,
            &NewEvent {
                id: format!("audit_log_event_{index:026}").into(),
                organization_id: ORGANIZATIONS[spec.organization].into(),
                event: request.event,
            },
        )
        .expect("append");
        Stored {
            spec: spec.clone(),
            sequence: appended.sequence,
            occurred_at,
        }
    }

    /// What filtering every event gives, in list order.
    fn full_scan(events: &[Stored], query: &EventQuery, descending: bool) -> Vec<i64> {
        let any =
            |filter: &[String], value: &str| filter.is_empty() || filter.iter().any(|v| v == value);
        let mut sequences: Vec<i64> = events
            .iter()
            .filter(|event| {
                let spec = &event.spec;
                ORGANIZATIONS[spec.organization] == query.organization_id.as_str()
                    && any(&query.actions, ACTIONS[spec.action])
                    && any(&query.actor_ids, ACTORS[spec.actor])
                    && (query.actor_names.is_empty()
                        || spec
                            .name
                            .is_some_and(|name| any(&query.actor_names, NAMES[name])))
                    && (query.target_ids.is_empty()
                        || spec
                            .targets
                            .iter()
                            .any(|(id, _)| any(&query.target_ids, TARGET_IDS[*id])))
                    && (query.target_types.is_empty()
                        || spec
                            .targets
                            .iter()
                            .any(|(_, kind)| any(&query.target_types, TARGET_TYPES[*kind])))
                    && query
                        .occurred_from
                        .is_none_or(|from| event.occurred_at >= from)
                    && query.occurred_to.is_none_or(|to| event.occurred_at <= to)
                    && query
                        .up_to_sequence
                        .is_none_or(|up_to| event.sequence <= up_to)
            })
            .map(|event| event.sequence)
            .collect();
        sequences.sort_unstable();
        if descending {
            sequences.reverse();
        }
        sequences
    }

    /// Every page of a search, following the `after` cursor.
    fn search_all(
        connection: &Connection,
        query: &EventQuery,
        limit: u32,
        descending: bool,
    ) -> Vec<i64> {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let page = PageRequest {
                limit,
                order: if descending {
                    SortOrder::Desc
                } else {
                    SortOrder::Asc
                },
                cursor: cursor.map(Cursor::After),
            };
            let rows = run_search(connection, query, &SearchScan::by_sequence(&page.scan()))
                .expect("search");
            let events = rows.into_iter().map(|(event, _)| event).collect();
            let page = page.assemble(events, |event: &StoredEvent| event.sequence.to_string());
            found.extend(page.data.iter().map(|event| event.sequence));
            match page.after {
                Some(after) => cursor = Some(after.parse().expect("cursor")),
                None => return found,
            }
        }
    }

    /// What filtering every event gives, ordered by `occurred_at` then sequence.
    fn full_scan_by_occurred_at(
        events: &[Stored],
        query: &EventQuery,
        descending: bool,
    ) -> Vec<i64> {
        let mut keys: Vec<(i64, i64)> = full_scan(events, query, false)
            .into_iter()
            .map(|sequence| {
                let event = events
                    .iter()
                    .find(|event| {
                        event.sequence == sequence
                            && ORGANIZATIONS[event.spec.organization]
                                == query.organization_id.as_str()
                    })
                    .expect("scanned event");
                (event.occurred_at, sequence)
            })
            .collect();
        keys.sort_unstable();
        if descending {
            keys.reverse();
        }
        keys.into_iter().map(|(_, sequence)| sequence).collect()
    }

    /// Every page of a search ordered by `occurred_at`, following the `after` cursor.
    fn search_all_by_occurred_at(
        connection: &Connection,
        query: &EventQuery,
        limit: u32,
        descending: bool,
    ) -> Vec<i64> {
        let mut found = Vec::new();
        let mut cursor = None;
        loop {
            let page = PageRequest::<OccurredAtKey> {
                limit,
                order: if descending {
                    SortOrder::Desc
                } else {
                    SortOrder::Asc
                },
                cursor: cursor.map(Cursor::After),
            };
            let rows = run_search(connection, query, &SearchScan::by_occurred_at(&page.scan()))
                .expect("search");
            let page = page.assemble(rows, |(event, occurred_at)| {
                OccurredAtKey {
                    occurred_at: *occurred_at,
                    sequence: event.sequence,
                }
                .to_string()
            });
            found.extend(page.data.iter().map(|(event, _)| event.sequence));
            match page.after {
                Some(after) => cursor = Some(after.parse().expect("cursor")),
                None => return found,
            }
        }
    }

    /// `(organization, sequence, action, actor, name, occurred_at)` rows and target rows.
    type IndexRows = (
        Vec<(String, i64, String, String, Option<String>, i64)>,
        Vec<(String, String, i64, i64, String)>,
    );

    fn index_rows(connection: &Connection) -> IndexRows {
        let search = connection
            .prepare("SELECT organization_id, sequence, action, actor_id, actor_name, occurred_at FROM event_search ORDER BY 1, 2")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))
            .and_then(Iterator::collect)
            .expect("search rows");
        let targets = connection
            .prepare("SELECT organization_id, target_id, sequence, position, target_type FROM event_targets ORDER BY 1, 2, 3, 4")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .and_then(Iterator::collect)
            .expect("target rows");
        (search, targets)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn searches_over_index_and_tail_equal_a_full_scan(
            specs in proptest::collection::vec(spec(), 1..40),
            indexed_fraction in 0.0..=1.0f64,
            queries in proptest::collection::vec(query(), 1..6),
        ) {
            let (_dir, connection) = database();
            let events: Vec<Stored> = specs.iter().enumerate().map(|(index, spec)| append(&connection, index, spec)).collect();
            let indexed = (events.len() as f64 * indexed_fraction) as i64;
            index_tail(&connection, indexed).expect("index");
            prop_assert_eq!(tail_length(&connection).expect("tail"), events.len() as i64 - indexed);
            for (query, limit, descending) in &queries {
                prop_assert_eq!(
                    search_all(&connection, query, *limit, *descending),
                    full_scan(&events, query, *descending),
                    "query {:?}, limit {}, {} of {} events indexed", query, limit, indexed, events.len()
                );
                prop_assert_eq!(
                    search_all_by_occurred_at(&connection, query, *limit, *descending),
                    full_scan_by_occurred_at(&events, query, *descending),
                    "by occurred_at: query {:?}, limit {}, {} of {} events indexed", query, limit, indexed, events.len()
                );
            }
            // The rows the indexer writes are those derived from every event: indexing the
            // rest in two steps gives what indexing each event as it was stored gave before.
            index_tail(&connection, 1).expect("index one");
            index_tail(&connection, INDEX_STEP).expect("index the rest");
            prop_assert_eq!(tail_length(&connection).expect("tail"), 0);
            let expected_search: Vec<_> = {
                let mut rows: Vec<_> = events.iter().map(|event| {
                    let spec = &event.spec;
                    (ORGANIZATIONS[spec.organization].to_owned(), event.sequence, ACTIONS[spec.action].to_owned(),
                     ACTORS[spec.actor].to_owned(), spec.name.map(|name| NAMES[name].to_owned()), event.occurred_at)
                }).collect();
                rows.sort();
                rows
            };
            let expected_targets: Vec<_> = {
                let mut rows: Vec<_> = events.iter().flat_map(|event| {
                    event.spec.targets.iter().enumerate().map(move |(position, (id, kind))| {
                        (ORGANIZATIONS[event.spec.organization].to_owned(), TARGET_IDS[*id].to_owned(),
                         event.sequence, position as i64, TARGET_TYPES[*kind].to_owned())
                    })
                }).collect();
                rows.sort();
                rows
            };
            let (search, targets) = index_rows(&connection);
            prop_assert_eq!(search, expected_search);
            prop_assert_eq!(targets, expected_targets);
            prop_assert_eq!(indexed_position(&connection).expect("position"), events.len() as i64);
        }
    }
    /// Under load the indexer takes about one commit's worth of events per step (not a
    /// trigger's worth at once), keeps the tail near the trigger, and shrinks a long tail.
    #[test]
    fn under_load_each_step_is_about_the_size_of_the_commit_before_it() {
        let (_dir, connection) = database();
        let spec = Spec {
            organization: 0,
            action: 0,
            actor: 0,
            name: None,
            targets: vec![(0, 0)],
            second: 0,
        };
        let mut appended = 0;
        let mut commit = |count: usize| {
            for _ in 0..count {
                append(&connection, appended, &spec);
                appended += 1;
            }
        };
        let mut indexer = SearchIndexer::default();
        // Below the trigger nothing is indexed under load.
        for _ in 0..15 {
            commit(64);
            assert!(indexer.between_commits(&connection, false));
        }
        assert_eq!(tail_length(&connection).expect("tail"), 960);
        // Past the trigger, a commit is followed by no step or by one of about its size
        // (at least the minimum), and the tail stays just under the trigger.
        let mut indexed = 0;
        for _ in 0..20 {
            commit(64);
            let before = tail_length(&connection).expect("tail");
            indexer.between_commits(&connection, false);
            let after = tail_length(&connection).expect("tail");
            let step = before - after;
            assert!(
                step == 0
                    || (INDEX_STEP_UNDER_LOAD_MIN..=INDEX_STEP_UNDER_LOAD_MIN + 64).contains(&step),
                "a 64-event commit led to a {step}-event step"
            );
            assert!(
                (INDEX_TRIGGER - 2 * INDEX_STEP_UNDER_LOAD_MIN..INDEX_TRIGGER).contains(&after)
            );
            indexed += step;
        }
        assert!(indexed >= 20 * 64 - INDEX_STEP_UNDER_LOAD_MIN, "{indexed}");
        // Large commits (batches), even larger than an idle step, get steps as large, so
        // the tail stays bounded.
        for size in [1_000, 1_000, 1_000, 10_000, 10_000] {
            commit(size);
            indexer.between_commits(&connection, false);
            assert!(tail_length(&connection).expect("tail") < INDEX_TRIGGER);
        }
        // Idle, the rest is indexed.
        while indexer.between_commits(&connection, true) {}
        assert_eq!(tail_length(&connection).expect("tail"), 0);
        assert_eq!(
            indexed_position(&connection).expect("position"),
            appended as i64
        );
    }
}
