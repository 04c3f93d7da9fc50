//! Migration from WorkOS: organizations created under their existing ids, `stele import`
//! from another server speaking the WorkOS API, `stele import-events` from a WorkOS CSV
//! export, and `--auto-create-organizations`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    event, read, seed_v1, seed_v2, stele_binary, stele_verify, TestDatabase, TestServer, API_KEY,
};

const WORKOS_ID: &str = "org_01EHZNVPK3SFK441A1RGBFSHRT";

#[tokio::test]
async fn create_organization_with_an_imported_id_keeps_that_id() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .post("/organizations", &json!({"id": WORKOS_ID, "name": "Acme"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], WORKOS_ID);
    let (status, body) = read(
        server
            .get(&format!("/organizations/{WORKOS_ID}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Acme");
}

#[tokio::test]
async fn create_organization_rejects_a_malformed_imported_id() {
    let server = TestServer::start().await;
    for id in [
        json!("acme"),
        json!("org_short"),
        json!("key_01EHZNVPK3SFK441A1RGBFSHRT"),
        json!(42),
    ] {
        let (status, body) = read(
            server
                .post("/organizations", &json!({"id": id, "name": "Acme"}))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{id}: {body}");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "id", "{body}");
    }
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn create_organization_with_a_taken_imported_id_is_refused_but_replays_its_own_key() {
    let server = TestServer::start().await;
    let create = |key: &'static str, name: &'static str| {
        server
            .post("/organizations", &json!({"id": WORKOS_ID, "name": name}))
            .header("Idempotency-Key", key)
            .send()
    };
    let (status, first) = read(create("key-1", "Acme").await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, replay) = read(create("key-1", "Acme").await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED, "a retry replays: {replay}");
    assert_eq!(replay, first);
    let (status, body) = read(create("key-2", "Other").await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "organization_id_taken");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains(WORKOS_ID),
        "{body}"
    );
    let (_, stored) = read(
        server
            .get(&format!("/organizations/{WORKOS_ID}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(stored["name"], "Acme", "the refused create changed nothing");
}

/// Runs the `stele` binary on `database`; returns success and stderr.
fn stele(database: &TestDatabase, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(stele_binary())
        .args(args)
        .args(["--database-url", database.url()])
        .output()
        .expect("run stele");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every organization and schema version row, to compare a database before and after.
fn dump(database: &TestDatabase) -> Vec<String> {
    let mut rows = Vec::new();
    for row in database.query(
        "SELECT id, name, COALESCE(external_id, ''), metadata, domains, updated_at,
                COALESCE(retention_period_in_days, -1) FROM organizations ORDER BY id",
    ) {
        rows.push(format!(
            "{} {} {} {} {} {} {}",
            row[0].text(),
            row[1].text(),
            row[2].text(),
            row[3].text(),
            row[4].text(),
            row[5].integer(),
            row[6].integer()
        ));
    }
    for row in database.query(
        "SELECT action_id, version, definition, created_at FROM schema_versions ORDER BY action_id, version",
    ) {
        rows.push(format!(
            "{} {} {} {}",
            row[0].integer(),
            row[1].integer(),
            row[2].text(),
            row[3].integer()
        ));
    }
    rows
}

async fn send(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = server.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, body) = read(request.send().await.expect("request")).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// A source with an organization under a WorkOS id (external id, metadata, domain,
/// retention), one with a generated id, and two actions, one with three versions.
async fn filled_source() -> (TestServer, String) {
    let source = TestServer::start().await;
    send(
        &source,
        Method::POST,
        "/organizations",
        Some(
            json!({"id": WORKOS_ID, "name": "Acme", "external_id": "acme-1",
                    "metadata": {"tier": "gold"},
                    "domain_data": [{"domain": "acme.com", "state": "verified"}]}),
        ),
    )
    .await;
    send(
        &source,
        Method::PUT,
        &format!("/organizations/{WORKOS_ID}/audit_logs_retention"),
        Some(json!({"retention_period_in_days": 30})),
    )
    .await;
    let other = source.create_organization("Globex").await;
    for definition in [
        seed_v1(),
        seed_v2(),
        json!({"targets": [{"type": "resource"}]}),
    ] {
        let (status, body) = source.create_schema("user.signed_in", &definition).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = source.create_schema("team.created", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (source, other)
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_copies_organization_ids_schema_versions_and_retention_and_twice_changes_nothing() {
    let (source, other) = filled_source().await;
    let target = TestDatabase::create();
    let import = [
        "import",
        "--from",
        source.base.as_str(),
        "--api-key",
        API_KEY,
    ];
    let (ok, stderr) = stele(&target, &import);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("created organization"),
        "progress: {stderr}"
    );
    let first = dump(&target);
    let (ok, stderr) = stele(&target, &import);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("nothing to import"), "{stderr}");
    assert_eq!(dump(&target), first, "a second import changes nothing");

    let target = TestServer::start_on(target, &[]).await;
    for id in [WORKOS_ID, other.as_str()] {
        let path = format!("/organizations/{id}");
        let mut imported = send(&target, Method::GET, &path, None).await;
        let mut original = send(&source, Method::GET, &path, None).await;
        for body in [&mut imported, &mut original] {
            body.as_object_mut().expect("object").remove("updated_at");
        }
        assert_eq!(imported, original);
    }
    let retention = send(
        &target,
        Method::GET,
        &format!("/organizations/{WORKOS_ID}/audit_logs_retention"),
        None,
    )
    .await;
    assert_eq!(retention["retention_period_in_days"], 30);
    for action in ["user.signed_in", "team.created"] {
        let path = format!("/audit_logs/actions/{action}/schemas?order=asc");
        let strip = |list: Value| -> Vec<Value> {
            list["data"]
                .as_array()
                .expect("list")
                .iter()
                .map(|version| {
                    let mut version = version.clone();
                    version
                        .as_object_mut()
                        .expect("object")
                        .remove("created_at");
                    version
                })
                .collect()
        };
        let imported = strip(send(&target, Method::GET, &path, None).await);
        let original = strip(send(&source, Method::GET, &path, None).await);
        assert_eq!(imported, original, "{action}: same versions, same numbers");
    }
    let (status, body) = target
        .create_event(&event(
            WORKOS_ID,
            "user.signed_in",
            Some(3),
            json!([{"id": "r1", "type": "resource"}]),
        ))
        .await;
    assert!(
        status.is_success(),
        "events name the source's versions: {status} {body}"
    );
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_into_a_conflicting_target_is_refused_before_any_write() {
    let (source, other) = filled_source().await;
    let target = TestServer::start().await;
    send(
        &target,
        Method::POST,
        "/organizations",
        Some(json!({"id": WORKOS_ID, "name": "Not Acme"})),
    )
    .await;
    let (status, body) = target.create_schema("user.signed_in", &seed_v2()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = dump(&target.database);
    let (ok, stderr) = stele(
        &target.database,
        &[
            "import",
            "--from",
            source.base.as_str(),
            "--api-key",
            API_KEY,
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "organization {WORKOS_ID} exists with different data"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("action user.signed_in: version 1 here differs"),
        "{stderr}"
    );
    assert_eq!(dump(&target.database), before, "the target is unchanged");
    let (status, _) = read(
        target
            .get(&format!("/organizations/{other}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no organization was imported"
    );
}

const CSV_HEADER: &str = "action,occurred_at,actor_id,actor_type,actor_name,actor_metadata,context_location,context_user_agent,metadata,target_id_1,target_type_1,target_name_1,target_metadata_1,target_id_2,target_type_2,target_name_2,target_metadata_2";

async fn server_with_schema() -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    for definition in [seed_v1(), seed_v2()] {
        let (status, body) = server.create_schema("user.signed_in", &definition).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    (server, organization)
}

fn write_csv(rows: &[&str]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{CSV_HEADER}\n{}\n", rows.join("\n"))).expect("write");
    file
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_events_keeps_occurred_at_marks_events_and_verify_passes() {
    let (server, organization) = server_with_schema().await;
    let csv = write_csv(&[
        r#"user.signed_in,2021-03-04T05:06:07.890Z,user_1,user,Jane,"{""role"":""admin""}",1.2.3.4,Chrome,,team_1,team,Team,,,,,"#,
        r#"user.signed_in,2021-03-05T00:00:00.000Z,user_2,user,,,5.6.7.8,,"{""environment"":""prod""}",team_1,team,,"{""owner"":""jane""}",doc_1,resource,Doc,"#,
    ]);
    let path = csv.path().to_str().expect("utf-8 path");
    let (ok, stderr) = stele(
        &server.database,
        &["import-events", "--organization", &organization, path],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("imported 2 events"), "{stderr}");
    let (ok, stdout) = stele_verify(&server.database);
    assert!(ok, "verify passes after an import: {stdout}");
    let list = send(
        &server,
        Method::GET,
        &format!("/audit_logs/events?organization_id={organization}&order=asc"),
        None,
    )
    .await;
    let events = list["data"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{list}");
    assert_eq!(events[0]["occurred_at"], "2021-03-04T05:06:07.890Z");
    assert_eq!(events[0]["actor"]["metadata"], json!({"role": "admin"}));
    assert_eq!(events[1]["targets"][1]["type"], "resource");
    assert_eq!(events[1]["version"], 2);
    for event in events {
        assert_eq!(event["imported"], true, "{event}");
    }
    let (status, live) = server
        .create_event(&event(&organization, "user.signed_in", None, json!([])))
        .await;
    assert!(status.is_success(), "{status}: {live}");
    let list = send(
        &server,
        Method::GET,
        &format!("/audit_logs/events?organization_id={organization}&order=desc&limit=1"),
        None,
    )
    .await;
    assert!(
        list["data"][0].get("imported").is_none(),
        "live events are not marked: {list}"
    );
    let (ok, stdout) = stele_verify(&server.database);
    assert!(ok, "{stdout}");
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_events_reports_a_bad_row_by_line_and_imports_nothing() {
    let (server, organization) = server_with_schema().await;
    let csv = write_csv(&[
        "user.signed_in,2021-03-04T05:06:07.890Z,user_1,user,,,1.2.3.4,,,team_1,team,,,,,,",
        "user.signed_in,2021-03-04T05:06:07.890Z,user_1,user,,,1.2.3.4,,,x_1,undeclared,,,,,,",
        "user.signed_in,not a date,user_1,user,,,1.2.3.4,,,team_1,team,,,,,,",
    ]);
    let path = csv.path().to_str().expect("utf-8 path");
    let (ok, stderr) = stele(
        &server.database,
        &["import-events", "--organization", &organization, path],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:3:")),
        "line of the bad target: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:4:")),
        "line of the bad date: {stderr}"
    );
    assert!(!stderr.contains(&format!("{path}:2:")), "{stderr}");
    assert!(stderr.contains("2 bad rows in"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // An empty file (no header row) is a problem too, not an import of nothing.
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    let empty_path = empty.path().to_str().expect("utf-8 path");
    let (ok, stderr) = stele(
        &server.database,
        &["import-events", "--organization", &organization, empty_path],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{empty_path}:1: the file is empty")),
        "{stderr}"
    );
    assert!(stderr.contains("1 bad row in"), "{stderr}");
    let list = send(
        &server,
        Method::GET,
        &format!("/audit_logs/events?organization_id={organization}"),
        None,
    )
    .await;
    assert_eq!(list["data"], json!([]), "no row was imported");
}

#[tokio::test]
async fn import_auto_create_organizations_creates_an_unknown_well_formed_id_only_when_on() {
    let unknown = "org_01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let off = TestServer::start().await;
    let (status, _) = off.create_schema("user.signed_in", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = off
        .create_event(&event(unknown, "user.signed_in", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "off by default: {body}");

    let on = TestServer::start_with(&["--auto-create-organizations"]).await;
    let (status, _) = on.create_schema("user.signed_in", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = on
        .create_event(&event("org_not-a-ulid", "user.signed_in", None, json!([])))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "malformed ids are not created: {body}"
    );
    let (status, body) = on
        .create_event(&event(unknown, "user.signed_in", Some(7), json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = read(
        on.get(&format!("/organizations/{unknown}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused event creates nothing"
    );
    let (status, body) = on
        .create_event(&event(unknown, "user.signed_in", None, json!([])))
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let organization = send(&on, Method::GET, &format!("/organizations/{unknown}"), None).await;
    assert_eq!(organization["name"], unknown);
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_events_twice_imports_each_row_once_and_keeps_repeated_rows() {
    let (server, organization) = server_with_schema().await;
    let repeated =
        "user.signed_in,2021-03-04T05:06:07.890Z,user_1,user,,,1.2.3.4,,,team_1,team,,,,,,";
    let csv = write_csv(&[
        repeated,
        repeated,
        "user.signed_in,2021-03-05T00:00:00.000Z,user_2,user,,,5.6.7.8,,,team_1,team,,,,,,",
    ]);
    let path = csv.path().to_str().expect("utf-8 path");
    let args = ["import-events", "--organization", &organization, path];
    let (ok, stderr) = stele(&server.database, &args);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("imported 3 events") && stderr.contains("0 rows imported before"),
        "two identical rows are two events: {stderr}"
    );
    let (ok, stderr) = stele(&server.database, &args);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("imported 0 events") && stderr.contains("3 rows imported before"),
        "{stderr}"
    );
    // A later export overlapping the first: only its new row is stored.
    let overlapping = write_csv(&[
        repeated,
        "user.signed_in,2021-03-06T00:00:00.000Z,user_3,user,,,5.6.7.8,,,team_1,team,,,,,,",
        repeated,
    ]);
    let path = overlapping.path().to_str().expect("utf-8 path");
    let (ok, stderr) = stele(
        &server.database,
        &["import-events", "--organization", &organization, path],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("imported 1 event into"), "{stderr}");
    let count = server
        .database
        .query_one(&format!(
            "SELECT COUNT(*) FROM events WHERE organization_id = '{organization}'"
        ))
        .integer();
    assert_eq!(count, 4);
    let (ok, stdout) = stele_verify(&server.database);
    assert!(ok, "{stdout}");
}

// The binary runs on a blocked worker while the servers answer on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_what_the_api_would_refuse_before_any_write() {
    let (source, _) = filled_source().await;
    // A source holding what Stele's API refuses: an action name outside the rule, an
    // organization over WorkOS's metadata limits, a retention period out of range.
    source
        .database
        .execute("UPDATE actions SET name = 'Team.Created' WHERE name = 'team.created'");
    let long = "x".repeat(601);
    source.database.execute(&format!(
        "UPDATE organizations SET metadata = '{{\"note\":\"{long}\"}}' WHERE id = '{WORKOS_ID}'"
    ));
    source.database.execute(&format!(
        "UPDATE organizations SET retention_period_in_days = 5000 WHERE id <> '{WORKOS_ID}'"
    ));
    let target = TestDatabase::create();
    let (ok, _) = stele(&target, &["migrate"]);
    assert!(ok);
    let before = dump(&target);
    let (ok, stderr) = stele(
        &target,
        &[
            "import",
            "--from",
            source.base.as_str(),
            "--api-key",
            API_KEY,
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        stderr.contains(r#"action "Team.Created" is not a valid action name"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("organization {WORKOS_ID}: metadata.note")),
        "{stderr}"
    );
    assert!(stderr.contains("retention of 5000 days"), "{stderr}");
    assert_eq!(dump(&target), before, "the target is unchanged");
}
