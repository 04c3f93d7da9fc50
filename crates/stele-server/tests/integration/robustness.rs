//! Property tests: no request body, however odd, makes the server fail or panic.

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use crate::support::{seed_v1, seed_v2, TestServer};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        Just(json!("2022-09-08T19:46:03.435Z")),
        Just(json!("team")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("id".to_owned()),
                    Just("metadata".to_owned()),
                    ".{0,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A plausible event body with some fields swapped for arbitrary JSON, so the deeper
/// validation stages (schemas, metadata limits) see odd input too.
fn arb_event_body(organization: String) -> impl Strategy<Value = Value> {
    let fields = [
        "action",
        "occurred_at",
        "version",
        "actor",
        "targets",
        "context",
        "metadata",
    ];
    (
        prop::collection::vec((0..fields.len(), arb_json()), 0..4),
        any::<bool>(),
    )
        .prop_map(move |(replacements, v2)| {
            let mut event: Map<String, Value> = serde_json::from_value(json!({
                "action": "user.signed_in",
                "occurred_at": "2022-09-08T19:46:03.435Z",
                "version": if v2 { 2 } else { 1 },
                "actor": {"id": "u", "type": "user", "metadata": {"role": "admin"}},
                "targets": [{"id": "t", "type": "team", "metadata": {"owner": "o"}}],
                "context": {"location": "1.2.3.4"},
                "metadata": {"environment": "prod"}
            }))
            .unwrap_or_default();
            for (index, value) in replacements {
                event.insert(fields[index].to_owned(), value);
            }
            json!({"organization_id": organization, "event": event})
        })
}

const POST_PATHS: [&str; 4] = [
    "/audit_logs/events",
    "/audit_logs/events/validate",
    "/organizations",
    "/audit_logs/actions/prop.test/schemas",
];

#[test]
fn arbitrary_json_bodies_never_cause_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (server, organization) = runtime.block_on(async {
        let server = TestServer::start().await;
        let organization = server.create_organization("Props").await;
        server.create_schema("user.signed_in", &seed_v1()).await;
        server.create_schema("user.signed_in", &seed_v2()).await;
        (server, organization)
    });
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(body in arb_json(), path in 0..POST_PATHS.len())| {
        let status = runtime.block_on(async { server.post(POST_PATHS[path], &body).send().await.expect("request").status() });
        prop_assert!(!status.is_server_error(), "{} {} -> {}", POST_PATHS[path], body, status);
    });
    proptest!(config, |(body in arb_event_body(organization.clone()))| {
        let status = runtime.block_on(async { server.post("/audit_logs/events", &body).send().await.expect("request").status() });
        prop_assert!(
            [StatusCode::OK, StatusCode::CREATED, StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{} -> {}", body, status
        );
    });
}

