//! Store-level tests of the SQLite backend.

use serde_json::Map;

use super::*;
use serde_json::json;
use stele_core::event::parse_create_event;
use stele_core::model::*;

/// A write connection of its own, to damage rows the way something outside Stele would.
fn tamper(dir: &tempfile::TempDir, sql: &str) {
    let connection = super::open_for_test(dir.path().join("stele.db"));
    connection.execute_batch(sql).expect(sql);
}

/// Stores organization `org_1` ("Acme").
async fn create_acme(store: &SqliteStore) {
    store
        .create_organization(
            Organization {
                id: "org_1".into(),
                name: "Acme".into(),
                external_id: None,
                metadata: Map::new(),
                domains: Vec::new(),
                retention_period_in_days: None,
                stripe_customer_id: None,
                created_at: 0,
                updated_at: 0,
            },
            None,
        )
        .await
        .expect("organization");
}

/// A store with organization `org_1` holding one event (sequence 1) with a target.
async fn store_with_one_event() -> (tempfile::TempDir, SqliteStore) {
    let (dir, store) = open();
    create_acme(&store).await;
    append_with_target(&store, "audit_log_event_1", "t").await;
    (dir, store)
}

/// Appends a `user.signed_in` event of `org_1` under `id`, with one team target `target`.
async fn append_with_target(store: &SqliteStore, id: &str, target: &str) {
    let request = parse_create_event(&json!({
        "organization_id": "org_1",
        "event": {
            "action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z",
            "actor": {"id": "u", "type": "user"}, "targets": [{"id": target, "type": "team"}],
            "context": {"location": "1.2.3.4"}
        }
    }))
    .expect("valid");
    store
        .append_event(
            NewEvent {
                id: id.into(),
                organization_id: "org_1".into(),
                event: request.event,
            },
            None,
        )
        .await
        .expect("append");
}

fn assert_corrupt_at(error: StoreError, organization: &str, sequence: i64) {
    match &error {
        StoreError::Corrupt {
            organization: Some(found),
            sequence: Some(at),
            ..
        } => assert_eq!((found.as_str(), *at), (organization, sequence), "{error}"),
        other => panic!("expected damage at {organization} #{sequence}, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(organization) && message.contains(&format!("sequence {sequence}")),
        "{message}"
    );
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("stele.db"), true).expect("open");
    (dir, store)
}

/// The store opens SQLite with the page cache that keeps rebalancing's temporary page out
/// of the cache's key range (`install_page_cache`), and appends exercise it: enough events
/// split pages of the indexes they touch.
#[tokio::test]
async fn the_store_runs_on_the_wrapped_page_cache() {
    let (_dir, store) = open();
    assert!(
        install_page_cache(),
        "the store installed it before its first connection"
    );
    create_acme(&store).await;
    let parked = stele_page_cache::pages_parked();
    for index in 0..2_000 {
        append_with_target(
            &store,
            &format!("audit_log_event_{index}"),
            &format!("t{index}"),
        )
        .await;
    }
    assert!(stele_page_cache::pages_parked() > parked);
}

#[tokio::test]
async fn sessions_expire_and_expired_ones_are_swept_on_the_next_sign_in() {
    let (_dir, store) = open();
    store
        .create_user(NewUser {
            id: "user_1".into(),
            username: "admin".into(),
            password_hash: "x".into(),
            created_at: 0,
        })
        .await
        .expect("user");
    let session = |token: u8, created_at, expires_at| NewSession {
        token_hash: [token; 32],
        user_id: "user_1".into(),
        created_at,
        expires_at,
    };
    store
        .create_session(session(1, 0, 100))
        .await
        .expect("first");
    let found = store.find_session([1; 32], 50).await.expect("read");
    assert_eq!(found.map(|s| s.username), Some("admin".to_owned()));
    assert_eq!(store.find_session([1; 32], 100).await.expect("read"), None);
    assert_eq!(store.find_session([2; 32], 50).await.expect("read"), None);

    store
        .create_session(session(2, 200, 300))
        .await
        .expect("second");
    let remaining: i64 = store
        .readers
        .read(|c| {
            c.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
                .map_err(database_error)
        })
        .await
        .expect("count");
    assert_eq!(remaining, 1, "the expired session was deleted");
    store.delete_session([2; 32]).await.expect("delete");
    assert_eq!(store.find_session([2; 32], 250).await.expect("read"), None);
}

