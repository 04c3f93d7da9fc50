//! Store-level tests of what only PostgreSQL has: several processes (here, several
//! stores with their own pools) appending to one database, and the appender's batches.
//! They use `STELE_TEST_POSTGRES_URL` (default: the local server) and fail when it cannot
//! be reached.

use std::sync::Arc;

use serde_json::json;
use stele_core::event::parse_create_event;

use super::events::SHORT_SEQUENCE_WALK;
use super::*;
use stele_core::model::*;
use stele_core::pagination::Page;

/// A database created for one test and dropped (with its connections) afterwards.
pub(super) struct ScratchDatabase {
    admin_url: String,
    name: String,
    pub(super) url: String,
}

pub(super) fn admin_url() -> String {
    std::env::var("STELE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn admin_execute(admin_url: &str, sql: &str) {
    let options = PostgresOptions::new(admin_url);
    let client = connect(&options)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {admin_url}: {error}"));
    client.batch_execute(sql).await.expect(sql);
}

impl ScratchDatabase {
    pub(super) async fn create() -> Self {
        let admin_url = admin_url();
        let name = format!(
            "stele_store_test_{}_{}",
            std::process::id(),
            now_millis_nanos()
        );
        admin_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }

    async fn store(&self) -> Arc<PostgresStore> {
        let mut options = PostgresOptions::new(&self.url);
        options.pool_size = 4;
        Arc::new(PostgresStore::open(&options, true).await.expect("open"))
    }
}

fn now_millis_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(admin_execute(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ));
            }
        })
        .join();
    }
}

