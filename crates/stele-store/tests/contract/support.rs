//! What every contract test needs: a fresh store of either backend, and small builders for
//! the values the store takes, so the test bodies read as behaviour, not construction.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use stele_core::event::parse_create_event;
use stele_core::ids::IdKind;
use stele_core::model::*;
use stele_core::pagination::{Cursor, Page, PageRequest, SortOrder};
use stele_core::schema::{parse_schema_definition, SchemaDefinition};
use stele_core::timestamp::UnixMillis;
use stele_store::postgres::{PostgresOptions, PostgresStore};
use stele_store::prelude::*;
use stele_store::sqlite::SqliteStore;

/// Expands each named test body (`async fn name(backend: Backend)`) into
/// `name_on_sqlite` and `name_on_postgres`.
macro_rules! contract_tests {
    ($($name:ident),+ $(,)?) => {
        paste::paste! {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn [<$name _on_sqlite>]() {
                    $name($crate::support::Backend::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn [<$name _on_postgres>]() {
                    $name($crate::support::Backend::postgres().await).await;
                }
            )+
        }
    };
}
pub(crate) use contract_tests;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store on a database of its own, removed when the backend is dropped.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub kind: Kind,
    // Dropped after `store`: the database outlives the store using it.
    place: Place,
}

enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(ScratchDatabase),
}

impl std::ops::Deref for Backend {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Backend {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("stele.db");
        let store = SqliteStore::open(&path, true).expect("open SQLite store");
        Self {
            store: Arc::new(store),
            kind: Kind::Sqlite,
            place: Place::Sqlite { _dir: dir, path },
        }
    }

    pub async fn postgres() -> Self {
        let database = ScratchDatabase::create().await;
        let store = database.open().await;
        Self {
            store,
            kind: Kind::Postgres,
            place: Place::Postgres(database),
        }
    }

    /// `count` stores standing for processes sharing this database: on PostgreSQL they
    /// alternate between this store and a second one with its own pool; SQLite is opened
    /// by one process only, so there they are all this store.
    pub async fn peers(&self, count: usize) -> Vec<Arc<dyn Store>> {
        let other = match &self.place {
            Place::Sqlite { .. } => Arc::clone(&self.store),
            Place::Postgres(database) => database.open().await,
        };
        (0..count)
            .map(|index| {
                if index % 2 == 0 {
                    Arc::clone(&self.store)
                } else {
                    Arc::clone(&other)
                }
            })
            .collect()
    }

    /// A second store opened on the same database (a restarted or second process).
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match &self.place {
            Place::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open(path, false).expect("reopen SQLite store"))
            }
            Place::Postgres(database) => database.open().await,
        }
    }
}

// --- PostgreSQL scratch databases ---------------------------------------------------------

/// A database created for one test and dropped (with its connections) afterwards.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("STELE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn admin_execute(admin_url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the store contract suite needs PostgreSQL, but {admin_url} cannot be reached \
                 ({error}); start PostgreSQL or point STELE_TEST_POSTGRES_URL at one"
            )
        });
    tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql} on {admin_url}: {error}"));
}

