//! `GET /metrics`: Prometheus's text format (parsed with a Prometheus parser), API keys on
//! the main address, no authentication on `--metrics-listen`, and counters and histograms
//! that move with traffic: requests by route template, ingest counts, latency and errors,
//! group commits of the backend in use, search and export timings, checkpoint age, pool.

use prometheus_exposition_format_rs::types::{Metric, MetricType};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{event, read, seed_v1, TestServer};

/// The exposition, parsed by a parser of Prometheus's text format grammar, which refuses
/// any line it cannot read.
pub(crate) type Scrape = Vec<Metric>;

fn parse(text: &str) -> Scrape {
    let metrics = prometheus_exposition_format_rs::parse_complete(text)
        .unwrap_or_else(|error| panic!("not Prometheus's text format: {error:?}\n{text}"));
    for histogram in [
        "stele_http_request_duration_seconds",
        "stele_group_commit_size",
        "stele_group_commit_duration_seconds",
    ] {
        if let Some(metric) = metrics.iter().find(|metric| metric.name == histogram) {
            assert_eq!(metric.data_type, MetricType::Histogram, "{histogram}");
        }
    }
    metrics
}

/// The sum of the samples of `name` carrying `labels`; 0 when absent (a labelled series
/// appears on first use). A histogram's `_count` and `_sum` are samples of their own.
pub(crate) fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .iter()
        .filter(|metric| metric.name == name)
        .flat_map(|metric| &metric.samples)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .sum()
}

/// How many observations a histogram holds, over matching series.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, &format!("{name}_count"), labels)
}

/// How many series of `name` there are.
pub(crate) fn series(scrape: &Scrape, name: &str) -> usize {
    scrape
        .iter()
        .filter(|metric| metric.name == name)
        .map(|metric| metric.samples.len())
        .sum()
}

pub(crate) async fn scrape(server: &TestServer) -> (String, Scrape) {
    let response = server.get("/metrics").send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let parsed = parse(&text);
    (text, parsed)
}

fn backend(server: &TestServer) -> &'static str {
    if server.database.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    }
}

#[tokio::test]
async fn metrics_need_an_api_key_on_the_main_address() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = read(
        server
            .client
            .get(format!("{}/metrics", server.base))
            .bearer_auth("sk_test_not_a_key")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, parsed) = scrape(&server).await;
    assert!(
        value(
            &parsed,
            "stele_database_pool_connections",
            &[("state", "idle")]
        ) >= 0.0
            && series(&parsed, "stele_database_pool_connections") == 2,
        "the pool is reported by state"
    );
}

