//! Log streams over real HTTP: the API (secrets never returned, private destinations
//! refused, the stream secrets key required), and delivery to real receivers started in
//! the test (GenericHttps with Standard Webhooks signatures and chain continuity checked by
//! the Python verifier of docs/log-streams.md, Splunk HEC and Datadog intake checking their
//! documented request contracts; S3 through moto's server, Google Cloud Storage through
//! gcp-storage-emulator), with retries, Retry-After, refused credentials, replays, purged
//! gaps, and each stream's lag in `/metrics`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    event, execute_sql, read, seed_v1, stele_binary, TestDatabase, TestServer, API_KEY,
    POSTGRES_URL_VARIABLE,
};

/// The key the test servers seal stream secrets with.
const STREAM_KEY: &str = "c3RlbGUtdGVzdC1zdHJlYW0tc2VjcmV0cy1rZXktMzI=";
/// A Standard Webhooks secret (`whsec_` + base64 of 24 bytes).
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Flags of a server that delivers quickly to local receivers.
const FAST_STREAMS: &[&str] = &[
    "--allow-private-stream-destinations",
    "--stream-secrets-key",
    STREAM_KEY,
    "--log-stream-poll-interval-ms",
    "50",
    "--log-stream-batch-wait-ms",
    "50",
    "--log-stream-retry-base-ms",
    "50",
    "--log-stream-retry-max-secs",
    "2",
    "--checkpoint-interval-secs",
    "1",
];

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A scripted answer: HTTP status and `Retry-After`.
type ScriptedAnswer = (u16, Option<&'static str>);

/// Which service contract a receiver enforces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contract {
    Generic,
    Splunk,
    Datadog,
}

#[derive(Clone)]
struct Receiver {
    contract: Contract,
    /// Requests accepted (2xx), in arrival order.
    accepted: Arc<Mutex<Vec<Received>>>,
    /// Every request, accepted or not.
    attempts: Arc<Mutex<usize>>,
    /// Scripted answers for the next requests: status and `Retry-After`.
    script: Arc<Mutex<VecDeque<ScriptedAnswer>>>,
    /// How long each request takes to answer (a slow SIEM).
    delay: Arc<Mutex<Duration>>,
    /// Requests being answered now, and the most ever at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
    base: String,
}

impl Receiver {
    async fn start(contract: Contract) -> Self {
        Self::start_at(contract, "127.0.0.1:0").await
    }

