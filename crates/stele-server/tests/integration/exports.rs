//! Exports: WorkOS shapes, filters, the snapshot rule, CSV and JSONL files, signed links.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{read, stored_events, TestServer};

async fn with_events(count: usize) -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Exported").await;
    let definition = json!({"targets": [{"type": "team"}, {"type": "document"}]});
    for action in ["user.signed_in", "doc.viewed"] {
        server.create_schema(action, &definition).await;
    }
    for index in 0..count {
        append(&server, &organization, index).await;
    }
    (server, organization)
}

async fn append(server: &TestServer, organization: &str, index: usize) {
    let body = json!({"organization_id": organization, "event": {
        "action": if index.is_multiple_of(2) { "user.signed_in" } else { "doc.viewed" },
        "occurred_at": format!("2024-03-{:02}T08:00:00.000Z", index % 28 + 1),
        "actor": {"id": format!("user_{}", index % 3), "type": "user", "name": format!("User, \"{}\"", index % 3),
                  "metadata": {"role": "admin"}},
        "targets": [{"id": format!("team_{}", index % 2), "type": if index.is_multiple_of(5) { "document" } else { "team" }}],
        "context": {"location": "10.0.0.1", "user_agent": "curl/8"}
    }});
    let (status, response) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::OK, "{response}");
}

