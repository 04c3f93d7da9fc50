//! Scoped API keys, organization restrictions and the activity log, over HTTP on the
//! configured backend.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stele_core::access::{grants_from_names, KeyGrants, Scope, ACTIVITY_LOG_ORGANIZATION_ID};
use stele_server::api::access::ROUTE_ACCESS;

use crate::dashboard::Browser;
use crate::support::{
    activity_of, event, execute_sql, read, seed_v1, stele_binary, stele_verify, TestServer, API_KEY,
};

/// A key with exactly `grants`; returns its secret.
async fn key_with(server: &TestServer, name: &str, grants: KeyGrants) -> String {
    server
        .state
        .api_keys
        .create(name, None, grants)
        .await
        .expect("key created")
        .1
}

async fn key(server: &TestServer, scopes: &[&str], organizations: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    let organizations: Vec<String> = organizations.iter().map(|id| (*id).to_owned()).collect();
    let grants = grants_from_names(&scopes, &organizations).expect("valid grants");
    key_with(server, &scopes.join("+"), grants).await
}

async fn call(
    server: &TestServer,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(secret);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json || !response.status().is_success() {
        read(response).await
    } else {
        // Downloads (proof bundles) are not JSON.
        (response.status(), Value::Null)
    }
}

/// An organization with one event and one export, and what each route template needs.
struct Fixture {
    organization_id: String,
    external_id: String,
    event_id: String,
    export_id: String,
}

