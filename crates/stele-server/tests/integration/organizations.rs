//! The organizations resource.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    event, read, seed_v1, stele_verify, stele_verify_with, stored_events, TestServer,
};

#[tokio::test]
async fn create_organization_returns_the_full_workos_shape() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "Acme", "external_id": "acme-1", "metadata": {"tier": "gold"},
                        "domain_data": [{"domain": "Acme.com", "state": "verified"}]}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["object"], "organization");
    assert!(body["id"].as_str().expect("id").starts_with("org_"));
    assert_eq!(body["id"].as_str().expect("id").len(), 30);
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["external_id"], "acme-1");
    assert_eq!(body["metadata"], json!({"tier": "gold"}));
    assert_eq!(body["allow_profiles_outside_organization"], false);
    assert_eq!(body["domains"][0]["object"], "organization_domain");
    assert_eq!(body["domains"][0]["domain"], "acme.com");
    assert_eq!(body["domains"][0]["state"], "verified");
    assert_eq!(body["domains"][0]["organization_id"], body["id"]);
    let created_at = body["created_at"].as_str().expect("created_at");
    assert_eq!(
        created_at.len(),
        24,
        "three fractional digits and Z: {created_at}"
    );
    assert!(created_at.ends_with('Z'));
}

#[tokio::test]
async fn external_id_is_present_as_null_and_domains_as_array() {
    let server = TestServer::start().await;
    let id = server.create_organization("Plain").await;
    let (status, body) = read(
        server
            .get(&format!("/organizations/{id}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body
        .as_object()
        .expect("object")
        .contains_key("external_id"));
    assert_eq!(body["external_id"], serde_json::Value::Null);
    assert_eq!(body["domains"], json!([]));
}

#[tokio::test]
async fn get_by_external_id_update_and_delete() {
    let server = TestServer::start().await;
    let (_, created) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "Old", "external_id": "ext-9"}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let (status, found) = read(
        server
            .get("/organizations/external_id/ext-9")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["id"], id);

    let (status, updated) = read(
        server
            .request(Method::PUT, &format!("/organizations/{id}"))
            .json(&json!({"name": "New", "external_id": "ext-10"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["name"], "New");
    assert_eq!(updated["external_id"], "ext-10");
    assert_eq!(updated["created_at"], created["created_at"]);

    let response = server
        .request(Method::DELETE, &format!("/organizations/{id}"))
        .send()
        .await
        .expect("request");
    let (status, deleted) = read(response).await;
    assert_eq!(status, StatusCode::OK, "WorkOS's spec documents 200");
    assert_eq!(
        deleted,
        json!({"object": "organization", "id": id, "deleted": true, "purged_events": 0})
    );
    let (status, missing) = read(
        server
            .get(&format!("/organizations/{id}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["message"],
        format!("Organization not found: '{id}'.")
    );
    assert_eq!(missing["code"], "not_found");
}

#[tokio::test]
async fn duplicate_external_id_is_rejected_without_creating() {
    let server = TestServer::start().await;
    let body = json!({"name": "A", "external_id": "same"});
    assert_eq!(
        server
            .post("/organizations", &body)
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::CREATED
    );
    let (status, error) = read(
        server
            .post("/organizations", &body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "external_id_already_used");
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
}

#[tokio::test]
async fn list_searches_by_name_and_pages_both_ways() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(server.create_organization(&format!("Team {index}")).await);
    }
    server.create_organization("Other").await;

    let (status, first) = read(
        server
            .get("/organizations?search=team&limit=2")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["object"], "list");
    let names: Vec<&str> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Team 4", "Team 3"], "newest first");
    assert_eq!(first["list_metadata"]["before"], serde_json::Value::Null);
    let after = first["list_metadata"]["after"]
        .as_str()
        .expect("after cursor");

    let (_, second) = read(
        server
            .get(&format!("/organizations?search=team&limit=2&after={after}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let names: Vec<&str> = second["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Team 2", "Team 1"]);
    let before = second["list_metadata"]["before"]
        .as_str()
        .expect("before cursor");

    let (_, back) = read(
        server
            .get(&format!(
                "/organizations?search=team&limit=2&before={before}"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let names: Vec<&str> = back["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Team 4", "Team 3"]);

    let (_, ascending) = read(
        server
            .get("/organizations?order=asc&limit=100")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(ascending["data"][0]["id"], ids[0].as_str());
    assert_eq!(
        ascending["list_metadata"]["after"],
        serde_json::Value::Null,
        "clients stop when after is null"
    );
}

#[tokio::test]
async fn list_rejects_bad_paging_parameters() {
    let server = TestServer::start().await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "order=sideways",
        "before=a&after=b",
    ] {
        let (status, body) = read(
            server
                .get(&format!("/organizations?{query}"))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["code"], "validation_failed");
    }
}

#[tokio::test]
async fn create_requires_a_name() {
    let server = TestServer::start().await;
    let (status, body) = read(
        server
            .post("/organizations", &json!({"external_id": "x"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"][0],
        json!({"code": "required", "field": "name", "message": "name is required."})
    );
    let (status, body) = read(
        server
            .post("/organizations", &json!({"name": 5}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "name");
}

#[tokio::test]
async fn create_refuses_an_overlong_name_and_ids_not_spelled_as_workos_does() {
    let server = TestServer::start().await;
    for body in [
        json!({"name": "n".repeat(1_001)}),
        // The lower-case spelling of a ULID, and a value past the largest ULID.
        json!({"name": "Lower", "id": "org_01ehznvpk3sfk441a1rgbfshrt"}),
        json!({"name": "Past", "id": "org_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"}),
    ] {
        let (status, answer) = read(
            server
                .post("/organizations", &body)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["code"], "validation_failed", "{answer}");
    }
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"], json!([]), "a refusal creates nothing");
    let (status, created) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "n".repeat(1_000), "id": "org_01EHZNVPK3SFK441A1RGBFSHRT"}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

async fn delete(server: &TestServer, id: &str) -> (StatusCode, serde_json::Value) {
    read(
        server
            .request(Method::DELETE, &format!("/organizations/{id}"))
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn emit(server: &TestServer, organization: &str, count: usize) {
    let results = futures::future::join_all((0..count).map(|index| {
        let body = event(
            organization,
            "user.signed_in",
            None,
            json!([{"id": format!("t{index}"), "type": "team"}]),
        );
        async move { server.create_event(&body).await }
    }))
    .await;
    for (status, body) in results {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn deleting_an_organization_with_events_purges_them_and_keeps_what_verification_needs() {
    let server = TestServer::start().await;
    let id = server.create_organization("Leaving").await;
    let staying = server.create_organization("Staying").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    // 260 events and a checkpoint (a complete 256-leaf block, so a stored level-8 node),
    // then 5 more that no checkpoint covers yet.
    emit(&server, &id, 260).await;
    let (status, checkpoint) = read(
        server
            .post(
                &format!("/organizations/{id}/audit_logs/checkpoints"),
                &json!({}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status.as_u16() / 100, 2, "{checkpoint}");
    emit(&server, &id, 5).await;
    emit(&server, &staying, 3).await;
    let (status, _) = read(
        server
            .post(
                "/audit_logs/exports",
                &json!({"organization_id": id, "range_start": "2000-01-01T00:00:00Z", "range_end": "2100-01-01T00:00:00Z"}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, deleted) = delete(&server, &id).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(
        deleted,
        json!({"object": "organization", "id": id, "deleted": true, "purged_events": 265})
    );

    // Gone, with its events, exports and search.
    for path in [
        format!("/organizations/{id}"),
        format!("/audit_logs/events?organization_id={id}"),
    ] {
        let (status, body) = read(server.get(&path).send().await.expect("request")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let db = &server.database;
    let rows_left = |table: &str| {
        db.query_one(&format!(
            "SELECT COUNT(*) FROM {table} WHERE organization_id = '{id}'"
        ))
        .integer()
    };
    for table in ["events", "exports"] {
        assert_eq!(rows_left(table), 0, "{table} rows left");
    }
    // On SQLite the search index file follows the deletion on its own thread, moments later.
    let mut targets_left = rows_left("event_targets");
    for _ in 0..100 {
        if targets_left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        targets_left = rows_left("event_targets");
    }
    assert_eq!(targets_left, 0, "event_targets rows left");
    // What verification needs stays: the anchor past the last event, tree hashes,
    // the checkpoint.
    assert_eq!(
        db.query_one(&format!(
            "SELECT first_sequence FROM chain_anchors WHERE organization_id = '{id}'"
        ))
        .integer(),
        266
    );
    assert_eq!(
        db.query_one(&format!(
            "SELECT COUNT(*) FROM checkpoints WHERE organization_id = '{id}'"
        ))
        .integer(),
        1
    );
    assert!(
        db.query_one(&format!(
            "SELECT COUNT(*) FROM merkle_nodes WHERE organization_id = '{id}'"
        ))
        .integer()
            > 0
    );
    let (ok, output) = stele_verify(db);
    assert!(ok, "{output}");
    // Besides the organization's events, the activity log's.
    let activity = db
        .query_one(&format!(
            "SELECT COUNT(*) FROM events WHERE organization_id = '{}'",
            stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
        ))
        .integer();
    assert!(
        output.contains(&format!("OK: {} events in 2 organizations", 3 + activity)),
        "{output}"
    );

    // Events for it are refused, and the id is never given out again.
    let (status, body) = server
        .create_event(&event(&id, "user.signed_in", None, json!([])))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = read(
        server
            .post("/organizations", &json!({"id": id, "name": "Newcomer"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "organization_id_taken");
    let (status, _) = delete(&server, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // What it left can be checked on its own, by its id.
    let verify_deleted = || stele_verify_with(db, &["--organization", &id]);
    let (ok, output) = verify_deleted();
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("OK: deleted organization {id} verified")),
        "{output}"
    );

    // The kept hashes are really checked: altering one is found.
    db.execute(&format!(
        "UPDATE checkpoints SET root_hash = {} WHERE organization_id = '{id}'",
        db.bytes_literal(&[7u8; 32])
    ));
    let (ok, output) = stele_verify(db);
    assert!(
        !ok,
        "an altered checkpoint of a deleted organization: {output}"
    );
    assert!(output.contains(&id), "{output}");
    let (ok, output) = verify_deleted();
    assert!(!ok, "{output}");
    assert!(output.contains("TAMPERED"), "{output}");
}

#[tokio::test]
async fn a_delete_racing_appends_leaves_no_event_behind_and_a_valid_log() {
    let server = TestServer::start().await;
    let id = server.create_organization("Racing").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    emit(&server, &id, 20).await;
    let appends = futures::future::join_all((0..60).map(|index| {
        let body = event(
            &id,
            "user.signed_in",
            None,
            json!([{"id": format!("r{index}"), "type": "team"}]),
        );
        let server = &server;
        async move { server.create_event(&body).await }
    }));
    let (results, (status, deleted)) = tokio::join!(appends, async {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        delete(&server, &id).await
    });
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let acknowledged = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::NOT_FOUND,
            "{status}: {body}"
        );
    }
    // Every acknowledged event came before the deletion and was purged with the rest.
    assert_eq!(
        deleted["purged_events"].as_u64(),
        Some(20 + acknowledged as u64),
        "{deleted}"
    );
    assert!(stored_events(&server.database, &id).is_empty());
    let (ok, output) = stele_verify(&server.database);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn an_organization_larger_than_one_purge_step_is_deleted_whole() {
    // The deletion purges in steps of 5,000 events (each its own transaction) before the
    // final one: 5,300 events take two steps and leave none behind.
    const EVENTS: usize = 5_300;
    let server = TestServer::start().await;
    let id = server.create_organization("Large").await;
    let staying = server.create_organization("Staying").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let items: Vec<Value> = (0..EVENTS)
        .map(|index| {
            event(
                &id,
                "user.signed_in",
                None,
                json!([{"id": format!("t{index}"), "type": "team"}]),
            )
        })
        .collect();
    for chunk in items.chunks(1_000) {
        let (status, body) = read(
            server
                .post("/audit_logs/events/batch", &json!({ "events": chunk }))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body["data"]
                .as_array()
                .expect("results")
                .iter()
                .all(|item| item["id"].is_string()),
            "{body}"
        );
    }
    emit(&server, &staying, 2).await;

    let (status, deleted) = delete(&server, &id).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["purged_events"].as_u64(), Some(EVENTS as u64));
    let db = &server.database;
    assert!(stored_events(db, &id).is_empty());
    assert_eq!(
        db.query_one(&format!(
            "SELECT purged FROM deleted_organizations WHERE id = '{id}'"
        ))
        .integer(),
        EVENTS as i64,
        "the steps before the deletion count in what it records"
    );
    assert_eq!(
        db.query_one(&format!(
            "SELECT first_sequence FROM chain_anchors WHERE organization_id = '{id}'"
        ))
        .integer(),
        EVENTS as i64 + 1
    );
    assert_eq!(stored_events(db, &staying).len(), 2);
    let (ok, output) = stele_verify(db);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn list_filters_by_owned_domains() {
    let server = TestServer::start().await;
    for (name, domain) in [
        ("Acme", "acme.com"),
        ("Globex", "globex.com"),
        ("Initech", "initech.com"),
    ] {
        let body = json!({"name": name, "domain_data": [{"domain": domain, "state": "verified"}]});
        assert_eq!(
            server
                .post("/organizations", &body)
                .send()
                .await
                .expect("request")
                .status(),
            StatusCode::CREATED
        );
    }
    let (status, list) = read(
        server
            .get("/organizations?domains=ACME.com,initech.com")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Initech", "Acme"]);
    let (_, none) = read(
        server
            .get("/organizations?domains=unknown.org")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(none["data"], json!([]));
}

async fn put_organization(
    server: &TestServer,
    id: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    read(
        server
            .request(Method::PUT, &format!("/organizations/{id}"))
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn update_is_partial_omitted_fields_stay_and_null_clears() {
    let server = TestServer::start().await;
    let (status, created) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "Partial", "external_id": "ext-p", "metadata": {"tier": "gold"},
                        "domain_data": [{"domain": "partial.example", "state": "verified"}]}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");

    // Only metadata: the name, external_id and domains stay.
    let (status, updated) =
        put_organization(&server, id, json!({"metadata": {"tier": "platinum"}})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Partial");
    assert_eq!(updated["external_id"], "ext-p");
    assert_eq!(updated["metadata"], json!({"tier": "platinum"}));
    assert_eq!(updated["domains"][0]["domain"], "partial.example");

    // Only the name.
    let (status, updated) = put_organization(&server, id, json!({"name": "Renamed"})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["external_id"], "ext-p");
    assert_eq!(updated["metadata"], json!({"tier": "platinum"}));

    // An empty body changes nothing.
    let (status, updated) = put_organization(&server, id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["external_id"], "ext-p");

    // null clears external_id and metadata.
    let (status, updated) =
        put_organization(&server, id, json!({"external_id": null, "metadata": null})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["external_id"], serde_json::Value::Null);
    assert_eq!(updated["metadata"], json!({}));
    assert_eq!(updated["name"], "Renamed");
    let (status, _) = read(
        server
            .get("/organizations/external_id/ext-p")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the cleared external_id is free"
    );

    // A name cannot be cleared.
    let (status, error) = put_organization(&server, id, json!({"name": null})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["errors"][0]["field"], "name");
    let (_, stored) = read(
        server
            .get(&format!("/organizations/{id}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(stored["name"], "Renamed");
}

#[tokio::test]
async fn metadata_and_external_id_limits_are_workos_limits_and_refusals_change_nothing() {
    let server = TestServer::start().await;
    let fifty: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut fifty_one = fifty.clone();
    fifty_one.insert("k50".into(), json!("v"));
    let at_limits = json!({
        "name": "Limits",
        "external_id": "e".repeat(128),
        "metadata": {"k".repeat(40): "v".repeat(600)},
    });
    let (status, created) = read(
        server
            .post("/organizations", &at_limits)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "Fifty", "metadata": fifty}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    for (over, field) in [
        (json!({"name": "X", "metadata": fifty_one}), "metadata"),
        (
            json!({"name": "X", "metadata": {"k".repeat(41): "v"}}),
            "metadata.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        ),
        (
            json!({"name": "X", "metadata": {"key": "v".repeat(601)}}),
            "metadata.key",
        ),
        (
            json!({"name": "X", "external_id": "e".repeat(129)}),
            "external_id",
        ),
    ] {
        let (status, error) = read(
            server
                .post("/organizations", &over)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["code"], "validation_failed");
        assert_eq!(error["errors"][0]["field"], field, "{error}");
    }
    let id = created["id"].as_str().expect("id");
    let (status, error) =
        put_organization(&server, id, json!({"metadata": {"key": "v".repeat(601)}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (_, list) = read(server.get("/organizations").send().await.expect("request")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 2);
}

#[tokio::test]
async fn duplicate_external_id_on_update_is_external_id_already_used() {
    let server = TestServer::start().await;
    let (_, _first) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "A", "external_id": "dup"}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    let second = server.create_organization("B").await;
    let (status, error) = put_organization(&server, &second, json!({"external_id": "dup"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "external_id_already_used");
}

#[tokio::test]
async fn order_normal_is_descending_with_before_fetching_older_and_after_newer() {
    let server = TestServer::start().await;
    for index in 0..5 {
        server.create_organization(&format!("Team {index}")).await;
    }
    let names = |list: &serde_json::Value| -> Vec<String> {
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|o| o["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let get = |query: String| {
        let request = server.get(&format!("/organizations?order=normal&limit=2{query}"));
        async move { read(request.send().await.expect("request")).await }
    };
    let (status, first) = get(String::new()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(names(&first), ["Team 4", "Team 3"], "newest first");
    assert_eq!(
        first["list_metadata"]["after"],
        serde_json::Value::Null,
        "nothing newer"
    );
    let older = first["list_metadata"]["before"]
        .as_str()
        .expect("before: the cursor to older items");

    let (_, second) = get(format!("&before={older}")).await;
    assert_eq!(names(&second), ["Team 2", "Team 1"], "before fetches older");
    let newer = second["list_metadata"]["after"]
        .as_str()
        .expect("after: the cursor to newer items");

    let (_, back) = get(format!("&after={newer}")).await;
    assert_eq!(names(&back), ["Team 4", "Team 3"], "after fetches newer");
}
