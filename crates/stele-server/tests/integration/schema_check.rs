//! `POST /audit_logs/actions/{action}/schemas/check`: the dry run CI pipelines gate on.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{event, read, seed_v1, TestServer};

async fn check(server: &TestServer, action: &str, definition: &Value) -> (StatusCode, Value) {
    read(
        server
            .post(
                &format!("/audit_logs/actions/{action}/schemas/check"),
                definition,
            )
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn version_count(server: &TestServer, action: &str) -> usize {
    let (_, versions) = read(
        server
            .get(&format!("/audit_logs/actions/{action}/schemas"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    versions["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn check_reports_breaking_changes_and_failing_events_without_creating_a_version() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    server
        .create_schema(
            "user.signed_in",
            &json!({"targets": [{"type": "team"}, {"type": "resource"}]}),
        )
        .await;
    for _ in 0..4 {
        let (status, body) = server
            .create_event(&event(
                &organization,
                "user.signed_in",
                None,
                json!([{"id": "t1", "type": "team"}]),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = server
        .create_event(&event(
            &organization,
            "user.signed_in",
            None,
            json!([{"id": "r1", "type": "resource"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resource_event = body["id"].clone();

    let proposal = json!({
        "targets": [{"type": "team"}],
        "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}}
    });
    let (status, report) = check(&server, "user.signed_in", &proposal).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["object"], "audit_log_schema_check");
    assert_eq!(report["latest_version"], 1);
    assert_eq!(report["would_create_version"], true);
    assert_eq!(report["version"], 2);
    assert_eq!(report["verdict"], "breaking");
    assert_eq!(report["compatible"], false);
    let changes = report["changes"].as_array().expect("changes");
    let removed = changes
        .iter()
        .find(|change| change["pointer"] == "/targets/resource")
        .expect("removed target listed");
    assert_eq!(removed["kind"], "removed");
    assert_eq!(removed["breaking"], true);
    assert!(removed["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("removed"));
    let added = changes
        .iter()
        .find(|change| change["pointer"] == "/actor/metadata/properties/role")
        .expect("added property listed");
    assert_eq!(added["breaking"], false);
    assert_eq!(added["compatibility"], "compatible");

    assert_eq!(report["impact"]["checked"], 5);
    assert_eq!(report["impact"]["failing"], 1);
    assert_eq!(report["impact"]["limit"], 1000);
    let example = &report["impact"]["examples"][0];
    assert_eq!(example["id"], resource_event);
    assert_eq!(example["organization_id"], organization.as_str());
    assert_eq!(example["version"], 1);
    assert_eq!(example["errors"][0]["instancePath"], "/targets/0/type");

    assert_eq!(
        version_count(&server, "user.signed_in").await,
        1,
        "a dry run stores nothing"
    );
}

#[tokio::test]
async fn check_of_the_latest_definition_would_create_nothing() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    let (status, report) = check(&server, "doc.viewed", &seed_v1()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["would_create_version"], false);
    assert_eq!(report["version"], 1);
    assert_eq!(report["verdict"], "compatible");
    assert_eq!(report["changes"], json!([]));
}

#[tokio::test]
async fn check_of_a_new_action_is_version_one_and_compatible() {
    let server = TestServer::start().await;
    let (status, report) = check(&server, "brand.new", &seed_v1()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["latest_version"], Value::Null);
    assert_eq!(report["version"], 1);
    assert_eq!(report["would_create_version"], true);
    assert_eq!(report["verdict"], "compatible");
    assert_eq!(report["impact"]["checked"], 0);
    assert_eq!(version_count(&server, "brand.new").await, 0);
}

#[tokio::test]
async fn check_flags_unsupported_keywords_as_may_break() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    let (_, report) = check(
        &server,
        "doc.viewed",
        &json!({"targets": [{"type": "team"}], "metadata": {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}}),
    )
    .await;
    assert_eq!(report["verdict"], "may_break");
    assert_eq!(report["compatible"], false);
}

#[tokio::test]
async fn check_rejects_invalid_definitions_and_unauthenticated_calls() {
    let server = TestServer::start().await;
    let (status, body) = check(
        &server,
        "doc.viewed",
        &json!({"targets": [{"type": "team", "metadata": {"type": "strin"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "targets[0].metadata");

    let response = server
        .client
        .post(format!(
            "{}/audit_logs/actions/doc.viewed/schemas/check",
            server.base
        ))
        .json(&seed_v1())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn check_is_in_the_openapi_document() {
    let server = TestServer::start().await;
    let (_, document) = read(server.get("/openapi.json").send().await.expect("request")).await;
    assert!(
        document["paths"]["/audit_logs/actions/{action}/schemas/check"]["post"].is_object(),
        "documented"
    );
}

#[tokio::test]
async fn stored_events_the_proposal_rejects_make_a_statically_compatible_change_breaking() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    // Version 1 has no metadata schema, so this number was valid when it was stored.
    let mut body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    body["event"]["metadata"] = json!({"environment": 5});
    assert_eq!(server.create_event(&body).await.0, StatusCode::OK);

    let proposal = json!({"targets": [{"type": "team"}],
                          "metadata": {"type": "object", "properties": {"environment": {"type": "string"}}}});
    let (status, result) = check(&server, "user.signed_in", &proposal).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["impact"]["failing"], 1);
    assert_eq!(result["verdict"], "breaking", "{result}");
    assert_eq!(result["compatible"], false);
}

/// The API counts what the verdict is about, as the dashboard's review does: events that
/// already fail the latest version (sent under an older one) are not "would fail".
#[tokio::test]
async fn check_counts_only_events_the_latest_version_accepts_as_failing() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    server
        .create_schema("doc.viewed", &json!({"targets": [{"type": "team"}]}))
        .await;
    for _ in 0..3 {
        let mut body = event(
            &organization,
            "doc.viewed",
            None,
            json!([{"id": "t", "type": "team"}]),
        );
        body["event"]["metadata"] = json!({"environment": 5});
        assert_eq!(server.create_event(&body).await.0, StatusCode::OK);
    }
    let v2 = json!({"targets": [{"type": "team"}],
                    "metadata": {"type": "object", "properties": {"environment": {"type": "string"}}}});
    let (status, _) = server.create_schema("doc.viewed", &v2).await;
    assert_eq!(status, StatusCode::CREATED);

    // Nothing changes: nothing would fail, though version 2 rejects the three v1 events.
    let (status, report) = check(&server, "doc.viewed", &v2).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["would_create_version"], false);
    assert_eq!(report["impact"]["checked"], 3);
    assert_eq!(report["impact"]["failing"], 0, "{report}");
    assert_eq!(report["impact"]["already_failing"], 3);
    assert_eq!(report["impact"]["examples"], json!([]));

    // One event under version 2 that a proposal without `team` rejects: only it counts.
    let mut body = event(
        &organization,
        "doc.viewed",
        Some(2),
        json!([{"id": "t", "type": "team"}]),
    );
    body["event"]["metadata"] = json!({"environment": "prod"});
    let (status, created) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let proposal = json!({"targets": [{"type": "resource"}],
                          "metadata": {"type": "object", "properties": {"environment": {"type": "string"}}}});
    let (_, report) = check(&server, "doc.viewed", &proposal).await;
    assert_eq!(report["impact"]["checked"], 4);
    assert_eq!(report["impact"]["failing"], 1, "{report}");
    assert_eq!(report["impact"]["already_failing"], 3);
    assert_eq!(report["impact"]["examples"][0]["id"], created["id"]);
}
