//! Creating events: every validation rule, in order, and what gets stored.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{event, read, seed_v1, seed_v2, stored_events, TestServer};

async fn server_with_seed_schemas() -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Seed Org").await;
    assert_eq!(
        server.create_schema("user.signed_in", &seed_v1()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        server.create_schema("user.signed_in", &seed_v2()).await.0,
        StatusCode::CREATED
    );
    (server, organization)
}

/// The seed document's payloads as each official SDK puts them on the wire.
fn seed_payloads() -> Vec<(&'static str, Value)> {
    let team = json!({"type": "team", "id": "team_01GBNJD4MKHVKJGEWK42JNMBGS"});
    let resource = json!({"type": "resource", "id": "resource_01GBTAX2J37BAMB2D8GYDR2CC6"});
    let actor = json!({"type": "user", "id": "user_01GBNJC3MX9ZZJW1FSTF4C5938"});
    let context = json!({"location": "123.123.123.123", "user_agent": "Chrome/104.0.0.0"});
    vec![
        (
            "node",
            json!({"action": "user.signed_in", "version": 2, "occurred_at": "2022-09-08T19:46:03.435Z",
                        "actor": actor, "targets": [team, resource], "context": context}),
        ),
        (
            "ruby",
            json!({"action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03.435Z", "version": 2,
                        "actor": actor, "targets": [team, resource], "context": context}),
        ),
        (
            "python",
            json!({"action": "user.signed_in", "version": 2, "occurred_at": "2022-09-08T19:46:03.435123+00:00",
                          "actor": {"type": "user", "id": "user_01GBNJC3MX9ZZJW1FSTF4C5938", "metadata": {"role": "admin"}},
                          "targets": [{"type": "team", "id": "team_01GBNJD4MKHVKJGEWK42JNMBGS",
                                       "metadata": {"owner": "user_01GBTCQ2MZG9C87R7NAQZZS7M6"}}],
                          "context": context, "metadata": {"environment": "staging"}}),
        ),
        (
            "go",
            json!({"action": "user.signed_in", "version": 2, "occurred_at": "2022-09-08T19:46:03.435123456Z",
                      "actor": {"id": "user_01GBNJC3MX9ZZJW1FSTF4C5938", "type": "user", "name": ""},
                      "targets": [{"id": "team_01GBNJD4MKHVKJGEWK42JNMBGS", "type": "team", "name": ""}],
                      "context": context}),
        ),
        (
            "php",
            json!({"action": "user.signed_in", "occurred_at": "2022-09-08T19:46:03+00:00", "version": 2,
                       "actor": actor, "targets": [team, resource], "context": context}),
        ),
        (
            "java",
            json!({"action": "user.signed_in", "version": 2, "occurred_at": "2022-09-08T19:46:03.435Z",
                        "actor": actor, "targets": [team, resource], "context": context}),
        ),
        (
            "dotnet",
            json!({"action": "user.signed_in", "occurred_at": "2022-09-08T21:46:03.4351234+02:00", "version": 2,
                          "actor": actor, "targets": [team, resource], "context": context}),
        ),
    ]
}

#[tokio::test]
async fn every_seed_payload_is_accepted_once_version_two_exists() {
    let (server, organization) = server_with_seed_schemas().await;
    for (sdk, payload) in seed_payloads() {
        let (status, body) = server
            .create_event(&json!({"organization_id": organization, "event": payload}))
            .await;
        assert_eq!(status, StatusCode::OK, "{sdk}: {body}");
        assert_eq!(body["success"], true);
        assert!(
            body["id"]
                .as_str()
                .expect("id")
                .starts_with("audit_log_event_"),
            "{sdk}"
        );
    }
    assert_eq!(stored_events(&server.database, &organization).len(), 7);
}

