//! Quarantine: events refused by their schema are kept with their exact body and errors,
//! listed, accepted after a schema fix (or under another version), discarded, and expired.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{activity_of, event, read, seed_v1, stored_events, TestServer};

async fn server_with_v1() -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Quarantine Org").await;
    assert_eq!(
        server.create_schema("user.signed_in", &seed_v1()).await.0,
        StatusCode::CREATED
    );
    (server, organization)
}

/// An event whose `resource` target v1 does not declare.
fn undeclared_target(organization: &str) -> Value {
    event(
        organization,
        "user.signed_in",
        None,
        json!([{"type": "resource", "id": "resource_1"}]),
    )
}

async fn list(server: &TestServer, organization: &str, query: &str) -> (StatusCode, Value) {
    read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/quarantine{query}"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn accept(
    server: &TestServer,
    organization: &str,
    id: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = server.request(
        Method::POST,
        &format!("/organizations/{organization}/audit_logs/quarantine/{id}/accept"),
    );
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.expect("request")).await
}

#[tokio::test]
async fn refused_event_is_kept_with_its_exact_body_and_errors() {
    let (server, organization) = server_with_v1().await;
    // Sent as raw text with unusual spacing and key order: the quarantine keeps it as sent.
    let raw = format!(
        r#"{{ "event": {{"targets": [{{"type": "resource", "id": "resource_1"}}], "action": "user.signed_in",
            "occurred_at": "2022-09-08T19:46:03.435Z", "actor": {{"id": "u1", "type": "user"}},
            "context": {{"location": "1.2.3.4"}}}},   "organization_id": "{organization}" }}"#
    );
    let response = server
        .request(Method::POST, "/audit_logs/events")
        .header("content-type", "application/json")
        .body(raw.clone())
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_audit_log_event");
    assert_eq!(body["errors"][0]["instancePath"], "/targets/0/type");
    let quarantine_id = body["quarantine_id"].as_str().expect("quarantine_id");
    assert!(quarantine_id.starts_with("quarantine_"), "{quarantine_id}");

    let (status, page) = list(&server, &organization, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["object"], "list");
    let entries = page["data"].as_array().expect("data");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["id"], quarantine_id);
    assert_eq!(entry["object"], "audit_log_quarantined_event");
    assert_eq!(entry["action"], "user.signed_in");
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["errors"], body["errors"]);
    assert!(entry["reason"]
        .as_str()
        .expect("reason")
        .starts_with("/targets/0/type: target type 'resource'"));
    // Byte for byte: the stored body is the request as sent.
    let kept = server.database.query_one(&format!(
        "SELECT body FROM quarantined_events WHERE id = '{quarantine_id}'"
    ));
    assert_eq!(kept.bytes(), raw.as_bytes());
    assert!(stored_events(&server.database, &organization).is_empty());
}

