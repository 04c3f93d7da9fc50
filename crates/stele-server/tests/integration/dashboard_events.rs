//! The dashboard's organization page, events viewer, event detail and Export button over
//! plain HTTP: sign-in required, CSRF on the forms, filters that narrow like the search
//! API, keyset "load more" links, the stored hash on the detail page, and the CSV download.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::dashboard::{location, Browser};
use crate::support::{read, TestServer};

/// An organization with `count` events whose fields vary by index (as in the search tests):
/// even indexes are `user.signed_in`, odd ones `doc.viewed`; actor `user_{i % 3}` named
/// `User {i % 3}`; targets `team_{i % 4}` (team) and `doc_{i}` (document); occurred on
/// day i + 1 of January 2024.
/// A server whose background checkpoint job waits an hour, so what a page says about
/// checkpoint coverage depends only on what the test does, however slow the machine.
async fn populated(count: usize) -> (TestServer, String) {
    let server = TestServer::start_with(&["--checkpoint-interval-secs", "3600"]).await;
    let organization = server.create_organization("Acme").await;
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
            "occurred_at": format!("2024-01-{:02}T12:00:00.000Z", index % 28 + 1),
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

async fn signed_in(server: &TestServer) -> Browser {
    let mut browser = Browser::new(server);
    browser.login().await;
    browser
}

/// Status and HTML of a dashboard page.
async fn page(browser: &mut Browser, path: &str) -> (StatusCode, String) {
    let response = browser.get(path).await;
    (response.status(), response.text().await.expect("body"))
}

/// Event ids of the viewer's rows, in page order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("data-event-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The href of the "Load more" link, unescaped (askama writes `&` as `&#38;`).
fn load_more(html: &str) -> Option<String> {
    let start = html.find("data-load-more href=\"")? + "data-load-more href=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&#38;", "&"))
}

/// Ids of the events the search API returns for `query` (up to 100, newest first).
async fn api_ids(server: &TestServer, organization: &str, query: &str) -> Vec<String> {
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}&limit=100&{query}"
            ))
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

fn fields(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

async fn retention(server: &TestServer, organization: &str) -> Value {
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
    assert_eq!(status, StatusCode::OK);
    body["retention_period_in_days"].clone()
}

#[tokio::test]
async fn organization_and_event_pages_require_a_session() {
    let (server, organization) = populated(1).await;
    let event = api_ids(&server, &organization, "").await.remove(0);
    let mut browser = Browser::new(&server);
    for path in [
        format!("/dashboard/organizations/{organization}"),
        format!("/dashboard/organizations/{organization}/events"),
        format!("/dashboard/organizations/{organization}/events?actions=doc.viewed"),
        format!("/dashboard/organizations/{organization}/events/{event}"),
    ] {
        let response = browser.get(&path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            location(&response)
                .starts_with("/dashboard/login?next=%2Fdashboard%2Forganizations%2F"),
            "{path}: {}",
            location(&response)
        );
    }
    for path in [
        format!("/dashboard/organizations/{organization}/retention"),
        format!("/dashboard/organizations/{organization}/exports"),
    ] {
        let response = browser
            .post_form(&path, &[("retention_period_in_days", "30")])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            location(&response).starts_with("/dashboard/login"),
            "{path}"
        );
    }
    assert_eq!(retention(&server, &organization).await, Value::Null);
}

#[tokio::test]
async fn retention_form_without_the_csrf_token_is_refused_and_changes_nothing() {
    let (server, organization) = populated(0).await;
    let mut browser = signed_in(&server).await;
    let path = format!("/dashboard/organizations/{organization}/retention");
    for form in [
        vec![("retention_period_in_days", "30"), ("intent", "set")],
        vec![
            ("retention_period_in_days", "30"),
            ("intent", "set"),
            ("csrf_token", "forged"),
        ],
    ] {
        let response = browser.post_form(&path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response
            .text()
            .await
            .expect("body")
            .contains("security token"));
    }
    assert_eq!(retention(&server, &organization).await, Value::Null);
}

