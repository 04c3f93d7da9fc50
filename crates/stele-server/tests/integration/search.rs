//! `GET /audit_logs/events`: filters, their combinations, and stable pagination.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{read, TestServer};

/// An organization with events whose fields vary predictably by index.
async fn populated(count: usize) -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Searchable").await;
    for action in ["user.signed_in", "doc.viewed"] {
        let definition = json!({"targets": [{"type": "team"}, {"type": "document"}]});
        assert_eq!(
            server.create_schema(action, &definition).await.0,
            StatusCode::CREATED
        );
    }
    for index in 0..count {
        let body = json!({"organization_id": organization, "event": {
            "action": if index.is_multiple_of(2) { "user.signed_in" } else { "doc.viewed" },
            "occurred_at": format!("2024-01-{:02}T12:00:00.000Z", index + 1),
            "actor": {"id": format!("user_{}", index % 3), "type": "user", "name": format!("User {}", index % 3)},
            "targets": [{"id": format!("team_{}", index % 4), "type": "team"},
                        {"id": format!("doc_{index}"), "type": "document"}],
            "context": {"location": "10.0.0.1"}
        }});
        let (status, response) = server.create_event(&body).await;
        assert_eq!(status, StatusCode::OK, "{response}");
    }
    (server, organization)
}