#[tokio::test]
async fn unknown_action_and_unknown_version_are_quarantined() {
    let (server, organization) = server_with_v1().await;
    let (status, body) = server
        .create_event(&event(&organization, "user.unknown", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["quarantine_id"].is_string(), "{body}");
    let (status, body) = server
        .create_event(&event(&organization, "user.signed_in", Some(7), json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["quarantine_id"].is_string(), "{body}");
    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn shape_errors_and_unknown_organizations_are_not_quarantined() {
    let (server, organization) = server_with_v1().await;
    let (status, body) = server
        .create_event(&json!({"organization_id": organization, "event": {"action": "x"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.get("quarantine_id").is_none(), "{body}");
    let (status, body) = server
        .create_event(&undeclared_target("org_01H0000000000000000000000Z"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.get("quarantine_id").is_none(), "{body}");
    let count = server
        .database
        .query_one("SELECT COUNT(*) FROM quarantined_events");
    assert_eq!(count.integer(), 0);
}

#[tokio::test]
async fn accept_after_a_schema_fix_stores_the_event_with_its_quarantine_id() {
    let (server, organization) = server_with_v1().await;
    let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
    let quarantine_id = refused["quarantine_id"].as_str().expect("kept").to_owned();

    // Still failing v1: 400 naming the entry, which stays.
    let (status, body) = accept(&server, &organization, &quarantine_id, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["quarantine_id"], quarantine_id.as_str());
    assert_eq!(body["errors"][0]["instancePath"], "/targets/0/type");

    // v2 declares the target type: accepting under v2 stores it.
    let v2 = json!({"targets": [{"type": "team"}, {"type": "resource"}]});
    assert_eq!(
        server.create_schema("user.signed_in", &v2).await.0,
        StatusCode::CREATED
    );
    let (status, body) = accept(
        &server,
        &organization,
        &quarantine_id,
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["quarantine_id"], quarantine_id.as_str());
    let event_id = body["id"].as_str().expect("id");

    let stored = stored_events(&server.database, &organization);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, event_id);
    let record: Value = serde_json::from_slice(&stored[0].2).expect("stored JSON");
    assert_eq!(record["quarantine_id"], quarantine_id.as_str());
    assert_eq!(record["version"], 2);

    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"], json!([]));
    // A second accept finds nothing.
    let (status, _) = accept(&server, &organization, &quarantine_id, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stored_events(&server.database, &organization).len(), 1);
}

#[tokio::test]
async fn accept_with_the_named_version_succeeds_once_that_version_exists() {
    let (server, organization) = server_with_v1().await;
    let (_, refused) = server
        .create_event(&event(
            &organization,
            "user.signed_in",
            Some(2),
            json!([{"type": "resource", "id": "r"}]),
        ))
        .await;
    let quarantine_id = refused["quarantine_id"].as_str().expect("kept").to_owned();
    let v2 = json!({"targets": [{"type": "resource"}]});
    server.create_schema("user.signed_in", &v2).await;
    let (status, body) = accept(&server, &organization, &quarantine_id, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn accept_refuses_a_bad_version_and_changes_nothing() {
    let (server, organization) = server_with_v1().await;
    let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
    let quarantine_id = refused["quarantine_id"].as_str().expect("kept").to_owned();
    let (status, body) = accept(
        &server,
        &organization,
        &quarantine_id,
        Some(json!({"version": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = accept(
        &server,
        &organization,
        &quarantine_id,
        Some(json!({"version": 9})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["instancePath"], "/version");
    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn discard_removes_the_entry_and_is_scoped_to_its_organization() {
    let (server, organization) = server_with_v1().await;
    let other = server.create_organization("Other Org").await;
    let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
    let quarantine_id = refused["quarantine_id"].as_str().expect("kept").to_owned();

    // Another organization's path neither sees, accepts nor discards it.
    let (_, page) = list(&server, &other, "").await;
    assert_eq!(page["data"], json!([]));
    let (status, _) = accept(&server, &other, &quarantine_id, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let delete = |organization: String| {
        server
            .request(
                Method::DELETE,
                &format!("/organizations/{organization}/audit_logs/quarantine/{quarantine_id}"),
            )
            .send()
    };
    let (status, _) = read(delete(other.clone()).await.expect("request")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = read(delete(organization.clone()).await.expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true);
    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"], json!([]));
    let (status, _) = read(delete(organization.clone()).await.expect("request")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(stored_events(&server.database, &organization).is_empty());
}

#[tokio::test]
async fn list_pages_like_other_lists_and_refuses_unknown_organizations() {
    let (server, organization) = server_with_v1().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
        ids.push(refused["quarantine_id"].as_str().expect("kept").to_owned());
    }
    let (_, first) = list(&server, &organization, "?limit=2").await;
    let first_ids: Vec<&str> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|entry| entry["id"].as_str())
        .collect();
    // Newest first by default.
    assert_eq!(first_ids, [ids[2].as_str(), ids[1].as_str()]);
    let after = first["list_metadata"]["after"].as_str().expect("after");
    let (_, second) = list(&server, &organization, &format!("?limit=2&after={after}")).await;
    assert_eq!(second["data"][0]["id"], ids[0].as_str());
    assert!(second["list_metadata"]["after"].is_null());

    let (status, _) = list(&server, "org_01H0000000000000000000000Z", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retried_refusal_with_one_idempotency_key_is_kept_once_and_not_replayed() {
    let (server, organization) = server_with_v1().await;
    let body = undeclared_target(&organization);
    let send = || {
        server
            .post("/audit_logs/events", &body)
            .header("Idempotency-Key", "retry-key-1")
            .send()
    };
    let (status, first) = read(send().await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, second) = read(send().await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first["quarantine_id"], second["quarantine_id"]);
    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));

    // The refusal was not recorded for the key: after the schema fix, the same key and
    // body succeed.
    let v2 = json!({"targets": [{"type": "team"}, {"type": "resource"}]});
    server.create_schema("user.signed_in", &v2).await;
    let mut fixed = body.clone();
    fixed["event"]["version"] = json!(2);
    let (status, created) = read(
        server
            .post("/audit_logs/events", &fixed)
            .header("Idempotency-Key", "retry-key-2")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
}

#[tokio::test]
async fn a_retried_batch_keeps_each_refused_keyed_item_once() {
    let (server, organization) = server_with_v1().await;
    let mut refused_keyed = undeclared_target(&organization);
    refused_keyed["idempotency_key"] = json!("batch-item-key");
    let mut refused_other_key = undeclared_target(&organization);
    refused_other_key["idempotency_key"] = json!("another-item-key");
    let batch =
        json!({"events": [refused_keyed, refused_other_key, undeclared_target(&organization)]});
    let send = || server.post("/audit_logs/events/batch", &batch).send();
    let (status, first) = read(send().await.expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = read(send().await.expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let quarantine_id = |results: &Value, index: usize| {
        results["data"][index]["error"]["quarantine_id"]
            .as_str()
            .expect("kept in quarantine")
            .to_owned()
    };
    // Keyed items are kept once whatever the retries; the unkeyed one each time it is sent.
    assert_eq!(quarantine_id(&first, 0), quarantine_id(&second, 0));
    assert_eq!(quarantine_id(&first, 1), quarantine_id(&second, 1));
    assert_ne!(quarantine_id(&first, 0), quarantine_id(&first, 1));
    assert_ne!(quarantine_id(&first, 2), quarantine_id(&second, 2));
    let (_, page) = list(&server, &organization, "?limit=100").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(4), "{page}");
}

#[tokio::test]
async fn oversized_body_is_refused_without_being_kept_and_says_why() {
    let (server, organization) = server_with_v1().await;
    let mut body = undeclared_target(&organization);
    // Unknown fields are ignored by validation but kept in the body.
    body["padding"] = json!("x".repeat(stele_core::quarantine::MAX_BODY_BYTES));
    let (status, refused) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["quarantine_id"].is_null(), "{refused}");
    assert_eq!(
        refused["quarantine_error"]["code"],
        "quarantine_body_too_large"
    );
    let (_, page) = list(&server, &organization, "").await;
    assert_eq!(page["data"], json!([]));
}

#[tokio::test]
async fn refusal_for_an_organization_not_yet_auto_created_says_it_was_not_kept() {
    let server = TestServer::start_with(&["--auto-create-organizations"]).await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let unknown = "org_01HZZZZZZZZZZZZZZZZZZZZZZZ";
    let (status, refused) = server.create_event(&undeclared_target(unknown)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["quarantine_id"].is_null(), "{refused}");
    assert_eq!(
        refused["quarantine_error"]["code"],
        "quarantine_organization_unknown"
    );
    let (status, _) = read(
        server
            .get(&format!("/organizations/{unknown}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused event creates nothing"
    );
}

#[tokio::test]
async fn expired_entries_are_purged_by_the_worker() {
    let server = TestServer::start_with(&[
        "--quarantine-retention-days",
        "0",
        "--quarantine-purge-interval-secs",
        "1",
    ])
    .await;
    let organization = server.create_organization("Expiring Org").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
    assert!(refused["quarantine_id"].is_string(), "{refused}");
    let mut remaining = 1;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, page) = list(&server, &organization, "").await;
        remaining = page["data"].as_array().map_or(0, Vec::len);
        if remaining == 0 {
            break;
        }
    }
    assert_eq!(remaining, 0, "the expired entry was not purged");
}

#[tokio::test]
async fn quarantine_routes_are_documented() {
    let server = TestServer::start().await;
    let (_, document) = read(server.get("/openapi.json").send().await.expect("request")).await;
    let paths = &document["paths"];
    let list = &paths["/organizations/{id}/audit_logs/quarantine"]["get"];
    assert!(list["responses"]["200"].is_object());
    let accept = &paths["/organizations/{id}/audit_logs/quarantine/{quarantine_id}/accept"]["post"];
    for status in ["200", "400", "404", "422"] {
        assert!(accept["responses"][status].is_object(), "accept {status}");
    }
    let discard = &paths["/organizations/{id}/audit_logs/quarantine/{quarantine_id}"]["delete"];
    assert!(discard["responses"]["404"].is_object());
    // A refusal's quarantine fields are in the error schema every 400 uses.
    let error = &document["components"]["schemas"]["Error"]["properties"];
    assert_eq!(error["quarantine_id"]["type"], json!(["string", "null"]));
    assert_eq!(
        error["quarantine_error"]["properties"]["code"]["enum"],
        json!([
            "quarantine_full",
            "quarantine_body_too_large",
            "quarantine_organization_unknown"
        ])
    );
}

mod dashboard {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::{list, server_with_v1, undeclared_target};
    use crate::dashboard::{location, Browser};
    use crate::support::stored_events;

    #[tokio::test]
    async fn organization_page_counts_quarantined_events_and_accepts_and_discards_them() {
        let (server, organization) = server_with_v1().await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
            ids.push(refused["quarantine_id"].as_str().expect("kept").to_owned());
        }
        let mut browser = Browser::new(&server);
        browser.login().await;
        let page = browser
            .get(&format!("/dashboard/organizations/{organization}"))
            .await
            .text()
            .await
            .expect("body");
        assert!(page.contains("Quarantine"), "{page}");
        // One row per action, version and first error, with its count.
        assert!(
            page.contains("target type &#x27;resource&#x27; is not declared")
                || page.contains("target type &#39;resource&#39; is not declared"),
            "{page}"
        );
        assert!(
            page.contains("<strong>2</strong> refused events are kept here"),
            "{page}"
        );
        assert!(page.contains(&ids[0]) && page.contains(&ids[1]));

        let csrf = browser.csrf_token().await;
        // Still invalid under v1: refused, kept.
        let refused = browser
            .post_form(
                &format!(
                    "/dashboard/organizations/{organization}/quarantine/{}/accept",
                    ids[0]
                ),
                &[("csrf_token", &csrf), ("version", "")],
            )
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        server
            .create_schema(
                "user.signed_in",
                &json!({"targets": [{"type": "team"}, {"type": "resource"}]}),
            )
            .await;
        let accepted = browser
            .post_form(
                &format!(
                    "/dashboard/organizations/{organization}/quarantine/{}/accept",
                    ids[0]
                ),
                &[("csrf_token", &csrf), ("version", "2")],
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
        assert!(location(&accepted).contains("quarantine=accepted"));
        assert_eq!(stored_events(&server.database, &organization).len(), 1);

        let discarded = browser
            .post_form(
                &format!(
                    "/dashboard/organizations/{organization}/quarantine/{}/discard",
                    ids[1]
                ),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(discarded.status(), StatusCode::SEE_OTHER);
        let (_, remaining) = list(&server, &organization, "").await;
        assert_eq!(remaining["data"], json!([]));
        assert_eq!(stored_events(&server.database, &organization).len(), 1);

        // Without the CSRF token nothing happens.
        let (_, refused) = server.create_event(&undeclared_target(&organization)).await;
        let id = refused["quarantine_id"].as_str().expect("kept");
        let forged = browser
            .post_form(
                &format!("/dashboard/organizations/{organization}/quarantine/{id}/discard"),
                &[("csrf_token", "wrong")],
            )
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let (_, remaining) = list(&server, &organization, "").await;
        assert_eq!(remaining["data"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn version_history_offers_to_accept_quarantined_events_under_the_latest_version() {
        let (server, organization) = server_with_v1().await;
        for _ in 0..3 {
            server.create_event(&undeclared_target(&organization)).await;
        }
        // One that v2 still refuses: an actor metadata value of the wrong type.
        let mut stubborn = undeclared_target(&organization);
        stubborn["event"]["actor"]["metadata"] = json!({"role": 5});
        server.create_event(&stubborn).await;
        server
            .create_schema(
                "user.signed_in",
                &json!({"targets": [{"type": "team"}, {"type": "resource"}],
                        "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}}}),
            )
            .await;
        let mut browser = Browser::new(&server);
        browser.login().await;
        let history = browser
            .get("/dashboard/actions/user.signed_in/versions")
            .await
            .text()
            .await
            .expect("body");
        assert!(
            history.contains("4 quarantined events fail v1; accept them under v2?"),
            "{history}"
        );
        let csrf = browser.csrf_token().await;
        let accepted = browser
            .post_form(
                "/dashboard/actions/user.signed_in/quarantine/accept",
                &[("csrf_token", &csrf), ("from", "1"), ("to", "2")],
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
        let target = location(&accepted);
        assert!(target.contains("accepted=3&still_failing=1"), "{target}");
        let after = browser.get(&target).await.text().await.expect("body");
        assert!(
            after.contains("Accepted 3 quarantined events under v2. 1 still fail"),
            "{after}"
        );
        assert!(
            after.contains("1 quarantined event fail v1; accept them under v2?"),
            "{after}"
        );
        assert_eq!(stored_events(&server.database, &organization).len(), 3);
    }
}

fn target_ids(activity: &Value) -> Vec<String> {
    activity["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|target| target["id"].as_str().expect("target id").to_owned())
        .collect()
}

/// Listing (a read of kept bodies), accepting and discarding quarantined events are
/// operator actions: each is in the activity log, naming the entry and organization.
#[tokio::test]
async fn listing_accepting_and_discarding_are_in_the_activity_log() {
    let (server, organization) = server_with_v1().await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        let (status, body) = server.create_event(&undeclared_target(&organization)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        kept.push(body["quarantine_id"].as_str().expect("kept").to_owned());
    }
    let (status, listed) = list(&server, &organization, "").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listings = activity_of(&server, "quarantine.listed").await;
    assert_eq!(listings.len(), 1, "{listings:?}");
    assert_eq!(
        target_ids(&listings[0]),
        std::slice::from_ref(&organization)
    );
    assert_eq!(listings[0]["metadata"]["returned"], 2, "{listings:?}");

    let (status, discarded) = read(
        server
            .request(
                Method::DELETE,
                &format!(
                    "/organizations/{organization}/audit_logs/quarantine/{}",
                    kept[0]
                ),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{discarded}");
    let discards = activity_of(&server, "quarantined_event.discarded").await;
    assert_eq!(discards.len(), 1, "{discards:?}");
    assert_eq!(
        target_ids(&discards[0]),
        [kept[0].clone(), organization.clone()]
    );

    let schema = json!({"targets": [{"type": "resource"}]});
    assert_eq!(
        server.create_schema("user.signed_in", &schema).await.0,
        StatusCode::CREATED
    );
    let (status, accepted) = accept(
        &server,
        &organization,
        &kept[1],
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let event_id = accepted["id"].as_str().expect("event id").to_owned();
    let acceptances = activity_of(&server, "quarantined_event.accepted").await;
    assert_eq!(acceptances.len(), 1, "{acceptances:?}");
    assert_eq!(
        target_ids(&acceptances[0]),
        [kept[1].clone(), event_id, organization.clone()]
    );
}