#[tokio::test]
async fn seed_payloads_without_version_are_checked_against_version_one() {
    let (server, organization) = server_with_seed_schemas().await;
    let mut payload = seed_payloads().remove(0).1;
    payload.as_object_mut().expect("object").remove("version");
    let (status, body) = server
        .create_event(&json!({"organization_id": organization, "event": payload}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_audit_log_event");
    assert_eq!(body["errors"][0]["instancePath"], "/targets/1/type");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("declared types: team"));
}

#[tokio::test]
async fn omitted_null_and_zero_versions_all_mean_version_one() {
    let (server, organization) = server_with_seed_schemas().await;
    let team_only = json!([{"id": "t1", "type": "team"}]);
    for version in [None, Some(Value::Null), Some(json!(0))] {
        let mut body = event(&organization, "user.signed_in", None, team_only.clone());
        if let Some(version) = version {
            body["event"]["version"] = version;
        }
        let (status, response) = server.create_event(&body).await;
        assert_eq!(status, StatusCode::OK, "{response}");
    }
    let rows = stored_events(&server.database, &organization);
    for (_, _, canonical) in rows {
        let stored: Value = serde_json::from_slice(&canonical).expect("json");
        assert_eq!(stored["version"], 1);
    }
}

#[tokio::test]
async fn nonexistent_version_lists_the_existing_ones() {
    let (server, organization) = server_with_seed_schemas().await;
    let (status, body) = server
        .create_event(&event(
            &organization,
            "user.signed_in",
            Some(3),
            json!([{"id": "t", "type": "team"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_audit_log_event");
    assert_eq!(body["errors"][0]["instancePath"], "/version");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("existing versions: 1, 2"),
        "{body}"
    );
}

#[tokio::test]
async fn unconfigured_action_is_400_naming_the_action() {
    let (server, organization) = server_with_seed_schemas().await;
    let (status, body) = server
        .create_event(&event(&organization, "user.deleted", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["instancePath"], "/action");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("user.deleted"));
}

#[tokio::test]
async fn unknown_organization_is_404() {
    let (server, _) = server_with_seed_schemas().await;
    let (status, body) = server
        .create_event(&event(
            "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "user.signed_in",
            None,
            json!([]),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "Organization not found: 'org_01EHWNCE74X7JSDV0X3SZ3KJNY'."
    );
}

#[tokio::test]
async fn shape_errors_come_first_and_list_every_field() {
    let (server, organization) = server_with_seed_schemas().await;
    let (status, body) = server
        .create_event(&json!({"organization_id": organization, "event": {
            "occurred_at": "last tuesday", "version": "2", "actor": {"id": "u"}, "targets": {}, "context": {}
        }}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["message"], "Validation failed.");
    assert_eq!(body["code"], "validation_failed");
    let fields: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["code"].as_str().expect("code"),
                e["field"].as_str().expect("field"),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("required", "event.action"),
            ("invalid", "event.occurred_at"),
            ("invalid_type", "event.version"),
            ("required", "event.actor.type"),
            ("invalid_type", "event.targets"),
            ("required", "event.context.location"),
        ]
    );
    // Shape is checked before the organization: an unknown org with a bad shape is still 422.
    let (status, _) = server
        .create_event(&json!({"organization_id": "org_missing", "event": {}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn metadata_limits_are_enforced_before_json_schemas() {
    let (server, organization) = server_with_seed_schemas().await;
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut body = event(
        &organization,
        "user.signed_in",
        Some(2),
        json!([{"id": "t", "type": "team", "metadata": {"owner": "x".repeat(501)}}]),
    );
    body["event"]["metadata"] = Value::Object(many);
    body["event"]["actor"]["metadata"] = json!({"bad key!": "x", "nested": {"a": 1}});
    let (status, response) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let paths: Vec<&str> = response["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["instancePath"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "/metadata",
            "/actor/metadata/bad key!",
            "/actor/metadata/nested",
            "/targets/0/metadata/owner"
        ]
    );
}

#[tokio::test]
async fn json_schema_failures_are_all_listed_with_instance_paths() {
    let (server, organization) = server_with_seed_schemas().await;
    let mut body = event(
        &organization,
        "user.signed_in",
        Some(2),
        json!([{"id": "t", "type": "team", "metadata": {"owner": 7}}]),
    );
    body["event"]["actor"]["metadata"] = json!({"role": true});
    body["event"]["metadata"] = json!({"environment": 1});
    let (status, response) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(response["message"], "Invalid Audit Log event.");
    let paths: Vec<&str> = response["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["instancePath"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "/targets/0/metadata/owner",
            "/actor/metadata/role",
            "/metadata/environment"
        ]
    );
    assert!(
        stored_events(&server.database, &organization).is_empty(),
        "rejected events change nothing"
    );
}

#[tokio::test]
async fn stored_events_have_contiguous_sequences_and_canonical_bytes() {
    let (server, organization) = server_with_seed_schemas().await;
    let other = server.create_organization("Other").await;
    let mut ids = Vec::new();
    for index in 0..5 {
        let target = json!([{"id": format!("t{index}"), "type": "team"}]);
        let (_, body) = server
            .create_event(&event(
                &organization,
                "user.signed_in",
                None,
                target.clone(),
            ))
            .await;
        ids.push(body["id"].as_str().expect("id").to_owned());
        server
            .create_event(&event(&other, "user.signed_in", None, target))
            .await;
    }
    let rows = stored_events(&server.database, &organization);
    let sequences: Vec<i64> = rows.iter().map(|(sequence, _, _)| *sequence).collect();
    assert_eq!(
        sequences,
        [1, 2, 3, 4, 5],
        "each organization has its own gap-free sequence"
    );
    let stored_ids: Vec<&str> = rows.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(stored_ids, ids);
    let (_, _, canonical) = &rows[0];
    let text = std::str::from_utf8(canonical).expect("utf8");
    let reparsed: Value = serde_json::from_str(text).expect("json");
    assert_eq!(
        stele_core::canonical::to_canonical_bytes(&reparsed).expect("canonical"),
        canonical.clone()
    );
    assert_eq!(reparsed["sequence"], 1);
    assert_eq!(reparsed["organization_id"], organization.as_str());
    assert_eq!(reparsed["occurred_at"], "2022-09-08T19:46:03.435Z");
}

#[tokio::test]
async fn concurrent_events_share_commits_without_gaps() {
    let (server, organization) = server_with_seed_schemas().await;
    let requests = (0..200).map(|index| {
        let body = event(
            &organization,
            "user.signed_in",
            None,
            json!([{"id": format!("t{index}"), "type": "team"}]),
        );
        let server = &server;
        async move { server.create_event(&body).await }
    });
    let results = futures::future::join_all(requests).await;
    assert!(results.iter().all(|(status, _)| *status == StatusCode::OK));
    let sequences: Vec<i64> = stored_events(&server.database, &organization)
        .iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(sequences, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn validate_endpoint_reports_without_writing() {
    let (server, organization) = server_with_seed_schemas().await;
    let good = event(
        &organization,
        "user.signed_in",
        Some(2),
        json!([{"id": "r", "type": "resource"}]),
    );
    let (status, body) = read(
        server
            .post("/audit_logs/events/validate", &good)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"valid": true, "errors": []}));
    let bad = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "r", "type": "resource"}]),
    );
    let (status, body) = read(
        server
            .post("/audit_logs/events/validate", &bad)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    assert_eq!(body["errors"][0]["instancePath"], "/targets/0/type");
    assert!(stored_events(&server.database, &organization).is_empty());
}
