//! Findings of the attack run, each pinned: bounded filter lists, JSON errors from every
//! layer, authentication before the idempotency key is judged, and fresh links on replayed
//! export creations.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{read, TestServer};

fn values(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("value.{index}")).collect()
}

fn export_body(organization: &str, field: &str, count: usize) -> Value {
    json!({"organization_id": organization,
           "range_start": "2024-03-01T00:00:00.000Z", "range_end": "2024-03-31T00:00:00.000Z",
           field: values(count)})
}

#[tokio::test]
async fn filters_with_more_than_a_thousand_values_are_422_naming_the_field() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Filtered").await;
    for field in ["actions", "actor_names", "actors", "actor_ids", "targets"] {
        let (status, body) = read(
            server
                .post(
                    "/audit_logs/exports",
                    &export_body(&organization, field, 1_001),
                )
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        let named = if field == "actors" {
            "actor_names"
        } else {
            field
        };
        assert_eq!(body["errors"][0]["field"], named, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains("1000")),
            "{body}"
        );
    }
    let exports = server
        .database
        .query_one("SELECT COUNT(*) FROM exports")
        .integer();
    assert_eq!(exports, 0, "refused exports are not stored");
    // The limit itself is accepted (and works on both databases).
    let (status, body) = read(
        server
            .post(
                "/audit_logs/exports",
                &export_body(&organization, "actor_ids", 1_000),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = server
        .client
        .get(body["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);

    // Search has the same bound.
    let query: String = values(1_001)
        .iter()
        .map(|value| format!("&target_ids[]={value}"))
        .collect();
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}{query}"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "target_ids");
}

/// Asserts a response is a JSON error `{"message","code"}` with `status`; returns the body.
async fn json_error(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let (_, body) = read(response).await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
    assert!(body["code"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn every_error_is_json_even_from_extractors_and_layers() {
    let server = TestServer::start().await;
    let anonymous = &server.client;
    // A repeated query parameter.
    let response = anonymous
        .get(format!(
            "{}/audit_logs/exports/audit_log_export_01H/download?expires=1&expires=2&signature=x",
            server.base
        ))
        .send()
        .await
        .expect("request");
    let body = json_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "query");
    let organization = server.create_organization("Proven").await;
    let response = server
        .get(&format!(
            "/organizations/{organization}/audit_logs/checkpoint?tree_size=1&tree_size=2"
        ))
        .send()
        .await
        .expect("request");
    json_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // A path segment that does not decode as UTF-8.
    let response = server
        .get("/organizations/%FF%FE")
        .send()
        .await
        .expect("request");
    let body = json_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "path", "{body}");
    // A wrong method and an unknown path.
    let response = server
        .request(Method::DELETE, "/healthz")
        .send()
        .await
        .expect("request");
    let body = json_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["code"], "method_not_allowed");
    let response = server.get("/no/such/route").send().await.expect("request");
    let body = json_error(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["code"], "not_found");
    // A body that is not JSON, whatever its content type says.
    let response = server
        .request(Method::POST, "/organizations")
        .header("content-type", "text/plain")
        .body("name=plain")
        .send()
        .await
        .expect("request");
    json_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_judged_only_after_authentication() {
    let server = TestServer::start().await;
    let long_key = "k".repeat(300);
    for key in ["", long_key.as_str()] {
        let anonymous = server
            .client
            .post(format!("{}/organizations", server.base))
            .header("Idempotency-Key", key)
            .json(&json!({"name": "Anonymous"}))
            .send()
            .await
            .expect("request");
        let body = json_error(anonymous, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["code"], "unauthorized");
        let authenticated = server
            .post("/organizations", &json!({"name": "Keyed"}))
            .header("Idempotency-Key", key)
            .send()
            .await
            .expect("request");
        let body = json_error(authenticated, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    }
}

fn expires_of(url: &str) -> i64 {
    url.split("expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no expires in {url}"))
}

#[tokio::test]
async fn a_replayed_export_creation_carries_a_freshly_signed_link() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Replayed").await;
    let body = json!({"organization_id": organization,
                      "range_start": "2024-03-01T00:00:00.000Z", "range_end": "2024-03-31T00:00:00.000Z"});
    let send = || {
        server
            .post("/audit_logs/exports", &body)
            .header("Idempotency-Key", "export-once")
            .send()
    };
    let (status, first) = read(send().await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let replay = send().await.expect("request");
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let (status, replayed) = read(replay).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        replayed["id"], first["id"],
        "the same export, not a new one"
    );
    let (first_url, replayed_url) = (
        first["url"].as_str().expect("url"),
        replayed["url"].as_str().expect("url"),
    );
    assert!(
        expires_of(replayed_url) > expires_of(first_url),
        "the replay's link was signed again: {first_url} / {replayed_url}"
    );
    let download = server
        .client
        .get(replayed_url)
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let exports = server
        .database
        .query_one("SELECT COUNT(*) FROM exports")
        .integer();
    assert_eq!(exports, 1);
}