    /// A receiver listening at `address` (a port picked earlier, for a destination that
    /// was down until now).
    async fn start_at(contract: Contract, address: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let receiver = Receiver {
            contract,
            accepted: Arc::default(),
            attempts: Arc::default(),
            script: Arc::default(),
            delay: Arc::default(),
            in_flight: Arc::default(),
            base,
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn answer_next(&self, answers: &[ScriptedAnswer]) {
        self.script
            .lock()
            .expect("script")
            .extend(answers.iter().copied());
    }

    fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().expect("accepted").clone()
    }

    fn attempts(&self) -> usize {
        *self.attempts.lock().expect("attempts")
    }

    fn most_at_once(&self) -> usize {
        self.in_flight.lock().expect("in flight").1
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// Checks a request against the receiver's documented contract; `Err` is the 400 answer.
fn check_contract(
    contract: Contract,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    match contract {
        Contract::Generic => {
            if header(headers, "content-type") != "application/json" {
                return Err("content-type must be application/json".into());
            }
            let parsed: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            for field in [
                "organization_id",
                "first_sequence",
                "last_sequence",
                "previous_hash",
                "checkpoint",
                "events",
            ] {
                if parsed.get(field).is_none() {
                    return Err(format!("missing {field}"));
                }
            }
        }
        Contract::Splunk => {
            if path != "/services/collector/event" {
                return Err(format!("HEC path, not {path}"));
            }
            if header(headers, "authorization") != "Splunk hec-token-1" {
                return Err("Authorization: Splunk <token> required".into());
            }
            // HEC batches: JSON event objects one after another, each with `event`.
            let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
            let mut count = 0;
            for object in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
                let object = object.map_err(|e| e.to_string())?;
                if object.get("event").is_none() {
                    return Err("every HEC object needs `event`".into());
                }
                if object["index"] != "audit" || object["sourcetype"] != "_json" {
                    return Err(format!("index/sourcetype: {object}"));
                }
                count += 1;
            }
            if count == 0 {
                return Err("empty batch".into());
            }
        }
        Contract::Datadog => {
            if path != "/api/v2/logs" {
                return Err(format!("intake path, not {path}"));
            }
            if header(headers, "dd-api-key") != "dd-key-1" {
                return Err("DD-API-KEY required".into());
            }
            if header(headers, "content-type") != "application/json" {
                return Err("content-type must be application/json".into());
            }
            if body.len() > 5_000_000 {
                return Err("payload over 5 MB".into());
            }
            let entries: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            if entries.is_empty() || entries.len() > 1000 {
                return Err(format!("{} entries (1 to 1,000 allowed)", entries.len()));
            }
            for entry in &entries {
                if !entry["message"].is_string() || entry["ddsource"] != "stele" {
                    return Err(format!("entry shape: {entry}"));
                }
            }
        }
    }
    Ok(())
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *receiver.attempts.lock().expect("attempts") += 1;
    {
        let mut in_flight = receiver.in_flight.lock().expect("in flight");
        in_flight.0 += 1;
        in_flight.1 = in_flight.1.max(in_flight.0);
    }
    // Counted out when the request ends, also when its client goes away mid-request
    // (the server then drops this future).
    struct Leaving(Arc<Mutex<(usize, usize)>>);
    impl Drop for Leaving {
        fn drop(&mut self) {
            if let Ok(mut in_flight) = self.0.lock() {
                in_flight.0 -= 1;
            }
        }
    }
    let _leaving = Leaving(Arc::clone(&receiver.in_flight));
    let delay = *receiver.delay.lock().expect("delay");
    tokio::time::sleep(delay).await;
    answer(&receiver, &uri, &headers, body)
}

fn answer(
    receiver: &Receiver,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let scripted = receiver.script.lock().expect("script").pop_front();
    if let Some((status, retry_after)) = scripted {
        let mut response = (
            AxumStatus::from_u16(status).expect("status"),
            "{\"error\":\"scripted\"}",
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.parse().expect("header"));
        }
        return response;
    }
    if let Err(message) = check_contract(receiver.contract, uri.path(), headers, &body) {
        return (AxumStatus::BAD_REQUEST, message).into_response();
    }
    receiver.accepted.lock().expect("accepted").push(Received {
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body,
    });
    match receiver.contract {
        Contract::Datadog => (AxumStatus::ACCEPTED, "{}").into_response(),
        Contract::Splunk => (AxumStatus::OK, "{\"text\":\"Success\",\"code\":0}").into_response(),
        Contract::Generic => (AxumStatus::OK, "").into_response(),
    }
}

async fn organization_with_events(server: &TestServer, count: usize) -> String {
    let organization = server.create_organization("Streamed").await;
    let (status, body) = server.create_schema("user.signed_in", &seed_v1()).await;
    assert!(status.is_success(), "{body}");
    add_events(server, &organization, count).await;
    organization
}

async fn add_events(server: &TestServer, organization: &str, count: usize) {
    let body = event(
        organization,
        "user.signed_in",
        None,
        json!([{"id": "team_1", "type": "team"}]),
    );
    let mut pending = futures::stream::FuturesUnordered::new();
    for _ in 0..count {
        pending.push(server.create_event(&body));
        if pending.len() >= 16 {
            use futures::StreamExt;
            let (status, body) = pending.next().await.expect("response");
            assert!(status.is_success(), "{body}");
        }
    }
    use futures::StreamExt;
    while let Some((status, body)) = pending.next().await {
        assert!(status.is_success(), "{body}");
    }
}

async fn create_stream(
    server: &TestServer,
    organization: &str,
    body: &Value,
) -> (StatusCode, Value) {
    read(
        server
            .post(
                &format!("/organizations/{organization}/audit_logs/log_streams"),
                body,
            )
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// Creates a Generic HTTPS stream of `organization` to `receiver`; returns its id.
async fn generic_stream_to(server: &TestServer, organization: &str, receiver: &Receiver) -> String {
    let (status, created) = create_stream(
        server,
        organization,
        &json!({"type": "GenericHttps", "endpoint": receiver.base}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

async fn stream(server: &TestServer, organization: &str, id: &str) -> Value {
    let (status, body) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/log_streams/{id}"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn delete_stream(server: &TestServer, organization: &str, id: &str) -> StatusCode {
    server
        .request(
            Method::DELETE,
            &format!("/organizations/{organization}/audit_logs/log_streams/{id}"),
        )
        .send()
        .await
        .expect("request")
        .status()
}

async fn action(
    server: &TestServer,
    organization: &str,
    id: &str,
    verb: &str,
    body: Value,
) -> (StatusCode, Value) {
    read(
        server
            .post(
                &format!("/organizations/{organization}/audit_logs/log_streams/{id}/{verb}"),
                &body,
            )
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// Waits until `check` holds of the stream, or fails with the stream's last state.
async fn wait_for_stream(
    server: &TestServer,
    organization: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = stream(server, organization, id).await;
        if check(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Python verifier of docs/log-streams.md, run over `deliveries` in arrival order;
/// returns its JSON summary, or panics with its error.
fn run_doc_verifier(secret: &str, deliveries: &[Received]) -> Value {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/log-streams.md"
    ))
    .expect("docs/log-streams.md");
    let start = doc
        .find("<!-- verifier:start -->")
        .expect("verifier start marker");
    let end = doc
        .find("<!-- verifier:end -->")
        .expect("verifier end marker");
    let block = &doc[start..end];
    let code = block
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.rsplit_once("```"))
        .map(|(code, _)| code)
        .expect("a python block");
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("verify.py");
    std::fs::write(&script, code).expect("write script");
    let mut input = String::new();
    for delivery in deliveries {
        let headers: serde_json::Map<String, Value> = delivery
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        let line = json!({
            "headers": headers,
            "body": String::from_utf8(delivery.body.to_vec()).expect("utf-8 body"),
        });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write deliveries");
    }
    let output = child.wait_with_output().expect("verifier output");
    assert!(
        output.status.success(),
        "the verifier refused the deliveries: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("verifier summary")
}

/// The stored chain hash of an organization's event `sequence`, hex.
fn stored_hash(server: &TestServer, organization: &str, sequence: i64) -> String {
    hex::encode(
        server
            .database
            .query_one(&format!(
                "SELECT hash FROM events WHERE organization_id = '{organization}' AND sequence = {sequence}"
            ))
            .bytes(),
    )
}

#[tokio::test]
async fn streams_are_created_listed_and_deleted_without_ever_returning_secrets() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let organization = server.create_organization("Acme").await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": "https://siem.example.com/in",
                "secret": WEBHOOK_SECRET, "headers": {"Authorization": "Bearer very-secret"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["object"], "audit_log_stream");
    assert_eq!(created["type"], "GenericHttps");
    assert_eq!(created["state"], "active");
    assert_eq!(created["delivered_sequence"], 0);
    assert_eq!(created["last_synced_at"], Value::Null);
    assert_eq!(created["last_error"], Value::Null);
    assert_eq!(created["organization_id"], organization.as_str());
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("log_stream_"), "{id}");
    for field in ["created_at", "updated_at"] {
        assert!(
            created[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{created}"
        );
    }

    let (status, list) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/log_streams"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id.as_str());
    let got = stream(&server, &organization, &id).await;
    for shown in [created.to_string(), list.to_string(), got.to_string()] {
        assert!(
            !shown.contains("very-secret") && !shown.contains("whsec_"),
            "{shown}"
        );
    }
    // Not in the database in the clear either.
    let sealed = server
        .database
        .query_one(&format!(
            "SELECT sealed_secrets FROM log_streams WHERE id = '{id}'"
        ))
        .bytes();
    assert!(!String::from_utf8_lossy(&sealed).contains("very-secret"));

    let (status, configuration) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_log_configuration"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(configuration["log_stream"]["id"], id.as_str());
    assert_eq!(configuration["log_stream"]["type"], "GenericHttps");
    assert_eq!(configuration["log_stream"]["state"], "active");
    assert_eq!(configuration["log_stream"]["last_synced_at"], Value::Null);

    // Another organization's stream is not reachable through this one.
    let other = server.create_organization("Other").await;
    let response = server
        .get(&format!(
            "/organizations/{other}/audit_logs/log_streams/{id}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    assert_eq!(
        delete_stream(&server, &organization, &id).await,
        StatusCode::NO_CONTENT
    );
    let response = server
        .get(&format!(
            "/organizations/{organization}/audit_logs/log_streams/{id}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (_, configuration) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_log_configuration"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert!(configuration.get("log_stream").is_none(), "{configuration}");
}

#[tokio::test]
async fn invalid_stream_settings_are_refused_and_change_nothing() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let organization = server.create_organization("Acme").await;
    for (body, field) in [
        (json!({"endpoint": "https://x.example"}), "type"),
        (json!({"type": "Syslog"}), "type"),
        (json!({"type": "GenericHttps"}), "endpoint"),
        (
            json!({"type": "GenericHttps", "endpoint": "https://x.example", "secret": "nope"}),
            "secret",
        ),
        (
            json!({"type": "Splunk", "endpoint": "https://x.example"}),
            "token",
        ),
        (json!({"type": "Datadog", "api_key": "k"}), "endpoint"),
        // A malformed endpoint is the request's error, not the destination policy's.
        (
            json!({"type": "GenericHttps", "endpoint": "not a url"}),
            "endpoint",
        ),
        (
            json!({"type": "GenericHttps", "endpoint": "ftp://x.example/in"}),
            "endpoint",
        ),
        (
            json!({"type": "S3", "bucket": "b", "region": "us-east-1", "access_key_id": "a"}),
            "secret_access_key",
        ),
    ] {
        let (status, response) = create_stream(&server, &organization, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {response}"
        );
        assert_eq!(response["code"], "validation_failed");
        assert!(
            response["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .any(|error| error["field"] == field),
            "{body}: {response}"
        );
    }
    let (status, response) = create_stream(
        &server,
        "org_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        &json!({"type": "GenericHttps", "endpoint": "https://x.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{response}");
    let count = server
        .database
        .query_one("SELECT COUNT(*) FROM log_streams")
        .integer();
    assert_eq!(count, 0);
    // Replay bounds.
    let (_, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": "https://x.example"}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    for body in [
        json!({}),
        json!({"from_sequence": 0}),
        json!({"from_sequence": 2}),
        json!({"from_sequence": "1"}),
    ] {
        let (status, response) = action(&server, &organization, id, "replay", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {response}"
        );
    }
}

#[tokio::test]
async fn private_and_plain_http_destinations_are_refused_without_the_flag() {
    let server = TestServer::start_with(&["--stream-secrets-key", STREAM_KEY]).await;
    let organization = server.create_organization("Acme").await;
    for endpoint in [
        "http://siem.example.com/in",
        "https://127.0.0.1:8443/in",
        "https://localhost/in",
        "https://10.0.0.8/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
    ] {
        let (status, response) = create_stream(
            &server,
            &organization,
            &json!({"type": "GenericHttps", "endpoint": endpoint}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {response}");
        assert_eq!(response["code"], "destination_not_allowed", "{response}");
        assert!(
            response["message"]
                .as_str()
                .is_some_and(|m| m.contains("--allow-private-stream-destinations")),
            "{response}"
        );
    }
    let (status, response) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": "https://siem.example.com/in"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
}

#[tokio::test]
async fn streams_with_secrets_need_the_stream_secrets_key() {
    let server = TestServer::start_with(&["--allow-private-stream-destinations"]).await;
    let organization = server.create_organization("Acme").await;
    let (status, response) = create_stream(
        &server,
        &organization,
        &json!({"type": "Splunk", "endpoint": "https://splunk.example:8088", "token": "t"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(response["code"], "stream_secrets_key_not_configured");
    assert!(response["message"]
        .as_str()
        .is_some_and(|m| m.contains("STELE_STREAM_SECRETS_KEY")));
    // A stream without secrets needs no key.
    let (status, response) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": "https://siem.example.com/in"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
}

#[tokio::test]
async fn generic_https_delivers_every_event_in_order_signed_and_provably_complete() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    let organization = organization_with_events(&server, 1203).await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": format!("{}/hooks/stele", receiver.base),
                "secret": WEBHOOK_SECRET, "headers": {"X-Team": "secops"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let delivered = wait_for_stream(&server, &organization, &id, "1203 delivered", |s| {
        s["delivered_sequence"] == 1203
    })
    .await;
    assert_eq!(delivered["state"], "active");
    assert!(delivered["last_synced_at"].is_string());
    // More events after catching up are delivered too.
    add_events(&server, &organization, 5).await;
    wait_for_stream(&server, &organization, &id, "1208 delivered", |s| {
        s["delivered_sequence"] == 1208
    })
    .await;

    let deliveries = receiver.accepted();
    assert!(
        deliveries.len() >= 3,
        "at least two full batches and a partial one"
    );
    let first: Value = serde_json::from_slice(&deliveries[0].body).expect("json");
    assert_eq!(first["first_sequence"], 1);
    assert_eq!(
        first["events"].as_array().expect("events").len(),
        1000,
        "catch-up sends full batches"
    );
    assert_eq!(first["previous_hash"], "0".repeat(64));
    assert_eq!(deliveries[0].path, "/hooks/stele");
    assert_eq!(header(&deliveries[0].headers, "x-team"), "secops");
    assert_eq!(
        header(&deliveries[0].headers, "webhook-id"),
        format!("msg_{id}_1_1000")
    );
    // The stored bytes travel verbatim.
    let stored = server
        .database
        .query_one(&format!(
            "SELECT canonical FROM events WHERE organization_id = '{organization}' AND sequence = 7"
        ))
        .bytes();
    let body = String::from_utf8(deliveries[0].body.to_vec()).expect("utf-8");
    assert!(body.contains(std::str::from_utf8(&stored).expect("utf-8")));

    // The receiver-side check of docs/log-streams.md: signatures, nothing skipped, every
    // hash recomputed from the received bytes equals the one Stele stored.
    let summary = run_doc_verifier(WEBHOOK_SECRET, &deliveries);
    assert_eq!(summary["last_sequence"], 1208, "{summary}");
    assert_eq!(
        summary["last_hash"],
        stored_hash(&server, &organization, 1208)
    );
    assert_eq!(summary["gaps"], json!([]));

    // The verifier notices a skipped batch and an altered event.
    let without_second: Vec<Received> = deliveries
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 1)
        .map(|(_, delivery)| delivery.clone())
        .collect();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_doc_verifier("", &without_second)
    }));
    assert!(refused.is_err(), "a skipped batch is detected");
    let mut altered = deliveries.clone();
    altered[0].body = Bytes::from(body.replacen("\"user.signed_in\"", "\"user.signed_out\"", 1));
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_doc_verifier("", &altered)
    }));
    assert!(refused.is_err(), "an altered event is detected");

    // A test delivery reaches the receiver and moves nothing.
    let before = receiver.accepted().len();
    let (status, tested) = action(&server, &organization, &id, "test", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["success"], true, "{tested}");
    let test_delivery: Value =
        serde_json::from_slice(&receiver.accepted()[before].body).expect("json");
    assert_eq!(test_delivery["test"], true);
    assert_eq!(test_delivery["events"], json!([]));
    assert_eq!(
        stream(&server, &organization, &id).await["delivered_sequence"],
        1208
    );
}

/// More streams with events than one lease pass takes, all busy at a slow destination:
/// another organization's stream is still leased and delivered on the next pass, not only
/// once one of the busy streams gets through.
#[tokio::test]
async fn busy_streams_do_not_keep_other_streams_from_being_delivered() {
    use stele_server::workers::log_streams::LEASE_BATCH;
    let server = TestServer::start_with(FAST_STREAMS).await;
    let slow = Receiver::start(Contract::Generic).await;
    *slow.delay.lock().expect("delay") = Duration::from_secs(25);
    let fast = Receiver::start(Contract::Generic).await;
    let (status, body) = server.create_schema("user.signed_in", &seed_v1()).await;
    assert!(status.is_success(), "{body}");
    for index in 0..LEASE_BATCH {
        let organization = server.create_organization(&format!("Busy {index}")).await;
        add_events(&server, &organization, 1).await;
        let (status, created) = create_stream(
            &server,
            &organization,
            &json!({"type": "GenericHttps", "endpoint": format!("{}/busy", slow.base)}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while slow.most_at_once() < LEASE_BATCH as usize {
        assert!(
            Instant::now() < deadline,
            "only {} busy deliveries started",
            slow.most_at_once()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let organization = organization_with_events(&server, 3).await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": format!("{}/other", fast.base)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    wait_for_stream(&server, &organization, &id, "3 delivered", |s| {
        s["delivered_sequence"] == 3
    })
    .await;
    assert!(
        slow.accepted().is_empty(),
        "the other stream was delivered only after a busy one got through"
    );
}

#[tokio::test]
async fn a_destination_down_for_a_while_is_retried_honouring_retry_after_then_caught_up() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    receiver.answer_next(&[(503, Some("1")), (429, Some("1")), (500, None)]);
    let organization = organization_with_events(&server, 20).await;
    let (_, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": format!("{}/in", receiver.base)}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    let failing = wait_for_stream(&server, &organization, &id, "an error state", |s| {
        s["state"] == "error"
    })
    .await;
    assert!(
        failing["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{failing}"
    );
    assert_eq!(
        failing["delivered_sequence"], 0,
        "nothing acknowledged, nothing advanced"
    );
    let caught_up = wait_for_stream(&server, &organization, &id, "caught up", |s| {
        s["delivered_sequence"] == 20
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two Retry-After: 1 answers were honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(caught_up["state"], "active");
    assert_eq!(caught_up["last_error"], Value::Null);
    assert_eq!(receiver.attempts(), 3 + receiver.accepted().len());
    let summary = run_doc_verifier("", &receiver.accepted());
    assert_eq!(summary["last_sequence"], 20);
}

/// `/metrics` shows each stream's lag: the events its organization committed that a
/// receiver that is down has not acknowledged, then 0 once it is up and caught up; and the
/// streams per type and state.
#[tokio::test]
async fn metrics_show_a_streams_lag_while_its_receiver_is_down_and_zero_once_delivered() {
    use crate::metrics::{scrape, series, value};
    let server = TestServer::start_with(FAST_STREAMS).await;
    // Nothing listens on this port until the receiver starts below.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let organization = organization_with_events(&server, 0).await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GenericHttps", "endpoint": format!("http://{address}/in")}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, idle) = scrape(&server).await;
    assert_eq!(
        value(&idle, "stele_stream_lag_events", &[("stream_id", &id)]),
        0.0
    );
    assert_eq!(series(&idle, "stele_stream_lag_events"), 1);

    let behind = 7;
    add_events(&server, &organization, behind).await;
    let failing = wait_for_stream(&server, &organization, &id, "a failed attempt", |s| {
        s["state"] == "error"
    })
    .await;
    assert_eq!(failing["delivered_sequence"], 0, "{failing}");
    let (text, down) = scrape(&server).await;
    let stream_labels = [
        ("stream_id", id.as_str()),
        ("organization_id", organization.as_str()),
        ("type", "GenericHttps"),
        ("state", "error"),
    ];
    assert_eq!(
        value(&down, "stele_stream_lag_events", &stream_labels),
        behind as f64,
        "{text}"
    );
    let generic_error = [("type", "GenericHttps"), ("state", "error")];
    assert_eq!(value(&down, "stele_streams", &generic_error), 1.0);
    assert_eq!(
        value(&down, "stele_streams_max_lag_events", &generic_error),
        behind as f64
    );
    assert_eq!(value(&down, "stele_streams", &[]), 1.0, "one stream in all");
    assert_eq!(
        series(&down, "stele_streams"),
        20,
        "every type and state, zeros included"
    );
    assert_eq!(value(&down, "stele_metrics_scrape_errors", &[]), 0.0);

    // The receiver comes up; resuming ends the backoff.
    let receiver = Receiver::start_at(Contract::Generic, &address.to_string()).await;
    let (status, _) = action(&server, &organization, &id, "resume", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    wait_for_stream(&server, &organization, &id, "delivered", |s| {
        s["delivered_sequence"] == behind
    })
    .await;
    assert!(!receiver.accepted().is_empty());
    let (text, delivered) = scrape(&server).await;
    assert_eq!(
        value(
            &delivered,
            "stele_stream_lag_events",
            &[("stream_id", &id), ("state", "active")]
        ),
        0.0,
        "{text}"
    );
    assert_eq!(series(&delivered, "stele_stream_lag_events"), 1);
    assert_eq!(
        value(
            &delivered,
            "stele_streams",
            &[("type", "GenericHttps"), ("state", "active")]
        ),
        1.0
    );
    assert_eq!(value(&delivered, "stele_streams", &generic_error), 0.0);
    assert_eq!(value(&delivered, "stele_streams_max_lag_events", &[]), 0.0);

    // A deleted stream's series goes with it.
    assert_eq!(
        delete_stream(&server, &organization, &id).await,
        StatusCode::NO_CONTENT
    );
    let (_, deleted) = scrape(&server).await;
    assert_eq!(series(&deleted, "stele_stream_lag_events"), 0);
    assert_eq!(value(&deleted, "stele_streams", &[]), 0.0);
}

#[tokio::test]
async fn refused_credentials_make_the_stream_invalid_until_accepted_again() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Splunk).await;
    let organization = organization_with_events(&server, 3).await;
    receiver.answer_next(&[(403, None)]);
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "Splunk", "endpoint": receiver.base, "token": "hec-token-1", "index": "audit"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let invalid = wait_for_stream(&server, &organization, &id, "invalid", |s| {
        s["state"] == "invalid"
    })
    .await;
    assert!(
        invalid["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("403")),
        "{invalid}"
    );
    // The refusal is counted in /metrics, by stream type and reason.
    let metrics = server
        .get("/metrics")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("metrics text");
    let failures: f64 = metrics
        .lines()
        .find(|line| {
            line.starts_with("stele_stream_delivery_failures_total{")
                && line.contains("type=\"Splunk\"")
                && line.contains("reason=\"credentials\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "{metrics}");
    let (_, configuration) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_log_configuration"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(configuration["log_stream"]["state"], "invalid");
    // The destination accepts again: the retry delivers and the stream is active.
    let recovered = wait_for_stream(&server, &organization, &id, "active again", |s| {
        s["delivered_sequence"] == 3
    })
    .await;
    assert_eq!(recovered["state"], "active");
}

#[tokio::test]
async fn splunk_receives_hec_events_with_token_index_and_time() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Splunk).await;
    let organization = organization_with_events(&server, 12).await;
    let (_, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "Splunk", "endpoint": format!("{}/", receiver.base), "token": "hec-token-1",
                "index": "audit", "source": "stele-test"}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    wait_for_stream(&server, &organization, &id, "12 delivered", |s| {
        s["delivered_sequence"] == 12
    })
    .await;
    let mut sequences = Vec::new();
    for delivery in receiver.accepted() {
        let text = String::from_utf8(delivery.body.to_vec()).expect("utf-8");
        for object in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            let object = object.expect("json");
            assert_eq!(object["source"], "stele-test");
            assert_eq!(
                object["time"],
                json!(1662666363.435),
                "occurred_at as epoch seconds"
            );
            assert_eq!(object["fields"]["organization_id"], organization.as_str());
            assert_eq!(object["event"]["organization_id"], organization.as_str());
            sequences.push(object["event"]["sequence"].as_i64().expect("sequence"));
        }
    }
    assert_eq!(sequences, (1..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn datadog_receives_at_most_a_thousand_entries_per_request() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Datadog).await;
    let organization = organization_with_events(&server, 1010).await;
    let (_, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "Datadog", "endpoint": receiver.base, "api_key": "dd-key-1"}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    wait_for_stream(&server, &organization, &id, "1010 delivered", |s| {
        s["delivered_sequence"] == 1010
    })
    .await;
    let mut sequences = Vec::new();
    for delivery in receiver.accepted() {
        let entries: Vec<Value> = serde_json::from_slice(&delivery.body).expect("json");
        assert!(entries.len() <= 1000);
        for entry in entries {
            assert_eq!(entry["ddtags"], format!("organization_id:{organization}"));
            let message: Value = serde_json::from_str(entry["message"].as_str().expect("message"))
                .expect("event json");
            assert_eq!(entry["sequence"], message["sequence"]);
            sequences.push(message["sequence"].as_i64().expect("sequence"));
        }
    }
    assert_eq!(sequences, (1..=1010).collect::<Vec<_>>());
}

#[tokio::test]
async fn pause_replay_and_resume_redeliver_from_a_sequence() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    let organization = organization_with_events(&server, 10).await;
    let id = generic_stream_to(&server, &organization, &receiver).await;
    wait_for_stream(&server, &organization, &id, "10 delivered", |s| {
        s["delivered_sequence"] == 10
    })
    .await;
    let (status, paused) = action(&server, &organization, &id, "pause", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["state"], "inactive");
    add_events(&server, &organization, 3).await;
    let (status, replayed) = action(
        &server,
        &organization,
        &id,
        "replay",
        json!({"from_sequence": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["delivered_sequence"], 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stream(&server, &organization, &id).await["delivered_sequence"],
        3,
        "a paused stream delivers nothing"
    );
    let accepted_before = receiver.accepted().len();
    let (status, resumed) = action(&server, &organization, &id, "resume", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "active");
    wait_for_stream(&server, &organization, &id, "13 delivered", |s| {
        s["delivered_sequence"] == 13
    })
    .await;
    let replay: Value =
        serde_json::from_slice(&receiver.accepted()[accepted_before].body).expect("json");
    assert_eq!(replay["first_sequence"], 4);
    assert_eq!(
        replay["previous_hash"],
        stored_hash(&server, &organization, 3)
    );
    // Duplicates from the replay are accepted by the verifier; nothing is skipped.
    let summary = run_doc_verifier("", &receiver.accepted());
    assert_eq!(summary["last_sequence"], 13);
}

/// A stream catching up delivers batch after batch in one run; pausing it mid-run stops
/// the run after the batch it is sending, and resuming delivers the rest.
#[tokio::test]
async fn pausing_a_stream_stops_a_delivery_in_progress_after_its_batch() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    // Four full batches, each held by the receiver long enough to pause meanwhile.
    *receiver.delay.lock().expect("delay") = Duration::from_millis(700);
    let organization = organization_with_events(&server, 4_000).await;
    let id = generic_stream_to(&server, &organization, &receiver).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.attempts() == 0 {
        assert!(Instant::now() < deadline, "no batch was sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, paused) = action(&server, &organization, &id, "pause", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    // Long enough for the three other batches, had the run gone on.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(receiver.attempts(), 1, "only the batch in flight was sent");
    assert_eq!(
        stream(&server, &organization, &id).await["delivered_sequence"],
        1_000
    );
    let (status, resumed) = action(&server, &organization, &id, "resume", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    wait_for_stream(&server, &organization, &id, "4000 delivered", |s| {
        s["delivered_sequence"] == 4_000
    })
    .await;
}

#[tokio::test]
async fn events_purged_before_delivery_arrive_as_an_explicit_gap() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    let organization = organization_with_events(&server, 0).await;
    let id = generic_stream_to(&server, &organization, &receiver).await;
    action(&server, &organization, &id, "pause", json!({})).await;
    add_events(&server, &organization, 10).await;
    let hash_of_4 = stored_hash(&server, &organization, 4);
    let response = server
        .request(
            Method::PUT,
            &format!("/organizations/{organization}/audit_logs_retention"),
        )
        .json(&json!({"retention_period_in_days": 1}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    execute_sql(
        &server.database,
        &format!(
            "UPDATE events SET received_at = received_at - 2 * 86400000
             WHERE organization_id = '{organization}' AND sequence <= 4"
        ),
    );
    let purged = server.state.retention.purge_expired().await.expect("purge");
    assert_eq!(purged, 4);
    action(&server, &organization, &id, "resume", json!({})).await;
    wait_for_stream(&server, &organization, &id, "10 delivered", |s| {
        s["delivered_sequence"] == 10
    })
    .await;
    let first: Value = serde_json::from_slice(&receiver.accepted()[0].body).expect("json");
    assert_eq!(
        first["gap"],
        json!({"first_sequence": 1, "last_sequence": 4, "reason": "purged_by_retention"})
    );
    assert_eq!(first["first_sequence"], 5);
    assert_eq!(first["previous_hash"], hash_of_4);
    let summary = run_doc_verifier("", &receiver.accepted());
    assert_eq!(summary["gaps"], json!([[1, 4]]));
    assert_eq!(summary["last_sequence"], 10);
}

#[tokio::test]
async fn test_delivery_reports_an_unreachable_destination() {
    let server = TestServer::start_with(FAST_STREAMS).await;
    let organization = server.create_organization("Acme").await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let (_, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "Datadog", "endpoint": format!("http://127.0.0.1:{port}"), "api_key": "k"}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let (status, tested) = action(&server, &organization, id, "test", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["success"], false);
    assert!(
        tested["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not be reached")),
        "{tested}"
    );
}

/// One `stele serve` process of the built binary, killed (SIGKILL) when dropped.
struct Process {
    base: String,
    child: std::process::Child,
}

impl Process {
    async fn spawn(database: &TestDatabase, extra_args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let child = std::process::Command::new(stele_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(FAST_STREAMS)
            .args(extra_args)
            .env("STELE_DATABASE_URL", database.url())
            .env("STELE_SIGNING_KEY_FILE", database.signing_key_file())
            .env("STELE_DATABASE_POOL_SIZE", "4")
            .env("STELE_API_KEY", API_KEY)
            .env("STELE_ADMIN_PASSWORD", "replica-admin-password")
            .env("STELE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn stele");
        let process = Process {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(format!("{}/healthz", process.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK)
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stele on port {port} did not become healthy");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn call(
    client: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).bearer_auth(API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.expect("request")).await
}

/// Two replicas on one PostgreSQL database: the stream is delivered by one at a time
/// (the receiver never sees two requests at once), and when the delivering replica is
/// killed mid-delivery (SIGKILL), the other takes the stream over once the lease expires:
/// every event arrives, in order, duplicates allowed, nothing skipped.
#[tokio::test]
async fn a_killed_replicas_stream_is_taken_over_and_nothing_is_lost() {
    let admin_url = std::env::var(POSTGRES_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(crate::support::default_postgres_url);
    let database = TestDatabase::create_postgres(&admin_url);
    let lease = ["--log-stream-lease-secs", "3"];
    let mut first = Process::spawn(&database, &lease).await;
    let client = reqwest::Client::new();
    let receiver = Receiver::start(Contract::Generic).await;
    *receiver.delay.lock().expect("delay") = Duration::from_millis(1500);

    let (status, organization) = call(
        &client,
        Method::POST,
        format!("{}/organizations", first.base),
        Some(json!({"name": "Replicated"})),
    )
    .await;
    assert!(status.is_success(), "{organization}");
    let organization = organization["id"].as_str().expect("id").to_owned();
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{}/audit_logs/actions/user.signed_in/schemas", first.base),
        Some(seed_v1()),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "team_1", "type": "team"}]),
    );
    for _ in 0..2500 / 25 {
        let sends = (0..25).map(|_| {
            call(
                &client,
                Method::POST,
                format!("{}/audit_logs/events", first.base),
                Some(body.clone()),
            )
        });
        for (status, body) in futures::future::join_all(sends).await {
            assert!(status.is_success(), "{body}");
        }
    }
    let (status, created) = call(
        &client,
        Method::POST,
        format!(
            "{}/organizations/{organization}/audit_logs/log_streams",
            first.base
        ),
        Some(json!({"type": "GenericHttps", "endpoint": receiver.base, "secret": WEBHOOK_SECRET})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    // The first replica delivers the first batch; then the second replica starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.accepted().is_empty() {
        assert!(Instant::now() < deadline, "no first delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = Process::spawn(&database, &lease).await;
    // Kill the first replica while its second batch is in flight at the receiver.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.attempts(), 2, "the second batch is in flight");
    first.kill();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, current) = call(
            &client,
            Method::GET,
            format!(
                "{}/organizations/{organization}/audit_logs/log_streams/{id}",
                second.base
            ),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{current}");
        if current["delivered_sequence"] == 2500 {
            break;
        }
        assert!(Instant::now() < deadline, "not taken over: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.most_at_once(), 1, "one replica delivers at a time");
    let deliveries = receiver.accepted();
    let summary = run_doc_verifier(WEBHOOK_SECRET, &deliveries);
    assert_eq!(summary["last_sequence"], 2500, "{summary}");
    assert_eq!(summary["gaps"], json!([]));
    let hash = database
        .query_one(&format!(
            "SELECT hash FROM events WHERE organization_id = '{organization}' AND sequence = 2500"
        ))
        .bytes();
    assert_eq!(summary["last_hash"], hex::encode(hash));
    drop(second);
}

/// The organization page of the operator dashboard: add a stream, see its state and lag,
/// test, pause, replay from a sequence, resume and delete it.
#[tokio::test]
async fn the_dashboard_manages_an_organizations_streams_and_shows_their_lag() {
    use crate::dashboard::{location, Browser};
    let server = TestServer::start_with(FAST_STREAMS).await;
    let receiver = Receiver::start(Contract::Generic).await;
    let organization = organization_with_events(&server, 0).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let page_path = format!("/dashboard/organizations/{organization}");
    let page = browser.get(&page_path).await.text().await.expect("page");
    assert!(page.contains("No log streams yet."), "{page}");

    // A refused destination keeps the page, with the reason.
    let response = browser
        .post_form(
            &format!("{page_path}/log_streams"),
            &[
                ("csrf_token", &csrf),
                ("type", "GenericHttps"),
                ("endpoint", "not a url"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("not a valid URL"));

    let endpoint = format!("{}/in", receiver.base);
    let response = browser
        .post_form(
            &format!("{page_path}/log_streams"),
            &[
                ("csrf_token", &csrf),
                ("type", "GenericHttps"),
                ("endpoint", &endpoint),
                ("secret", WEBHOOK_SECRET),
                ("token", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).ends_with("?stream=created#log-streams"));
    let (_, list) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/log_streams"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let id = list["data"][0]["id"].as_str().expect("a stream").to_owned();
    let stream_path = format!("{page_path}/log_streams/{id}");

    // Paused, events pile up: the page shows the lag.
    browser
        .post_form(&format!("{stream_path}/pause"), &[("csrf_token", &csrf)])
        .await;
    add_events(&server, &organization, 4).await;
    let page = browser.get(&page_path).await.text().await.expect("page");
    assert!(page.contains(&format!("data-stream=\"{id}\"")), "{page}");
    assert!(page.contains("data-state=\"inactive\""), "{page}");
    assert!(page.contains("4 behind"), "{page}");
    assert!(!page.contains(WEBHOOK_SECRET), "secrets are never shown");

    // Test delivery from the page.
    let response = browser
        .post_form(&format!("{stream_path}/test"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("accepted the test delivery"));

    // Resume: delivered and caught up.
    browser
        .post_form(&format!("{stream_path}/resume"), &[("csrf_token", &csrf)])
        .await;
    wait_for_stream(&server, &organization, &id, "4 delivered", |s| {
        s["delivered_sequence"] == 4
    })
    .await;
    let page = browser.get(&page_path).await.text().await.expect("page");
    assert!(
        page.contains("caught up") && page.contains("data-state=\"active\""),
        "{page}"
    );

    // Replay from 3, then a replay out of range is refused with the reason.
    let response = browser
        .post_form(
            &format!("{stream_path}/replay"),
            &[("csrf_token", &csrf), ("from_sequence", "3")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    wait_for_stream(&server, &organization, &id, "replayed", |s| {
        s["delivered_events"] == 6
    })
    .await;
    let response = browser
        .post_form(
            &format!("{stream_path}/replay"),
            &[("csrf_token", &csrf), ("from_sequence", "99")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("from_sequence must be between 1 and 5"));

    // Without the CSRF token nothing happens.
    let response = browser
        .post_form(
            &format!("{stream_path}/delete"),
            &[("csrf_token", "forged")],
        )
        .await;
    assert_ne!(response.status(), StatusCode::SEE_OTHER);
    let response = browser
        .post_form(&format!("{stream_path}/delete"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    let target = target.split('#').next().expect("path");
    let page = browser.get(target).await.text().await.expect("page");
    assert!(
        page.contains("Log stream deleted.") && page.contains("No log streams yet."),
        "{page}"
    );
}

/// A local object store emulator, started for one test and killed when dropped. The
/// programs come from `STELE_TEST_MOTO_SERVER` / `STELE_TEST_GCS_EMULATOR_PYTHON` (test.sh
/// installs moto and gcp-storage-emulator in a venv and sets both) or the PATH; a missing
/// one fails the test, naming it.
struct Emulator {
    base: String,
    child: std::process::Child,
}

impl Emulator {
    async fn start(variable: &str, default_binary: &str, args: &[&str]) -> Self {
        let binary = std::env::var(variable).unwrap_or_else(|_| default_binary.to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port()
            .to_string();
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("{port}", &port))
            .collect();
        let child = std::process::Command::new(&binary)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary} ({error}); install it (./test.sh does) or set {variable}")
            });
        let emulator = Emulator {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{binary} did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        emulator
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip object");
    out
}

/// Checks the objects of a bucket against the stored log: names as the contract says,
/// every event's stored bytes in order, each batch chained from its `.meta.json`
/// `previous_hash`; returns the sequences found.
fn check_objects(
    server: &TestServer,
    organization: &str,
    prefix: &str,
    objects: &[(String, Vec<u8>)],
) -> Vec<i64> {
    use sha2::Digest;
    let mut sequences = Vec::new();
    let data: Vec<&(String, Vec<u8>)> = objects
        .iter()
        .filter(|(name, _)| name.ends_with(".ndjson.gz"))
        .collect();
    assert!(
        !data.is_empty(),
        "no batch objects: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    for (name, body) in data {
        let rest = name
            .strip_prefix(&format!("{prefix}/{organization}/"))
            .unwrap_or_else(|| panic!("{name} is under <prefix>/<organization>/"));
        let parts: Vec<&str> = rest.split('/').collect();
        assert_eq!(
            parts.len(),
            4,
            "{name}: yyyy/mm/dd/<first>-<last>.ndjson.gz"
        );
        assert_eq!(
            (parts[0].len(), parts[1].len(), parts[2].len()),
            (4, 2, 2),
            "{name}"
        );
        let range = parts[3].strip_suffix(".ndjson.gz").expect("suffix");
        let (first, last) = range.split_once('-').expect("first-last");
        assert_eq!((first.len(), last.len()), (12, 12), "zero-padded: {name}");
        let meta_name = format!("{name}.meta.json");
        let meta: Value = serde_json::from_slice(
            &objects
                .iter()
                .find(|(candidate, _)| *candidate == meta_name)
                .unwrap_or_else(|| panic!("{meta_name} beside the batch"))
                .1,
        )
        .expect("meta json");
        assert_eq!(meta["organization_id"], organization);
        let mut hash: [u8; 32] = hex::decode(meta["previous_hash"].as_str().expect("hash"))
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let text = gunzip(body);
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for (offset, line) in lines.iter().enumerate() {
            let sequence = meta["first_sequence"].as_i64().expect("first") + offset as i64;
            let stored = server
                .database
                .query_one(&format!(
                    "SELECT canonical FROM events WHERE organization_id = '{organization}' AND sequence = {sequence}"
                ))
                .bytes();
            assert_eq!(*line, stored.as_slice(), "event {sequence} verbatim");
            let mut hasher = sha2::Sha256::new();
            hasher.update(hash);
            hasher.update(line);
            hash = hasher.finalize().into();
            sequences.push(sequence);
        }
        assert_eq!(meta["last_sequence"], *sequences.last().expect("events"));
        assert_eq!(
            hex::encode(hash),
            stored_hash(server, organization, *sequences.last().expect("last"))
        );
    }
    sequences.sort_unstable();
    sequences
}

#[tokio::test]
async fn s3_receives_gzip_ndjson_batches_with_their_chain_metadata() {
    let emulator = Emulator::start(
        "STELE_TEST_MOTO_SERVER",
        "moto_server",
        &["-H", "127.0.0.1", "-p", "{port}"],
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .put(format!("{}/stele-audit", emulator.base))
        .send()
        .await
        .expect("create bucket");
    assert!(response.status().is_success(), "{}", response.status());
    let server = TestServer::start_with(FAST_STREAMS).await;
    let organization = organization_with_events(&server, 25).await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "S3", "bucket": "stele-audit", "region": "us-east-1",
                "endpoint": emulator.base, "access_key_id": "AKIDSTELE",
                "secret_access_key": "stele-secret-access-key", "prefix": "audit"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(!created.to_string().contains("stele-secret-access-key"));
    let id = created["id"].as_str().expect("id").to_owned();
    wait_for_stream(&server, &organization, &id, "25 delivered", |s| {
        s["delivered_sequence"] == 25
    })
    .await;
    let (status, tested) = action(&server, &organization, &id, "test", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["success"], true, "{tested}");

    // Read back over S3 itself (moto refuses unsigned reads), signed by object_store.
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("stele-audit")
        .with_region("us-east-1")
        .with_endpoint(&emulator.base)
        .with_allow_http(true)
        .with_access_key_id("AKIDSTELE")
        .with_secret_access_key("stele-secret-access-key")
        .build()
        .expect("S3 client");
    let listed: Vec<object_store::ObjectMeta> =
        bucket.list(None).try_collect().await.expect("list objects");
    let mut objects = Vec::new();
    for meta in listed {
        let body = bucket
            .get(&meta.location)
            .await
            .expect("get object")
            .bytes()
            .await
            .expect("body")
            .to_vec();
        objects.push((meta.location.to_string(), body));
    }
    assert!(
        objects
            .iter()
            .any(|(name, _)| name == &format!("audit/{organization}/_stele_test/{id}.json")),
        "the test object"
    );
    assert_eq!(
        check_objects(&server, &organization, "audit", &objects),
        (1..=25).collect::<Vec<_>>()
    );
}

/// Google Cloud Storage through gcp-storage-emulator (PyPI), started by
/// scripts/gcs-emulator.py, which adds the `ETag` header that GCS sends on an XML API
/// upload and the emulator leaves out (`object_store` requires it; see the script). The
/// bucket name has only letters: `object_store` percent-encodes every other byte of it
/// (`-` as `%2D`), which GCS decodes and the emulator's router does not.
#[tokio::test]
async fn google_cloud_storage_receives_gzip_ndjson_batches_through_an_emulator() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gcs-emulator.py");
    let emulator = Emulator::start(
        "STELE_TEST_GCS_EMULATOR_PYTHON",
        "python3",
        &[
            script,
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--default-bucket",
            "steleaudit",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let server = TestServer::start_with(FAST_STREAMS).await;
    let organization = organization_with_events(&server, 25).await;
    let (status, created) = create_stream(
        &server,
        &organization,
        &json!({"type": "GoogleCloudStorage", "bucket": "steleaudit",
                "endpoint": emulator.base, "prefix": "audit"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    wait_for_stream(&server, &organization, &id, "25 delivered", |s| {
        s["delivered_sequence"] == 25
    })
    .await;
    // A second batch, so there are names to sort.
    add_events(&server, &organization, 12).await;
    let delivered = wait_for_stream(&server, &organization, &id, "37 delivered", |s| {
        s["delivered_sequence"] == 37
    })
    .await;
    assert_eq!(delivered["state"], "active", "{delivered}");
    let (status, tested) = action(&server, &organization, &id, "test", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["success"], true, "{tested}");

    let listing: Value = client
        .get(format!("{}/storage/v1/b/steleaudit/o", emulator.base))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let mut objects = Vec::new();
    for item in listing["items"].as_array().expect("items") {
        let name = item["name"].as_str().expect("name").to_owned();
        let body = client
            .get(format!(
                "{}/download/storage/v1/b/steleaudit/o/{}?alt=media",
                emulator.base,
                name.replace('/', "%2F")
            ))
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
            .to_vec();
        objects.push((name, body));
    }
    assert!(
        objects
            .iter()
            .any(|(name, _)| name == &format!("audit/{organization}/_stele_test/{id}.json")),
        "the test object"
    );
    assert_eq!(
        check_objects(&server, &organization, "audit", &objects),
        (1..=37).collect::<Vec<_>>()
    );
    // Names sort in delivery order: each batch starts after the one sorted before it.
    let mut batches: Vec<&str> = objects
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.ends_with(".ndjson.gz"))
        .collect();
    assert!(batches.len() >= 2, "{batches:?}");
    batches.sort_unstable();
    let ranges: Vec<(i64, i64)> = batches
        .iter()
        .map(|name| {
            let range = name
                .rsplit('/')
                .next()
                .and_then(|file| file.strip_suffix(".ndjson.gz"))
                .expect("file name");
            let (first, last) = range.split_once('-').expect("first-last");
            (first.parse().expect("first"), last.parse().expect("last"))
        })
        .collect();
    assert_eq!(ranges.first().map(|r| r.0), Some(1), "{ranges:?}");
    assert_eq!(ranges.last().map(|r| r.1), Some(37), "{ranges:?}");
    for pair in ranges.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "{ranges:?}");
    }
}
