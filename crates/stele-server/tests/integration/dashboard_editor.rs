//! The Edit Event form over plain HTTP: every field's errors in one review, and an impact
//! count that agrees with the verdict (events the latest version accepts that the proposal
//! rejects; nothing alarming when nothing changes).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::dashboard::Browser;
use crate::support::{event, seed_v1, TestServer};

/// The text of a JSON field's status line (its inline error), found by the field's id.
fn field_status<'a>(page: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}-status\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no status line for {id}"));
    let start = start + page[start..].find('>').expect("status line opens") + 1;
    let end = start + page[start..].find("</p>").expect("status line closes");
    &page[start..end]
}

/// Posts the Edit Event form with `intent` "review" and returns the page. `targets` are
/// (type, metadata schema) pairs.
async fn review(
    browser: &mut Browser,
    action: &str,
    targets: &[(&str, &str)],
    actor_metadata: &str,
    event_metadata: &str,
) -> String {
    let csrf = browser.csrf_token().await;
    let mut form = vec![("csrf_token", csrf.as_str())];
    for (kind, metadata) in targets {
        form.extend([("target_type", *kind), ("target_metadata", *metadata)]);
    }
    form.extend([
        ("actor_metadata", actor_metadata),
        ("event_metadata", event_metadata),
        ("intent", "review"),
    ]);
    let response = browser
        .post_form(&format!("/dashboard/actions/{action}/edit"), &form)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

#[tokio::test]
async fn edit_event_shows_every_fields_errors_in_one_review() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let page = review(
        &mut browser,
        "doc.viewed",
        &[(
            "team",
            r#"{"type": "object", "properties": {"owner": {"type": "strin"}}}"#,
        )],
        r#"{"type": "object","#,
        r#"{"type": "objekt"}"#,
    )
    .await;

    assert!(
        field_status(&page, "actor_metadata").starts_with("Not valid JSON at line 1"),
        "the JSON syntax error is shown: {}",
        field_status(&page, "actor_metadata")
    );
    assert!(
        field_status(&page, "target_metadata_0")
            .starts_with("targets[0].metadata is not a valid JSON Schema"),
        "the target's schema error is shown alongside: {}",
        field_status(&page, "target_metadata_0")
    );
    assert!(
        field_status(&page, "event_metadata").starts_with("metadata is not a valid JSON Schema"),
        "the event metadata's schema error is shown alongside: {}",
        field_status(&page, "event_metadata")
    );
    assert!(page.contains("Fix the highlighted fields, then review again."));
    assert!(
        !page.contains("id=\"review\""),
        "no review while a field is broken"
    );
    assert!(
        page.contains(r#"{&#34;type&#34;: &#34;object&#34;,"#)
            || page.contains(r#"{&quot;type&quot;: &quot;object&quot;,"#),
        "the broken text is kept as typed"
    );
}

/// v1 has no metadata schema; v2 types `environment` as a string. Stored: one v1 event
/// that v2 rejects (environment 5), one v1 event that v2 accepts and one v2 event, newest
/// last. Returns their ids in that order.
async fn action_with_events_of_two_versions(server: &TestServer) -> [String; 3] {
    let organization = server.create_organization("Acme").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let mut ids = Vec::new();
    for (version, environment) in [(1, json!(5)), (1, json!("prod")), (2, json!("staging"))] {
        if version == 2 {
            let (status, body) = server.create_schema("user.signed_in", &version_2()).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let mut body = event(
            &organization,
            "user.signed_in",
            Some(version),
            json!([{"id": "t", "type": "team"}]),
        );
        body["event"]["metadata"] = json!({"environment": environment});
        let (status, created) = server.create_event(&body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    ids.try_into().expect("three events")
}

fn version_2() -> Value {
    json!({"targets": [{"type": "team"}],
           "metadata": {"type": "object", "properties": {"environment": {"type": "string"}}}})
}

#[tokio::test]
async fn reviewing_an_unchanged_definition_reports_no_failing_events() {
    let server = TestServer::start().await;
    let [rejected_by_v2, _, _] = action_with_events_of_two_versions(&server).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let unchanged = version_2()["metadata"].to_string();
    let page = review(
        &mut browser,
        "user.signed_in",
        &[("team", "")],
        "",
        &unchanged,
    )
    .await;

    assert!(page.contains("id=\"review\""), "the review is shown");
    assert!(page.contains("No changes"));
    assert!(page.contains("Nothing changes, so no stored event is affected."));
    assert!(!page.contains("would fail"), "no failing count");
    assert!(!page.contains("class=\"failing\""), "nothing in red");
    assert!(!page.contains("Not counted"), "no note about older events");
    assert!(
        !page.contains(&rejected_by_v2),
        "an old event that version 2 already rejects is not shown as an example"
    );
}

#[tokio::test]
async fn review_counts_only_events_the_latest_version_accepts_that_the_proposal_rejects() {
    let server = TestServer::start().await;
    let [rejected_by_v2, accepted_v1, accepted_v2] =
        action_with_events_of_two_versions(&server).await;
    let mut browser = Browser::new(&server);
    browser.login().await;

    // Compatible: one more target type. The v1 event that v2 already rejects is only noted.
    let page = review(
        &mut browser,
        "user.signed_in",
        &[("team", ""), ("folder", "")],
        "",
        &version_2()["metadata"].to_string(),
    )
    .await;
    assert!(page.contains("Backward compatible"), "adding a target type");
    assert!(
        page.contains(
            "<strong class=\"passing\">0</strong> that version 2 accepts would fail version 3."
        ),
        "nothing that version 2 accepts fails"
    );
    assert!(
        page.contains("Not counted: 1 sent under older versions that version 2 already rejects.")
    );
    assert!(!page.contains(&rejected_by_v2));

    // Breaking: a new required property. Both events version 2 accepts fail, including
    // the one sent as v1; the one version 2 already rejects is still not counted.
    let required = json!({"type": "object",
                          "properties": {"environment": {"type": "string"}, "priority": {"type": "number"}},
                          "required": ["priority"]});
    let page = review(
        &mut browser,
        "user.signed_in",
        &[("team", "")],
        "",
        &required.to_string(),
    )
    .await;
    assert!(page.contains("Breaking"));
    assert!(
        page.contains(
            "<strong class=\"failing\">2</strong> that version 2 accepts would fail version 3."
        ),
        "the events version 2 accepts are counted"
    );
    assert!(page
        .contains("2 recently stored event(s) that were valid under version 2 would be rejected"));
    assert!(
        page.contains("Not counted: 1 sent under older versions that version 2 already rejects.")
    );
    assert!(page.contains(&accepted_v1), "examples: {accepted_v1}");
    assert!(page.contains(&accepted_v2), "examples: {accepted_v2}");
    assert!(!page.contains(&rejected_by_v2), "not an example");
}
