//! The `stele` command line as a person meets it: which commands create a database, and
//! what the errors say.

use std::process::{Command, Output};

use crate::support::{stele_binary, TestDatabase};

/// Runs `stele` in `dir` with no database configured in the environment.
fn stele_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(stele_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("STELE_DATABASE_URL")
        .env_remove("STELE_LISTEN")
        .output()
        .expect("run stele")
}

#[test]
fn commands_other_than_serve_and_migrate_never_create_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let commands: &[&[&str]] = &[
        &["api-keys", "list"],
        &["api-keys", "create", "--name", "ci"],
        &["verify"],
        &["users", "create", "--username", "alice"],
    ];
    for args in commands {
        let output = stele_in(dir.path(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must fail: {output:?}");
        for expected in [
            "no Stele database at ./stele-data/stele.db",
            "--database-url",
            "STELE_DATABASE_URL",
        ] {
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
        let left_behind: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read temp dir")
            .collect();
        assert!(left_behind.is_empty(), "{args:?} left {left_behind:?}");
    }
}

#[test]
fn commands_other_than_serve_and_migrate_refuse_an_unmigrated_database() {
    let database = TestDatabase::create();
    if let Some(path) = database.url().strip_prefix("sqlite://") {
        std::fs::write(path, b"").expect("create an empty SQLite file");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for args in [&["api-keys", "list"][..], &["verify"]] {
        let mut args = args.to_vec();
        args.extend(["--database-url", database.url()]);
        let output = stele_in(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must fail: {output:?}");
        assert!(
            stderr.contains("not up to date") && stderr.contains("stele migrate"),
            "{args:?}: {stderr}"
        );
    }
    let migrated = stele_in(dir.path(), &["migrate", "--database-url", database.url()]);
    assert!(migrated.status.success(), "{migrated:?}");
    let listed = stele_in(
        dir.path(),
        &["api-keys", "list", "--database-url", database.url()],
    );
    assert!(listed.status.success(), "{listed:?}");
}

/// Spawns `stele` in `dir` with `args` followed by `--listen` on a free port (stderr
/// piped) and waits until `/healthz`, sent with `x-request-id: request_id`, answers 200.
async fn spawn_until_healthy(
    dir: &std::path::Path,
    args: &[&str],
    request_id: &str,
) -> std::process::Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(stele_binary())
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env_remove("STELE_DATABASE_URL")
        .env_remove("STELE_LISTEN")
        .env_remove("STELE_REQUEST_LOG")
        .env_remove("STELE_LOG")
        .env("STELE_API_KEY", "sk_test_spawned_server_0123456789abcdef")
        .env("STELE_ADMIN_PASSWORD", "spawned-server-password")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn stele");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("stele {args:?} exited: {status}");
        }
        let healthy = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("x-request-id", request_id)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if healthy {
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("`stele {args:?} --listen 127.0.0.1:{port}` did not serve on that port");
}

#[tokio::test]
async fn serve_flags_work_without_the_serve_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No `serve`: the top-level --listen flag alone starts the server on that port.
    let mut child = spawn_until_healthy(dir.path(), &[], "top-level-flags").await;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_taken_port_names_the_address_and_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = taken.local_addr().expect("address").to_string();
    let output = stele_in(dir.path(), &["--listen", &address]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    for expected in [address.as_str(), "--listen", "STELE_LISTEN"] {
        assert!(stderr.contains(expected), "{stderr}");
    }
    let left_behind: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read temp dir")
        .collect();
    assert!(
        left_behind.is_empty(),
        "a failed start left {left_behind:?}"
    );
}

/// Starts `stele serve` with `extra_args` on a fresh SQLite file, sends one request to
/// `/healthz` carrying `x-request-id: request_id`, stops the server and returns its stderr.
async fn stderr_after_one_request(extra_args: &[&str], request_id: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["serve"];
    args.extend_from_slice(extra_args);
    let mut child = spawn_until_healthy(dir.path(), &args, request_id).await;
    // Give the log line a moment to be written before the process stops.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = child.kill();
    let output = child.wait_with_output().expect("stele output");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn each_request_is_logged_on_one_line_unless_turned_off() {
    let logged = stderr_after_one_request(&[], "req-log-on").await;
    let line = logged
        .lines()
        .find(|line| line.contains("req-log-on"))
        .unwrap_or_else(|| panic!("a line for the request: {logged}"));
    for expected in ["INFO", "GET", "/healthz", "200", "latency_ms"] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    let silent = stderr_after_one_request(&["--request-log", "false"], "req-log-off").await;
    assert!(
        !silent.contains("req-log-off") && !silent.contains("/healthz"),
        "--request-log false logs no requests: {silent}"
    );
}
