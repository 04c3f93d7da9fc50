//! `Idempotency-Key` on POSTs: replay, mismatch, concurrency, what is not recorded.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{event, read, seed_v1, seed_v2, stored_events, TestServer};

async fn setup() -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Idem").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    (server, organization)
}

#[tokio::test]
async fn same_key_same_body_replays_the_first_response_once_stored() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    let send = || {
        server
            .post("/audit_logs/events", &body)
            .header("Idempotency-Key", "workos-node-123")
            .send()
    };
    let first = send().await.expect("request");
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, first) = read(first).await;
    assert_eq!(status, StatusCode::OK);
    let second = send().await.expect("request");
    assert_eq!(
        second
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let (status, second) = read(second).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    assert_eq!(stored_events(&server.database, &organization).len(), 1);
}

#[tokio::test]
async fn same_key_different_body_is_rejected() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    let other = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "other", "type": "team"}]),
    );
    server
        .post("/audit_logs/events", &body)
        .header("Idempotency-Key", "k1")
        .send()
        .await
        .expect("request");
    let (status, error) = read(
        server
            .post("/audit_logs/events", &other)
            .header("Idempotency-Key", "k1")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "idempotency_key_reused");
    assert!(
        error["errors"].is_array(),
        "errors present so Node raises BadRequestException"
    );
    assert_eq!(stored_events(&server.database, &organization).len(), 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_store_one_event() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    let attempts = (0..20).map(|_| {
        let request = server
            .post("/audit_logs/events", &body)
            .header("Idempotency-Key", "racing-key");
        async move { read(request.send().await.expect("request")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every racer sees the same event");
    assert_eq!(stored_events(&server.database, &organization).len(), 1);
}

#[tokio::test]
async fn a_refusal_is_not_recorded_so_a_retry_after_registering_the_version_succeeds() {
    let (server, organization) = setup().await;
    let needs_v2 = event(
        &organization,
        "user.signed_in",
        Some(2),
        json!([{"id": "r", "type": "resource"}]),
    );
    let send = || {
        server
            .post("/audit_logs/events", &needs_v2)
            .header("Idempotency-Key", "needs-v2")
            .send()
    };
    let refused = send().await.expect("request");
    assert!(refused.headers().get("idempotent-replayed").is_none());
    let (status, error) = read(refused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(stored_events(&server.database, &organization).is_empty());

    let (status, _) = server.create_schema("user.signed_in", &seed_v2()).await;
    assert_eq!(status, StatusCode::CREATED);
    let retried = send().await.expect("request");
    assert!(
        retried.headers().get("idempotent-replayed").is_none(),
        "the refusal was not replayed"
    );
    let (status, accepted) = read(retried).await;
    assert!(status.is_success(), "{status}: {accepted}");
    assert_eq!(stored_events(&server.database, &organization).len(), 1);

    let replay = send().await.expect("request");
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true"),
        "the accepted response is recorded"
    );
    assert_eq!(read(replay).await, (status, accepted));
    assert_eq!(stored_events(&server.database, &organization).len(), 1);
}

#[tokio::test]
async fn a_refused_organization_create_is_not_recorded() {
    let server = TestServer::start().await;
    let send = |body: serde_json::Value| {
        server
            .post("/organizations", &body)
            .header("Idempotency-Key", "org-create")
            .send()
    };
    let (status, _) = read(send(json!({})).await.expect("request")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, created) = read(send(json!({"name": "Fixed"})).await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, mismatch) = read(send(json!({"name": "Other"})).await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn keys_are_honoured_on_organization_and_schema_posts() {
    let server = TestServer::start().await;
    let create = || {
        server
            .post("/organizations", &json!({"name": "Once"}))
            .header("Idempotency-Key", "org-key")
            .send()
    };
    let (status, first) = read(create().await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = read(create().await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["id"], second["id"]);
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);

    let schema = || {
        server
            .post(
                "/audit_logs/actions/a.b/schemas",
                &json!({"targets": [{"type": "x"}]}),
            )
            .header("Idempotency-Key", "schema-key")
            .send()
    };
    let (status, first) = read(schema().await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = read(schema().await.expect("request")).await;
    assert_eq!(
        (status, second),
        (StatusCode::CREATED, first),
        "a replay, not a fresh 200"
    );
}

#[tokio::test]
async fn keys_are_scoped_to_the_api_key() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    server
        .post("/audit_logs/events", &body)
        .header("Idempotency-Key", "shared")
        .send()
        .await
        .expect("request");

    // A second API key using the same idempotency key does its own work.
    let output = std::process::Command::new(crate::support::stele_binary())
        .args(["api-keys", "create", "--name", "second", "--database-url"])
        .arg(server.database.url())
        .output()
        .expect("run stele api-keys create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let secret = stdout
        .lines()
        .last()
        .expect("secret line")
        .trim()
        .to_owned();
    assert!(secret.starts_with("sk_"), "{stdout}");
    let response = server
        .client
        .request(Method::POST, format!("{}/audit_logs/events", server.base))
        .bearer_auth(&secret)
        .header("Idempotency-Key", "shared")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(stored_events(&server.database, &organization).len(), 2);
}

#[tokio::test]
async fn expired_records_are_purged_and_no_longer_replayed() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    server
        .post("/audit_logs/events", &body)
        .header("Idempotency-Key", "old")
        .send()
        .await
        .expect("request");
    // Age the record past the 24-hour window.
    server.database.execute(
        "UPDATE idempotency_keys SET created_at = created_at - 25 * 3600 * 1000 WHERE key = 'old'",
    );
    let response = server
        .post("/audit_logs/events", &body)
        .header("Idempotency-Key", "old")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("idempotent-replayed").is_none(),
        "expired keys start afresh"
    );
    assert_eq!(stored_events(&server.database, &organization).len(), 2);
}

#[tokio::test]
async fn concurrent_schema_posts_with_one_key_create_one_version() {
    let server = TestServer::start().await;
    let attempts = (0..10).map(|index| {
        let body = json!({"targets": [{"type": format!("type_{index}")}]});
        let request = server
            .post("/audit_logs/actions/doc.raced/schemas", &body)
            .header("Idempotency-Key", "schema-race");
        async move { read(request.send().await.expect("request")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let reused = results
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::BAD_REQUEST && body["code"] == "idempotency_key_reused"
        })
        .count();
    assert_eq!((created, reused), (1, 9), "{results:?}");
    let (_, versions) = read(
        server
            .get("/audit_logs/actions/doc.raced/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        versions["data"].as_array().expect("data").len(),
        1,
        "the losers created nothing"
    );
}

/// `POST /audit_logs/events` does not look its key up before validating (the append claims
/// it), so a key that already holds a response must still win over a refusal: a retry whose
/// event would now be refused replays, and another body under the key is a reuse, not a
/// quarantined refusal.
#[tokio::test]
async fn a_taken_key_wins_over_a_refusal_of_the_retried_event() {
    let (server, organization) = setup().await;
    let body = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "team"}]),
    );
    let send = |body: &serde_json::Value| {
        server
            .post("/audit_logs/events", body)
            .header("Idempotency-Key", "kept-key")
            .send()
    };
    let (status, first) = read(send(&body).await.expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    // Another body under the key, one that breaks the schema: a reuse, and nothing kept.
    let breaks_schema = event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": "t", "type": "not_a_declared_type"}]),
    );
    let (status, error) = read(send(&breaks_schema).await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], "idempotency_key_reused", "{error}");
    let quarantined = server
        .database
        .query_one("SELECT COUNT(*) FROM quarantined_events");
    assert_eq!(
        quarantined.integer(),
        0,
        "a reused key's body is not quarantined"
    );

    // The organization is gone, so the event would now be refused (404): the retry still
    // gets the first response.
    let (status, _) = read(
        server
            .request(Method::DELETE, &format!("/organizations/{organization}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let replay = send(&body).await.expect("request");
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let (status, replayed) = read(replay).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replayed, first);
}