#[tokio::test]
async fn recent_events_of_an_action_are_newest_first_and_limited() {
    let (_dir, store) = open();
    create_acme(&store).await;
    for (index, action) in ["a", "b", "a", "a"].iter().enumerate() {
        let request = parse_create_event(&json!({
            "organization_id": "org_1",
            "event": {
                "action": action, "occurred_at": "2022-09-08T19:46:03.435Z",
                "actor": {"id": "u", "type": "user"}, "targets": [],
                "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid");
        store
            .append_event(
                NewEvent {
                    id: format!("audit_log_event_{index}").into(),
                    organization_id: "org_1".into(),
                    event: request.event,
                },
                None,
            )
            .await
            .expect("append");
    }
    let recent = store.recent_events_of_action("a", 2).await.expect("read");
    let ids: Vec<&str> = recent.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(ids, ["audit_log_event_3", "audit_log_event_2"]);
    let record: serde_json::Value =
        serde_json::from_slice(&recent[0].canonical).expect("canonical JSON");
    assert_eq!(record["action"], "a");
    assert_eq!(recent[0].sequence, 4);
}

#[tokio::test]
async fn a_damaged_event_hash_is_reported_with_its_organization_and_sequence() {
    let (dir, store) = store_with_one_event().await;
    tamper(&dir, "UPDATE events SET hash = x'0102' WHERE sequence = 1");
    let error = store
        .get_event("org_1", "audit_log_event_1")
        .await
        .expect_err("a 2-byte hash is damage");
    assert_corrupt_at(error, "org_1", 1);
}

#[tokio::test]
async fn a_purge_refuses_an_event_whose_stored_targets_are_unreadable() {
    let (dir, store) = store_with_one_event().await;
    tamper(
        &dir,
        r#"UPDATE events SET canonical = CAST('{"targets":[{"type":"team"}]}' AS BLOB) WHERE sequence = 1"#,
    );
    let error = store
        .purge_events("org_1", i64::MAX, 10)
        .await
        .expect_err("a target without an id is damage");
    assert_corrupt_at(error, "org_1", 1);
    let still_there = store
        .get_event("org_1", "audit_log_event_1")
        .await
        .expect("read");
    assert!(still_there.is_some(), "nothing was purged");
}

#[tokio::test]
async fn a_damaged_idempotency_fingerprint_is_an_error_not_zeros() {
    let (dir, store) = open();
    let record = IdempotencyRecord {
        scope: "key_1".into(),
        key: "k".into(),
        fingerprint: [7; 32],
        status: 201,
        body: b"{}".to_vec(),
        created_at: stele_core::timestamp::now_millis(),
    };
    store
        .save_idempotency_record(record.clone())
        .await
        .expect("save");
    tamper(&dir, "UPDATE idempotency_keys SET fingerprint = x'07'");
    let error = store
        .find_idempotency_record("key_1", "k", record.created_at)
        .await
        .expect_err("a 1-byte fingerprint is damage");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("fingerprint"), "{error}");
}

#[tokio::test]
async fn a_new_data_directory_and_database_are_private_to_the_server_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("stele-data");
    let database = data.join("stele.db");
    let store = SqliteStore::open(&database, true).expect("open");
    create_acme(&store).await;
    assert_eq!(super::files::mode_of(&data), 0o700);
    assert_eq!(super::files::mode_of(&database), 0o600);
    // SQLite gives the write-ahead log the database file's mode.
    assert_eq!(super::files::mode_of(&data.join("stele.db-wal")), 0o600);
}

/// How often `sql` was compiled again over ten runs that take it from the statement cache,
/// as the store's code does, and bind the same organization each time.
fn recompilations_over_cached_runs(connection: &rusqlite::Connection, sql: &str) -> i32 {
    let recompilations = || {
        let statement = connection.prepare_cached(sql).expect("prepare");
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    };
    let before = recompilations();
    for _ in 0..10 {
        let mut statement = connection.prepare_cached(sql).expect("prepare");
        let mut rows = statement.query(["org_1"]).expect("query");
        while rows.next().expect("step").is_some() {}
    }
    recompilations() - before
}

#[tokio::test]
async fn the_stores_connections_keep_their_plans_across_runs_of_a_cached_statement() {
    const CHAIN_HEAD: &str =
        "SELECT sequence, hash FROM events WHERE organization_id = ?1 ORDER BY sequence DESC LIMIT 1";
    let (dir, store) = store_with_one_event().await;
    let on_writer = store
        .writer
        .write(|connection| Ok(recompilations_over_cached_runs(connection, CHAIN_HEAD)))
        .await
        .expect("write");
    let on_reader = store
        .readers
        .read(|connection| Ok(recompilations_over_cached_runs(connection, CHAIN_HEAD)))
        .await
        .expect("read");
    let indexer = search_index::prepare_index_file(&dir.path().join("stele.db")).expect("indexer");
    let on_indexer = recompilations_over_cached_runs(&indexer, CHAIN_HEAD);
    assert_eq!((on_writer, on_reader, on_indexer), (0, 0, 0));
    // What the setting prevents: by default SQLite compiles this statement again on every
    // run from the cache, the same value bound or not (see `keep_query_plans`).
    let plain = super::open_for_test(dir.path().join("plain.db"));
    plain
        .execute_batch(
            "CREATE TABLE events (organization_id TEXT, sequence INTEGER, hash BLOB,
                                  UNIQUE (organization_id, sequence));
             INSERT INTO events VALUES ('org_1', 1, x'00');",
        )
        .expect("schema");
    assert_eq!(recompilations_over_cached_runs(&plain, CHAIN_HEAD), 10);
}