/// U+0000 fits in SQLite text but not in PostgreSQL's, so it is refused on both, with the
/// field named, and never reaches (or fails) a shared append batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_everywhere_with_the_field_named() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = server.create_organization("Nul").await;
    let body = |actor_id: &str| {
        crate::support::event(
            &organization,
            "user.signed_in",
            None,
            json!([{"id": "team_1", "type": "team"}]),
        )
        .as_object()
        .cloned()
        .map(|mut body| {
            body["event"]["actor"]["id"] = json!(actor_id);
            Value::Object(body)
        })
        .expect("object")
    };
    // A bad event and good ones at the same moment: only the bad one is refused.
    let (bad, good, also_good) = (body("user\u{0}1"), body("user_2"), body("user_3"));
    let (bad, good, also_good) = tokio::join!(
        server.create_event(&bad),
        server.create_event(&good),
        server.create_event(&also_good),
    );
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.1);
    assert_eq!(bad.1["errors"][0]["field"], "event.actor.id", "{}", bad.1);
    assert_eq!(good.0, StatusCode::OK, "{}", good.1);
    assert_eq!(also_good.0, StatusCode::OK, "{}", also_good.1);
    assert_eq!(
        crate::support::stored_events(&server.database, &organization).len(),
        2
    );

    let (status, error) = server
        .create_schema(
            "user.signed_in",
            &json!({"targets": [{"type": "te\u{0}am"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["errors"][0]["field"], "targets[0].type", "{error}");

    for path in [
        format!("/audit_logs/events?organization_id={organization}&actor_ids=user%001"),
        "/organizations/org_%00".to_owned(),
    ] {
        let response = server.get(&path).send().await.expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}"
        );
        let (_, body) = crate::support::read(response).await;
        assert_eq!(body["errors"][0]["field"], "uri", "{path}: {body}");
    }

    // Dashboard forms too (a sign-in attempt here), before any lookup.
    let response = server
        .client
        .post(format!("{}/dashboard/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=ad%00min&password=admin-password")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("NUL character"));
}

/// An offset can put a local time that looks in range outside years 1 to 9999 in UTC,
/// where it could not be stored and written back as RFC 3339: refused with the field named,
/// in events and in search bounds, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_outside_years_1_to_9999_in_utc_are_refused_with_the_field_named() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = server.create_organization("Far future").await;
    for occurred_at in ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"] {
        let mut body = crate::support::event(
            &organization,
            "user.signed_in",
            None,
            json!([{"id": "team_1", "type": "team"}]),
        );
        body["event"]["occurred_at"] = json!(occurred_at);
        let (status, error) = server.create_event(&body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{occurred_at}: {error}"
        );
        assert_eq!(error["errors"][0]["field"], "event.occurred_at", "{error}");
        assert!(
            error["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains("9999-12-31T23:59:59.999Z")),
            "{error}"
        );
    }
    assert!(crate::support::stored_events(&server.database, &organization).is_empty());

    let response = server
        .get(&format!(
            "/audit_logs/events?organization_id={organization}&range_end=9999-12-31T23:59:59-23:59"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, body) = crate::support::read(response).await;
    assert_eq!(body["errors"][0]["field"], "range_end", "{body}");
}

/// Actor and target ids, types and names are indexed; one documented limit on both
/// backends keeps the longest accepted value (four-byte characters included) within
/// PostgreSQL's index entry size, and anything longer is a 422 naming the field, never a
/// 500 on one backend and a 200 on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_and_target_fields_have_one_length_limit_on_both_backends() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let organization = server.create_organization("Long ids").await;
    let longest = "\u{1D11E}".repeat(stele_core::event::MAX_ENTITY_FIELD_CHARS);
    let mut body = crate::support::event(
        &organization,
        "user.signed_in",
        None,
        json!([{"id": longest.clone(), "type": "team", "name": longest.clone()}]),
    );
    body["event"]["actor"]["id"] = json!(longest.clone());
    body["event"]["actor"]["name"] = json!(longest.clone());
    let (status, response) = server.create_event(&body).await;
    assert!(status.is_success(), "{status}: {response}");

    let too_long = format!("{longest}x");
    body["event"]["actor"]["id"] = json!(too_long.clone());
    body["event"]["targets"][0]["name"] = json!(too_long);
    let (status, error) = server.create_event(&body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let fields: Vec<&str> = error["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["event.actor.id", "event.targets[0].name"],
        "{error}"
    );
    assert_eq!(
        crate::support::stored_events(&server.database, &organization).len(),
        1
    );
}

/// Sign-in attempts with new usernames each pass the per-username throttle, and each
/// password check holds 19 MiB: only a few run at once, the rest are refused at once with
/// 429 and `Retry-After`, and the API keeps answering during the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_sign_ins_is_refused_cheaply_and_leaves_the_api_answering() {
    let server = TestServer::start().await;
    let attempts = (0..24).map(|index| {
        let server = &server;
        async move {
            let mut browser = crate::dashboard::Browser::new(server);
            let response = browser
                .try_login(&format!("stranger-{index}"), "not-the-password")
                .await;
            let retry_after = response.headers().get("retry-after").is_some();
            (response.status(), retry_after)
        }
    });
    let api_call = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        server
            .get("/organizations")
            .send()
            .await
            .expect("request")
            .status()
    };
    let (results, api_status) = tokio::join!(futures_util::future::join_all(attempts), api_call);
    let refused = results
        .iter()
        .filter(|(status, retry_after)| *status == StatusCode::TOO_MANY_REQUESTS && *retry_after)
        .count();
    let checked = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused + checked, results.len(), "{results:?}");
    assert!(checked >= 1, "some attempts are checked: {results:?}");
    assert!(
        refused >= 1,
        "attempts beyond the bound are refused: {results:?}"
    );
    assert_eq!(api_status, StatusCode::OK);
}
