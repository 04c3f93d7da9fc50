//! Retention settings, the purge, and that the chain still verifies after it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{event, execute_sql, read, seed_v1, stele_verify, stored_events, TestServer};

async fn put_retention(
    server: &TestServer,
    organization: &str,
    body: Value,
) -> (StatusCode, Value) {
    read(
        server
            .request(
                Method::PUT,
                &format!("/organizations/{organization}/audit_logs_retention"),
            )
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn retention_accepts_both_body_forms_and_shows_in_configuration() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Kept").await;
    let (status, body) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs_retention"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"retention_period_in_days": null}))
    );

    assert_eq!(
        put_retention(
            &server,
            &organization,
            json!({"retention_period_in_days": 45})
        )
        .await,
        (StatusCode::OK, json!({"retention_period_in_days": 45}))
    );
    assert_eq!(
        put_retention(
            &server,
            &organization,
            json!({"retention_period": "3_MONTHS"})
        )
        .await,
        (StatusCode::OK, json!({"retention_period_in_days": 90}))
    );
    assert_eq!(
        put_retention(
            &server,
            &organization,
            json!({"retention_period": "2_YEARS"})
        )
        .await,
        (StatusCode::OK, json!({"retention_period_in_days": 730}))
    );
    let (status, configuration) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_log_configuration"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        configuration,
        json!({"organization_id": organization, "retention_period_in_days": 730, "state": "active"}),
        "log_stream is absent when no stream is configured"
    );
    assert_eq!(
        put_retention(
            &server,
            &organization,
            json!({"retention_period_in_days": null})
        )
        .await,
        (StatusCode::OK, json!({"retention_period_in_days": null}))
    );
}

#[tokio::test]
async fn invalid_retention_values_are_422_and_change_nothing() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Strict").await;
    put_retention(
        &server,
        &organization,
        json!({"retention_period_in_days": 30}),
    )
    .await;
    for body in [
        json!({"retention_period_in_days": 0}),
        json!({"retention_period_in_days": 3651}),
        json!({"retention_period_in_days": "30"}),
        json!({"retention_period": "13_MONTHS"}),
        json!({}),
    ] {
        let (status, response) = put_retention(&server, &organization, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response["code"], "validation_failed");
    }
    let (_, body) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs_retention"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(body["retention_period_in_days"], 30);
    let (status, _) = put_retention(
        &server,
        "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
        json!({"retention_period_in_days": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn organization_with_events(server: &TestServer, name: &str, count: usize) -> String {
    let organization = server.create_organization(name).await;
    for index in 0..count {
        let target = json!([{"id": format!("t{index}"), "type": "team"}]);
        assert_eq!(
            server
                .create_event(&event(&organization, "user.signed_in", None, target))
                .await
                .0,
            StatusCode::OK
        );
    }
    organization
}

#[tokio::test]
async fn purge_removes_the_oldest_prefix_and_the_chain_still_verifies() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = organization_with_events(&server, "Short memory", 10).await;
    let untouched = organization_with_events(&server, "No retention", 3).await;
    put_retention(
        &server,
        &organization,
        json!({"retention_period_in_days": 30}),
    )
    .await;
    // Events 1-4 were received 40 days ago; 6 is old too but follows a recent one.
    execute_sql(
        &server.database,
        &format!(
            "UPDATE events SET received_at = received_at - 40 * CAST(86400000 AS BIGINT)
             WHERE organization_id = '{organization}' AND sequence IN (1, 2, 3, 4, 6)"
        ),
    );
    let purged = server.state.retention.purge_expired().await.expect("purge");
    assert_eq!(purged, 4);
    let remaining: Vec<i64> = stored_events(&server.database, &organization)
        .iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(remaining, [5, 6, 7, 8, 9, 10], "only a prefix is purged");
    assert_eq!(stored_events(&server.database, &untouched).len(), 3);
    let (ok, output) = stele_verify(&server.database);
    assert!(ok, "{output}");

    // New events continue the same chain after the purge.
    let (status, _) = server
        .create_event(&event(&organization, "user.signed_in", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (ok, output) = stele_verify(&server.database);
    assert!(ok, "{output}");
    let (_, page) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}&target_ids=t2"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        page["data"],
        json!([]),
        "purged events are gone from search too"
    );
}

#[tokio::test]
async fn a_fully_purged_organization_continues_its_sequence_and_can_be_deleted() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = organization_with_events(&server, "Ephemeral", 3).await;
    put_retention(
        &server,
        &organization,
        json!({"retention_period_in_days": 1}),
    )
    .await;
    execute_sql(
        &server.database,
        "UPDATE events SET received_at = received_at - 2 * 86400000",
    );
    assert_eq!(
        server.state.retention.purge_expired().await.expect("purge"),
        3
    );
    assert!(stored_events(&server.database, &organization).is_empty());

    let (status, _) = server
        .create_event(&event(&organization, "user.signed_in", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sequences: Vec<i64> = stored_events(&server.database, &organization)
        .iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(
        sequences,
        [4],
        "the sequence has no gaps even across a full purge"
    );
    assert!(stele_verify(&server.database).0);

    execute_sql(
        &server.database,
        "UPDATE events SET received_at = received_at - 2 * 86400000",
    );
    server.state.retention.purge_expired().await.expect("purge");
    let response = server
        .request(Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "deletable once retention purged its events"
    );
    assert!(stele_verify(&server.database).0);
}

#[tokio::test]
async fn a_purge_makes_older_exports_unavailable_rather_than_different() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = organization_with_events(&server, "Exporting", 4).await;
    let body = json!({"organization_id": organization, "range_start": "2000-01-01T00:00:00Z", "range_end": "2100-01-01T00:00:00Z"});
    let (status, export) = read(
        server
            .post("/audit_logs/exports", &body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let url = export["url"].as_str().expect("url").to_owned();
    assert_eq!(
        server
            .client
            .get(&url)
            .send()
            .await
            .expect("download")
            .status(),
        StatusCode::OK
    );

    put_retention(
        &server,
        &organization,
        json!({"retention_period_in_days": 1}),
    )
    .await;
    execute_sql(
        &server.database,
        "UPDATE events SET received_at = received_at - 2 * 86400000 WHERE sequence <= 2",
    );
    assert_eq!(
        server.state.retention.purge_expired().await.expect("purge"),
        2,
        "retention is never held back"
    );

    let response = server.client.get(&url).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("Retention has purged"));
    let id = export["id"].as_str().expect("id");
    let (_, fetched) = read(
        server
            .get(&format!("/audit_logs/exports/{id}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(fetched["state"], "error");
    assert_eq!(fetched["url"], serde_json::Value::Null);

    // An export created after the purge covers the retained events and is served.
    let (_, fresh) = read(
        server
            .post("/audit_logs/exports", &body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    let response = server
        .client
        .get(fresh["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("csv").lines().count(), 1 + 2);
}

#[tokio::test]
async fn configuration_reports_keep_forever_as_zero_days_and_omits_an_absent_log_stream() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Forever").await;
    let (status, configuration) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_log_configuration"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        configuration,
        json!({"organization_id": organization, "retention_period_in_days": 0, "state": "active"})
    );
    let (status, retention) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs_retention"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retention, json!({"retention_period_in_days": null}));
}
