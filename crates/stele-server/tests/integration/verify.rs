//! `stele verify`: detects altered, removed and reordered events, naming the first bad one.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{event, seed_v1, stele_binary, TestServer};

async fn log_with_events(count: usize) -> (TestServer, String, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Verified").await;
    let other = server.create_organization("Untouched").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    for index in 0..count {
        for org in [&organization, &other] {
            let (status, _) = server
                .create_event(&event(
                    org,
                    "user.signed_in",
                    None,
                    json!([{"id": format!("t{index}"), "type": "team"}]),
                ))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    (server, organization, other)
}

fn verify(server: &TestServer, organization: Option<&str>) -> (bool, String) {
    let mut command = Command::new(stele_binary());
    command.args(["verify", "--database-url", server.database.url()]);
    if let Some(organization) = organization {
        command.args(["--organization", organization]);
    }
    let output = command.output().expect("run stele verify");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn tamper(server: &TestServer, sql: &str) {
    let changed = server.database.execute(sql);
    assert!(changed > 0, "tampering changed nothing: {sql}");
}

#[tokio::test]
async fn intact_log_verifies() {
    let (server, _, _) = log_with_events(3).await;
    let (ok, output) = verify(&server, None);
    assert!(ok, "{output}");
    // 6 events of the two organizations, 4 of the activity log (two organizations and a
    // schema version created, the signing key added): three logs.
    assert!(
        output.contains("OK: 10 events in 3 organizations"),
        "{output}"
    );
}

#[tokio::test]
async fn verify_progress_is_whole_lines_in_logs_and_counts_read_naturally() {
    let (server, organization, _) = log_with_events(1).await;
    let output = Command::new(stele_binary())
        .args(["verify", "--database-url", server.database.url()])
        .args(["--organization", &organization])
        .output()
        .expect("run stele verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("OK: 1 event in 1 organization verified"),
        "{stdout}"
    );
    assert!(
        !stderr.contains('\r'),
        "no carriage returns when not a terminal: {stderr:?}"
    );
    assert!(
        stderr.lines().any(|line| line == "chains: 1 event"),
        "{stderr}"
    );
}

#[tokio::test]
async fn altered_event_is_named() {
    let (server, organization, other) = log_with_events(4).await;
    // The stored bytes edited in place, in each backend's dialect.
    let altered = server.database.dialect(
        "CAST(replace(CAST(canonical AS TEXT), '\"t1\"', '\"t9\"') AS BLOB)",
        "convert_to(replace(convert_from(canonical, 'UTF8'), '\"t1\"', '\"t9\"'), 'UTF8')",
    );
    tamper(
        &server,
        &format!(
            "UPDATE events SET canonical = {altered}
             WHERE organization_id = '{organization}' AND sequence = 2"
        ),
    );
    let (ok, output) = verify(&server, None);
    assert!(!ok);
    assert!(
        output.contains(&organization) && output.contains("event 2"),
        "{output}"
    );
    let (ok, output) = verify(&server, Some(&other));
    assert!(ok, "other organizations still verify: {output}");
}

#[tokio::test]
async fn removed_event_is_a_gap() {
    let (server, organization, _) = log_with_events(4).await;
    tamper(
        &server,
        &format!("DELETE FROM events WHERE organization_id = '{organization}' AND sequence = 3"),
    );
    let (ok, output) = verify(&server, None);
    assert!(!ok);
    assert!(
        output.contains("sequence 4 found where 3 was expected"),
        "{output}"
    );
}

#[tokio::test]
async fn swapped_events_are_detected() {
    let (server, organization, _) = log_with_events(4).await;
    tamper(&server, &format!("UPDATE events SET sequence = -1 WHERE organization_id = '{organization}' AND sequence = 2"));
    tamper(&server, &format!("UPDATE events SET sequence = 2 WHERE organization_id = '{organization}' AND sequence = 3"));
    tamper(&server, &format!("UPDATE events SET sequence = 3 WHERE organization_id = '{organization}' AND sequence = -1"));
    let (ok, output) = verify(&server, Some(&organization));
    assert!(!ok);
    assert!(output.contains("event 2"), "{output}");
}

#[tokio::test]
async fn an_unknown_organization_is_an_error_not_an_empty_success() {
    let (server, _, _) = log_with_events(1).await;
    let (ok, output) = verify(&server, Some("org_01EHWNCE74X7JSDV0X3SZ3KJNY"));
    assert!(!ok, "{output}");
    assert!(!output.contains("OK"), "{output}");
}
