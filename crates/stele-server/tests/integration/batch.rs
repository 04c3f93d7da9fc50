//! `POST /audit_logs/events/batch`: per-item results, one commit, per-item idempotency,
//! the request's limits, and the documented `fetch` and `requests` examples.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{event, read, seed_v1, stele_verify, stored_events, TestServer, API_KEY};

async fn setup_on(server: &TestServer) -> String {
    let organization = server.create_organization("Batch").await;
    let (status, body) = server.create_schema("user.signed_in", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    organization
}

fn team_event(organization: &str, target: &str) -> Value {
    event(
        organization,
        "user.signed_in",
        None,
        json!([{"id": target, "type": "team"}]),
    )
}

fn keyed(mut item: Value, key: &str) -> Value {
    item["idempotency_key"] = json!(key);
    item
}

async fn send_batch(server: &TestServer, items: Vec<Value>) -> (StatusCode, Value) {
    read(
        server
            .post("/audit_logs/events/batch", &json!({ "events": items }))
            .send()
            .await
            .expect("request"),
    )
    .await
}

fn results(body: &Value) -> &Vec<Value> {
    assert_eq!(body["object"], "list", "{body}");
    body["data"].as_array().expect("data array")
}

fn ids_of(body: &Value) -> Vec<Option<String>> {
    results(body)
        .iter()
        .map(|item| item["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn batch_answers_each_item_on_its_own_and_stores_the_accepted_ones() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let mut missing_action = team_event(&organization, "t");
    missing_action["event"]
        .as_object_mut()
        .expect("event")
        .remove("action");
    let (status, body) = send_batch(
        &server,
        vec![
            team_event(&organization, "first"),
            missing_action,
            team_event("org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "nowhere"),
            event(
                &organization,
                "user.signed_in",
                None,
                json!([{"id": "x", "type": "undeclared"}]),
            ),
            event(&organization, "user.signed_in", Some(7), json!([])),
            json!("not an object"),
            keyed(team_event(&organization, "t"), ""),
            team_event(&organization, "last"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = results(&body);
    assert_eq!(data.len(), 8);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["index"], index, "{item}");
    }
    let outcome: Vec<(bool, Option<&str>)> = data
        .iter()
        .map(|item| {
            (
                item["success"].as_bool().expect("success"),
                item["error"]["code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        vec![
            (true, None),
            (false, Some("validation_failed")),
            (false, Some("not_found")),
            (false, Some("invalid_audit_log_event")),
            (false, Some("invalid_audit_log_event")),
            (false, Some("validation_failed")),
            (false, Some("validation_failed")),
            (true, None),
        ]
    );
    // A refused item carries the body the single create would have answered.
    assert_eq!(data[1]["error"]["errors"][0]["field"], "event.action");
    assert_eq!(
        data[3]["error"]["errors"][0]["instancePath"],
        "/targets/0/type"
    );
    assert!(data[2]["error"]["message"]
        .as_str()
        .expect("message")
        .contains("org_01HZZZZZZZZZZZZZZZZZZZZZZZ"));
    assert_eq!(data[6]["error"]["errors"][0]["field"], "idempotency_key");
    assert!(data[1].get("id").is_none());

    // Exactly the two accepted items are stored, in order, gap-free, and found by search.
    let stored = stored_events(&server.database, &organization);
    let stored_ids: Vec<&str> = stored.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        stored_ids,
        vec![
            data[0]["id"].as_str().expect("id"),
            data[7]["id"].as_str().expect("id")
        ]
    );
    assert_eq!(
        stored
            .iter()
            .map(|(sequence, _, _)| *sequence)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let (status, page) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}&target_ids[]=last"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"][0]["id"], data[7]["id"]);
    let (verified, report) = stele_verify(&server.database);
    assert!(verified, "{report}");
}

#[tokio::test]
async fn batch_items_are_idempotent_on_their_own_keys() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let first_item = keyed(team_event(&organization, "a"), "item-a");
    let (status, first) = send_batch(
        &server,
        vec![first_item.clone(), team_event(&organization, "unkeyed")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first_ids = ids_of(&first);

    // The same keyed item again, reformatted (member order does not matter): same id,
    // stored once; the unkeyed item is a new event each time.
    let mut reordered = serde_json::Map::new();
    reordered.insert("idempotency_key".into(), json!("item-a"));
    reordered.insert("event".into(), first_item["event"].clone());
    reordered.insert("organization_id".into(), json!(organization));
    let (status, second) = send_batch(
        &server,
        vec![
            Value::Object(reordered),
            team_event(&organization, "unkeyed"),
            keyed(team_event(&organization, "different"), "item-a"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let data = results(&second);
    assert_eq!(data[0]["id"].as_str(), first_ids[0].as_deref());
    assert_eq!(data[0]["success"], true);
    assert_eq!(data[1]["success"], true);
    assert_ne!(data[1]["id"].as_str(), first_ids[1].as_deref());
    // Same key, different item: that item fails, the others stand.
    assert_eq!(data[2]["success"], false);
    assert_eq!(data[2]["error"]["code"], "idempotency_key_reused");
    assert_eq!(stored_events(&server.database, &organization).len(), 3);

    // A key first used by a batch item is a different request for the single endpoint.
    let response = server
        .post("/audit_logs/events", &team_event(&organization, "a"))
        .header("Idempotency-Key", "item-a")
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");

    // A key that stored an event, reused for an item its schema refuses: a reuse, not a
    // refusal kept in quarantine (accepting that would store a second event under it).
    let (status, reused) = send_batch(
        &server,
        vec![keyed(
            event(&organization, "user.unknown", None, json!([])),
            "item-a",
        )],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reused}");
    assert_eq!(
        reused["data"][0]["error"]["code"], "idempotency_key_reused",
        "{reused}"
    );
    let (status, quarantine) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/quarantine"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{quarantine}");
    assert_eq!(quarantine["data"], json!([]), "{quarantine}");

    // A refused keyed item records nothing: once the problem is fixed, the key works.
    let unknown_action = keyed(
        event(&organization, "user.invited", None, json!([])),
        "later",
    );
    let (_, refused) = send_batch(&server, vec![unknown_action.clone()]).await;
    assert_eq!(
        refused["data"][0]["error"]["code"],
        "invalid_audit_log_event"
    );
    let (status, created) = server.create_schema("user.invited", &seed_v1()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, accepted) = send_batch(&server, vec![unknown_action]).await;
    assert_eq!(accepted["data"][0]["success"], true, "{accepted}");
}

#[tokio::test]
async fn duplicate_keys_within_one_batch_store_the_item_once() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let item = keyed(team_event(&organization, "dup"), "same-key");
    let (status, body) = send_batch(
        &server,
        vec![
            item.clone(),
            item,
            keyed(team_event(&organization, "other"), "same-key"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = results(&body);
    assert_eq!(data[0]["success"], true);
    assert_eq!(data[1]["success"], true);
    assert_eq!(data[0]["id"], data[1]["id"]);
    assert_eq!(data[2]["success"], false);
    assert_eq!(data[2]["error"]["code"], "idempotency_key_reused");
    let stored = stored_events(&server.database, &organization);
    assert_eq!(stored.len(), 1);
    assert_eq!(Some(stored[0].1.as_str()), data[0]["id"].as_str());
}

#[tokio::test]
async fn a_request_idempotency_key_keys_each_unkeyed_item_by_position() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let items = json!({"events": [
        team_event(&organization, "one"),
        keyed(team_event(&organization, "two"), "own-key"),
        team_event(&organization, "three"),
    ]});
    let send = || async {
        read(
            server
                .post("/audit_logs/events/batch", &items)
                .header("Idempotency-Key", "whole-request")
                .send()
                .await
                .expect("request"),
        )
        .await
    };
    // Two concurrent requests with one key, then a retry: every item is stored once.
    let ((status_a, a), (status_b, b)) = tokio::join!(send(), send());
    assert_eq!((status_a, status_b), (StatusCode::OK, StatusCode::OK));
    let (status, retried) = send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&a), ids_of(&b));
    assert_eq!(ids_of(&a), ids_of(&retried));
    assert!(ids_of(&a).iter().all(Option::is_some), "{a}");
    assert_eq!(stored_events(&server.database, &organization).len(), 3);
}

#[tokio::test]
async fn batch_refuses_a_request_outside_its_limits_and_stores_nothing() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let over_count: Vec<Value> = (0..1001)
        .map(|index| team_event(&organization, &format!("t{index}")))
        .collect();
    for (body, field) in [
        (json!({"events": []}), "events"),
        (json!({"events": over_count}), "events"),
        (json!({"events": {"not": "a list"}}), "events"),
        (json!({}), "events"),
        (json!([team_event(&organization, "bare list")]), "body"),
    ] {
        let (status, answer) = read(
            server
                .post("/audit_logs/events/batch", &body)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["code"], "validation_failed");
        assert_eq!(answer["errors"][0]["field"], field, "{answer}");
    }
    assert_eq!(stored_events(&server.database, &organization).len(), 0);

    let server = TestServer::start_with(&[
        "--body-limit-bytes",
        "2000",
        "--batch-body-limit-bytes",
        "20000",
    ])
    .await;
    let organization = setup_on(&server).await;
    // Above the general limit but within the batch's: accepted.
    let items: Vec<Value> = (0..12)
        .map(|index| team_event(&organization, &format!("fits{index}")))
        .collect();
    let (status, body) = send_batch(&server, items).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(results(&body).len(), 12);
    // Above the batch limit: 413, nothing stored.
    let items: Vec<Value> = (0..100)
        .map(|index| team_event(&organization, &format!("big{index}")))
        .collect();
    let (status, body) = send_batch(&server, items).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["message"].as_str().expect("message").contains("20000"));
    // The single create keeps the general limit.
    let mut large = team_event(&organization, "single");
    large["event"]["metadata"] =
        json!({"note": "x".repeat(400), "more": "y".repeat(400), "most": "z".repeat(400)});
    large["event"]["actor"]["name"] = json!("n".repeat(1000));
    let (status, _) = server.create_event(&large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(stored_events(&server.database, &organization).len(), 12);
}

#[tokio::test]
async fn batch_of_a_thousand_commits_in_order() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let items: Vec<Value> = (0..1000)
        .map(|index| team_event(&organization, &format!("k{index}")))
        .collect();
    let (status, body) = send_batch(&server, items).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = ids_of(&body)
        .into_iter()
        .map(|id| id.expect("id"))
        .collect();
    let stored = stored_events(&server.database, &organization);
    assert_eq!(stored.len(), 1000);
    // Items take consecutive sequences in the order they were sent.
    for ((sequence, id, _), (index, sent)) in stored.iter().zip(ids.iter().enumerate()) {
        assert_eq!(*sequence, index as i64 + 1);
        assert_eq!(id, sent);
    }
}

#[tokio::test]
async fn batch_is_in_the_openapi_document_with_every_status() {
    let server = TestServer::start().await;
    let (_, document) = read(server.get("/openapi.json").send().await.expect("request")).await;
    let operation = &document["paths"]["/audit_logs/events/batch"]["post"];
    for status in ["200", "400", "413", "422"] {
        assert!(
            operation["responses"].get(status).is_some(),
            "missing {status}: {operation}"
        );
    }
    assert!(operation["requestBody"].is_object());
}

/// The two examples of docs/batch-ingest.md, run as written with `node` and `python3`
/// against a real server.
#[tokio::test]
async fn documented_fetch_and_requests_examples_work() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let page = include_str!("../../../../docs/batch-ingest.md");
    for (language, program) in [("javascript", "node"), ("python", "python3")] {
        let fence = format!("```{language}\n");
        let start = page.find(&fence).expect("example in the page") + fence.len();
        let code = &page[start..];
        let code = &code[..code.find("```").expect("closing fence")];
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(if program == "node" {
            "example.mjs"
        } else {
            "example.py"
        });
        std::fs::write(&file, code).expect("write example");
        let output = tokio::process::Command::new(program)
            .arg(&file)
            .env("STELE_URL", &server.base)
            .env("STELE_API_KEY", API_KEY)
            .env("ORGANIZATION_ID", &organization)
            .output()
            .await
            .unwrap_or_else(|error| panic!("{program} must be installed: {error}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{program}: {stdout}\n{stderr}");
        assert!(stdout.contains("stored 2 of 3"), "{program}: {stdout}");
        assert!(
            stdout.contains("invalid_audit_log_event"),
            "{program}: {stdout}"
        );
    }
    // Each run stored its two valid events.
    assert_eq!(stored_events(&server.database, &organization).len(), 4);
}

/// Read-your-writes: every item of an answered batch is found by search at once, while
/// other clients keep writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_are_searchable_the_moment_the_batch_is_answered_under_load() {
    let server = TestServer::start().await;
    let organization = setup_on(&server).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|writer| {
            let (client, base, organization, stop) = (
                server.client.clone(),
                server.base.clone(),
                organization.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut index = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    index += 1;
                    let response = client
                        .post(format!("{base}/audit_logs/events"))
                        .bearer_auth(API_KEY)
                        .json(&team_event(
                            &organization,
                            &format!("load-{writer}-{index}"),
                        ))
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for round in 0..20 {
        let items: Vec<Value> = (0..20)
            .map(|index| team_event(&organization, &format!("ryw-{round}-{index}")))
            .collect();
        let (status, body) = send_batch(&server, items).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids = ids_of(&body);
        for index in [0, 19] {
            let (status, page) = read(
                server
                    .get(&format!(
                        "/audit_logs/events?organization_id={organization}&target_ids[]=ryw-{round}-{index}"
                    ))
                    .send()
                    .await
                    .expect("request"),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                page["data"][0]["id"].as_str(),
                ids[index].as_deref(),
                "round {round} item {index}: {page}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in load {
        writer.await.expect("load writer");
    }
}
