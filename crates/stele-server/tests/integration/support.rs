//! Test harness: starts an in-process server on an ephemeral port with its own database:
//! a fresh SQLite file, or, when `STELE_TEST_POSTGRES_URL` names a PostgreSQL server, a
//! fresh PostgreSQL database created for the test and dropped after it.

use std::path::PathBuf;

use clap::Parser;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use stele_server::config::{DatabaseOptions, ServeConfig};
use stele_server::state::AppState;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const API_KEY: &str = "sk_test_integration_key_0123456789abcdef";

/// The environment variable that selects PostgreSQL: a URL of a database on the server
/// (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) that may create databases.
pub const POSTGRES_URL_VARIABLE: &str = "STELE_TEST_POSTGRES_URL";

/// One test's own database: a SQLite file in a temporary directory, or a PostgreSQL
/// database with a unique name, dropped (connections and all) when this is dropped.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    /// Holds the SQLite file, and for either backend the checkpoint signing key, which
    /// belongs with the database (a restart must sign with the same key).
    dir: TempDir,
}

enum Backend {
    Sqlite { path: PathBuf },
    Postgres { admin_url: String, name: String },
}

/// A value read back from the database, whatever the backend's column type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    pub fn integer(&self) -> i64 {
        match self {
            Cell::Integer(value) => *value,
            other => panic!("expected an integer, found {other:?}"),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Cell::Text(value) => value.clone(),
            other => panic!("expected text, found {other:?}"),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Cell::Bytes(value) => value.clone(),
            other => panic!("expected bytes, found {other:?}"),
        }
    }
}

/// A plain connection to the test server's SQLite database, opened as every SQLite
/// connection of the process must be: after the page cache is installed.
fn sqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    stele_store::sqlite::install_page_cache();
    rusqlite::Connection::open(path).expect("open database")
}

