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

#[tokio::test]
async fn serve_flags_work_without_the_serve_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(stele_binary())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("STELE_DATABASE_URL")
        .env_remove("STELE_LISTEN")
        .env("STELE_API_KEY", "sk_test_top_level_flags")
        .env("STELE_ADMIN_PASSWORD", "top-level-flags-password")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn stele");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut healthy = false;
    while std::time::Instant::now() < deadline && !healthy {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("stele --listen exited: {status}");
        }
        healthy = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        healthy,
        "`stele --listen 127.0.0.1:{port}` serves on that port"
    );
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
