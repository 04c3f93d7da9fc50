//! Scale-out: several `stele serve` processes on one PostgreSQL database. These tests
//! always use PostgreSQL (`STELE_TEST_POSTGRES_URL`, or the local server on 127.0.0.1:5432
//! when unset) and fail, naming the URL, when it cannot be reached.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use stele_server::config::DatabaseOptions;

use crate::support::{
    event, seed_v1, stele_binary, stele_verify, TestDatabase, API_KEY, POSTGRES_URL_VARIABLE,
};

fn postgres_database() -> TestDatabase {
    let admin_url = std::env::var(POSTGRES_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(crate::support::default_postgres_url);
    TestDatabase::create_postgres(&admin_url)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// One `stele serve` process of the built binary.
struct Replica {
    base: String,
    port: u16,
    child: Child,
}

impl Replica {
    fn spawn(database: &TestDatabase, port: u16) -> Self {
        Self::spawn_with(database, port, &[])
    }

    fn spawn_with(database: &TestDatabase, port: u16, extra_args: &[&str]) -> Self {
        let child = Command::new(stele_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .env("STELE_DATABASE_URL", database.url())
            // Replicas share one checkpoint signing key, as the README asks.
            .env("STELE_SIGNING_KEY_FILE", database.signing_key_file())
            .env("STELE_DATABASE_POOL_SIZE", "8")
            .env("STELE_API_KEY", API_KEY)
            .env("STELE_ADMIN_PASSWORD", "replica-admin-password")
            .env("STELE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stele");
        Replica {
            base: format!("http://127.0.0.1:{port}"),
            port,
            child,
        }
    }

    async fn wait_until_healthy(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("replica on port {} exited: {status}", self.port);
            }
            if client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica on port {} did not become healthy", self.port);
    }

    fn kill(&mut self) {
        // SIGKILL: no graceful shutdown, in-flight requests are cut off.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a client saw for one idempotency key: the first acknowledged body.
type Acknowledged = Arc<Mutex<HashMap<String, (String, Value)>>>;

/// How many requests failed at one replica and were retried at the other.
static FAILOVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sends `body` with `key` to `bases[first]`, falling over to the other replica on a
/// connection error or a 5xx, as a load balancer's client would; returns the 200 body.
async fn send_with_failover(
    client: &reqwest::Client,
    bases: &[String],
    first: usize,
    key: &str,
    body: &Value,
) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = first;
    while Instant::now() < deadline {
        let base = &bases[attempt % bases.len()];
        attempt += 1;
        let Ok(response) = client
            .post(format!("{base}/audit_logs/events"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .timeout(Duration::from_secs(20))
            .json(body)
            .send()
            .await
        else {
            FAILOVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let status = response.status();
        if status.is_server_error() {
            FAILOVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let body: Value = response.json().await.ok()?;
        assert_eq!(status, StatusCode::OK, "{body}");
        return Some(body);
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_keep_every_chain_contiguous_through_a_kill() {
    let database = postgres_database();
    let client = reqwest::Client::new();
    // Both start at once on an empty database: migrations must run exactly once.
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Replica::spawn(&database, port_a);
    let mut b = Replica::spawn(&database, port_b);
    a.wait_until_healthy(&client).await;
    b.wait_until_healthy(&client).await;
    let bases = vec![a.base.clone(), b.base.clone()];

    // An organization or schema version created on one replica is usable on the other at once.
    let mut organizations = Vec::new();
    for index in 0..4 {
        let response = client
            .post(format!("{}/organizations", bases[index % 2]))
            .bearer_auth(API_KEY)
            .json(&json!({"name": format!("Replicated {index}")}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        organizations.push(body["id"].as_str().expect("id").to_owned());
    }
    let response = client
        .post(format!(
            "{}/audit_logs/actions/user.signed_in/schemas",
            bases[1]
        ))
        .bearer_auth(API_KEY)
        .json(&seed_v1())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);

    // 8 clients × 60 events over 4 organizations. Every event's key is sent to one
    // replica; every fifth is also raced against the other replica at the same moment.
    let acknowledged: Acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let raced_pairs = Arc::new(Mutex::new(Vec::<(Value, Value)>::new()));
    let writers: Vec<_> = (0..8usize)
        .map(|writer| {
            let (client, bases, organizations, acknowledged, raced_pairs) = (
                client.clone(),
                bases.clone(),
                organizations.clone(),
                Arc::clone(&acknowledged),
                Arc::clone(&raced_pairs),
            );
            tokio::spawn(async move {
                for index in 0..60usize {
                    let organization = &organizations[(writer + index) % organizations.len()];
                    let key = format!("w{writer}-e{index}");
                    let body = event(
                        organization,
                        "user.signed_in",
                        None,
                        json!([{"id": format!("t-{key}"), "type": "team"}]),
                    );
                    let first = writer + index;
                    let answer = if index % 5 == 0 {
                        let (left, right) = tokio::join!(
                            send_with_failover(&client, &bases, first, &key, &body),
                            send_with_failover(&client, &bases, first + 1, &key, &body),
                        );
                        let (Some(left), Some(right)) = (left, right) else {
                            panic!("raced key {key} was never acknowledged");
                        };
                        raced_pairs
                            .lock()
                            .expect("lock")
                            .push((left.clone(), right));
                        left
                    } else {
                        send_with_failover(&client, &bases, first, &key, &body)
                            .await
                            .unwrap_or_else(|| panic!("key {key} was never acknowledged"))
                    };
                    acknowledged
                        .lock()
                        .expect("lock")
                        .insert(key, (organization.clone(), answer));
                }
            })
        })
        .collect();

    // Midway, replica B is SIGKILLed; clients fail over to A; B comes back on its port.
    let started = Instant::now();
    while acknowledged.lock().expect("lock").len() < 150
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = Replica::spawn(&database, port_b);
    b.wait_until_healthy(&client).await;
    for writer in writers {
        writer.await.expect("writer finished");
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert_eq!(acknowledged.len(), 8 * 60, "every key was acknowledged");
    assert!(
        FAILOVERS.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the kill happened while clients were still sending to the killed replica"
    );
    for (left, right) in raced_pairs.lock().expect("lock").iter() {
        assert_eq!(
            left, right,
            "both replicas answered a raced key with one event"
        );
    }

    // Every acknowledged event is stored exactly once, and each organization's sequence
    // is 1..=n with nothing else in it.
    let mut expected: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (organization, body) in acknowledged.values() {
        expected
            .entry(organization.as_str())
            .or_default()
            .insert(body["id"].as_str().expect("event id"));
    }
    for organization in &organizations {
        let rows = crate::support::stored_events(&database, organization);
        let sequences: Vec<i64> = rows.iter().map(|row| row.0).collect();
        assert_eq!(
            sequences,
            (1..=rows.len() as i64).collect::<Vec<_>>(),
            "contiguous sequences for {organization}"
        );
        let stored: HashSet<&str> = rows.iter().map(|row| row.1.as_str()).collect();
        assert_eq!(stored.len(), rows.len(), "no event stored twice");
        assert_eq!(
            &stored,
            expected
                .get(organization.as_str())
                .expect("acknowledged events"),
            "exactly the acknowledged events of {organization}"
        );
    }

    // A retry of any key on either replica replays the first answer.
    for (key, (organization, first_answer)) in acknowledged.iter().take(40) {
        let body = event(
            organization,
            "user.signed_in",
            None,
            json!([{"id": format!("t-{key}"), "type": "team"}]),
        );
        for base in &bases {
            let response = client
                .post(format!("{base}/audit_logs/events"))
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response
                    .headers()
                    .get("idempotent-replayed")
                    .and_then(|value| value.to_str().ok()),
                Some("true")
            );
            let replay: Value = response.json().await.expect("json");
            assert_eq!(&replay, first_answer, "replay of {key} from {base}");
        }
    }

    let (ok, output) = stele_verify(&database);
    assert!(ok, "{output}");
    // The activity log is the fifth log, with the operator actions of this test.
    let activity = database
        .query_one(&format!(
            "SELECT COUNT(*) FROM events WHERE organization_id = '{}'",
            stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
        ))
        .integer();
    assert!(activity >= 4, "four organizations were created: {activity}");
    assert!(
        output.contains(&format!("OK: {} events in 5 organizations", 480 + activity)),
        "{output}"
    );
    drop((a, b));
}

/// Runs `stele api-keys ...` against `database_url`; returns stdout.
fn api_keys(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(stele_binary())
        .args(["api-keys"])
        .args(args)
        .args(["--database-url", database_url])
        .output()
        .expect("run stele api-keys");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_or_revoked_anywhere_takes_effect_on_every_replica_within_seconds() {
    let database = postgres_database();
    let client = reqwest::Client::new();
    let mut a = Replica::spawn(&database, free_port());
    a.wait_until_healthy(&client).await;
    let mut b = Replica::spawn(&database, free_port());
    b.wait_until_healthy(&client).await;

    let created = api_keys(database.url(), &["create", "--name", "shared"]);
    let secret = created.lines().last().expect("secret").trim().to_owned();
    let id = created
        .split_whitespace()
        .nth(3)
        .expect("key id")
        .to_owned();
    let status_on = |base: String| {
        let (client, secret) = (client.clone(), secret.clone());
        async move {
            client
                .get(format!("{base}/organizations"))
                .bearer_auth(&secret)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    // A key made by another process works on both replicas right away (and is now cached).
    assert_eq!(status_on(a.base.clone()).await, StatusCode::OK);
    assert_eq!(status_on(b.base.clone()).await, StatusCode::OK);

    api_keys(database.url(), &["revoke", &id]);
    let revoked_at = Instant::now();
    let mut refused = [false, false];
    while refused.contains(&false) && revoked_at.elapsed() < Duration::from_secs(15) {
        for (index, base) in [&a.base, &b.base].into_iter().enumerate() {
            if !refused[index] {
                refused[index] = status_on(base.clone()).await == StatusCode::UNAUTHORIZED;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = revoked_at.elapsed();
    assert_eq!(refused, [true, true], "the revoked key still works");
    assert!(
        took < Duration::from_secs(7),
        "revocation took {took:?} to reach every replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_job_runs_once_per_interval_however_many_replicas_ask() {
    let database = postgres_database();
    let options = DatabaseOptions {
        database_pool_size: 4,
        ..DatabaseOptions::default()
    };
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(
            stele_server::open_store(
                database.url(),
                &options,
                true,
                stele_server::SearchIndexing::Background,
            )
            .await
            .expect("store opens"),
        );
    }
    let claims = |now: i64| {
        let stores = stores.clone();
        async move {
            let attempts = stores.iter().flat_map(|store| {
                (0..5).map(move |_| store.claim_job_run("retention", now, 60_000))
            });
            futures::future::join_all(attempts)
                .await
                .into_iter()
                .map(|claimed| claimed.expect("claim"))
                .filter(|claimed| *claimed)
                .count()
        }
    };
    assert_eq!(
        claims(1_000_000).await,
        1,
        "one of 15 concurrent asks runs it"
    );
    assert_eq!(claims(1_030_000).await, 0, "not again within the interval");
    assert_eq!(claims(1_060_000).await, 1, "once more after the interval");
    // Jobs are independent of each other.
    assert!(stores[0]
        .claim_job_run("idempotency_cleanup", 1_060_000, 60_000)
        .await
        .expect("claim"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stele_migrate_prepares_a_database_that_replicas_then_serve_without_migrating() {
    let database = postgres_database();
    let client = reqwest::Client::new();
    let port = free_port();
    // Without migrations the replica refuses to start rather than guess at the schema.
    let refused = Command::new(stele_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--migrate-on-start", "false"])
        .env("STELE_DATABASE_URL", database.url())
        .env("STELE_SIGNING_KEY_FILE", database.signing_key_file())
        .output()
        .expect("run stele serve");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stele migrate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let migrate = |expected: &str| {
        let output = Command::new(stele_binary())
            .args(["migrate", "--database-url", database.url()])
            .output()
            .expect("run stele migrate");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{output:?}");
        assert!(stdout.contains(expected), "{stdout}");
    };
    // Every PostgreSQL migration file, however many the branch has.
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../stele-store/migrations/postgres"
    ))
    .expect("migrations directory")
    .filter(|entry| {
        entry
            .as_ref()
            .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
    })
    .count();
    migrate(&format!("applied {migrations} migration(s)"));
    migrate("applied 0 migration(s)");

    let mut replica = Replica::spawn_with(
        &database,
        port,
        &["--migrate-on-start", "false", "--database-pool-size", "2"],
    );
    replica.wait_until_healthy(&client).await;
    let response = client
        .post(format!("{}/organizations", replica.base))
        .bearer_auth(API_KEY)
        .json(&json!({"name": "Migrated"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_rate_limit_and_one_sign_in_throttle() {
    use crate::dashboard::Browser;
    use crate::limits::{retry_after_secs, start_of_a_fresh_window};

    let database = postgres_database();
    let client = reqwest::Client::new();
    let limit = ["--rate-limit-per-minute", "10"];
    let mut a = Replica::spawn_with(&database, free_port(), &limit);
    a.wait_until_healthy(&client).await;
    let mut b = Replica::spawn_with(&database, free_port(), &limit);
    b.wait_until_healthy(&client).await;

    // Twelve requests, alternating between the replicas: ten pass, whichever replica
    // receives them, and the rest are refused by either.
    start_of_a_fresh_window(Duration::from_secs(20)).await;
    let mut statuses = Vec::new();
    for index in 0..12 {
        let base = if index % 2 == 0 { &a.base } else { &b.base };
        let response = client
            .get(format!("{base}/organizations"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("request");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after_secs(&response);
        }
        statuses.push(response.status());
    }
    let passed = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(passed, 10, "{statuses:?}");
    assert_eq!(
        statuses[10..],
        [StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS],
        "both replicas refuse once the shared limit is used up"
    );

    // Three wrong passwords on one replica lock the username on the other as well.
    let mut on_a = Browser::at(&a.base);
    for _ in 0..3 {
        let response = on_a.try_login("admin", "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let mut on_b = Browser::at(&b.base);
    let response = on_b.try_login("admin", "replica-admin-password").await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the lockout earned on one replica holds on the other"
    );
    assert!(response.headers().get("retry-after").is_some());
}