#[tokio::test]
async fn retention_form_sets_and_clears_the_period_and_rejects_invalid_days() {
    let (server, organization) = populated(0).await;
    let mut browser = signed_in(&server).await;
    let page_path = format!("/dashboard/organizations/{organization}");
    let form_path = format!("{page_path}/retention");
    let (status, html) = page(&mut browser, &page_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("kept forever"), "{html}");
    let token = browser.csrf_token().await;

    let response = browser
        .post_form(
            &form_path,
            &[
                ("csrf_token", &token),
                ("retention_period_in_days", "90"),
                ("intent", "set"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("{page_path}?saved=1"));
    assert_eq!(retention(&server, &organization).await, json!(90));
    let (_, html) = page(&mut browser, &format!("{page_path}?saved=1")).await;
    assert!(html.contains("Retention saved."));
    assert!(html.contains("<strong>90 days</strong>"), "{html}");

    for bad in ["0", "3651", "-5", "1.5", "thirty", ""] {
        let response = browser
            .post_form(
                &form_path,
                &[
                    ("csrf_token", &token),
                    ("retention_period_in_days", bad),
                    ("intent", "set"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let html = response.text().await.expect("body");
        assert!(
            html.contains("Retention must be a whole number of days from 1 to 3,650"),
            "{bad}: {html}"
        );
        assert!(html.contains("role=\"alert\""));
        assert_eq!(
            retention(&server, &organization).await,
            json!(90),
            "{bad} changed nothing"
        );
    }

    let response = browser
        .post_form(
            &form_path,
            &[
                ("csrf_token", &token),
                ("retention_period_in_days", "90"),
                ("intent", "clear"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(retention(&server, &organization).await, Value::Null);

    let (status, _) = page(&mut browser, "/dashboard/organizations/org_missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn viewer_filters_narrow_the_results_like_the_search_api() {
    let (server, organization) = populated(12).await;
    let mut browser = signed_in(&server).await;
    let viewer = format!("/dashboard/organizations/{organization}/events");
    let (status, html) = page(&mut browser, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    let all = row_ids(&html);
    assert_eq!(
        all,
        api_ids(&server, &organization, "").await,
        "newest first"
    );
    assert_eq!(all.len(), 12);
    assert!(load_more(&html).is_none(), "one page holds twelve events");

    // (viewer query, equivalent API query, expected number of events)
    let cases = [
        ("actions=user.signed_in", "actions=user.signed_in", 6),
        (
            "actions=user.signed_in%2C+doc.viewed",
            "actions=user.signed_in&actions=doc.viewed",
            12,
        ),
        ("actor_ids=user_1", "actor_ids=user_1", 4),
        ("actor_names=User+2", "actor_names=User%202", 4),
        ("target_ids=team_1", "target_ids=team_1", 3),
        ("target_types=document", "target_types=document", 12),
        ("target_types=folder", "target_types=folder", 0),
        (
            "range_start=2024-01-03T00%3A00&range_end=2024-01-05",
            "range_start=2024-01-03T00:00:00Z&range_end=2024-01-05T23:59:59.999Z",
            3,
        ),
        (
            "actions=user.signed_in&actor_ids=user_0%2Cuser_1&range_end=2024-01-10T12%3A00",
            "actions=user.signed_in&actor_ids=user_0&actor_ids=user_1&range_end=2024-01-10T12:00:59.999Z",
            3,
        ),
    ];
    for (viewer_query, api_query, expected) in cases {
        let (status, html) = page(&mut browser, &format!("{viewer}?{viewer_query}")).await;
        assert_eq!(status, StatusCode::OK, "{viewer_query}");
        let shown = row_ids(&html);
        assert_eq!(shown.len(), expected, "{viewer_query}");
        assert_eq!(
            shown,
            api_ids(&server, &organization, api_query).await,
            "{viewer_query}"
        );
        if expected == 0 {
            assert!(html.contains("No events match these filters."));
        }
    }

    let (status, html) = page(&mut browser, &format!("{viewer}?range_start=yesterday")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("“From” is not a date and time"), "{html}");
    assert!(row_ids(&html).is_empty());
    let (status, html) = page(
        &mut browser,
        &format!("{viewer}?range_start=2024-01-05&range_end=2024-01-04"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("later than"), "{html}");

    let other = server.create_organization("Globex").await;
    let (_, html) = page(
        &mut browser,
        &format!("/dashboard/organizations/{other}/events"),
    )
    .await;
    assert!(row_ids(&html).is_empty(), "another organization's events");
    let (status, _) = page(&mut browser, "/dashboard/organizations/org_missing/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn load_more_links_carry_the_cursor_and_the_filters() {
    let (server, organization) = populated(110).await;
    let mut browser = signed_in(&server).await;
    let viewer = format!("/dashboard/organizations/{organization}/events");

    let mut seen = Vec::new();
    let mut next = Some(viewer.clone());
    let mut pages = 0;
    while let Some(path) = next {
        let (status, html) = page(&mut browser, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        seen.extend(row_ids(&html));
        next = load_more(&html);
        if let Some(link) = &next {
            assert!(link.contains("after="), "{link}");
        }
        pages += 1;
        // New events arriving between pages must not repeat or shift anything.
        let (status, _) = server
            .create_event(&json!({"organization_id": organization, "event": {
                "action": "user.signed_in", "occurred_at": "2024-02-01T00:00:00.000Z",
                "actor": {"id": "late", "type": "user"}, "targets": [], "context": {"location": "10.0.0.2"}
            }}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(pages, 3, "50 + 50 + 10");
    assert_eq!(seen.len(), 110);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 110, "no event shown twice");

    let (_, html) = page(&mut browser, &format!("{viewer}?actions=doc.viewed")).await;
    assert_eq!(row_ids(&html).len(), 50);
    let link = load_more(&html).expect("more doc.viewed events");
    assert!(link.contains("actions=doc.viewed"), "{link}");
    let (_, html) = page(&mut browser, &link).await;
    let rest = row_ids(&html);
    assert_eq!(rest.len(), 5);
    assert!(load_more(&html).is_none());
    assert!(html.contains("Back to the newest"));

    let (status, html) = page(&mut browser, &format!("{viewer}?after=not-a-cursor")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("link is damaged"));
}

#[tokio::test]
async fn event_detail_shows_the_stored_json_version_sequence_and_hash() {
    let (server, organization) = populated(3).await;
    let mut browser = signed_in(&server).await;
    let rows = server.database.query(&format!(
        "SELECT id, sequence, version, canonical, hash FROM events WHERE organization_id = '{organization}' AND sequence = 2"
    ));
    let row = rows.first().expect("stored event");
    let (id, sequence, version, canonical, hash) = (
        row[0].text(),
        row[1].integer(),
        row[2].integer(),
        row[3].bytes(),
        row[4].bytes(),
    );
    let (status, html) = page(
        &mut browser,
        &format!("/dashboard/organizations/{organization}/events/{id}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!(
            "<code class=\"hash\" id=\"event-hash\">{}</code>",
            hex::encode(&hash)
        )),
        "{html}"
    );
    assert!(html.contains(&format!("<dd id=\"event-sequence\">{sequence}</dd>")));
    assert!(html.contains(&format!("<dd id=\"event-version\">{version}</dd>")));
    let stored: Value = serde_json::from_slice(&canonical).expect("stored JSON");
    let pretty = serde_json::to_string_pretty(&stored)
        .expect("pretty")
        .replace('"', "&#34;");
    assert!(
        html.contains(&pretty),
        "the full stored JSON, pretty-printed: {html}"
    );
    assert!(html.contains("received_at"));

    // The viewer's rows link to it.
    let (_, list) = page(
        &mut browser,
        &format!("/dashboard/organizations/{organization}/events"),
    )
    .await;
    assert!(list.contains(&format!(
        "/dashboard/organizations/{organization}/events/{id}"
    )));

    // One organization's link never reaches another's event.
    let other = server.create_organization("Globex").await;
    let (status, _) = page(
        &mut browser,
        &format!("/dashboard/organizations/{other}/events/{id}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(
        &mut browser,
        &format!("/dashboard/organizations/{organization}/events/audit_log_event_missing"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn export_button_downloads_a_csv_of_the_filtered_events() {
    let (server, organization) = populated(9).await;
    let mut browser = signed_in(&server).await;
    let path = format!("/dashboard/organizations/{organization}/exports");
    let form = |token: &str| {
        vec![
            ("csrf_token".to_owned(), token.to_owned()),
            ("actions".to_owned(), "user.signed_in".to_owned()),
            ("actor_ids".to_owned(), "user_0, user_2".to_owned()),
            ("range_start".to_owned(), "2024-01-01T00:00".to_owned()),
            ("range_end".to_owned(), "2024-01-07T23:59:59".to_owned()),
        ]
    };
    let exports_count = || {
        server
            .database
            .query_one("SELECT COUNT(*) FROM exports")
            .integer()
    };

    for token in ["", "forged"] {
        let response = browser.post_form(&path, &fields(&form(token))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(exports_count(), 0, "no export without the CSRF token");

    let token = browser.csrf_token().await;
    let response = browser.post_form(&path, &fields(&form(&token))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let download = location(&response);
    assert!(
        download.starts_with("/audit_logs/exports/audit_log_export_")
            && download.contains("/download?expires=")
            && download.contains("&signature="),
        "{download}"
    );
    assert_eq!(exports_count(), 1);

    // The signed link needs no session or API key.
    let file = server
        .client
        .get(format!("{}{download}", server.base))
        .send()
        .await
        .expect("download");
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .starts_with("text/csv"));
    let text = file.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let id_column = headers
        .iter()
        .position(|name| name == "id")
        .expect("id column");
    let mut exported: Vec<String> = reader
        .records()
        .map(|record| record.expect("row")[id_column].to_owned())
        .collect();
    exported.sort();
    // Even indexes 0..=6 (days 1..=7) whose actor is user_0 or user_2: indexes 0, 2, 6.
    let mut expected = api_ids(
        &server,
        &organization,
        "actions=user.signed_in&actor_ids=user_0&actor_ids=user_2&range_start=2024-01-01T00:00:00Z&range_end=2024-01-07T23:59:59.999Z",
    )
    .await;
    expected.sort();
    assert_eq!(expected.len(), 3);
    assert_eq!(exported, expected);

    // A backwards range is explained on the page and creates nothing.
    let backwards = [
        ("csrf_token", token.as_str()),
        ("range_start", "2024-01-07T00:00"),
        ("range_end", "2024-01-01T00:00"),
    ];
    let response = browser.post_form(&path, &backwards).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("body").contains("later than"));
    assert_eq!(exports_count(), 1);
}

#[tokio::test]
async fn event_detail_shows_checkpoint_coverage_and_serves_a_verifiable_proof_bundle() {
    let (server, organization) = populated(3).await;
    let mut browser = signed_in(&server).await;
    let id = server
        .database
        .query_one(&format!(
            "SELECT id FROM events WHERE organization_id = '{organization}' AND sequence = 2"
        ))
        .text();
    let detail = format!("/dashboard/organizations/{organization}/events/{id}");
    let (status, html) = page(&mut browser, &detail).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Not yet covered"), "{html}");

    // Downloading the bundle signs a checkpoint; the page then shows the coverage.
    let response = browser.get(&format!("{detail}/proof")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bundle = response.text().await.expect("bundle");
    let key_text = html
        .split("<code class=\"hash\" id=\"verifier-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the page shows the public key");
    let key = stele_core::note::NoteVerifier::parse(key_text).expect("a verifier key");
    let verified = stele_core::proven_jsonl::verify(&bundle, &[key]).expect("bundle verifies");
    assert_eq!(verified.label, format!("event {id}"));
    let (_, html) = page(&mut browser, &detail).await;
    assert!(
        html.contains("Covered</span> by the signed checkpoint of the first 3 events"),
        "{html}"
    );

    // Without a session there is no bundle, only the sign-in page.
    let anonymous = server
        .client
        .get(format!("{}{detail}/proof", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.url().path(), "/dashboard/login");
    assert!(!anonymous
        .text()
        .await
        .expect("body")
        .contains("\"checkpoint\""));
}

#[tokio::test]
async fn the_events_page_says_it_sorts_by_received_time() {
    let (server, organization) = populated(2).await;
    let mut browser = signed_in(&server).await;
    let (status, html) = page(
        &mut browser,
        &format!("/dashboard/organizations/{organization}/events"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Newest received first") && html.contains("order of the Occurred times"),
        "{html}"
    );
}

#[tokio::test]
async fn the_viewer_lists_by_occurred_time_when_asked_and_pages_like_the_search_api() {
    // 60 events whose occurred days repeat every 28: stored order and occurred order differ.
    let (server, organization) = populated(60).await;
    let mut browser = signed_in(&server).await;
    let viewer = format!("/dashboard/organizations/{organization}/events");
    let expected = api_ids(&server, &organization, "order_by=occurred_at").await;
    assert_eq!(expected.len(), 60);
    assert_ne!(
        expected,
        api_ids(&server, &organization, "").await,
        "the two orders differ on this data"
    );

    let (status, html) = page(&mut browser, &format!("{viewer}?order_by=occurred_at")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<option value="occurred_at" selected>"#),
        "the form keeps the chosen order"
    );
    let mut seen = row_ids(&html);
    assert_eq!(seen.len(), 50);
    let link = load_more(&html).expect("a second page");
    assert!(link.contains("order_by=occurred_at"), "{link}");
    let (status, html) = page(&mut browser, &link).await;
    assert_eq!(status, StatusCode::OK);
    seen.extend(row_ids(&html));
    assert!(load_more(&html).is_none());
    assert_eq!(seen, expected, "the viewer's pages are the API's order");

    // A stored-order cursor is not an occurred-time one, and an unknown order is refused.
    for query in ["order_by=occurred_at&after=12", "order_by=received_at"] {
        let (status, html) = page(&mut browser, &format!("{viewer}?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(html.contains("role=\"alert\""), "{query}");
    }
}