async fn sequences(server: &TestServer, query: &str) -> Vec<i64> {
    let (status, body) = read(
        server
            .get(&format!("/audit_logs/events?{query}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| event["sequence"].as_i64().expect("sequence"))
        .collect()
}

#[tokio::test]
async fn returns_stored_events_newest_first_with_their_metadata() {
    let (server, organization) = populated(3).await;
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let first = &body["data"][0];
    assert_eq!(first["sequence"], 3);
    assert_eq!(first["version"], 1);
    assert!(first["id"]
        .as_str()
        .expect("id")
        .starts_with("audit_log_event_"));
    assert!(first["received_at"]
        .as_str()
        .expect("received_at")
        .ends_with('Z'));
    assert_eq!(
        first["actor"],
        json!({"id": "user_2", "type": "user", "name": "User 2"})
    );
    assert_eq!(first["occurred_at"], "2024-01-03T12:00:00.000Z");
}

#[tokio::test]
async fn each_filter_narrows_the_results() {
    let (server, org) = populated(12).await;
    let base = format!("organization_id={org}&limit=100&order=asc");
    assert_eq!(
        sequences(&server, &format!("{base}&actions=doc.viewed")).await,
        [2, 4, 6, 8, 10, 12]
    );
    assert_eq!(
        sequences(&server, &format!("{base}&actor_ids=user_0")).await,
        [1, 4, 7, 10]
    );
    assert_eq!(
        sequences(&server, &format!("{base}&actor_names=User%201")).await,
        [2, 5, 8, 11]
    );
    assert_eq!(
        sequences(&server, &format!("{base}&target_ids=team_1")).await,
        [2, 6, 10]
    );
    assert_eq!(
        sequences(&server, &format!("{base}&target_ids=doc_4")).await,
        [5]
    );
    assert_eq!(
        sequences(&server, &format!("{base}&target_types=document"))
            .await
            .len(),
        12
    );
    assert!(sequences(&server, &format!("{base}&target_types=project"))
        .await
        .is_empty());
    assert_eq!(
        sequences(
            &server,
            &format!("{base}&range_start=2024-01-03T00:00:00Z&range_end=2024-01-05T12:00:00.000Z")
        )
        .await,
        [3, 4, 5]
    );
}

#[tokio::test]
async fn filters_combine_with_and_across_fields_and_or_within_one() {
    let (server, org) = populated(12).await;
    let base = format!("organization_id={org}&limit=100&order=asc");
    assert_eq!(
        sequences(
            &server,
            &format!("{base}&actor_ids[]=user_0&actor_ids[]=user_1")
        )
        .await,
        [1, 2, 4, 5, 7, 8, 10, 11]
    );
    assert_eq!(
        sequences(
            &server,
            &format!("{base}&actor_ids=user_0&actions=doc.viewed")
        )
        .await,
        [4, 10]
    );
    assert_eq!(
        sequences(
            &server,
            &format!("{base}&target_ids=team_0&target_ids=team_1&actions=user.signed_in")
        )
        .await,
        [1, 5, 9]
    );
    assert_eq!(
        sequences(
            &server,
            &format!(
                "{base}&target_types=team&actor_names=User%200&range_end=2024-01-07T00:00:00Z"
            )
        )
        .await,
        [1, 4]
    );
}

#[tokio::test]
async fn rejects_missing_organization_and_bad_ranges() {
    let (server, org) = populated(1).await;
    let (status, body) = read(
        server
            .get("/audit_logs/events")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "organization_id");
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={org}&range_start=soon"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "range_start");
    // A range that ends before it starts (the two swapped) is refused, not empty.
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={org}&range_start=2024-02-01T00:00:00Z&range_end=2024-01-01T00:00:00Z"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "range_start");
    // No list hands out a negative sequence cursor.
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={org}&after=-5"
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "after");
    let (status, _) = read(
        server
            .get("/audit_logs/events?organization_id=org_01EHWNCE74X7JSDV0X3SZ3KJNY")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn one_organization_never_sees_another_ones_events() {
    let (server, org) = populated(2).await;
    let other = server.create_organization("Other").await;
    assert!(sequences(&server, &format!("organization_id={other}"))
        .await
        .is_empty());
    assert_eq!(
        sequences(&server, &format!("organization_id={org}")).await,
        [2, 1]
    );
}

#[tokio::test]
async fn pages_never_repeat_or_skip_while_events_arrive() {
    let (server, org) = populated(30).await;
    let writer = {
        let (base, client, org) = (server.base.clone(), server.client.clone(), org.clone());
        tokio::spawn(async move {
            for index in 0..40 {
                let body = json!({"organization_id": org, "event": {
                    "action": "user.signed_in", "occurred_at": "2024-02-01T00:00:00Z",
                    "actor": {"id": "late", "type": "user"}, "targets": [{"id": format!("t{index}"), "type": "team"}],
                    "context": {"location": "10.0.0.2"}}});
                let response = client
                    .post(format!("{base}/audit_logs/events"))
                    .bearer_auth(crate::support::API_KEY)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), StatusCode::OK);
            }
        })
    };
    // Newest first: the walk covers exactly the events up to the first page's newest one.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (_, page) = read(
            server
                .get(&format!(
                    "/audit_logs/events?organization_id={org}&limit=7{cursor}"
                ))
                .send()
                .await
                .expect("request"),
        )
        .await;
        seen.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|event| event["sequence"].as_i64().expect("sequence")),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let top = seen[0];
    assert_eq!(
        seen,
        (1..=top).rev().collect::<Vec<_>>(),
        "no duplicates, no gaps"
    );
    writer.await.expect("writer");

    // Oldest first, walking while nothing is being added: every event exactly once.
    let mut ascending = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (_, page) = read(
            server
                .get(&format!(
                    "/audit_logs/events?organization_id={org}&order=asc&limit=9{cursor}"
                ))
                .send()
                .await
                .expect("request"),
        )
        .await;
        ascending.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|e| e["sequence"].as_i64().expect("sequence")),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(ascending, (1..=70).collect::<Vec<_>>());
    let unique: BTreeSet<i64> = ascending.iter().copied().collect();
    assert_eq!(unique.len(), ascending.len());
}