impl ScratchDatabase {
    async fn create() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin_url = admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "stele_contract_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("STELE_TEST_POSTGRES_URL names a database");
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        let mut options = PostgresOptions::new(&self.url);
        options.pool_size = 4;
        Arc::new(
            PostgresStore::open(&options, true)
                .await
                .expect("open PostgreSQL store"),
        )
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on itself.
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

// --- values ---------------------------------------------------------------------------------

pub fn now() -> UnixMillis {
    stele_core::timestamp::now_millis()
}

pub fn organization(id: &str, name: &str) -> Organization {
    Organization {
        id: id.into(),
        name: name.into(),
        external_id: None,
        metadata: Default::default(),
        domains: Vec::new(),
        retention_period_in_days: None,
        stripe_customer_id: None,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

pub fn domain(id: &str, domain: &str) -> OrganizationDomain {
    OrganizationDomain {
        id: id.into(),
        domain: domain.into(),
        state: "verified".into(),
        verification_strategy: "manual".into(),
        created_at: 1_000,
        updated_at: 1_000,
    }
}

/// Creates `id` (named after itself) and expects it to be stored.
pub async fn create_organization(store: &dyn Store, id: &str) -> Organization {
    done(
        store
            .create_organization(organization(id, id), None)
            .await
            .expect("create organization"),
    )
}

/// The `event` object of a create-event request: `{"action": ...}` plus `fields`
/// (actor, targets, occurred_at, ...) over defaults.
pub fn event_json(action: &str, fields: Value) -> Value {
    let mut event = json!({
        "action": action,
        "occurred_at": "2022-09-08T19:46:03.435Z",
        "actor": {"id": "user_1", "type": "user"},
        "targets": [{"id": "team_1", "type": "team"}],
        "context": {"location": "1.2.3.4"}
    });
    if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
        event.extend(fields);
    }
    event
}

/// A new event of `organization_id` with a fresh id, from an `event` object.
// `.into()` keeps this compiling whether event ids are plain strings or their own type.
#[allow(clippy::useless_conversion)]
pub fn new_event(organization_id: &str, event: Value) -> NewEvent {
    let request = parse_create_event(&json!({
        "organization_id": organization_id,
        "event": event,
    }))
    .expect("a valid event");
    NewEvent {
        id: IdKind::Event.generate().into(),
        organization_id: organization_id.into(),
        event: request.event,
    }
}

/// Appends a default event of `action` and expects it to be stored.
pub async fn append(store: &dyn Store, organization_id: &str, action: &str) -> AppendedEvent {
    append_event(
        store,
        new_event(organization_id, event_json(action, json!({}))),
    )
    .await
}

pub async fn append_event(store: &dyn Store, event: NewEvent) -> AppendedEvent {
    done(store.append_event(event, None).await.expect("append event"))
}

/// Appends `count` events, each received at least a millisecond after the previous one,
/// so retention cutoffs can fall between any two of them.
pub async fn append_spaced(
    store: &dyn Store,
    organization_id: &str,
    count: usize,
) -> Vec<AppendedEvent> {
    let mut appended: Vec<AppendedEvent> = Vec::with_capacity(count);
    for _ in 0..count {
        if let Some(previous) = appended.last() {
            while now() <= previous.received_at {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        appended.push(append(store, organization_id, "user.signed_in").await);
    }
    appended
}

/// The stored event `id` of `organization_id`, which must exist.
pub async fn stored(store: &dyn Store, organization_id: &str, id: &str) -> HashedEvent {
    store
        .get_event(organization_id, id)
        .await
        .expect("get event")
        .unwrap_or_else(|| panic!("event {id} of {organization_id} is stored"))
}

/// The result of a write that carried no idempotency key, or the first use of one.
pub fn done<T: std::fmt::Debug>(outcome: Idempotent<T>) -> T {
    match outcome {
        Idempotent::Done(value) => value,
        other => panic!("expected the write to be done, got {other:?}"),
    }
}

pub fn idempotency_record(scope: &str, key: &str, body: &str, at: UnixMillis) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: scope.into(),
        key: key.into(),
        fingerprint: [7; 32],
        status: 201,
        body: body.as_bytes().to_vec(),
        created_at: at,
    }
}

pub fn definition(body: Value) -> SchemaDefinition {
    parse_schema_definition(&body).expect("a valid schema definition")
}

pub fn page<K>(limit: u32, order: SortOrder, cursor: Option<Cursor<K>>) -> PageRequest<K> {
    PageRequest {
        limit,
        order,
        cursor,
    }
}

/// Everything `query` matches, oldest first.
pub async fn search_all(store: &dyn Store, query: EventQuery) -> Vec<StoredEvent> {
    store
        .search_events(query, page(100, SortOrder::Asc, None))
        .await
        .expect("search")
        .data
}

pub fn query(organization_id: &str) -> EventQuery {
    EventQuery {
        organization_id: organization_id.into(),
        ..EventQuery::default()
    }
}

pub fn sequences(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|event| event.sequence).collect()
}

pub fn page_sequences(page: &Page<StoredEvent>) -> Vec<i64> {
    sequences(&page.data)
}

/// Re-checks every chain (or one organization's) and expects no break.
pub async fn verify(store: &dyn Store, organization_id: Option<&str>) -> VerifyReport {
    let report = store
        .verify_log(organization_id.map(Into::into), Box::new(|_| {}))
        .await
        .expect("verify log");
    assert_eq!(report.first_break, None, "{report:?}");
    report
}

pub fn api_key(id: &str, name: &str, secret: u8, at: UnixMillis) -> NewApiKey {
    NewApiKey {
        id: id.into(),
        name: name.into(),
        secret_hash: [secret; 32],
        created_at: at,
        grants: stele_core::access::KeyGrants::admin(),
    }
}

pub fn user(id: &str, username: &str) -> NewUser {
    NewUser {
        id: id.into(),
        username: username.into(),
        password_hash: format!("$argon2id$v=19${username}"),
        created_at: 1_000,
    }
}

pub fn checkpoint(organization_id: &str, size: u64, created_at: UnixMillis) -> Checkpoint {
    Checkpoint {
        organization_id: organization_id.into(),
        tree_size: size,
        root_hash: [size as u8; 32],
        note: format!("stele/{organization_id}\n{size}\n"),
        key_id: "00aa11bb".into(),
        created_at,
    }
}

/// Runs `tasks` concurrently, each on its own task, and returns their results in order.
pub async fn race<T, F>(tasks: impl IntoIterator<Item = F>) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}

/// Every organization id but the reserved activity log's (which every database has).
pub async fn customer_organization_ids(store: &dyn Store) -> Vec<String> {
    store
        .organization_ids()
        .await
        .expect("ids")
        .iter()
        .map(|id| id.to_string())
        .filter(|id| !stele_core::access::is_activity_log(id))
        .collect()
}
