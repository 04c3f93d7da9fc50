//! Deployment secrets outside the database: the export link signing key lives in a private
//! file, moved there from the database on upgrade, and replicas never invent their own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;

use crate::support::{read, stele_binary, TestDatabase, API_KEY, POSTGRES_URL_VARIABLE};

struct Server {
    base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn spawn(database_url: &str, dir: &Path, extra: &[&str]) -> Child {
    Command::new(stele_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .env("STELE_DATABASE_URL", database_url)
        .env("STELE_SIGNING_KEY_FILE", dir.join("signing-key.pem"))
        .env("STELE_API_KEY", API_KEY)
        .env("STELE_ADMIN_PASSWORD", "secrets-admin-password")
        .env("STELE_DATABASE_POOL_SIZE", "4")
        .env("STELE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stele")
}

async fn start(database_url: &str, dir: &Path, port: u16) -> Server {
    let mut child = Command::new(stele_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("STELE_DATABASE_URL", database_url)
        .env("STELE_SIGNING_KEY_FILE", dir.join("signing-key.pem"))
        .env("STELE_API_KEY", API_KEY)
        .env("STELE_ADMIN_PASSWORD", "secrets-admin-password")
        .env("STELE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn stele");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("stele exited: {status}");
        }
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == StatusCode::OK)
        {
            return Server { base, child };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("stele did not become healthy");
}

fn link_key_rows(database: &TestDatabase) -> i64 {
    database
        .query_one("SELECT COUNT(*) FROM settings WHERE name = 'export_url_signing_key'")
        .integer()
}

/// A download link for `export_id` signed with `key`, as the server signs them.
fn link(base: &str, export_id: &str, key: &[u8]) -> String {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 60_000;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("key");
    mac.update(format!("{export_id}\n{expires}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!(
        "{base}/audit_logs/exports/{export_id}/download?expires={expires}&signature={signature}"
    )
}

#[tokio::test]
async fn on_sqlite_the_link_key_moves_from_the_database_into_a_private_file() {
    let database = TestDatabase::create_sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let url = database.url().to_owned();
    let db_dir = Path::new(url.trim_start_matches("sqlite://"))
        .parent()
        .expect("dir")
        .to_owned();
    // An existing deployment: migrated, with the key in its settings row.
    let migrated = Command::new(stele_binary())
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("migrate");
    assert!(migrated.status.success());
    let legacy = [7u8; 32];
    database.execute(&format!(
        "INSERT INTO settings (name, value) VALUES ('export_url_signing_key', {})",
        database.bytes_literal(&legacy)
    ));

    let server = start(&url, dir.path(), free_port()).await;
    let key_file = db_dir.join("link-signing-key");
    let text = std::fs::read_to_string(&key_file).expect("the key file was created");
    assert_eq!(text.trim(), hex::encode(legacy), "the key kept its value");
    let mode = std::fs::metadata(&key_file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        link_key_rows(&database),
        0,
        "the database no longer holds it"
    );

    // Links signed with the key, before and after the move, still download.
    let client = reqwest::Client::new();
    let (status, organization) = read(
        client
            .post(format!("{}/organizations", server.base))
            .bearer_auth(API_KEY)
            .json(&json!({"name": "Keyed"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, export) = read(
        client
            .post(format!("{}/audit_logs/exports", server.base))
            .bearer_auth(API_KEY)
            .json(&json!({"organization_id": organization["id"],
                          "range_start": "2024-01-01T00:00:00Z", "range_end": "2024-02-01T00:00:00Z"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    let id = export["id"].as_str().expect("id");
    let forged_elsewhere = link(&server.base, id, &[9u8; 32]);
    for (url, expected) in [
        (
            export["url"].as_str().expect("url").to_owned(),
            StatusCode::OK,
        ),
        (link(&server.base, id, &legacy), StatusCode::OK),
        (forged_elsewhere, StatusCode::FORBIDDEN),
    ] {
        let response = client.get(&url).send().await.expect("download");
        assert_eq!(response.status(), expected, "{url}");
    }
    drop(server);

    // A restart reads the file; still nothing in the database.
    let _server = start(&url, dir.path(), free_port()).await;
    assert_eq!(link_key_rows(&database), 0);
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("file").trim(),
        hex::encode(legacy)
    );
}

#[tokio::test]
async fn a_replica_without_the_shared_key_file_refuses_to_start_rather_than_invent_one() {
    let admin_url = std::env::var(POSTGRES_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(crate::support::default_postgres_url);
    let database = TestDatabase::create_postgres(&admin_url);
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("link-signing-key");
    let missing_arg = missing.to_str().expect("utf-8");
    let output = spawn(
        database.url(),
        dir.path(),
        &["--link-signing-key-file", missing_arg],
    )
    .wait_with_output()
    .expect("run");
    assert!(
        !output.status.success(),
        "a replica started without the key"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
    assert!(!missing.exists(), "no key was invented");

    // Given the file, replicas start and the database never holds the key.
    std::fs::write(&missing, format!("{}\n", "ab".repeat(32))).expect("write key");
    let mut first = spawn(
        database.url(),
        dir.path(),
        &["--link-signing-key-file", missing_arg],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        first.try_wait().expect("status").is_none(),
        "the replica with the key file keeps running"
    );
    assert_eq!(link_key_rows(&database), 0);
    let _ = first.kill();
    let _ = first.wait();
}