/// The ids of the first page of a search.
async fn ids(server: &TestServer, query: &str) -> Vec<String> {
    let (status, body) = read(
        server
            .get(&format!("/audit_logs/events?{query}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| event["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Read-your-writes under load: while 16 writers keep the write path busy, each searches
/// for its event by target id, by actor and target type, and by actor and time range the
/// moment the server acknowledges it (on SQLite, before the search indexes hold it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_found_by_search_the_moment_it_is_acknowledged_under_load() {
    let (server, organization) = populated(0).await;
    let server = std::sync::Arc::new(server);
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (server, organization) = (std::sync::Arc::clone(&server), organization.clone());
            tokio::spawn(async move {
                for index in 0..20 {
                    let document = format!("doc_{writer}_{index}");
                    let day = index % 28 + 1;
                    let body = json!({"organization_id": organization, "event": {
                        "action": "doc.viewed",
                        "occurred_at": format!("2024-02-{day:02}T12:00:00.000Z"),
                        "actor": {"id": format!("writer_{writer}"), "type": "user"},
                        "targets": [{"id": "team_shared", "type": "team"},
                                    {"id": document, "type": "document"}],
                        "context": {"location": "10.0.0.1"}
                    }});
                    let (status, response) = server.create_event(&body).await;
                    assert_eq!(status, StatusCode::OK, "{response}");
                    let id = response["id"].as_str().expect("id").to_owned();
                    let base = format!("organization_id={organization}");
                    assert_eq!(
                        ids(&server, &format!("{base}&target_ids={document}")).await,
                        vec![id.clone()]
                    );
                    let newest_document_of_writer = ids(
                        &server,
                        &format!("{base}&actor_ids=writer_{writer}&target_types=document&limit=1"),
                    )
                    .await;
                    assert_eq!(newest_document_of_writer, vec![id.clone()]);
                    let in_range = ids(
                        &server,
                        &format!(
                            "{base}&actor_ids=writer_{writer}&range_start=2024-02-{day:02}T00:00:00Z&range_end=2024-02-{day:02}T23:59:59Z"
                        ),
                    )
                    .await;
                    assert_eq!(in_range, vec![id]);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let all = sequences(
        &server,
        &format!("organization_id={organization}&target_ids=team_shared&limit=100"),
    )
    .await;
    assert_eq!(all.len(), 100, "a full page of the 320 events");
}

/// Every page of a search, following `after` from the first page; returns the events as
/// `(occurred_at, sequence)` and checks each page's `before` cursor leads back to the
/// page before it.
async fn walk_by_occurred_at(server: &TestServer, query: &str) -> Vec<(String, i64)> {
    let page = |cursor: String| {
        let url = format!("/audit_logs/events?{query}&order_by=occurred_at{cursor}");
        async move {
            let (status, body) = read(server.get(&url).send().await.expect("request")).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            body
        }
    };
    let keys = |body: &serde_json::Value| -> Vec<(String, i64)> {
        body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|event| {
                (
                    event["occurred_at"]
                        .as_str()
                        .expect("occurred_at")
                        .to_owned(),
                    event["sequence"].as_i64().expect("sequence"),
                )
            })
            .collect()
    };
    let mut seen = Vec::new();
    let mut previous: Option<Vec<(String, i64)>> = None;
    let mut cursor = String::new();
    loop {
        let body = page(cursor).await;
        let found = keys(&body);
        if let Some(previous) = previous.take() {
            let before = body["list_metadata"]["before"].as_str().expect("before");
            assert_eq!(keys(&page(format!("&before={before}")).await), previous);
        }
        seen.extend(found.clone());
        match body["list_metadata"]["after"].as_str() {
            Some(after) => {
                cursor = format!("&after={after}");
                previous = Some(found);
            }
            None => return seen,
        }
    }
}

#[tokio::test]
async fn order_by_occurred_at_pages_by_time_with_ties_broken_by_sequence() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Timed").await;
    let definition = json!({"targets": [{"type": "team"}]});
    assert_eq!(
        server.create_schema("user.signed_in", &definition).await.0,
        StatusCode::CREATED
    );
    // Stored out of time order, three events to a day: sequence 1 happened on day 7,
    // sequence 2 on day 1, and so on.
    let day_of = |sequence: i64| (sequence * 5) % 7 + 1;
    for sequence in 1..=21 {
        let body = json!({"organization_id": organization, "event": {
            "action": "user.signed_in",
            "occurred_at": format!("2024-03-{:02}T08:00:00.000Z", day_of(sequence)),
            "actor": {"id": format!("user_{}", sequence % 2), "type": "user"},
            "targets": [{"id": "team_1", "type": "team"}],
            "context": {"location": "10.0.0.1"}
        }});
        let (status, response) = server.create_event(&body).await;
        assert_eq!(status, StatusCode::OK, "{response}");
    }
    let expected = |descending: bool, keep: &dyn Fn(i64) -> bool| {
        let mut keys: Vec<(String, i64)> = (1..=21)
            .filter(|sequence| keep(*sequence))
            .map(|sequence| {
                (
                    format!("2024-03-{:02}T08:00:00.000Z", day_of(sequence)),
                    sequence,
                )
            })
            .collect();
        keys.sort();
        if descending {
            keys.reverse();
        }
        keys
    };
    let base = format!("organization_id={organization}");
    assert_eq!(
        walk_by_occurred_at(&server, &format!("{base}&limit=4")).await,
        expected(true, &|_| true)
    );
    assert_eq!(
        walk_by_occurred_at(&server, &format!("{base}&limit=5&order=asc")).await,
        expected(false, &|_| true)
    );
    // A time range and a selective id, in both directions.
    let range = "range_start=2024-03-02T00:00:00Z&range_end=2024-03-05T23:59:59Z";
    let in_range = |sequence: i64| (2..=5).contains(&day_of(sequence));
    assert_eq!(
        walk_by_occurred_at(&server, &format!("{base}&{range}&limit=2")).await,
        expected(true, &in_range)
    );
    assert_eq!(
        walk_by_occurred_at(
            &server,
            &format!("{base}&{range}&actor_ids=user_1&order=asc&limit=2")
        )
        .await,
        expected(false, &|sequence| in_range(sequence) && sequence % 2 == 1)
    );
    // Sequence order stays the default.
    assert_eq!(
        sequences(&server, &format!("{base}&limit=3")).await,
        [21, 20, 19]
    );
}

#[tokio::test]
async fn order_by_occurred_at_cursors_hold_while_events_arrive() {
    let (server, organization) = populated(24).await;
    let base = format!("organization_id={organization}&order_by=occurred_at&limit=5");
    let first = read(
        server
            .get(&format!("/audit_logs/events?{base}"))
            .send()
            .await
            .expect("request"),
    )
    .await
    .1;
    // Events land before, inside and after the part still to be paged.
    for day in [1, 10, 28] {
        let body = json!({"organization_id": organization, "event": {
            "action": "doc.viewed",
            "occurred_at": format!("2024-01-{day:02}T12:00:00.000Z"),
            "actor": {"id": "late", "type": "user"},
            "targets": [{"id": "team_0", "type": "team"}, {"id": "doc_late", "type": "document"}],
            "context": {"location": "10.0.0.2"}
        }});
        assert_eq!(server.create_event(&body).await.0, StatusCode::OK);
    }
    let mut seen: Vec<(String, i64)> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| {
            (
                e["occurred_at"].as_str().expect("occurred_at").to_owned(),
                e["sequence"].as_i64().expect("sequence"),
            )
        })
        .collect();
    let mut after = first["list_metadata"]["after"].as_str().map(str::to_owned);
    while let Some(cursor) = after {
        let (status, page) = read(
            server
                .get(&format!("/audit_logs/events?{base}&after={cursor}"))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["data"].as_array().expect("data").iter().map(|e| {
            (
                e["occurred_at"].as_str().expect("occurred_at").to_owned(),
                e["sequence"].as_i64().expect("sequence"),
            )
        }));
        after = page["list_metadata"]["after"].as_str().map(str::to_owned);
    }
    // Strictly descending by (occurred_at, sequence): no duplicates; every original event
    // is there (no skips), and of the late ones exactly those behind the first page.
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "{seen:?}");
    let originals: BTreeSet<i64> = seen.iter().map(|(_, s)| *s).filter(|s| *s <= 24).collect();
    assert_eq!(originals, (1..=24).collect());
    let late: Vec<i64> = seen.iter().map(|(_, s)| *s).filter(|s| *s > 24).collect();
    assert_eq!(
        late,
        [26, 25],
        "the events of 2024-01-10 and 2024-01-01, not 2024-01-28"
    );
}

#[tokio::test]
async fn order_by_is_checked_and_cursors_belong_to_their_order() {
    let (server, organization) = populated(3).await;
    let status_and_field = |query: String| {
        let (server, organization) = (&server, &organization);
        async move {
            let (status, body) = read(
                server
                    .get(&format!(
                        "/audit_logs/events?organization_id={organization}&{query}"
                    ))
                    .send()
                    .await
                    .expect("request"),
            )
            .await;
            (
                status,
                body["errors"][0]["field"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    assert_eq!(
        status_and_field("order_by=received_at".into()).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "order_by".into())
    );
    // A sequence cursor is not a cursor of the occurred_at order, nor the reverse.
    assert_eq!(
        status_and_field("order_by=occurred_at&after=2".into()).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "after".into())
    );
    assert_eq!(
        status_and_field("after=1704110400000_2".into()).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "after".into())
    );
    assert_eq!(
        status_and_field("order_by=occurred_at&before=1704110400000_2".into())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        status_and_field("order_by=sequence&after=2".into()).await.0,
        StatusCode::OK
    );
}