/// The plan SQLite chooses for a search, one line per step.
fn search_plan(dir: &tempfile::TempDir, query: &EventQuery) -> String {
    let page = stele_core::pagination::PageRequest::<i64>::default();
    search_plan_of(
        dir,
        query,
        &crate::shared::search::SearchScan::by_sequence(&page.scan()),
    )
}

/// The plan SQLite chooses for one page of a search scanned as `scan`.
fn search_plan_of(
    dir: &tempfile::TempDir,
    query: &EventQuery,
    scan: &crate::shared::search::SearchScan,
) -> String {
    let connection = with_index_file(dir);
    let walk_time_blocks = events::walks_time_blocks(&connection, query, scan).expect("density");
    let (sql, values) = events::search_sql(query, scan, walk_time_blocks);
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("plan");
    let lines: Vec<String> = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            row.get::<_, String>(3)
        })
        .and_then(Iterator::collect)
        .expect("plan rows");
    lines.join("\n")
}

/// The events not yet indexed are read from the end of `events` by position, never by
/// walking the organization's events.
fn assert_tail_is_read_by_position(plan: &str) {
    assert!(
        plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid>?)"),
        "{plan}"
    );
    assert!(
        !plan.contains("SEARCH e USING INDEX sqlite_autoindex_events_2 (organization_id=?)\n"),
        "{plan}"
    );
}

#[tokio::test]
async fn a_search_by_actor_action_and_time_is_driven_by_the_actor_index_alone() {
    // Without statistics SQLite used to pick the action index here when both were
    // candidates and walk every event of the action: the actor's index must drive, and
    // the time range be checked from it.
    let (dir, _store) = store_with_one_event().await;
    let query = EventQuery {
        organization_id: "org_1".into(),
        actions: vec!["user.signed_in".into()],
        actor_ids: vec!["u".into()],
        target_types: vec!["team".into()],
        occurred_from: Some(0),
        occurred_to: Some(1),
        ..EventQuery::default()
    };
    let plan = search_plan(&dir, &query);
    assert!(plan.contains("USING INDEX event_search_by_actor"), "{plan}");
    assert_tail_is_read_by_position(&plan);
    assert!(!plan.contains("event_search_by_action"), "{plan}");
    assert!(!plan.contains("event_search_by_occurred_at"), "{plan}");
}