#[tokio::test]
async fn metrics_listen_serves_them_without_authentication() {
    let (server, metrics_base) = TestServer::start_with_metrics_listener().await;
    server.get("/healthz").send().await.expect("request");
    let response = reqwest::get(format!("{metrics_base}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let parsed = parse(&response.text().await.expect("body"));
    assert!(
        value(
            &parsed,
            "stele_http_requests_total",
            &[("route", "/healthz"), ("status", "200")]
        ) >= 1.0
    );
    // Only /metrics is served there: the API stays behind the main address.
    let response = reqwest::get(format!("{metrics_base}/organizations"))
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn counters_and_histograms_move_with_traffic() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Metered").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let (_, before) = scrape(&server).await;

    let accepted = 3;
    for _ in 0..accepted {
        let (status, body) = server
            .create_event(&event(
                &organization,
                "user.signed_in",
                None,
                json!([{"id": "team_1", "type": "team"}]),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = server.create_event(&json!({"event": {}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let (status, _) = server
        .create_event(&event(unknown, "user.signed_in", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = server
        .get(&format!(
            "/audit_logs/events?organization_id={organization}"
        ))
        .send()
        .await
        .expect("search");
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .get(&format!("/organizations/{organization}"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .get("/no/such/route/x1y2z3")
        .send()
        .await
        .expect("404");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, export) = read(
        server
            .post(
                "/audit_logs/exports",
                &json!({"organization_id": organization,
                        "range_start": "2022-01-01T00:00:00.000Z",
                        "range_end": "2023-01-01T00:00:00.000Z"}),
            )
            .send()
            .await
            .expect("export"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    let download = server
        .client
        .get(export["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let csv = download.text().await.expect("csv");
    assert_eq!(csv.lines().count(), 1 + accepted, "{csv}");

    let (text, after) = scrape(&server).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let observed = |name: &str, labels: &[(&str, &str)]| {
        observations(&after, name, labels) - observations(&before, name, labels)
    };
    let ingest = [("method", "POST"), ("route", "/audit_logs/events")];
    assert_eq!(
        moved("stele_events_ingested_total", &[("source", "api")]),
        accepted as f64
    );
    assert_eq!(
        moved(
            "stele_http_requests_total",
            &[ingest[0], ingest[1], ("status", "200")]
        ),
        accepted as f64
    );
    assert_eq!(
        observed("stele_http_request_duration_seconds", &ingest),
        5.0
    );
    assert_eq!(
        observed(
            "stele_ingest_duration_seconds",
            &[("route", "/audit_logs/events"), ("outcome", "accepted")]
        ),
        accepted as f64
    );
    assert_eq!(
        observed(
            "stele_ingest_duration_seconds",
            &[("route", "/audit_logs/events"), ("outcome", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        moved(
            "stele_ingest_errors_total",
            &[("code", "validation_failed")]
        ),
        1.0
    );
    assert_eq!(
        moved("stele_ingest_errors_total", &[("code", "not_found")]),
        1.0
    );
    // Route templates, never raw paths: the organization id is in no label.
    assert_eq!(
        moved(
            "stele_http_requests_total",
            &[("method", "GET"), ("route", "/organizations/{id}")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "stele_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        !text.contains(&organization),
        "a raw path leaked into a label"
    );
    assert!(
        !text.contains("x1y2z3"),
        "an unmatched path leaked into a label"
    );
    // The writes above went through the backend's group commit.
    let backend = [("backend", backend(&server))];
    assert!(observed("stele_group_commit_size", &backend) >= 1.0);
    assert!(observed("stele_group_commit_duration_seconds", &backend) >= 1.0);
    assert!(
        moved("stele_group_commit_size_sum", &backend) >= accepted as f64,
        "at least one write per event"
    );
    assert!(observed("stele_search_duration_seconds", &[]) >= 1.0);
    assert_eq!(
        observed(
            "stele_export_duration_seconds",
            &[("format", "csv"), ("outcome", "complete")]
        ),
        1.0
    );
    assert_eq!(
        moved("stele_exported_events_total", &[("format", "csv")]),
        accepted as f64
    );
    assert_eq!(value(&after, "stele_group_commit_queue_depth", &[]), 0.0);
    assert_eq!(
        value(&after, "stele_database_pool_waiting_requests", &[]),
        0.0
    );
    if server.database.is_postgres() {
        assert_eq!(
            value(&after, "stele_database_pool_max_connections", &[]),
            4.0
        );
    }
}

#[tokio::test]
async fn checkpoint_age_is_the_oldest_unsigned_event_and_falls_to_zero_once_signed() {
    // Checkpoints only when asked, so the event waits.
    let server = TestServer::start_with(&["--checkpoint-interval-secs", "3600"]).await;
    let organization = server.create_organization("Waiting").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    // Stele's own activity log (the organization and schema just created) is signed
    // first, so the age below is the customer event's.
    let activity = stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
    server
        .state
        .transparency
        .checkpoint_now(activity)
        .await
        .expect("checkpoint of the activity log");
    let (_, empty) = scrape(&server).await;
    assert_eq!(value(&empty, "stele_checkpoint_age_seconds", &[]), 0.0);
    let (status, body) = server
        .create_event(&event(
            &organization,
            "user.signed_in",
            None,
            json!([{"id": "team_1", "type": "team"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (_, waiting) = scrape(&server).await;
    let age = value(&waiting, "stele_checkpoint_age_seconds", &[]);
    assert!((1.0..60.0).contains(&age), "age {age}");
    server
        .state
        .transparency
        .checkpoint_now(&organization)
        .await
        .expect("checkpoint");
    // The scrapes above are not recorded, but sign the activity log again in case.
    server
        .state
        .transparency
        .checkpoint_now(activity)
        .await
        .expect("checkpoint of the activity log");
    let (_, signed) = scrape(&server).await;
    assert_eq!(value(&signed, "stele_checkpoint_age_seconds", &[]), 0.0);
    assert_eq!(value(&signed, "stele_metrics_scrape_errors", &[]), 0.0);
}

#[tokio::test]
async fn the_openapi_document_describes_metrics() {
    let server = TestServer::start().await;
    let (_, document) = read(server.get("/openapi.json").send().await.expect("request")).await;
    let operation = &document["paths"]["/metrics"]["get"];
    assert!(
        operation["responses"]["200"]["content"]["text/plain; version=0.0.4"].is_object(),
        "{operation}"
    );
    assert!(operation["responses"]["401"].is_object(), "{operation}");
}