fn export_body(organization: &str, extra: Value) -> Value {
    let mut body = json!({"organization_id": organization,
                          "range_start": "2024-03-01T00:00:00.000Z", "range_end": "2024-03-31T00:00:00.000Z"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn create(server: &TestServer, body: &Value) -> Value {
    let (status, export) = read(
        server
            .post("/audit_logs/exports", body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    export
}

async fn download(server: &TestServer, url: &str) -> (StatusCode, String) {
    let response = server.client.get(url).send().await.expect("download");
    (response.status(), response.text().await.expect("body"))
}

fn csv_rows(text: &str) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        stele_core::export::csv_header()
    );
    reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid CSV")
}

#[tokio::test]
async fn export_has_the_workos_shape_and_a_working_link() {
    let (server, organization) = with_events(6).await;
    let export = create(&server, &export_body(&organization, json!({}))).await;
    assert_eq!(export["object"], "audit_log_export");
    assert!(export["id"]
        .as_str()
        .expect("id")
        .starts_with("audit_log_export_"));
    assert_eq!(export["state"], "ready");
    let url = export["url"].as_str().expect("url");
    assert!(url.starts_with(&server.base), "{url}");
    let (status, text) = download(&server, url).await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(&text);
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[0][2], "1");
    assert_eq!(
        &rows[0][9], "User, \"0\"",
        "quoting survives the round trip"
    );
    assert_eq!(&rows[0][10], r#"{"role":"admin"}"#);
    assert_eq!(&rows[0][13], "curl/8");
    let columns = stele_core::export::CSV_COLUMNS.len();
    assert_eq!(&rows[0][columns], "team_0", "target_id_1");
    assert_eq!(&rows[0][columns + 1], "document", "target_type_1");
    assert_eq!(&rows[1][columns + 1], "team", "target_type_1");
    assert_eq!(
        &rows[0][columns + 4],
        "",
        "target_id_2 of a one-target event"
    );

    let (status, fetched) = read(
        server
            .get(&format!(
                "/audit_logs/exports/{}",
                export["id"].as_str().expect("id")
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["id"], export["id"]);
    assert_ne!(
        fetched["url"], export["url"],
        "each GET issues a fresh link"
    );
    assert_eq!(
        download(&server, fetched["url"].as_str().expect("url"))
            .await
            .1,
        text,
        "same snapshot"
    );
}

#[tokio::test]
async fn filters_and_with_the_actors_alias() {
    let (server, organization) = with_events(12).await;
    let cases = [
        (
            json!({"actions": ["doc.viewed"]}),
            vec!["2", "4", "6", "8", "10", "12"],
        ),
        (
            json!({"actor_ids": ["user_0", "user_1"], "actions": ["user.signed_in"]}),
            vec!["1", "5", "7", "11"],
        ),
        (
            json!({"actors": ["User, \"2\""]}),
            vec!["3", "6", "9", "12"],
        ),
        (
            json!({"actor_names": ["User, \"2\""], "targets": ["document"]}),
            vec!["6"],
        ),
        (json!({"targets": ["document"]}), vec!["1", "6", "11"]),
        (
            json!({"range_start": "2024-03-03T00:00:00Z", "range_end": "2024-03-04T23:00:00Z"}),
            vec!["3", "4"],
        ),
    ];
    for (filters, expected) in cases {
        let export = create(&server, &export_body(&organization, filters.clone())).await;
        let (_, text) = download(&server, export["url"].as_str().expect("url")).await;
        let sequences: Vec<String> = csv_rows(&text)
            .iter()
            .map(|row| row[2].to_owned())
            .collect();
        assert_eq!(sequences, expected, "{filters}");
    }
}

#[tokio::test]
async fn an_export_is_a_snapshot_of_its_creation_time() {
    let (server, organization) = with_events(5).await;
    let export = create(&server, &export_body(&organization, json!({}))).await;
    for index in 5..10 {
        append(&server, &organization, index).await;
    }
    let (_, text) = download(&server, export["url"].as_str().expect("url")).await;
    assert_eq!(
        csv_rows(&text).len(),
        5,
        "events stored after creation are not in it"
    );
    let later = create(&server, &export_body(&organization, json!({}))).await;
    let (_, text) = download(&server, later["url"].as_str().expect("url")).await;
    assert_eq!(csv_rows(&text).len(), 10);
}

#[tokio::test]
async fn jsonl_lines_are_the_stored_canonical_bytes() {
    let (server, organization) = with_events(4).await;
    let export = create(
        &server,
        &export_body(&organization, json!({"format": "jsonl"})),
    )
    .await;
    let (status, text) = download(&server, export["url"].as_str().expect("url")).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = text.lines().collect();
    let stored = stored_events(&server.database, &organization);
    assert_eq!(lines.len(), stored.len());
    for (line, (_, _, canonical)) in lines.iter().zip(stored) {
        assert_eq!(line.as_bytes(), canonical.as_slice());
    }
}

#[tokio::test]
async fn forged_altered_and_expired_links_are_refused() {
    let (server, organization) = with_events(2).await;
    let export = create(&server, &export_body(&organization, json!({}))).await;
    let url = export["url"].as_str().expect("url").to_owned();
    let id = export["id"].as_str().expect("id");

    let forged = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let (status, body) = download(&server, &forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("invalid_download_link"), "{body}");

    for broken in ["", "?expires=soon&signature=00", "?signature=00"] {
        let link = format!("{}/audit_logs/exports/{id}/download{broken}", server.base);
        let (status, body) = read(server.client.get(&link).send().await.expect("download")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{broken}");
        assert_eq!(body["code"], "invalid_download_link");
    }

    let stretched = url.replacen("expires=", "expires=9", 1);
    assert_eq!(
        download(&server, &stretched).await.0,
        StatusCode::FORBIDDEN,
        "changing the expiry breaks the signature"
    );

    // A correctly signed link whose ten minutes are over.
    let key = server
        .database
        .query_one("SELECT value FROM settings WHERE name = 'export_url_signing_key'")
        .bytes();
    let expired_at = stele_core::timestamp::now_millis() - 1;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}\n{expired_at}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let expired = format!(
        "{}/audit_logs/exports/{id}/download?expires={expired_at}&signature={signature}",
        server.base
    );
    assert_eq!(download(&server, &expired).await.0, StatusCode::FORBIDDEN);
    let fresh_expiry = stele_core::timestamp::now_millis() + 60_000;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}\n{fresh_expiry}").as_bytes());
    let valid = format!(
        "{}/audit_logs/exports/{id}/download?expires={fresh_expiry}&signature={}",
        server.base,
        hex::encode(mac.finalize().into_bytes())
    );
    assert_eq!(
        download(&server, &valid).await.0,
        StatusCode::OK,
        "the same key signs valid links"
    );
}

#[tokio::test]
async fn invalid_export_requests_are_specific_errors() {
    let (server, organization) = with_events(1).await;
    let backwards = export_body(
        &organization,
        json!({"range_start": "2024-03-10T00:00:00Z", "range_end": "2024-03-01T00:00:00Z"}),
    );
    let (status, body) = read(
        server
            .post("/audit_logs/exports", &backwards)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_audit_log_export_range_date");
    let (status, body) = read(
        server
            .post(
                "/audit_logs/exports",
                &export_body(&organization, json!({"range_end": "whenever"})),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "range_end");
    let (status, body) = read(
        server
            .post(
                "/audit_logs/exports",
                &json!({"organization_id": organization}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["code"], "required");
    let (status, _) = read(
        server
            .post(
                "/audit_logs/exports",
                &export_body("org_01EHWNCE74X7JSDV0X3SZ3KJNY", json!({})),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = read(
        server
            .get("/audit_logs/exports/audit_log_export_nope")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