async fn fixture(server: &TestServer) -> Fixture {
    let external_id = format!("ext-{}", server.base.rsplit(':').next().unwrap_or("0"));
    let (status, organization) = read(
        server
            .post(
                "/organizations",
                &json!({"name": "Scoped", "external_id": external_id}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{organization}");
    let organization_id = organization["id"].as_str().expect("id").to_owned();
    server.create_schema("user.signed_in", &seed_v1()).await;
    let (status, created) = server
        .create_event(&event(
            &organization_id,
            "user.signed_in",
            None,
            json!([{"id": "team_1", "type": "team"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, export) = read(
        server
            .post("/audit_logs/exports", &export_body(&organization_id))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    Fixture {
        organization_id,
        external_id,
        event_id: created["id"].as_str().expect("event id").to_owned(),
        export_id: export["id"].as_str().expect("export id").to_owned(),
    }
}

fn export_body(organization_id: &str) -> Value {
    json!({
        "organization_id": organization_id,
        "range_start": "2000-01-01T00:00:00Z",
        "range_end": "2100-01-01T00:00:00Z"
    })
}

/// A concrete path and body for a route template.
fn request_for(
    method: &str,
    template: &str,
    fixture: &Fixture,
    organization_id: &str,
) -> (String, Option<Value>) {
    let mut path = template
        .replace("{action}", "user.signed_in")
        .replace("{event_id}", &fixture.event_id)
        .replace("{external_id}", &fixture.external_id);
    path = if template.starts_with("/audit_logs/exports/{id}") {
        path.replace("{id}", &fixture.export_id)
    } else {
        path.replace("{id}", organization_id)
    };
    if template == "/audit_logs/events" && method == "GET" {
        path = format!("{path}?organization_id={organization_id}");
    }
    let body = match (method, template) {
        ("GET" | "DELETE", _) => None,
        ("POST", "/organizations") => Some(json!({"name": "Made by a scoped key"})),
        ("PUT", "/organizations/{id}") => Some(json!({"name": "Renamed by a scoped key"})),
        ("POST", path) if path.starts_with("/audit_logs/actions/") => Some(seed_v1()),
        ("POST", "/audit_logs/events" | "/audit_logs/events/validate") => Some(event(
            organization_id,
            "user.signed_in",
            None,
            json!([{"id": "team_1", "type": "team"}]),
        )),
        ("POST", "/audit_logs/exports") => Some(export_body(organization_id)),
        ("PUT", "/organizations/{id}/audit_logs_retention") => {
            Some(json!({"retention_period_in_days": 3650}))
        }
        // Routes added later get a body naming the organization.
        _ => Some(json!({"organization_id": organization_id})),
    };
    (path, body)
}

/// Every route of the access table, tried with a key of each single scope: 403 `forbidden`
/// naming a needed scope exactly when the table says the scope is not enough.
#[tokio::test]
async fn every_route_answers_403_exactly_to_scopes_the_table_does_not_grant() {
    let server = TestServer::start().await;
    let fixture = fixture(&server).await;
    let mut secrets = Vec::new();
    for scope in Scope::ALL {
        let grants = KeyGrants {
            scopes: vec![scope],
            organizations: Vec::new(),
        };
        secrets.push((scope, key_with(&server, scope.as_str(), grants).await));
    }
    let mut tried = 0;
    for rule in ROUTE_ACCESS {
        if rule.scopes.is_empty() {
            // Public routes: no key needed at all.
            let (path, _) = request_for(rule.method, rule.path, &fixture, &fixture.organization_id);
            let response = server
                .client
                .request(
                    Method::from_bytes(rule.method.as_bytes()).expect("method"),
                    format!("{}{path}", server.base),
                )
                .send()
                .await
                .expect("request");
            assert_ne!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{} {}",
                rule.method,
                rule.path
            );
            continue;
        }
        for (scope, secret) in &secrets {
            // Deleting consumes its organization: each try gets a fresh one.
            let organization_id = if rule.method == "DELETE" {
                server.create_organization("Doomed").await
            } else {
                fixture.organization_id.clone()
            };
            let (path, body) = request_for(rule.method, rule.path, &fixture, &organization_id);
            let method = Method::from_bytes(rule.method.as_bytes()).expect("method");
            let (status, answer) = call(&server, secret, method, &path, body.as_ref()).await;
            let granted = *scope == Scope::Admin || rule.scopes.contains(scope);
            if granted {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{scope} may call {} {}: {status} {answer}",
                    rule.method,
                    rule.path
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{scope} on {} {}: {answer}",
                    rule.method,
                    rule.path
                );
                assert_eq!(answer["code"], "forbidden", "{answer}");
                let message = answer["message"].as_str().unwrap_or_default();
                assert!(
                    rule.scopes
                        .iter()
                        .any(|needed| message.contains(needed.as_str())),
                    "the 403 names a missing scope: {message}"
                );
            }
            tried += 1;
        }
    }
    assert!(tried >= 5 * 25, "tried {tried} route and scope pairs");
}

#[tokio::test]
async fn an_organization_restricted_key_cannot_reach_another_organization() {
    let server = TestServer::start().await;
    let own = fixture(&server).await;
    let other = server.create_organization("Another tenant").await;
    let (status, other_event) = server
        .create_event(&event(
            &other,
            "user.signed_in",
            None,
            json!([{"id": "t", "type": "team"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let other_event = other_event["id"].as_str().expect("id").to_owned();
    let (_, other_export) = read(
        server
            .post("/audit_logs/exports", &export_body(&other))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let other_export = other_export["id"].as_str().expect("export id").to_owned();
    let restricted = key(&server, &["admin"], &[&own.organization_id]).await;

    // Lists are pinned to the key's organizations.
    let (status, list) = call(
        &server,
        &restricted,
        Method::GET,
        "/organizations?limit=100",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, vec![own.organization_id.as_str()]);

    // Naming another organization: 403 naming it, whether or not it exists.
    let refusals = [
        (Method::GET, format!("/organizations/{other}"), None),
        (
            Method::GET,
            format!("/audit_logs/events?organization_id={other}"),
            None,
        ),
        (
            Method::POST,
            "/audit_logs/events".to_owned(),
            Some(event(&other, "user.signed_in", None, json!([]))),
        ),
        (
            Method::POST,
            "/audit_logs/exports".to_owned(),
            Some(export_body(&other)),
        ),
        (
            Method::PUT,
            format!("/organizations/{other}/audit_logs_retention"),
            Some(json!({"retention_period_in_days": 1})),
        ),
        (
            Method::GET,
            format!("/organizations/{other}/audit_logs/events/{other_event}/proof_bundle"),
            None,
        ),
        (
            Method::GET,
            format!("/organizations/{other}/audit_logs/checkpoint"),
            None,
        ),
        (Method::DELETE, format!("/organizations/{other}"), None),
        (
            Method::GET,
            "/organizations/org_01HZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in refusals {
        let (status, answer) =
            call(&server, &restricted, method.clone(), &path, body.as_ref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "forbidden");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("org_"),
            "{answer}"
        );
    }
    // Resources found by their own id: as unknown as a missing one.
    let (status, answer) = call(
        &server,
        &restricted,
        Method::GET,
        &format!("/audit_logs/exports/{other_export}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = call(
        &server,
        &restricted,
        Method::GET,
        "/organizations/external_id/nope",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A restricted key creates no organization and never reads the activity log.
    let (status, _) = call(
        &server,
        &restricted,
        Method::POST,
        "/organizations",
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &server,
        &restricted,
        Method::GET,
        "/audit_logs/activity",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The attack run's retention sabotage: refused, and the other tenant keeps its events.
    let (_, retention) = read(
        server
            .get(&format!("/organizations/{other}/audit_logs_retention"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(retention["retention_period_in_days"], Value::Null);
    let (status, found) = read(
        server
            .get(&format!("/audit_logs/events?organization_id={other}"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));

    // Its own organization works as before.
    for (method, path, body) in [
        (
            Method::GET,
            format!("/organizations/{}", own.organization_id),
            None,
        ),
        (
            Method::GET,
            format!("/audit_logs/events?organization_id={}", own.organization_id),
            None,
        ),
        (
            Method::GET,
            format!("/audit_logs/exports/{}", own.export_id),
            None,
        ),
        (
            Method::GET,
            format!("/organizations/external_id/{}", own.external_id),
            None,
        ),
        (
            Method::PUT,
            format!(
                "/organizations/{}/audit_logs_retention",
                own.organization_id
            ),
            Some(json!({"retention_period_in_days": 3650})),
        ),
    ] {
        let (status, answer) =
            call(&server, &restricted, method.clone(), &path, body.as_ref()).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
    }

    // An ingest-only key cannot touch retention even of its own organization.
    let ingest = key(&server, &["events:write"], &[&own.organization_id]).await;
    let (status, answer) = call(
        &server,
        &ingest,
        Method::PUT,
        &format!(
            "/organizations/{}/audit_logs_retention",
            own.organization_id
        ),
        Some(&json!({"retention_period_in_days": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("organizations:write"),
        "{answer}"
    );
}

/// The `action` records made by the API key `key_id` on `target`; asserts there is one.
async fn by_key(
    server: &TestServer,
    key_id: &str,
    action: &str,
    target: impl AsRef<str>,
) -> Vec<Value> {
    let target = target.as_ref();
    let found = activity_of(server, action).await;
    assert!(
        found.iter().any(|item| item["actor"]["id"] == key_id
            && item["actor"]["type"] == "api_key"
            && item["targets"]
                .as_array()
                .is_some_and(|targets| targets.iter().any(|t| t["id"] == target))),
        "{action} on {target} by {key_id}: {found:?}"
    );
    found
}

#[tokio::test]
async fn every_operator_action_is_in_the_activity_log_with_its_actor() {
    let server = TestServer::start().await;
    let admin_key = server
        .state
        .api_keys
        .authenticate(API_KEY)
        .await
        .expect("lookup")
        .expect("the test key exists");
    let admin_key_id = admin_key.id.to_string();

    // API actions, each with a request id of its own.
    let (status, organization) = read(
        server
            .post("/organizations", &json!({"name": "Audited"}))
            .header("x-request-id", "req-org-create")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let organization_id = organization["id"].as_str().expect("id").to_owned();
    server.create_schema("user.signed_in", &seed_v1()).await;
    let (_, created) = server
        .create_event(&event(
            &organization_id,
            "user.signed_in",
            None,
            json!([{"id": "t", "type": "team"}]),
        ))
        .await;
    let event_id = created["id"].as_str().expect("id").to_owned();
    let put = |path: String, body: Value| server.request(Method::PUT, &path).json(&body).send();
    assert_eq!(
        put(
            format!("/organizations/{organization_id}"),
            json!({"name": "Audited 2"})
        )
        .await
        .expect("request")
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        put(
            format!("/organizations/{organization_id}/audit_logs_retention"),
            json!({"retention_period_in_days": 30})
        )
        .await
        .expect("request")
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization_id}"
            ))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
    let (status, export) = read(
        server
            .post("/audit_logs/exports", &export_body(&organization_id))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let export_id = export["id"].as_str().expect("id").to_owned();
    let url = export["url"]
        .as_str()
        .expect("ready export has a url")
        .to_owned();
    let download = server.client.get(&url).send().await.expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let _ = download.bytes().await;
    let bundle = server
        .get(&format!(
            "/organizations/{organization_id}/audit_logs/events/{event_id}/proof_bundle"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(bundle.status(), StatusCode::OK);
    let doomed = server.create_organization("Doomed").await;
    assert!(server
        .request(Method::DELETE, &format!("/organizations/{doomed}"))
        .send()
        .await
        .expect("request")
        .status()
        .is_success());

    // Dashboard actions: a failed and a good sign-in, then an API key.
    let mut browser = Browser::new(&server);
    assert_eq!(
        browser
            .try_login("admin", "not-the-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let response = browser
        .post_form(
            "/dashboard/api-keys",
            &[
                ("csrf_token", &csrf),
                ("name", "ingest"),
                ("scope", "events:write"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("events:write"),
        "the key is shown with its scope"
    );

    let created = by_key(
        &server,
        &admin_key_id,
        "organization.created",
        organization_id.clone(),
    )
    .await;
    let record = created
        .iter()
        .find(|item| item["targets"][0]["id"] == organization_id.as_str())
        .expect("record");
    assert_eq!(record["metadata"]["request_id"], "req-org-create");
    assert_eq!(record["context"]["location"], "127.0.0.1");
    assert_eq!(record["organization_id"], ACTIVITY_LOG_ORGANIZATION_ID);
    by_key(
        &server,
        &admin_key_id,
        "organization.updated",
        organization_id.clone(),
    )
    .await;
    by_key(
        &server,
        &admin_key_id,
        "retention.updated",
        organization_id.clone(),
    )
    .await;
    by_key(
        &server,
        &admin_key_id,
        "events.searched",
        organization_id.clone(),
    )
    .await;
    by_key(&server, &admin_key_id, "export.created", export_id.clone()).await;
    by_key(
        &server,
        &admin_key_id,
        "proof_bundle.downloaded",
        event_id.clone(),
    )
    .await;
    by_key(
        &server,
        &admin_key_id,
        "organization.deletion_started",
        doomed.clone(),
    )
    .await;
    by_key(
        &server,
        &admin_key_id,
        "organization.deleted",
        doomed.clone(),
    )
    .await;
    by_key(
        &server,
        &admin_key_id,
        "schema_version.created",
        "user.signed_in@1".to_owned(),
    )
    .await;
    let downloads = activity_of(&server, "export.downloaded").await;
    assert!(
        downloads
            .iter()
            .any(|item| item["actor"]["type"] == "download_link"
                && item["targets"][0]["id"] == export_id.as_str()),
        "{downloads:?}"
    );
    let failed = activity_of(&server, "user.sign_in_failed").await;
    assert!(
        failed
            .iter()
            .any(|item| item["actor"]["name"] == "admin" && item["actor"]["type"] == "anonymous"),
        "{failed:?}"
    );
    let signed_in = activity_of(&server, "user.signed_in").await;
    assert!(
        signed_in
            .iter()
            .any(|item| item["actor"]["name"] == "admin" && item["actor"]["type"] == "user"),
        "{signed_in:?}"
    );
    let keys = activity_of(&server, "api_key.created").await;
    assert!(
        keys.iter()
            .any(|item| item["actor"]["name"] == "admin" && item["targets"][0]["name"] == "ingest"),
        "{keys:?}"
    );
    // Reading the activity log is itself recorded.
    assert!(!activity_of(&server, "activity.searched").await.is_empty());

    // The activity log is proved like any organization's log.
    let item = &created[0];
    let proof = server
        .get(&format!(
            "/organizations/{ACTIVITY_LOG_ORGANIZATION_ID}/audit_logs/events/{}/inclusion_proof",
            item["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(proof.status(), StatusCode::OK, "{:?}", proof.text().await);

    // It is never a customer organization.
    let (_, list) = read(
        server
            .get("/organizations?limit=100")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert!(!list.to_string().contains(ACTIVITY_LOG_ORGANIZATION_ID));
    for (method, path, body) in [
        (
            Method::GET,
            format!("/organizations/{ACTIVITY_LOG_ORGANIZATION_ID}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/organizations/{ACTIVITY_LOG_ORGANIZATION_ID}"),
            None,
        ),
        (
            Method::PUT,
            format!("/organizations/{ACTIVITY_LOG_ORGANIZATION_ID}/audit_logs_retention"),
            Some(json!({"retention_period_in_days": 1})),
        ),
        (
            Method::POST,
            "/audit_logs/events".to_owned(),
            Some(event(
                ACTIVITY_LOG_ORGANIZATION_ID,
                "user.signed_in",
                None,
                json!([]),
            )),
        ),
    ] {
        let (status, answer) = call(&server, API_KEY, method.clone(), &path, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (status, answer) = call(
        &server,
        API_KEY,
        Method::POST,
        "/organizations",
        Some(&json!({"name": "x", "id": ACTIVITY_LOG_ORGANIZATION_ID})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the reserved id is never reused: {answer}"
    );
    // Only admin keys read it.
    let reader = key(&server, &["events:read"], &[]).await;
    let (status, answer) = call(&server, &reader, Method::GET, "/audit_logs/activity", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admin"),
        "{answer}"
    );
    let (status, _) = call(
        &server,
        &reader,
        Method::GET,
        &format!("/audit_logs/events?organization_id={ACTIVITY_LOG_ORGANIZATION_ID}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The dashboard's activity page lists it.
    let page = browser.get("/dashboard/activity").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let location = crate::dashboard::location(&page);
    let page = browser.get(&location).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(
        html.contains("organization.created") && html.contains("user.signed_in"),
        "the activity page lists actions"
    );
}

#[tokio::test]
async fn stele_verify_covers_the_activity_log() {
    let server = TestServer::start().await;
    server.create_organization("Recorded").await;
    let (ok, output) = stele_verify(&server.database);
    assert!(ok, "{output}");
    let rows = server.database.query(&format!(
        "SELECT sequence FROM events WHERE organization_id = '{ACTIVITY_LOG_ORGANIZATION_ID}' ORDER BY sequence"
    ));
    assert!(!rows.is_empty(), "creating the organization was recorded");
    let replace = server.database.dialect(
        "CAST(replace(CAST(canonical AS TEXT), 'Recorded', 'Innocent') AS BLOB)",
        "convert_to(replace(convert_from(canonical, 'UTF8'), 'Recorded', 'Innocent'), 'UTF8')",
    );
    let changed = execute_sql(
        &server.database,
        &format!("UPDATE events SET canonical = {replace} WHERE organization_id = '{ACTIVITY_LOG_ORGANIZATION_ID}'"),
    );
    assert!(changed >= 1);
    let (ok, output) = stele_verify(&server.database);
    assert!(!ok, "tampering with the activity log is detected: {output}");
    assert!(output.contains(ACTIVITY_LOG_ORGANIZATION_ID), "{output}");
}

#[tokio::test]
async fn a_lockout_from_one_address_does_not_lock_admin_out_elsewhere() {
    let server = TestServer::start().await;
    let mut attacker = Browser::from_address(&server, "127.0.0.2".parse().expect("address"));
    for _ in 0..3 {
        assert_eq!(
            attacker.try_login("admin", "wrong-guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attacker.try_login("admin", "wrong-guess").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut operator = Browser::from_address(&server, "127.0.0.3".parse().expect("address"));
    operator.login().await;
}

#[tokio::test]
async fn api_keys_are_created_with_scopes_and_listed_with_them_by_the_cli() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Tenant").await;
    let run = |args: &[&str]| {
        std::process::Command::new(stele_binary())
            .args(["--database-url", server.database.url(), "api-keys"])
            .args(args)
            .output()
            .expect("run stele api-keys")
    };
    let created = run(&[
        "create",
        "--name",
        "billing-ingest",
        "--scope",
        "events:write",
        "--organization",
        &organization,
    ]);
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    let secret = stdout
        .lines()
        .last()
        .expect("secret line")
        .trim()
        .to_owned();
    assert!(secret.starts_with("sk_"), "{stdout}");
    let listed = String::from_utf8_lossy(&run(&["list"]).stdout).into_owned();
    let line = listed
        .lines()
        .find(|line| line.contains("billing-ingest"))
        .expect("listed");
    assert!(
        line.contains("scopes: events:write") && line.contains(&organization),
        "{line}"
    );
    assert!(
        listed
            .lines()
            .any(|line| line.contains("scopes: admin") && line.contains("organizations: all")),
        "{listed}"
    );

    // The key works for what it was given, and only that.
    let (status, _) = call(
        &server,
        &secret,
        Method::POST,
        "/audit_logs/events",
        Some(&event(&organization, "user.signed_in", None, json!([]))),
    )
    .await;
    assert_ne!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &server,
        &secret,
        Method::GET,
        &format!("/audit_logs/events?organization_id={organization}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let bad = run(&["create", "--name", "x", "--scope", "events:delete"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("events:delete"),
        "{bad:?}"
    );
    let unknown = run(&[
        "create",
        "--name",
        "x",
        "--organization",
        "org_01HZZZZZZZZZZZZZZZZZZZZZZZ",
    ]);
    assert!(!unknown.status.success());
    // Both CLI actions are recorded with the command line as actor.
    let found = activity_of(&server, "api_key.created").await;
    assert!(
        found
            .iter()
            .any(|item| item["actor"]["type"] == "cli"
                && item["targets"][0]["name"] == "billing-ingest"),
        "{found:?}"
    );
}

#[tokio::test]
async fn weak_configured_secrets_are_refused_at_start() {
    let database = crate::support::TestDatabase::create_sqlite();
    let serve = |api_key: &str, password: &str| {
        std::process::Command::new(stele_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database.url(),
            ])
            .env("STELE_API_KEY", api_key)
            .env("STELE_ADMIN_PASSWORD", password)
            .env_remove("STELE_DATABASE_URL")
            .output()
            .expect("run stele serve")
    };
    let weak_key = serve("a", "a-strong-enough-password");
    assert!(!weak_key.status.success());
    let stderr = String::from_utf8_lossy(&weak_key.stderr);
    assert!(
        stderr.contains("STELE_API_KEY") && stderr.contains("32"),
        "{stderr}"
    );
    let weak_password = serve(API_KEY, "a");
    assert!(!weak_password.status.success());
    let stderr = String::from_utf8_lossy(&weak_password.stderr);
    assert!(
        stderr.contains("STELE_ADMIN_PASSWORD") && stderr.contains("12"),
        "{stderr}"
    );
}
