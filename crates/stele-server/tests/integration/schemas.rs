//! Actions and immutable schema versions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{read, seed_v1, seed_v2, TestServer};

#[tokio::test]
async fn new_action_gets_version_one_then_edits_create_new_versions() {
    let server = TestServer::start().await;
    let (status, v1) = server.create_schema("user.signed_in", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v1["object"], "audit_log_schema");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["targets"], json!([{"type": "team"}]));
    assert!(v1.get("actor").is_none());

    let (status, v2) = server.create_schema("user.signed_in", &seed_v2()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v2["version"], 2);
    assert_eq!(
        v2["actor"]["metadata"]["properties"]["role"]["type"], "string",
        "stored in JSON Schema form"
    );
    assert_eq!(
        v2["targets"][0]["metadata"]["properties"]["owner"]["type"],
        "string"
    );
}

#[tokio::test]
async fn resubmitting_the_latest_definition_creates_nothing() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    server.create_schema("doc.viewed", &seed_v2()).await;
    // Same definition with keys in another order and Node's empty actor form: still v2.
    let reordered = json!({
        "metadata": {"properties": {"environment": {"type": "string"}}, "type": "object"},
        "actor": {"metadata": {"properties": {"role": {"type": "string"}}, "type": "object"}},
        "targets": [
            {"metadata": {"properties": {"owner": {"type": "string"}}, "type": "object"}, "type": "team"},
            {"type": "resource"}
        ]
    });
    let (status, same) = server.create_schema("doc.viewed", &reordered).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["version"], 2);
    let (_, versions) = read(
        server
            .get("/audit_logs/actions/doc.viewed/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(versions["data"].as_array().expect("data").len(), 2);
}

#[tokio::test]
async fn empty_actor_metadata_forms_are_equivalent() {
    let server = TestServer::start().await;
    let node_form = json!({"targets": [{"type": "team"}], "actor": {"metadata": {"type": "object", "properties": {}}}});
    let python_form = json!({"targets": [{"type": "team"}], "actor": {"metadata": null}});
    let (status, first) = server.create_schema("a.b", &node_form).await;
    assert_eq!(
        (status, first["version"].clone()),
        (StatusCode::CREATED, json!(1))
    );
    let (status, second) = server.create_schema("a.b", &python_form).await;
    assert_eq!(
        (status, second["version"].clone()),
        (StatusCode::OK, json!(1))
    );
}

#[tokio::test]
async fn lists_versions_newest_first_and_actions_with_latest_schema() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    server.create_schema("user.signed_in", &seed_v2()).await;
    server.create_schema("user.signed_out", &seed_v1()).await;

    let (status, versions) = read(
        server
            .get("/audit_logs/actions/user.signed_in/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let numbers: Vec<i64> = versions["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v["version"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, [2, 1]);
    let (_, ascending) = read(
        server
            .get("/audit_logs/actions/user.signed_in/schemas?order=asc&limit=1")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(ascending["data"][0]["version"], 1);
    assert!(ascending["list_metadata"]["after"].is_string());

    let (status, actions) = read(
        server
            .get("/audit_logs/actions")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = actions["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["object"], "audit_log_action");
    assert_eq!(data[0]["name"], "user.signed_out");
    assert_eq!(data[1]["name"], "user.signed_in");
    assert_eq!(data[1]["schema"]["version"], 2);
}

#[tokio::test]
async fn unknown_action_versions_are_404() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .get("/audit_logs/actions/nope/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().expect("message").contains("nope"));
}

#[tokio::test]
async fn invalid_definitions_are_422_and_create_nothing() {
    let server = TestServer::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "targets"),
        (json!({"targets": "team"}), "targets"),
        (json!({"targets": [{"type": ""}]}), "targets[0].type"),
        (
            json!({"targets": [{"type": "team"}, {"type": "team"}]}),
            "targets[1].type",
        ),
        (
            json!({"targets": [], "metadata": {"type": "objekt"}}),
            "metadata",
        ),
        (
            json!({"targets": [], "metadata": {"$ref": "https://example.com/remote.json"}}),
            "metadata",
        ),
        (
            json!({"targets": [], "metadata": {"$schema": "http://json-schema.org/draft-04/schema#"}}),
            "metadata",
        ),
        (
            json!({"targets": [{"type": "t", "metadata": {"properties": {"a": {"minLength": -1}}}}]}),
            "targets[0].metadata",
        ),
        (
            json!({"targets": [], "actor": {"metadata": {"required": "role"}}}),
            "actor.metadata",
        ),
    ];
    for (definition, field) in cases {
        let (status, body) = server.create_schema("bad.action", &definition).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{definition}");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{definition}: {body}");
    }
    let (status, _) = read(
        server
            .get("/audit_logs/actions/bad.action/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
}

#[tokio::test]
async fn newer_drafts_are_accepted_when_declared() {
    let server = TestServer::start().await;
    let definition = json!({
        "targets": [],
        "metadata": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                     "properties": {"n": {"type": "integer"}}, "unevaluatedProperties": false}
    });
    let (status, body) = server.create_schema("doc.drafts", &definition).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["metadata"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[tokio::test]
async fn schema_creation_refuses_action_names_outside_the_group_verb_form() {
    let server = TestServer::start().await;
    for encoded in [
        "bad%20action",
        "a%2Fb",
        "%3Cscript%3E",
        "signed_in",
        "User.SignedIn",
    ] {
        let (status, body) = server.create_schema(encoded, &seed_v1()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{encoded}: {body}"
        );
        assert_eq!(body["errors"][0]["field"], "action", "{encoded}: {body}");
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.contains("two or more dot-separated segments of lowercase letters, digits")
                && message.contains("at most 128 characters"),
            "the error states the rule: {message}"
        );
    }
    let (status, listed) = read(
        server
            .get("/audit_logs/actions")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"], json!([]), "nothing was created");

    let (status, body) = server
        .create_schema("sso-connection.updated_2", &seed_v1())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