#[tokio::test]
async fn a_time_range_in_sequence_order_walks_the_runs_and_reads_their_events_in_order() {
    // Runs newest first, each overlapping run's events by their sequence key; no read of
    // the range's whole time index, and no sort of the indexed rows.
    let (dir, _store) = store_with_one_event().await;
    for actions in [vec![], vec!["user.signed_in".to_owned()]] {
        let query = EventQuery {
            organization_id: "org_1".into(),
            actions,
            occurred_from: Some(0),
            occurred_to: Some(1),
            ..EventQuery::default()
        };
        let plan = search_plan(&dir, &query);
        assert!(
            plan.contains(
                "SEARCH b USING PRIMARY KEY (organization_id=?)
SEARCH e USING INDEX sqlite_autoindex_event_search_1 (organization_id=? AND sequence>? AND sequence<?)"
            ),
            "{plan}"
        );
        let indexed_part = plan
            .split("LEFT-MOST SUBQUERY")
            .nth(1)
            .and_then(|rest| rest.split("UNION ALL").next())
            .expect("the indexed part of the plan");
        assert!(!indexed_part.contains("TEMP B-TREE"), "{plan}");
        assert!(!plan.contains("event_search_by_occurred_at"), "{plan}");
        assert!(!plan.contains("event_search_by_action"), "{plan}");
        assert_tail_is_read_by_position(&plan);
    }
}

#[tokio::test]
async fn a_time_range_whose_runs_are_mostly_other_times_reads_the_time_index() {
    // A run of sequences spanning a million milliseconds, of which the range is two: its
    // events are expected elsewhere, and walking such runs could read far more than the
    // range holds, so the time index's entries for the range are read instead.
    let (dir, _store) = store_with_one_event().await;
    with_index_file(&dir)
        .execute(
            "INSERT INTO event_time_blocks (organization_id, block, earliest, latest)
             VALUES ('org_1', 7, 0, 999999)",
            [],
        )
        .expect("a wide run");
    let query = EventQuery {
        organization_id: "org_1".into(),
        occurred_from: Some(0),
        occurred_to: Some(1),
        ..EventQuery::default()
    };
    let density =
        search_index::time_range_density(&with_index_file(&dir), "org_1", Some(0), Some(1))
            .expect("density");
    assert!(
        density.is_some_and(|density| density < 0.001),
        "a covering summary that expects the range nearly empty: {density:?}"
    );
    let plan = search_plan(&dir, &query);
    assert!(
        plan.contains("COVERING INDEX event_search_by_occurred_at"),
        "{plan}"
    );
    assert!(!plan.contains("SEARCH b USING PRIMARY KEY"), "{plan}");
    assert_tail_is_read_by_position(&plan);
}

#[tokio::test]
async fn a_time_range_by_occurred_at_walks_the_time_index_from_the_cursor() {
    use stele_core::pagination::{Cursor, PageRequest};
    let (dir, _store) = store_with_one_event().await;
    let query = EventQuery {
        organization_id: "org_1".into(),
        occurred_from: Some(0),
        occurred_to: Some(1_000),
        ..EventQuery::default()
    };
    let first = PageRequest::<OccurredAtKey>::default();
    let plan = search_plan_of(
        &dir,
        &query,
        &crate::shared::search::SearchScan::by_occurred_at(&first.scan()),
    );
    assert!(
        plan.contains(
            "SEARCH e USING COVERING INDEX event_search_by_occurred_at (organization_id=? AND occurred_at>? AND occurred_at<?)"
        ),
        "{plan}"
    );
    assert_tail_is_read_by_position(&plan);
    // A later page starts the walk at its cursor, not at the range's end.
    let later = PageRequest {
        cursor: Some(Cursor::After(OccurredAtKey {
            occurred_at: 500,
            sequence: 3,
        })),
        ..PageRequest::default()
    };
    let plan = search_plan_of(
        &dir,
        &query,
        &crate::shared::search::SearchScan::by_occurred_at(&later.scan()),
    );
    assert!(
        plan.contains(
            "SEARCH e USING COVERING INDEX event_search_by_occurred_at (organization_id=? AND occurred_at>? AND (occurred_at,sequence)<(?,?))"
        ),
        "{plan}"
    );
}

