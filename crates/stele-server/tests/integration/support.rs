//! Test harness: starts an in-process server on an ephemeral port with its own database.

use std::path::PathBuf;

use clap::Parser;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use stele_server::config::ServeConfig;
use stele_server::services::bootstrap::ensure_initialized;
use stele_server::state::AppState;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const API_KEY: &str = "sk_test_integration_key";

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub client: Client,
    pub database: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server; `extra_args` are `stele serve` flags (e.g. `--body-limit-bytes`).
    pub async fn start_with(extra_args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), extra_args).await
    }

    /// Stops this server and starts a new one on the same database (on a new port).
    pub async fn restart(mut self) -> Self {
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("temp dir"));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        Self::start_in(dir, &[]).await
    }

    async fn start_in(dir: TempDir, extra_args: &[&str]) -> Self {
        let database = dir.path().join("stele.db");
        let key_file = dir.path().join("signing-key.pem");
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
        let store = stele_server::open_store(&format!("sqlite://{}", database.display()), true)
            .expect("store opens");
        let state = AppState::new(store, config).expect("state");
        let handle = state.clone();
        ensure_initialized(&state, Some(API_KEY), Some("admin-password"))
            .await
            .expect("bootstrap");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(stele_server::serve(state, listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            state: handle,
            client: Client::new(),
            database,
            stop: Some(stop),
            _dir: dir,
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

/// Rows of the events table for an organization, read straight from the SQLite file.
pub fn stored_events(
    database: &std::path::Path,
    organization_id: &str,
) -> Vec<(i64, String, Vec<u8>)> {
    let connection = rusqlite::Connection::open(database).expect("open database");
    let mut statement = connection
        .prepare("SELECT sequence, id, canonical FROM events WHERE organization_id = ?1 ORDER BY sequence")
        .expect("prepare");
    statement
        .query_map([organization_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Path of the built `stele` binary.
pub fn stele_binary() -> &'static str {
    env!("CARGO_BIN_EXE_stele")
}

/// Runs `sql` against the server's SQLite file (to age rows or simulate tampering).
pub fn execute_sql(database: &std::path::Path, sql: &str) -> usize {
    rusqlite::Connection::open(database)
        .expect("open database")
        .execute(sql, [])
        .expect("sql runs")
}

/// Runs `stele verify` on the server's database; returns success and stdout.
pub fn stele_verify(database: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(stele_binary())
        .args([
            "verify",
            "--database-url",
            &format!("sqlite://{}", database.display()),
        ])
        .output()
        .expect("run stele verify");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}
