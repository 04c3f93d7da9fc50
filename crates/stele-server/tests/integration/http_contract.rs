//! Rules for every endpoint: auth, JSON errors, request ids, limits, routing, OpenAPI.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{read, TestServer};

#[tokio::test]
async fn missing_or_unknown_api_key_is_401_json() {
    let server = TestServer::start().await;
    let anonymous = server
        .client
        .get(format!("{}/organizations", server.base))
        .send()
        .await
        .expect("request");
    let (status, body) = read(anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let wrong = server
        .client
        .get(format!("{}/organizations", server.base))
        .bearer_auth("sk_wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_post = server
        .client
        .post(format!("{}/organizations", server.base))
        .bearer_auth("sk_wrong")
        .header("Idempotency-Key", "x")
        .json(&json!({"name": "n"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_post.status(), StatusCode::UNAUTHORIZED);
}

/// HEAD is for load balancers' checks: answered where GET needs no key, 405 elsewhere
/// (the GET handler would run its side effects, such as recording a read, for no body).
#[tokio::test]
async fn head_is_answered_on_public_routes_only() {
    let server = TestServer::start().await;
    let head = |path: &str, key: Option<&str>| {
        let request = server.client.head(format!("{}{path}", server.base));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move { request.send().await.expect("request").status() }
    };
    assert_eq!(head("/healthz", None).await, StatusCode::OK);
    assert_eq!(head("/openapi.json", None).await, StatusCode::OK);
    for key in [None, Some(crate::support::API_KEY)] {
        assert_eq!(
            head("/organizations", key).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "with key: {}",
            key.is_some()
        );
    }
}

#[tokio::test]
async fn revoked_keys_stop_working() {
    let server = TestServer::start().await;
    let database_url = server.database.url().to_owned();
    let created = std::process::Command::new(crate::support::stele_binary())
        .args([
            "api-keys",
            "create",
            "--name",
            "temp",
            "--database-url",
            &database_url,
        ])
        .output()
        .expect("create key");
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    let secret = stdout.lines().last().expect("secret").trim().to_owned();
    let id = stdout.split_whitespace().nth(3).expect("key id").to_owned();
    let listed = std::process::Command::new(crate::support::stele_binary())
        .args(["api-keys", "list", "--database-url", &database_url])
        .output()
        .expect("list keys");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&secret),
        "secrets are never listed"
    );
    let revoked = std::process::Command::new(crate::support::stele_binary())
        .args(["api-keys", "revoke", &id, "--database-url", &database_url])
        .output()
        .expect("revoke key");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let response = server
        .client
        .get(format!("{}/organizations", server.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_on_every_response() {
    let server = TestServer::start().await;
    let echoed = server
        .get("/organizations")
        .header("X-Request-ID", "trace-me-42")
        .send()
        .await
        .expect("request");
    assert_eq!(
        echoed
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
    for response in [
        server.get("/organizations").send().await.expect("request"),
        server.get("/nowhere").send().await.expect("request"),
        server
            .client
            .get(format!("{}/organizations", server.base))
            .send()
            .await
            .expect("request"),
    ] {
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(!id.is_empty(), "{} has no request id", response.status());
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .get("/audit_logs/nothing")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = read(
        server
            .request(Method::PATCH, "/organizations")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn malformed_json_is_a_422_that_changes_nothing() {
    let server = TestServer::start().await;
    for raw in ["{\"name\": ", "not json", ""] {
        let response = server
            .request(Method::POST, "/organizations")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("request");
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw:?}");
        assert_eq!(body["errors"][0]["code"], "invalid_json");
    }
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_json() {
    let server = TestServer::start_with(&["--body-limit-bytes", "2048"]).await;
    let big = json!({"name": "x".repeat(4096)});
    for with_key in [false, true] {
        let mut request = server.post("/organizations", &big);
        if with_key {
            request = request.header("Idempotency-Key", "big");
        }
        let (status, body) = read(request.send().await.expect("request")).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "with key: {with_key}"
        );
        assert_eq!(body["code"], "payload_too_large");
    }
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"], json!([]));
    // The OpenAPI document says so for every operation that takes a body.
    let (_, document) = read(server.get("/openapi.json").send().await.expect("request")).await;
    let mut with_body = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation.get("requestBody").is_some() {
                with_body += 1;
                assert!(
                    operation["responses"]["413"].is_object(),
                    "{method} {path} takes a body but does not list 413"
                );
            }
        }
    }
    assert!(with_body > 10, "{with_body} operations take a body");
}

#[tokio::test]
async fn healthz_needs_no_key() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let server = TestServer::start().await;
    let (status, document) = read(
        server
            .client
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
    let expected = [
        ("/organizations", "post"),
        ("/organizations", "get"),
        ("/organizations/{id}", "get"),
        ("/organizations/{id}", "put"),
        ("/organizations/{id}", "delete"),
        ("/organizations/external_id/{external_id}", "get"),
        ("/audit_logs/actions", "get"),
        ("/audit_logs/actions/{action}/schemas", "post"),
        ("/audit_logs/actions/{action}/schemas", "get"),
        ("/audit_logs/events", "post"),
        ("/audit_logs/events/validate", "post"),
        ("/audit_logs/events", "get"),
        ("/audit_logs/actions/{action}/schemas/check", "post"),
        ("/audit_logs/exports", "post"),
        ("/audit_logs/exports/{id}", "get"),
        ("/audit_logs/exports/{id}/download", "get"),
        ("/organizations/{id}/audit_logs_retention", "get"),
        ("/organizations/{id}/audit_logs_retention", "put"),
        ("/organizations/{id}/audit_log_configuration", "get"),
        ("/organizations/{id}/audit_logs/log_streams", "post"),
        ("/organizations/{id}/audit_logs/log_streams", "get"),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}",
            "get",
        ),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}",
            "delete",
        ),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}/replay",
            "post",
        ),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}/test",
            "post",
        ),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}/pause",
            "post",
        ),
        (
            "/organizations/{id}/audit_logs/log_streams/{stream_id}/resume",
            "post",
        ),
        ("/healthz", "get"),
    ];
    for (path, method) in expected {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