/// Runs `work` against PostgreSQL on a thread of its own, so the caller may be inside a
/// single-threaded test runtime (which also drives the server under test).
fn on_postgres<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(tokio_postgres::Client) -> futures::future::BoxFuture<'static, T> + Send + 'static,
) -> T {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|error| {
                    panic!("cannot reach PostgreSQL at {url} ({POSTGRES_URL_VARIABLE}): {error}")
                });
            tokio::spawn(connection);
            work(client).await
        })
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl TestDatabase {
    /// A fresh database on the backend the environment selects: `STELE_TEST_BACKEND`
    /// (`sqlite` or `postgres`) when set, otherwise PostgreSQL exactly when
    /// `STELE_TEST_POSTGRES_URL` is set. (The replica tests use PostgreSQL either way.)
    pub fn create() -> Self {
        let backend = std::env::var("STELE_TEST_BACKEND").unwrap_or_default();
        let url = std::env::var(POSTGRES_URL_VARIABLE)
            .ok()
            .filter(|url| !url.is_empty());
        match (backend.as_str(), url) {
            ("sqlite", _) => Self::create_sqlite(),
            ("postgres", url) => Self::create_postgres(&url.unwrap_or_else(default_postgres_url)),
            ("", Some(url)) => Self::create_postgres(&url),
            ("", None) => Self::create_sqlite(),
            (other, _) => panic!("STELE_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
        }
    }

    pub fn create_sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stele.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite { path },
            dir,
        }
    }

    /// A new, empty database on the PostgreSQL server `admin_url` points at.
    pub fn create_postgres(admin_url: &str) -> Self {
        let name = format!(
            "stele_test_{}_{}",
            std::process::id(),
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let statement = format!("CREATE DATABASE {name}");
        on_postgres(admin_url, move |client| {
            Box::pin(async move {
                client
                    .batch_execute(&statement)
                    .await
                    .unwrap_or_else(|error| panic!("{statement}: {error}"));
            })
        });
        TestDatabase {
            url: with_database_name(admin_url, &name),
            backend: Backend::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The `--database-url` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where servers on this database keep their checkpoint signing key.
    pub fn signing_key_file(&self) -> PathBuf {
        self.dir.path().join("signing-key.pem")
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// `sqlite` or `postgres`, whichever this backend speaks (for tests that tamper with
    /// stored bytes, where the two dialects differ).
    pub fn dialect<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        if self.is_postgres() {
            postgres
        } else {
            sqlite
        }
    }

    /// `bytes` as a literal of this backend's SQL.
    pub fn bytes_literal(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        if self.is_postgres() {
            format!("'\\x{hex}'::bytea")
        } else {
            format!("X'{hex}'")
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str) -> u64 {
        match &self.backend {
            Backend::Sqlite { path, .. } => sqlite_connection(path)
                .execute(sql, [])
                .unwrap_or_else(|error| panic!("{sql}: {error:?}"))
                as u64,
            Backend::Postgres { .. } => {
                let sql = sql.to_owned();
                on_postgres(&self.url, move |client| {
                    Box::pin(async move {
                        client
                            .execute(sql.as_str(), &[])
                            .await
                            .unwrap_or_else(|error| panic!("{sql}: {error:?}"))
                    })
                })
            }
        }
    }

    /// Every row `sql` returns, each as its cells.
    pub fn query(&self, sql: &str) -> Vec<Vec<Cell>> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let connection = sqlite_connection(path);
                // The search index tables live in a file of their own beside the database.
                let mut index = path.as_os_str().to_owned();
                index.push("-search");
                if std::path::Path::new(&index).exists() {
                    connection
                        .execute(
                            "ATTACH DATABASE ?1 AS search",
                            [index.to_string_lossy().as_ref()],
                        )
                        .expect("attach the search index file");
                }
                let mut statement = connection
                    .prepare(sql)
                    .unwrap_or_else(|error| panic!("{sql}: {error:?}"));
                let columns = statement.column_count();
                statement
                    .query_map([], |row| {
                        (0..columns)
                            .map(|index| {
                                Ok(match row.get_ref(index)? {
                                    rusqlite::types::ValueRef::Null => Cell::Null,
                                    rusqlite::types::ValueRef::Integer(value) => {
                                        Cell::Integer(value)
                                    }
                                    rusqlite::types::ValueRef::Real(value) => {
                                        Cell::Integer(value as i64)
                                    }
                                    rusqlite::types::ValueRef::Text(value) => {
                                        Cell::Text(String::from_utf8_lossy(value).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(value) => {
                                        Cell::Bytes(value.to_vec())
                                    }
                                })
                            })
                            .collect()
                    })
                    .and_then(Iterator::collect)
                    .unwrap_or_else(|error| panic!("{sql}: {error:?}"))
            }
            Backend::Postgres { .. } => {
                let sql = sql.to_owned();
                on_postgres(&self.url, move |client| {
                    Box::pin(async move {
                        use tokio_postgres::types::Type;
                        let rows = client
                            .query(sql.as_str(), &[])
                            .await
                            .unwrap_or_else(|error| panic!("{sql}: {error:?}"));
                        rows.iter()
                            .map(|row| {
                                row.columns()
                                    .iter()
                                    .enumerate()
                                    .map(|(index, column)| {
                                        let ty = column.type_();
                                        let cell = if *ty == Type::INT8 {
                                            row.get::<_, Option<i64>>(index).map(Cell::Integer)
                                        } else if *ty == Type::INT4 {
                                            row.get::<_, Option<i32>>(index)
                                                .map(|value| Cell::Integer(value.into()))
                                        } else if *ty == Type::BYTEA {
                                            row.get::<_, Option<Vec<u8>>>(index).map(Cell::Bytes)
                                        } else if *ty == Type::BOOL {
                                            row.get::<_, Option<bool>>(index)
                                                .map(|value| Cell::Integer(value.into()))
                                        } else {
                                            row.get::<_, Option<String>>(index).map(Cell::Text)
                                        };
                                        cell.unwrap_or(Cell::Null)
                                    })
                                    .collect()
                            })
                            .collect()
                    })
                })
            }
        }
    }

    /// The single value `sql` returns.
    pub fn query_one(&self, sql: &str) -> Cell {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
        rows[0][0].clone()
    }
}

/// The local PostgreSQL server the test script starts when it is down.
pub fn default_postgres_url() -> String {
    "postgres://postgres@127.0.0.1:5432/postgres".to_owned()
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database_name(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Backend::Postgres { admin_url, name } = &self.backend {
            // FORCE ends the connections a server under test may still hold.
            let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                on_postgres(admin_url, move |client| {
                    Box::pin(async move { client.batch_execute(&statement).await })
                })
            }));
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {name}");
            }
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub client: Client,
    pub database: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server; `extra_args` are `stele serve` flags (e.g. `--body-limit-bytes`).
    pub async fn start_with(extra_args: &[&str]) -> Self {
        Self::start_on(TestDatabase::create(), extra_args).await
    }

    /// Stops this server and starts a new one on the same database (on a new port).
    pub async fn restart(mut self) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let database = std::mem::replace(&mut self.database, TestDatabase::create_sqlite());
        Self::start_on(database, &[]).await
    }

    pub async fn start_on(database: TestDatabase, extra_args: &[&str]) -> Self {
        Self::start_serving(database, extra_args, None).await
    }

    /// Starts a server that also serves `/metrics` without authentication on a listener of
    /// its own (`--metrics-listen`); returns that listener's base URL too.
    pub async fn start_with_metrics_listener() -> (Self, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        (
            Self::start_serving(TestDatabase::create(), &[], Some(listener)).await,
            base,
        )
    }

    async fn start_serving(
        database: TestDatabase,
        extra_args: &[&str],
        metrics_listener: Option<TcpListener>,
    ) -> Self {
        let key_file = database.signing_key_file();
        let key_file = key_file.to_str().expect("utf-8 temp path");
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--signing-key-file",
            key_file,
        ];
        args.extend_from_slice(extra_args);
        let config = ServeConfig::try_parse_from(args).expect("valid serve flags");
        let options = DatabaseOptions {
            // Tests run many servers at once against one PostgreSQL server.
            database_pool_size: 4,
            ..DatabaseOptions::default()
        };
        let store = stele_server::open_store(
            database.url(),
            &options,
            true,
            stele_server::SearchIndexing::Background,
        )
        .await
        .expect("store opens");
        let state = stele_server::build_state(store, config).expect("state");
        let handle = state.clone();
        state
            .bootstrap
            .ensure_initialized(Some(API_KEY), Some("admin-password"))
            .await
            .expect("bootstrap");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(stele_server::serve_with_metrics(
            state,
            listener,
            metrics_listener,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            base,
            state: handle,
            client: Client::new(),
            database,
            stop: Some(stop),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    pub async fn create_organization(&self, name: &str) -> String {
        let response = self
            .post("/organizations", &json!({"name": name}))
            .send()
            .await
            .expect("request");
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_schema(&self, action: &str, definition: &Value) -> (StatusCode, Value) {
        read(
            self.post(&format!("/audit_logs/actions/{action}/schemas"), definition)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn create_event(&self, body: &Value) -> (StatusCode, Value) {
        read(
            self.post("/audit_logs/events", body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Status and JSON body of a response; asserts the body is JSON as the contract requires.
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content-type {content_type:?} for {text}"
    );
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text}")),
    )
}

/// The seed document's version 1 and 2 definitions of `user.signed_in`.
pub fn seed_v1() -> Value {
    json!({"targets": [{"type": "team"}]})
}

pub fn seed_v2() -> Value {
    json!({
        "targets": [
            {"type": "team", "metadata": {"type": "object", "properties": {"owner": {"type": "string"}}}},
            {"type": "resource"}
        ],
        "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}},
        "metadata": {"type": "object", "properties": {"environment": {"type": "string"}}}
    })
}

/// A minimal valid event body for `action` at `version` (None = omitted).
pub fn event(organization_id: &str, action: &str, version: Option<i64>, targets: Value) -> Value {
    let mut event = json!({
        "action": action,
        "occurred_at": "2022-09-08T19:46:03.435Z",
        "actor": {"id": "user_01GBNJC3MX9ZZJW1FSTF4C5938", "type": "user"},
        "targets": targets,
        "context": {"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"}
    });
    if let Some(version) = version {
        event["version"] = json!(version);
    }
    json!({"organization_id": organization_id, "event": event})
}

/// Rows of the events table for an organization: sequence, id and stored bytes.
pub fn stored_events(
    database: &TestDatabase,
    organization_id: &str,
) -> Vec<(i64, String, Vec<u8>)> {
    database
        .query(&format!(
            "SELECT sequence, id, canonical FROM events WHERE organization_id = '{organization_id}' ORDER BY sequence"
        ))
        .into_iter()
        .map(|row| (row[0].integer(), row[1].text(), row[2].bytes()))
        .collect()
}

/// Path of the built `stele` binary.
pub fn stele_binary() -> &'static str {
    env!("CARGO_BIN_EXE_stele")
}

/// Runs `sql` against the server's database (to age rows or simulate tampering).
pub fn execute_sql(database: &TestDatabase, sql: &str) -> u64 {
    database.execute(sql)
}

/// Runs `stele verify` on the server's database; returns success and stdout.
pub fn stele_verify(database: &TestDatabase) -> (bool, String) {
    stele_verify_with(database, &[])
}

/// [`stele_verify`] with more arguments (`--organization ID`, say).
pub fn stele_verify_with(database: &TestDatabase, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(stele_binary())
        .args(["verify", "--database-url", database.url()])
        .args(args)
        .output()
        .expect("run stele verify");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The activity events whose action is `action`, newest first.
pub async fn activity_of(server: &TestServer, action: &str) -> Vec<Value> {
    let (status, page) = read(
        server
            .get(&format!("/audit_logs/activity?actions={action}&limit=100"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}