/// A connection to the test database with its search index file attached.
fn with_index_file(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let path = dir.path().join("stele.db");
    let connection = super::open_for_test(&path);
    // Planned as the read connections plan (see `keep_query_plans`).
    keep_query_plans(&connection).expect("query plan stability");
    search_index::attach(&connection, &path).expect("attach the index file");
    connection
}

/// Waits until the indexer has indexed every stored event for search.
async fn wait_until_indexed(dir: &tempfile::TempDir) {
    let connection = with_index_file(dir);
    for _ in 0..500 {
        if search_index::tail_length(&connection).expect("tail") == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the writer did not index the stored events within 10 s");
}

#[tokio::test]
async fn events_acknowledged_but_not_indexed_before_a_crash_are_searchable_and_indexed_on_restart()
{
    let (dir, store) = open();
    create_acme(&store).await;
    for n in 0..30 {
        let request = parse_create_event(&json!({
            "organization_id": "org_1",
            "event": {
                "action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z",
                "actor": {"id": format!("u{}", n % 3), "type": "user"},
                "targets": [{"id": "t", "type": "team"}, {"id": format!("d{n}"), "type": "document"}],
                "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid");
        store
            .append_event(
                NewEvent {
                    id: format!("audit_log_event_{n:02}").into(),
                    organization_id: "org_1".into(),
                    event: request.event,
                },
                None,
            )
            .await
            .expect("append");
    }
    wait_until_indexed(&dir).await;
    drop(store);
    // What a crash between acknowledging and indexing leaves: the events and no search rows.
    with_index_file(&dir)
        .execute_batch(
            "PRAGMA busy_timeout = 5000;
             DELETE FROM event_search; DELETE FROM event_targets;
             UPDATE search_index_progress SET indexed_position = 0;",
        )
        .expect("empty the index file");
    let store = SqliteStore::open(&dir.path().join("stele.db"), true).expect("reopen");
    let search = |query: EventQuery| {
        let store = &store;
        async move {
            let page = stele_core::pagination::PageRequest::<i64> {
                limit: 100,
                ..Default::default()
            };
            store
                .search_events(query, page)
                .await
                .expect("search")
                .data
                .len()
        }
    };
    let by_target = EventQuery {
        organization_id: "org_1".into(),
        target_ids: vec!["t".into()],
        ..EventQuery::default()
    };
    let by_actor_and_type = EventQuery {
        organization_id: "org_1".into(),
        actor_ids: vec!["u1".into()],
        target_types: vec!["document".into()],
        ..EventQuery::default()
    };
    // Found at once, whether the writer has caught up yet or not...
    assert_eq!(search(by_target.clone()).await, 30);
    assert_eq!(search(by_actor_and_type.clone()).await, 10);
    // ...and indexed again on restart.
    wait_until_indexed(&dir).await;
    let connection = with_index_file(&dir);
    let count = |sql: &str| -> i64 { connection.query_row(sql, [], |row| row.get(0)).expect(sql) };
    assert_eq!(count("SELECT COUNT(*) FROM event_search"), 30);
    assert_eq!(count("SELECT COUNT(*) FROM event_targets"), 60);
    assert_eq!(search(by_target).await, 30);
    assert_eq!(search(by_actor_and_type).await, 10);
}

/// The search index file is derived data: a server that finds none (lost, or never backed
/// up) starts, finds every event by search at once, and rebuilds it from `events`.
#[tokio::test]
async fn a_missing_search_index_file_is_rebuilt_and_searches_stay_complete() {
    let (dir, store) = store_with_one_event().await;
    wait_until_indexed(&dir).await;
    drop(store);
    // The store's threads end once they see it dropped; give the indexer a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for suffix in ["-search", "-search-wal", "-search-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("stele.db{suffix}")));
    }
    let store = SqliteStore::open(&dir.path().join("stele.db"), true).expect("reopen");
    let by_target = EventQuery {
        organization_id: "org_1".into(),
        target_ids: vec!["t".into()],
        ..EventQuery::default()
    };
    let found = store
        .search_events(by_target, stele_core::pagination::PageRequest::default())
        .await
        .expect("search");
    assert_eq!(found.data.len(), 1);
    wait_until_indexed(&dir).await;
    let count: i64 = with_index_file(&dir)
        .query_row("SELECT COUNT(*) FROM event_targets", [], |row| row.get(0))
        .expect("count");
    assert_eq!(count, 1, "the index file was rebuilt");
    assert_eq!(store.unindexed_events().await.expect("lag"), 0);
}

/// One-off commands open the store without an indexer: a `stele verify` of a backup whose
/// index file is missing creates an empty one (read connections attach it) but rebuilds
/// nothing, and what a command appends is indexed by the server's indexer, which looks
/// for events no commit of its own announced while idle.
#[tokio::test]
async fn a_command_indexes_nothing_and_a_running_servers_indexer_finds_what_it_appended() {
    let (dir, server) = store_with_one_event().await;
    wait_until_indexed(&dir).await;
    // Let the server's indexer use up the wake-ups of its own commits and go idle, so
    // that only its idle poll can find the command's event.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let path = dir.path().join("stele.db");
    let command =
        SqliteStore::open_with(&path, false, SyncMode::Full, SearchIndexing::Off).expect("open");
    append_with_target(&command, "audit_log_event_2", "t2").await;
    let by_target = EventQuery {
        organization_id: "org_1".into(),
        target_ids: vec!["t2".into()],
        ..EventQuery::default()
    };
    let found = server
        .search_events(by_target, stele_core::pagination::PageRequest::default())
        .await
        .expect("search");
    assert_eq!(
        found.data.len(),
        1,
        "the command's event is found from the tail"
    );
    drop(command);
    // No commit of the server's announced the event; its idle poll finds it.
    wait_until_indexed(&dir).await;
    assert_eq!(server.unindexed_events().await.expect("lag"), 0);
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A command on a database without its index file creates the file and indexes nothing.
    for suffix in ["-search", "-search-wal", "-search-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("stele.db{suffix}")));
    }
    let command =
        SqliteStore::open_with(&path, false, SyncMode::Full, SearchIndexing::Off).expect("open");
    assert_eq!(command.unindexed_events().await.expect("lag"), 2);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        command.unindexed_events().await.expect("lag"),
        2,
        "a command rebuilt the index"
    );
}

/// A `user.signed_in` event of `org_1` with id number `n`, to append in batches.
fn numbered_event(n: i64) -> EventToAppend {
    let request = parse_create_event(&json!({
        "organization_id": "org_1",
        "event": {
            "action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z",
            "actor": {"id": "u", "type": "user"}, "targets": [],
            "context": {"location": "1.2.3.4"}
        }
    }))
    .expect("valid");
    EventToAppend {
        event: NewEvent {
            id: format!("audit_log_event_{n:026}").into(),
            organization_id: "org_1".into(),
            event: request.event,
        },
        idempotency: None,
    }
}

/// Events another process appends (`stele import` beside the server) are the indexer's
/// backlog: the server's writer does not wait for the indexer to work through them, as it
/// would for as many events of its own, since waiting would only delay the server's
/// acknowledgements (by up to a second each), never the other process.
#[tokio::test]
async fn events_another_process_appends_do_not_hold_the_servers_writer_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stele.db");
    // The other process: a store without an indexer, as one-off commands open it.
    let importer = SqliteStore::open_with(&path, true, SyncMode::Full, SearchIndexing::Off)
        .expect("open the importer's store");
    create_acme(&importer).await;
    // The server's side: its writer's connection, and an indexer that never moves (so
    // whatever lags, lags for certain).
    let index = search_index::prepare_index_file(&path).expect("index");
    let mut indexer =
        search_index::SearchIndexer::without_thread(&index).expect("an indexer that stays put");
    let writer = super::open_for_test(&path);
    indexer.after_commit(&writer);
    let imported = importer
        .append_events((0..=search_index::MAX_TAIL).map(numbered_event).collect())
        .await
        .expect("the import is acknowledged");
    assert!(imported.iter().all(Result::is_ok));

    indexer.after_commit(&writer);
    assert_eq!(
        indexer.waits(),
        0,
        "the server's commit waited for the indexer to index another process's events"
    );
}

/// Ingest that outruns the indexer is held back once the index lags more than
/// `MAX_TAIL` events, so searches never read an unbounded tail, but never stopped: an
/// indexer that cannot write (here its file is locked) costs each commit at most the
/// hold-back limit, and once it can write again it catches up.
#[tokio::test]
async fn ingest_waits_for_an_indexer_that_falls_too_far_behind_but_never_stops() {
    let (dir, store) = open();
    create_acme(&store).await;
    let event = numbered_event;
    let over_the_limit = search_index::MAX_TAIL + 1;
    let batch: Vec<EventToAppend> = (0..over_the_limit).map(event).collect();
    // Once the indexer is done with the organization's commit (it gathers for 200 ms), lock
    // its file: its next step waits for the lock (5 s) instead of moving.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let blocker = super::open_for_test(dir.path().join("stele.db-search"));
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("lock the index file");
    let outcomes = store
        .append_events(batch)
        .await
        .expect("a batch past the limit is acknowledged");
    assert!(outcomes.iter().all(Result::is_ok));
    // The commit after it waits for the indexer, which cannot move, then goes ahead. (The
    // wait began when the batch's commit ended, a moment before the batch's answer arrived
    // here, so less than the whole second of it is seen from here; an append that did not
    // wait takes milliseconds.)
    let started = std::time::Instant::now();
    store
        .append_events(vec![event(over_the_limit)])
        .await
        .expect("acknowledged all the same");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "the writer did not wait for the indexer: {:?}",
        started.elapsed()
    );
    blocker.execute_batch("ROLLBACK").expect("unlock");
    wait_until_indexed(&dir).await;
    assert_eq!(store.unindexed_events().await.expect("lag"), 0);
}

/// The writer checkpoints only at 16,384 WAL pages; the checkpointer thread moves the WAL
/// into the database file before that, while the store stays open, so a copy of the
/// database file alone, without its WAL, holds the acknowledged event.
#[tokio::test]
async fn the_checkpointer_moves_acknowledged_events_into_the_database_file() {
    let (dir, store) = store_with_one_event().await;
    let database = dir.path().join("stele.db");
    let copy = dir.path().join("copy.db");
    let writer_setting: i64 = store
        .writer
        .write(|connection| {
            connection
                .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
                .map_err(database_error)
        })
        .await
        .expect("read the setting");
    assert_eq!(
        writer_setting, 16_384,
        "the writer leaves most checkpoints to the thread"
    );
    let mut found = 0;
    for _ in 0..100 {
        std::fs::copy(&database, &copy).expect("copy the database file alone");
        let connection = super::open_for_test(&copy);
        found = connection
            .query_row(
                "SELECT COUNT(*) FROM events WHERE organization_id = 'org_1'",
                [],
                |row| row.get(0),
            )
            .unwrap_or(0);
        if found == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found, 1, "the event reached the database file within 5 s");
    drop(store);
}
