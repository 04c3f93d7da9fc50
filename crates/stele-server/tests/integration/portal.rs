//! The Admin Portal over HTTP: links that work once and expire, revocation, organization
//! isolation of every portal URL, CSRF on every portal form, the exports and proofs the
//! portal serves, and the branding and embedding flags.

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE, X_FRAME_OPTIONS};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{read, stele_binary, TestServer};

/// A browser without JavaScript holding at most one portal cookie.
struct PortalBrowser {
    base: String,
    client: Client,
    cookie: Option<String>,
}

impl PortalBrowser {
    fn new(server: &TestServer) -> Self {
        PortalBrowser {
            base: server.base.clone(),
            client: Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    /// Follows a generated link (absolute URL); keeps the cookie it sets.
    async fn open(&mut self, link: &str) -> Response {
        let response = self.client.get(link).send().await.expect("launch");
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let text = set.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap_or_default();
            self.cookie = pair.split_once('=').map(|(_, value)| value.to_owned());
        }
        response
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(token) => request.header("cookie", format!("stele_portal={token}")),
            None => request,
        }
    }

    async fn get(&self, path: &str) -> Response {
        self.with_cookie(self.client.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("GET")
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        (response.status(), response.text().await.expect("body"))
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.with_cookie(self.client.post(format!("{}{path}", self.base)))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// The CSRF token of this session's forms.
    async fn csrf_token(&self) -> String {
        let (status, html) = self.page("/portal/events").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        field_value(&html, "csrf_token").expect("a CSRF field")
    }
}

fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn row_ids(html: &str) -> Vec<String> {
    html.split("data-event-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

async fn generate(server: &TestServer, body: Value) -> (StatusCode, Value) {
    read(
        server
            .post("/portal/generate_link", &body)
            .send()
            .await
            .expect("generate_link"),
    )
    .await
}

async fn link_for(server: &TestServer, organization: &str, user: Option<&str>) -> String {
    let mut body = json!({"organization": organization, "intent": "audit_logs",
                          "return_url": "https://app.example.com/settings"});
    if let Some(user) = user {
        body["external_user_id"] = json!(user);
    }
    let (status, response) = generate(server, body).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    response["link"].as_str().expect("link").to_owned()
}

async fn signed_in(server: &TestServer, organization: &str) -> PortalBrowser {
    let mut browser = PortalBrowser::new(server);
    let link = link_for(server, organization, Some("admin_1")).await;
    let response = browser.open(&link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    browser
}

/// Two organizations with `count` events each (actions alternate between
/// `user.signed_in` and `doc.viewed`, actors `user_{i % 3}`).
async fn two_organizations(count: usize) -> (TestServer, String, String) {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    for action in ["user.signed_in", "doc.viewed"] {
        let (status, _) = server
            .create_schema(action, &json!({"targets": [{"type": "team"}]}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for organization in [&acme, &globex] {
        for index in 0..count {
            let body = json!({"organization_id": organization, "event": {
                "action": if index % 2 == 0 { "user.signed_in" } else { "doc.viewed" },
                "occurred_at": format!("2024-01-{:02}T12:00:00.000Z", index % 28 + 1),
                "actor": {"id": format!("user_{}", index % 3), "type": "user", "name": format!("User {}", index % 3)},
                "targets": [{"id": format!("team_{index}"), "type": "team"}],
                "context": {"location": "10.0.0.1"}
            }});
            let (status, response) = server.create_event(&body).await;
            assert_eq!(status, StatusCode::OK, "{response}");
        }
    }
    (server, acme, globex)
}

async fn event_ids(server: &TestServer, organization: &str) -> Vec<String> {
    event_ids_where(server, organization, "").await
}

/// The ids the search API returns for `organization` with the extra `query` parameters.
async fn event_ids_where(server: &TestServer, organization: &str, query: &str) -> Vec<String> {
    let (status, body) = read(
        server
            .get(&format!(
                "/audit_logs/events?organization_id={organization}&limit=100{query}"
            ))
            .send()
            .await
            .expect("search"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| event["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_link_opens_one_session_once_and_is_stored_only_as_a_hash() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let link = link_for(&server, &organization, Some("admin_1")).await;
    let prefix = format!("{}/portal/launch?secret=", server.base);
    assert!(link.starts_with(&prefix), "{link}");
    let secret = &link[prefix.len()..];
    assert!(secret.len() >= 43, "{secret}");

    let digest: Vec<u8> = Sha256::digest(secret.as_bytes()).to_vec();
    let stored = server.database.query("SELECT token_hash FROM portal_links");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0][0].bytes(),
        digest,
        "only the SHA-256 of the secret is kept"
    );

    let mut browser = PortalBrowser::new(&server);
    let response = browser.open(&link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/portal/events");
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("stele_portal="), "{cookie}");
    for attribute in ["Path=/portal", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let (status, html) = browser.page("/portal/events").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Audit log of Acme"), "{html}");
    assert!(html.contains("Back to app.example.com"), "{html}");

    let mut again = PortalBrowser::new(&server);
    let reused = again.open(&link).await;
    assert_eq!(reused.status(), StatusCode::FORBIDDEN);
    assert!(reused.headers().get(SET_COOKIE).is_none());
    assert!(reused
        .text()
        .await
        .expect("body")
        .contains("can no longer be used"));
    assert_eq!(
        server
            .database
            .query("SELECT token_hash FROM portal_links")
            .len(),
        0
    );
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let link = link_for(&server, &organization, None).await;
    assert_eq!(
        server
            .database
            .execute("UPDATE portal_links SET expires_at = created_at"),
        1
    );
    let mut browser = PortalBrowser::new(&server);
    assert_eq!(browser.open(&link).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get("/portal/events").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let browser = signed_in(&server, &organization).await;
    assert_eq!(browser.get("/portal/events").await.status(), StatusCode::OK);
    server
        .database
        .execute("UPDATE portal_sessions SET expires_at = created_at");
    let (status, html) = browser.page("/portal/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Your portal session has ended"), "{html}");
}

#[tokio::test]
async fn generate_link_refuses_intents_not_served_unknown_organizations_and_bad_fields() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let (status, body) = generate(
        &server,
        json!({"organization": organization, "intent": "sso"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "portal_intent_not_served");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("audit_logs, log_streams"), "{message}");
    assert!(body.get("errors").is_none(), "{body}");

    let (status, body) = generate(
        &server,
        json!({"organization": "org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "intent": "audit_logs"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    for bad in [
        json!({"organization": organization, "intent": "audit_logs", "return_url": "javascript:alert(1)"}),
        json!({"organization": organization, "intent": "audit_logs", "it_contact_emails": ["not an email"]}),
        json!({"organization": organization}),
        json!({"intent": "audit_logs"}),
    ] {
        let (status, body) = generate(&server, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["code"], "validation_failed", "{body}");
    }
    assert_eq!(
        server
            .database
            .query("SELECT token_hash FROM portal_links")
            .len(),
        0,
        "refused requests store nothing"
    );
    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/portal/generate_link", server.base))
        .json(&json!({"organization": organization, "intent": "audit_logs"}))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_idempotency_key_never_replays_a_link() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let mut links = Vec::new();
    for _ in 0..2 {
        let (status, body) = read(
            server
                .post(
                    "/portal/generate_link",
                    &json!({"organization": organization, "intent": "audit_logs"}),
                )
                .header("Idempotency-Key", "same-key")
                .send()
                .await
                .expect("generate"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        links.push(body["link"].as_str().expect("link").to_owned());
    }
    assert_ne!(links[0], links[1]);
    assert_eq!(
        server
            .database
            .query("SELECT scope FROM idempotency_keys")
            .len(),
        0,
        "no response carrying a link secret is stored"
    );
}

#[tokio::test]
async fn revoke_link_ends_the_admins_sessions_and_unopened_links_only() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let admin_1 = signed_in(&server, &acme).await;
    let unopened = link_for(&server, &acme, Some("admin_1")).await;
    let mut admin_2 = PortalBrowser::new(&server);
    let link_2 = link_for(&server, &acme, Some("admin_2")).await;
    admin_2.open(&link_2).await;
    assert_eq!(admin_1.get("/portal/events").await.status(), StatusCode::OK);

    let response = server
        .post(
            "/portal/revoke_link",
            &json!({"organization": acme, "external_user_id": "admin_1"}),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        admin_1.get("/portal/events").await.status(),
        StatusCode::UNAUTHORIZED,
        "the open session ended at once"
    );
    let mut late = PortalBrowser::new(&server);
    assert_eq!(late.open(&unopened).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        admin_2.get("/portal/events").await.status(),
        StatusCode::OK,
        "another admin's session lives on"
    );

    let (status, body) = read(
        server
            .post(
                "/portal/revoke_link",
                &json!({"organization": "org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "external_user_id": "admin_1"}),
            )
            .send()
            .await
            .expect("revoke"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = read(
        server
            .post("/portal/revoke_link", &json!({"organization": acme}))
            .send()
            .await
            .expect("revoke"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "external_user_id");
}

#[tokio::test]
async fn every_portal_url_answers_404_for_another_organizations_ids() {
    let (server, acme, globex) = two_organizations(3).await;
    let acme_events = event_ids(&server, &acme).await;
    let globex_events = event_ids(&server, &globex).await;
    let (status, export) = read(
        server
            .post(
                "/audit_logs/exports",
                &json!({"organization_id": globex, "range_start": "2000-01-01T00:00:00Z", "range_end": "2100-01-01T00:00:00Z"}),
            )
            .send()
            .await
            .expect("export"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    let globex_export = export["id"].as_str().expect("id").to_owned();

    let acme_admin = signed_in(&server, &acme).await;
    let globex_admin = signed_in(&server, &globex).await;

    // Control: each admin reaches their own organization's event, proof and list.
    let own = &acme_events[0];
    for path in [
        format!("/portal/events/{own}"),
        format!("/portal/events/{own}/proof"),
    ] {
        assert_eq!(
            acme_admin.get(&path).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let (_, html) = acme_admin.page("/portal/events").await;
    let mut listed = row_ids(&html);
    listed.sort();
    let mut expected = acme_events.clone();
    expected.sort();
    assert_eq!(listed, expected, "the list shows exactly Acme's events");
    // Filters cannot reach beyond the session's organization either.
    let (_, html) = acme_admin
        .page(&format!(
            "/portal/events?organization_id={globex}&actions=doc.viewed"
        ))
        .await;
    assert!(row_ids(&html).iter().all(|id| acme_events.contains(id)));

    for foreign in &globex_events {
        for path in [
            format!("/portal/events/{foreign}"),
            format!("/portal/events/{foreign}/proof"),
        ] {
            let (status, body) = acme_admin.page(&path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                !body.contains("Globex"),
                "{path} leaks the other organization"
            );
        }
    }
    let (status, _) = acme_admin
        .page(&format!("/portal/exports/{globex_export}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = globex_admin
        .page(&format!("/portal/exports/{globex_export}"))
        .await;
    assert_eq!(status, StatusCode::OK, "the owner can download it");
    // Globex's cookie does not open Acme's ids.
    for path in [
        format!("/portal/events/{own}"),
        format!("/portal/events/{own}/proof"),
    ] {
        assert_eq!(
            globex_admin.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // A portal cookie never opens the operator dashboard or the API.
    let dashboard = acme_admin.get("/dashboard/organizations").await;
    assert_eq!(dashboard.status(), StatusCode::SEE_OTHER);
    assert!(dashboard.headers()[LOCATION]
        .to_str()
        .expect("location")
        .starts_with("/dashboard/login"));
    assert_eq!(
        acme_admin.get("/audit_logs/events").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn portal_forms_refuse_a_missing_or_foreign_csrf_token() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let browser = signed_in(&server, &acme).await;
    let other = signed_in(&server, &globex).await;
    let foreign_token = other.csrf_token().await;
    for token in ["", foreign_token.as_str()] {
        let export = browser
            .post_form(
                "/portal/exports",
                &[("csrf_token", token), ("format", "csv")],
            )
            .await;
        assert_eq!(export.status(), StatusCode::FORBIDDEN);
        let sign_out = browser
            .post_form("/portal/sign-out", &[("csrf_token", token)])
            .await;
        assert_eq!(sign_out.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        server.database.query("SELECT id FROM exports").len(),
        0,
        "no export was created"
    );
    assert_eq!(browser.get("/portal/events").await.status(), StatusCode::OK);
    let token = browser.csrf_token().await;
    let signed_out = browser
        .post_form("/portal/sign-out", &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(signed_out.status(), StatusCode::OK);
    assert!(signed_out.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .contains("Max-Age=0"));
    assert_eq!(
        browser.get("/portal/events").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn portal_filters_page_and_export_only_the_sessions_organization() {
    let (server, acme, _globex) = two_organizations(60).await;
    let browser = signed_in(&server, &acme).await;
    let (status, html) = browser.page("/portal/events").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row_ids(&html).len(), 50);
    let more = html
        .split("data-load-more href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a load more link")
        .replace("&amp;", "&");
    let (_, older) = browser.page(&more).await;
    assert_eq!(row_ids(&older).len(), 10);

    let (_, filtered) = browser
        .page("/portal/events?actions=doc.viewed&actor_ids=user_1")
        .await;
    let filtered_ids = row_ids(&filtered);
    assert_eq!(filtered_ids.len(), 10, "odd indexes with index % 3 == 1");

    let token = browser.csrf_token().await;
    let created = browser
        .post_form(
            "/portal/exports",
            &[
                ("csrf_token", token.as_str()),
                ("format", "csv"),
                ("actions", "doc.viewed"),
                ("actor_ids", "user_1"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let location = created.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(location.starts_with("/portal/exports/"), "{location}");
    let download = browser.get(&location).await;
    assert_eq!(download.status(), StatusCode::OK);
    let csv = download.text().await.expect("csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 10, "{csv}");
    assert!(rows.iter().all(|row| row.contains("doc.viewed")));

    let created = browser
        .post_form(
            "/portal/exports",
            &[("csrf_token", token.as_str()), ("format", "proven_jsonl")],
        )
        .await;
    let location = created.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    let proven = browser.get(&location).await.bytes().await.expect("jsonl");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &proven).expect("write");
    let (_, verify_page) = browser.page("/portal/verify").await;
    let key = verify_page
        .split("id=\"verifier-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the public key on the verify page")
        .to_owned();
    let output = std::process::Command::new(stele_binary())
        .args(["verify-export"])
        .arg(&file)
        .args(["--public-key", &key])
        .output()
        .expect("run stele verify-export");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("OK: 60 events of stele/"), "{stdout}");
    assert!(stdout.contains(&acme), "{stdout}");
}

#[tokio::test]
async fn the_portal_lists_the_sessions_organization_by_occurred_time_when_asked() {
    // 40 events a day apart modulo 28: occurred order differs from stored order.
    let (server, acme, globex) = two_organizations(40).await;
    let browser = signed_in(&server, &acme).await;
    let by_occurred_at = event_ids_where(&server, &acme, "&order_by=occurred_at").await;
    assert_ne!(by_occurred_at, event_ids(&server, &acme).await);

    let (status, html) = browser.page("/portal/events?order_by=occurred_at").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row_ids(&html), by_occurred_at);
    let foreign = event_ids(&server, &globex).await;
    assert!(row_ids(&html).iter().all(|id| !foreign.contains(id)));
}

/// An HTTPS-less receiver on loopback that accepts every delivery.
async fn receiver() -> String {
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(|| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/ingest")
}

async fn log_streams_session(server: &TestServer, organization: &str) -> PortalBrowser {
    let (status, body) = generate(
        server,
        json!({"organization": organization, "intent": "log_streams"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut browser = PortalBrowser::new(server);
    let response = browser.open(body["link"].as_str().expect("link")).await;
    assert_eq!(response.headers()[LOCATION], "/portal/log-streams");
    browser
}

async fn stream_ids(server: &TestServer, organization: &str) -> Vec<String> {
    let (status, body) = read(
        server
            .get(&format!(
                "/organizations/{organization}/audit_logs/log_streams"
            ))
            .send()
            .await
            .expect("list streams"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|stream| stream["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_log_streams_session_adds_tests_and_deletes_only_its_organizations_streams() {
    let server = TestServer::start_with(&["--allow-private-stream-destinations"]).await;
    let endpoint = receiver().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let (status, foreign) = read(
        server
            .post(
                &format!("/organizations/{globex}/audit_logs/log_streams"),
                &json!({"type": "GenericHttps", "endpoint": endpoint}),
            )
            .send()
            .await
            .expect("create stream"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{foreign}");
    let foreign = foreign["id"].as_str().expect("id").to_owned();

    let browser = log_streams_session(&server, &acme).await;
    let (status, html) = browser.page("/portal/log-streams").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"no-streams\""), "{html}");
    assert!(!html.contains(&foreign));
    let token = field_value(&html, "csrf_token").expect("csrf");

    let refused = browser
        .post_form(
            "/portal/log-streams",
            &[("type", "GenericHttps"), ("endpoint", endpoint.as_str())],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let invalid = browser
        .post_form(
            "/portal/log-streams",
            &[("csrf_token", token.as_str()), ("type", "GenericHttps")],
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.text().await.expect("html").contains("endpoint"));
    assert!(
        stream_ids(&server, &acme).await.is_empty(),
        "refusals change nothing"
    );

    let created = browser
        .post_form(
            "/portal/log-streams",
            &[
                ("csrf_token", token.as_str()),
                ("type", "GenericHttps"),
                ("endpoint", endpoint.as_str()),
                ("token", "ignored: not a GenericHttps setting"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let own = stream_ids(&server, &acme).await;
    assert_eq!(own.len(), 1);
    let (_, html) = browser.page("/portal/log-streams").await;
    assert!(
        html.contains(&format!("data-stream-id=\"{}\"", own[0])),
        "{html}"
    );
    assert!(html.contains(&endpoint), "{html}");

    let tested = browser
        .post_form(
            &format!("/portal/log-streams/{}/test", own[0]),
            &[("csrf_token", token.as_str())],
        )
        .await;
    assert_eq!(tested.status(), StatusCode::OK);
    let html = tested.text().await.expect("html");
    assert!(html.contains("accepted the test delivery"), "{html}");

    for action in ["test", "delete"] {
        let response = browser
            .post_form(
                &format!("/portal/log-streams/{foreign}/{action}"),
                &[("csrf_token", token.as_str())],
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(stream_ids(&server, &globex).await, vec![foreign.clone()]);

    let deleted = browser
        .post_form(
            &format!("/portal/log-streams/{}/delete", own[0]),
            &[("csrf_token", token.as_str())],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(stream_ids(&server, &acme).await.is_empty());
    assert_eq!(
        browser.get("/portal/events").await.status(),
        StatusCode::NOT_FOUND,
        "a log streams session does not open the audit log"
    );
    let audit_logs = signed_in(&server, &acme).await;
    assert_eq!(
        audit_logs.get("/portal/log-streams").await.status(),
        StatusCode::NOT_FOUND,
        "an audit log session does not open log streams"
    );
}

#[tokio::test]
async fn portal_pages_refuse_framing_unless_ancestors_are_configured() {
    let server = TestServer::start().await;
    let organization = server.create_organization("Acme").await;
    let browser = signed_in(&server, &organization).await;
    let response = browser.get("/portal/events").await;
    let policy = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("script-src"), "no script at all: {policy}");
    assert_eq!(response.headers()[X_FRAME_OPTIONS], "DENY");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn branding_and_embedding_flags_shape_links_pages_and_cookies() {
    let server = TestServer::start_with(&[
        "--public-url",
        "https://audit.example.com",
        "--portal-product-name",
        "Acme Cloud",
        "--portal-logo-url",
        "https://cdn.example.com/logo.svg",
        "--portal-accent-color",
        "#0A7D5A",
        "--portal-frame-ancestors",
        "https://app.example.com https://admin.example.com",
    ])
    .await;
    let organization = server.create_organization("Initech").await;
    let link = link_for(&server, &organization, None).await;
    assert!(
        link.starts_with("https://audit.example.com/portal/launch?secret="),
        "{link}"
    );
    let local = link.replace("https://audit.example.com", &server.base);
    let mut browser = PortalBrowser::new(&server);
    let response = browser.open(&local).await;
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=None", "Partitioned"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let response = browser.get("/portal/events").await;
    let policy = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        policy.contains("frame-ancestors https://app.example.com https://admin.example.com;"),
        "{policy}"
    );
    assert!(
        policy.contains("img-src 'self' data: https://cdn.example.com;"),
        "{policy}"
    );
    assert!(response.headers().get(X_FRAME_OPTIONS).is_none());
    let html = response.text().await.expect("html");
    assert!(html.contains("Acme Cloud"), "{html}");
    assert!(
        html.contains("src=\"https://cdn.example.com/logo.svg\""),
        "{html}"
    );
    assert!(html.contains("Back to Acme Cloud"), "{html}");
    let css = browser
        .get("/portal/static/brand.css")
        .await
        .text()
        .await
        .expect("css");
    assert!(css.contains("--accent: #0a7d5a"), "{css}");
}

#[tokio::test]
async fn invalid_branding_flags_are_refused_at_start() {
    use clap::Parser;
    for (flag, value) in [
        ("--portal-accent-color", "red"),
        ("--portal-logo-url", "javascript:alert(1)"),
        ("--portal-logo-url", "https://x.example/a\"b"),
        (
            "--portal-frame-ancestors",
            "https://a.example; script-src *",
        ),
        ("--portal-session-ttl-minutes", "0"),
    ] {
        assert!(
            stele_server::config::ServeConfig::try_parse_from(["serve", flag, value]).is_err(),
            "{flag} {value} was accepted"
        );
    }
}

#[tokio::test]
async fn the_portal_routes_are_in_the_openapi_document() {
    let server = TestServer::start().await;
    let (status, document) = read(server.get("/openapi.json").send().await.expect("openapi")).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/portal/generate_link", "/portal/revoke_link"] {
        assert!(document["paths"][path]["post"].is_object(), "{path}");
    }
    let responses = &document["paths"]["/portal/generate_link"]["post"]["responses"];
    for status in ["201", "401", "404", "422"] {
        assert!(responses[status].is_object(), "{status}");
    }
}
