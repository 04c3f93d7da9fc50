//! Limits on callers: per-key rate limits (429 `rate_limit_exceeded` with `Retry-After`).
//! The replica tests check that the limit and the sign-in throttle are shared.

use std::time::Duration;

use reqwest::StatusCode;
use stele_core::access::{KeyGrants, ACTIVITY_LOG_ORGANIZATION_ID};

use crate::support::{read, TestServer};

/// Waits, when the current one-minute window ends within `margin`, for the next one, so a
/// test that counts requests within one window is not split by a window boundary.
pub(crate) async fn start_of_a_fresh_window(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let left = 60_000 - now % 60_000;
    if left < margin.as_millis() as u64 {
        tokio::time::sleep(Duration::from_millis(left + 50)).await;
    }
}

/// The `Retry-After` of a 429, checked to be a small positive integer.
pub(crate) fn retry_after_secs(response: &reqwest::Response) -> u64 {
    let value = response
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .expect("ascii");
    let seconds: u64 = value.parse().expect("Retry-After is an integer of seconds");
    assert!(
        (1..=60).contains(&seconds),
        "Retry-After {seconds} is within the one-minute window"
    );
    seconds
}

#[tokio::test]
async fn requests_beyond_the_per_minute_limit_get_429_with_retry_after() {
    let server = TestServer::start_with(&["--rate-limit-per-minute", "5"]).await;
    start_of_a_fresh_window(Duration::from_secs(20)).await;
    for _ in 0..5 {
        let (status, body) =
            read(server.get("/organizations").send().await.expect("request")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let response = server.get("/organizations").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    retry_after_secs(&response);
    let (_, body) = read(response).await;
    assert_eq!(body["code"], "rate_limit_exceeded");
    assert_eq!(body["message"], "Too many requests.");

    // Writes are limited too, and a refused write does nothing.
    let response = server
        .post("/organizations", &serde_json::json!({"name": "Refused"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let organizations = server
        .database
        .query_one(&format!(
            "SELECT COUNT(*) FROM organizations WHERE id <> '{ACTIVITY_LOG_ORGANIZATION_ID}'"
        ))
        .integer();
    assert_eq!(organizations, 0, "the refused create stored nothing");

    // The limit is per key: another key is unaffected, and public routes stay open.
    let (_, other_secret) = server
        .state
        .api_keys
        .create("second", None, KeyGrants::admin())
        .await
        .expect("key");
    let response = server
        .client
        .get(format!("{}/organizations", server.base))
        .bearer_auth(&other_secret)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // An unknown key is still a 401, not a 429.
    let response = server
        .client
        .get(format!("{}/organizations", server.base))
        .bearer_auth("sk_unknown")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rate_limit_of_zero_disables_it() {
    let server = TestServer::start_with(&["--rate-limit-per-minute", "0"]).await;
    for _ in 0..30 {
        let response = server.get("/organizations").send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_limit_applies_again_in_the_next_window() {
    let server = TestServer::start_with(&["--rate-limit-per-minute", "1"]).await;
    start_of_a_fresh_window(Duration::from_secs(20)).await;
    let first = server.get("/organizations").send().await.expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    let refused = server.get("/organizations").send().await.expect("request");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after_secs(&refused);
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let response = server.get("/organizations").send().await.expect("request");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "after Retry-After seconds the key may call again"
    );
}
