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
            [StatusCode::CREATED, StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{} -> {}", body, status
        );
    });
}