fn organization(id: &str) -> Organization {
    Organization {
        id: id.into(),
        name: id.into(),
        external_id: None,
        metadata: Default::default(),
        domains: Vec::new(),
        retention_period_in_days: None,
        stripe_customer_id: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn new_event(id: String, organization_id: &str) -> NewEvent {
    let request = parse_create_event(&json!({
        "organization_id": organization_id,
        "event": {
            "action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z",
            "actor": {"id": "u", "type": "user"},
            "targets": [{"id": "t", "type": "team"}],
            "context": {"location": "1.2.3.4"}
        }
    }))
    .expect("valid");
    NewEvent {
        id: id.into(),
        organization_id: organization_id.into(),
        event: request.event,
    }
}

fn record(key: &str, body: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: "key_1".into(),
        key: key.into(),
        fingerprint: [7; 32],
        status: 201,
        body: body.as_bytes().to_vec(),
        created_at: stele_core::timestamp::now_millis(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_from_two_processes_to_one_organization_form_one_contiguous_chain() {
    let database = ScratchDatabase::create().await;
    let (first, second) = (database.store().await, database.store().await);
    first
        .create_organization(organization("org_a"), None)
        .await
        .expect("organization");
    let appends = (0..300).map(|index| {
        let store = if index % 2 == 0 { &first } else { &second };
        let store = Arc::clone(store);
        tokio::spawn(async move {
            store
                .append_event(new_event(format!("evt_{index}"), "org_a"), None)
                .await
        })
    });
    let mut sequences = Vec::new();
    for append in futures_util::future::join_all(appends).await {
        match append.expect("task").expect("append") {
            Idempotent::Done(appended) => sequences.push(appended.sequence),
            other => panic!("unexpected {other:?}"),
        }
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=300).collect::<Vec<i64>>());
    let report = second
        .verify_log(None, Box::new(|_| {}))
        .await
        .expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, 300);
    assert_eq!(first.tree_size("org_a").await.expect("size"), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_stores_a_repeated_key_once_and_rejects_only_the_unknown_organization() {
    let database = ScratchDatabase::create().await;
    let store = database.store().await;
    store
        .create_organization(organization("org_a"), None)
        .await
        .expect("organization");
    // Submitted together, so they usually share one batch; the outcome must not depend
    // on whether they do.
    let (left, right, orphan, plain) = tokio::join!(
        store.append_event(
            new_event("evt_1".into(), "org_a"),
            Some(record("k", "first"))
        ),
        store.append_event(
            new_event("evt_2".into(), "org_a"),
            Some(record("k", "second"))
        ),
        store.append_event(new_event("evt_3".into(), "org_missing"), None),
        store.append_event(new_event("evt_4".into(), "org_a"), None),
    );
    let outcomes = [left.expect("left"), right.expect("right")];
    let done = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Idempotent::Done(_)))
        .count();
    assert_eq!(done, 1, "{outcomes:?}");
    let replayed: Vec<&IdempotencyRecord> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Idempotent::AlreadyDone(record) => Some(record),
            Idempotent::Done(_) => None,
        })
        .collect();
    assert_eq!(replayed.len(), 1);
    assert!(matches!(orphan, Err(StoreError::OrganizationNotFound)));
    assert!(matches!(plain, Ok(Idempotent::Done(_))));
    let report = store
        .verify_log(Some("org_a".into()), Box::new(|_| {}))
        .await
        .expect("verify");
    assert_eq!((report.events, report.first_break), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_than_the_binary_knows_is_refused_and_an_unmigrated_one_needs_migrate() {
    let database = ScratchDatabase::create().await;
    let options = PostgresOptions::new(&database.url);
    let refused = PostgresStore::open(&options, false)
        .await
        .err()
        .expect("an empty database is not opened without migrating");
    assert!(refused.to_string().contains("stele migrate"), "{refused}");
    assert_eq!(
        PostgresStore::migrate(&options).await.expect("migrate"),
        migrations::MIGRATIONS.len()
    );
    assert_eq!(PostgresStore::migrate(&options).await.expect("again"), 0);
    PostgresStore::open(&options, false)
        .await
        .expect("a current schema opens without migrating");
    admin_execute(
        &database.url,
        "INSERT INTO stele_migrations (version) VALUES (999)",
    )
    .await;
    let newer = PostgresStore::migrate(&options)
        .await
        .expect_err("a newer schema is refused");
    assert!(newer.to_string().contains("upgrade stele"), "{newer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_connection_carries_the_configured_statement_timeout() {
    let database = ScratchDatabase::create().await;
    let mut options = PostgresOptions::new(&database.url);
    options.statement_timeout = std::time::Duration::from_millis(250);
    let store = PostgresStore::open(&options, true).await.expect("open");
    let shown: String = store
        .query("SHOW statement_timeout", &[])
        .await
        .expect("show")[0]
        .get(0);
    assert_eq!(shown, "250ms");
    let cancelled = store
        .query("SELECT pg_sleep(2)", &[])
        .await
        .expect_err("the server cancels a statement past the timeout");
    assert!(
        cancelled.to_string().contains("statement timeout"),
        "{cancelled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_schema_submissions_on_two_processes_create_one_version() {
    let database = ScratchDatabase::create().await;
    let (first, second) = (database.store().await, database.store().await);
    let definition = stele_core::schema::parse_schema_definition(&json!({
        "targets": [{"type": "team"}]
    }))
    .expect("definition");
    let submissions = (0..8).map(|index| {
        let store = Arc::clone(if index % 2 == 0 { &first } else { &second });
        let definition = definition.clone();
        tokio::spawn(async move {
            store
                .create_schema_version("user.signed_in", definition, "test", 1, None)
                .await
        })
    });
    let mut created = 0;
    for submission in futures_util::future::join_all(submissions).await {
        match submission.expect("task").expect("create") {
            Idempotent::Done((version, new)) => {
                assert_eq!(version.version, 1);
                created += usize::from(new);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        created, 1,
        "one submission created version 1, the rest saw it"
    );
    assert_eq!(
        second
            .schema_version_numbers("user.signed_in")
            .await
            .expect("versions"),
        [1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_database_rejects_fails_alone_not_its_whole_batch() {
    let database = ScratchDatabase::create().await;
    let store = database.store().await;
    store
        .create_organization(organization("org_a"), None)
        .await
        .expect("organization");
    // PostgreSQL text cannot hold U+0000; the API refuses it, the store must still not let
    // it fail the events batched with it.
    let mut bad = new_event("evt_bad".into(), "org_a");
    bad.event.actor.id = "user\u{0}".into();
    let (bad, first, second) = tokio::join!(
        store.append_event(bad, None),
        store.append_event(new_event("evt_1".into(), "org_a"), None),
        store.append_event(new_event("evt_2".into(), "org_a"), None),
    );
    assert!(matches!(bad, Err(StoreError::Postgres { .. })), "{bad:?}");
    let mut sequences: Vec<i64> = [first, second]
        .into_iter()
        .map(|outcome| match outcome.expect("stored") {
            Idempotent::Done(appended) => appended.sequence,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, [1, 2]);
    let report = store
        .verify_log(None, Box::new(|_| {}))
        .await
        .expect("verify");
    assert_eq!((report.events, report.first_break), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_range_far_from_the_newest_events_pages_exactly_like_a_full_scan() {
    use stele_core::pagination::{Cursor, PageRequest, SortOrder};
    let database = ScratchDatabase::create().await;
    let store = database.store().await;
    store
        .create_organization(organization("org_a"), None)
        .await
        .expect("organization");
    // More events than SHORT_SEQUENCE_WALK after the range, so the page is chosen from
    // the time index; event i (sequence i + 1) occurred i seconds after the base time.
    let total = SHORT_SEQUENCE_WALK as usize + 2_000;
    let base: i64 = 1_767_225_600_000;
    let appends = (0..total).map(|index| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut event = new_event(format!("evt_{index}"), "org_a");
            event.event.occurred_at = base + index as i64 * 1000;
            store.append_event(event, None).await
        })
    });
    for append in futures_util::future::join_all(appends).await {
        append.expect("task").expect("append");
    }
    let query = EventQuery {
        organization_id: "org_a".into(),
        occurred_from: Some(base + 100 * 1000),
        occurred_to: Some(base + 124 * 1000),
        ..EventQuery::default()
    };
    let sequences = |page: &Page<StoredEvent>| -> Vec<i64> {
        page.data.iter().map(|event| event.sequence).collect()
    };
    let page = |order, cursor| PageRequest {
        limit: 10,
        order,
        cursor,
    };
    // Newest first: the appends raced, so sequence order is arrival order; the expected
    // pages come from the stored rows themselves.
    let mut expected: Vec<(i64, i64)> = store
        .query(
            "SELECT sequence, occurred_at FROM events WHERE organization_id = 'org_a'",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .filter(|(_, occurred_at)| (base + 100_000..=base + 124_000).contains(occurred_at))
        .collect();
    expected.sort_unstable();
    let expected: Vec<i64> = expected.into_iter().map(|(sequence, _)| sequence).collect();
    assert_eq!(expected.len(), 25);

    let first = store
        .search_events(query.clone(), page(SortOrder::Desc, None))
        .await
        .expect("first page");
    let newest: Vec<i64> = expected.iter().rev().copied().collect();
    assert_eq!(sequences(&first), newest[..10]);
    let cursor: i64 = first.after.as_deref().expect("more").parse().expect("key");
    let second = store
        .search_events(
            query.clone(),
            page(SortOrder::Desc, Some(Cursor::After(cursor))),
        )
        .await
        .expect("second page");
    assert_eq!(sequences(&second), newest[10..20]);
    let oldest = store
        .search_events(query.clone(), page(SortOrder::Asc, None))
        .await
        .expect("oldest first");
    assert_eq!(sequences(&oldest), expected[..10]);
    let back = store
        .search_events(
            query,
            page(SortOrder::Desc, Some(Cursor::Before(newest[10]))),
        )
        .await
        .expect("previous page");
    assert_eq!(sequences(&back), newest[..10]);
}
