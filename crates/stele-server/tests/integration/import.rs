//! Migration from WorkOS: organizations created under their existing ids, `stele import`
//! from another server speaking the WorkOS API, `stele import-events` from a WorkOS CSV
//! export, and `--auto-create-organizations`.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{read, TestServer};

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
