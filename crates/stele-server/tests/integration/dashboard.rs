//! The dashboard over plain HTTP: sessions and their cookie, CSRF on every form, throttled
//! sign-ins, and saving a schema version from the Edit Event form.

use std::process::Command;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{read, seed_v1, stele_binary, TestServer};

const ADMIN_PASSWORD: &str = "admin-password";

/// A browser without the browser: keeps the cookies the dashboard sets and never follows
/// redirects, so tests can look at them.
pub(crate) struct Browser {
    base: String,
    client: Client,
    pub(crate) cookies: Vec<(String, String)>,
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The value of `name="..." value="..."` in a page (hidden form fields).
pub(crate) fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

impl Browser {
    pub(crate) fn new(server: &TestServer) -> Self {
        Self::at(&server.base)
    }

    /// A browser for the server at `base` (e.g. one replica of several).
    pub(crate) fn at(base: &str) -> Self {
        Browser {
            base: base.to_owned(),
            client: Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    /// A browser whose connections come from `address` (any 127.0.0.0/8 address works on
    /// loopback), to act as a different client.
    pub(crate) fn from_address(server: &TestServer, address: std::net::IpAddr) -> Self {
        Browser {
            client: Client::builder()
                .redirect(Policy::none())
                .local_address(address)
                .build()
                .expect("client"),
            ..Self::new(server)
        }
    }

    fn remember(&mut self, response: &Response) {
        for cookie in set_cookies(response.headers()) {
            let Some((pair, _)) = cookie.split_once(';') else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(known, _)| known != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) async fn get(&mut self, path: &str) -> Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("request");
        self.remember(&response);
        response
    }

    pub(crate) async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_form_with(path, form, &[]).await
    }

    async fn post_form_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        self.remember(&response);
        response
    }

    /// Signs in; returns the POST's response.
    pub(crate) async fn try_login(&mut self, username: &str, password: &str) -> Response {
        let page = self
            .get("/dashboard/login")
            .await
            .text()
            .await
            .expect("body");
        let token = field_value(&page, "csrf_token").expect("login form has a csrf token");
        self.post_form(
            "/dashboard/login",
            &[
                ("csrf_token", &token),
                ("username", username),
                ("password", password),
                ("next", "/dashboard/actions"),
            ],
        )
        .await
    }

    pub(crate) async fn login(&mut self) {
        let response = self.try_login("admin", ADMIN_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/dashboard/actions");
    }

    /// The CSRF token of the signed-in session, read from a page's logout form.
    pub(crate) async fn csrf_token(&mut self) -> String {
        let page = self
            .get("/dashboard/actions")
            .await
            .text()
            .await
            .expect("body");
        field_value(&page, "csrf_token").expect("pages carry the session's csrf token")
    }
}

fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

pub(crate) fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn dashboard_pages_redirect_to_login_without_a_session() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    for path in [
        "/dashboard/actions",
        "/dashboard/organizations",
        "/dashboard/api-keys",
        "/dashboard/actions/user.signed_in/edit",
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            location(&response).starts_with("/dashboard/login?next=%2Fdashboard%2F"),
            "{path}: {}",
            location(&response)
        );
    }
    let posted = browser
        .post_form("/dashboard/organizations", &[("name", "Acme")])
        .await;
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    assert!(location(&posted).starts_with("/dashboard/login"));

    browser
        .cookies
        .push(("stele_session".into(), "forged-token".into()));
    let forged = browser.get("/dashboard/actions").await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);

    let login = browser.get("/dashboard/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    let header = |name: &str| {
        login
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert!(login
        .text()
        .await
        .expect("body")
        .contains("Sign in to Stele"));
}

#[tokio::test]
async fn login_sets_an_http_only_lax_cookie_secure_behind_https() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let response = browser.try_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(response.headers());
    let session = cookies
        .iter()
        .find(|cookie| cookie.starts_with("stele_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/dashboard"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert_eq!(
        browser.get("/dashboard/actions").await.status(),
        StatusCode::OK
    );

    let mut behind_proxy = Browser::new(&server);
    let page = behind_proxy
        .get("/dashboard/login")
        .await
        .text()
        .await
        .expect("body");
    let token = field_value(&page, "csrf_token").expect("token");
    let response = behind_proxy
        .post_form_with(
            "/dashboard/login",
            &[
                ("csrf_token", &token),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let cookies = set_cookies(response.headers());
    assert!(
        cookies
            .iter()
            .any(|cookie| cookie.starts_with("stele_session=") && cookie.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn login_form_without_its_csrf_token_is_refused() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let response = browser
        .post_form(
            "/dashboard/login",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(browser.cookie("stele_session").is_none());
}

#[tokio::test]
async fn state_changing_forms_without_the_csrf_token_are_refused() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    for form in [
        vec![("name", "NoToken")],
        vec![("name", "NoToken"), ("csrf_token", "forged")],
    ] {
        let response = browser.post_form("/dashboard/organizations", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response
            .text()
            .await
            .expect("body")
            .contains("security token"));
    }
    let response = browser
        .post_form("/dashboard/api-keys", &[("name", "no-token")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = browser
        .post_form("/dashboard/logout", &[("csrf_token", "")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, organizations) = read(
        server
            .get("/organizations?search=NoToken")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(organizations["data"], json!([]), "nothing was created");

    let token = browser.csrf_token().await;
    let response = browser
        .post_form(
            "/dashboard/organizations",
            &[("name", "WithToken"), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, organizations) = read(
        server
            .get("/organizations?search=WithToken")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(organizations["data"][0]["name"], "WithToken");
}

#[tokio::test]
async fn sessions_are_stored_hashed_survive_a_restart_and_end_at_logout() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let token = browser.cookie("stele_session").expect("session").to_owned();
    let stored = server
        .database
        .query_one("SELECT token_hash FROM sessions")
        .bytes();
    assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec());

    let server = server.restart().await;
    browser.base = server.base.clone();
    assert_eq!(
        browser.get("/dashboard/actions").await.status(),
        StatusCode::OK,
        "the session survives a restart"
    );

    let csrf = browser.csrf_token().await;
    let response = browser
        .post_form("/dashboard/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/dashboard/login");
    browser
        .cookies
        .push(("stele_session".into(), token.clone()));
    let after = browser.get("/dashboard/actions").await;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old token no longer works"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_down_then_refused() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let response = browser.try_login("admin", "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response
            .text()
            .await
            .expect("body")
            .contains("Wrong username or password."));
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "each failure is answered late"
    );
    let response = browser.try_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    assert!(browser.cookie("stele_session").is_none());
}

#[tokio::test]
async fn edit_event_saves_the_next_version_recording_the_user() {
    let server = TestServer::start().await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let edit = browser
        .get("/dashboard/actions/user.signed_in/edit")
        .await
        .text()
        .await
        .expect("body");
    assert!(edit.contains("name=\"target_type\" value=\"team\""));
    let csrf = field_value(&edit, "csrf_token").expect("csrf");
    let actor_schema =
        r#"{"type": "object", "properties": {"role": {"type": "string"}}, "required": ["role"]}"#;
    let form = |intent: &'static str, reviewed: String| {
        vec![
            ("csrf_token", csrf.clone()),
            ("target_type", "team".to_owned()),
            ("target_metadata", String::new()),
            ("actor_metadata", actor_schema.to_owned()),
            ("event_metadata", String::new()),
            ("intent", intent.to_owned()),
            ("reviewed", reviewed),
        ]
    };
    let review_pairs = form("review", String::new());
    let review_form = borrowed(&review_pairs);
    let review = browser
        .post_form("/dashboard/actions/user.signed_in/edit", &review_form)
        .await;
    assert_eq!(review.status(), StatusCode::OK);
    let review = review.text().await.expect("body");
    assert!(review.contains("Review changes"));
    assert!(
        review.contains("Breaking"),
        "a new required property breaks"
    );
    assert!(review.contains("/actor/metadata/required"));
    let digest = field_value(&review, "reviewed").expect("review digest");

    // Saving something other than what was reviewed asks for a new review.
    let stale_pairs = form("save", "0".repeat(64));
    let stale = borrowed(&stale_pairs);
    let response = browser
        .post_form("/dashboard/actions/user.signed_in/edit", &stale)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("changed after it was reviewed"));

    let save_pairs = form("save", digest);
    let save = borrowed(&save_pairs);
    let response = browser
        .post_form("/dashboard/actions/user.signed_in/edit", &save)
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        "/dashboard/actions/user.signed_in/versions/2?created=1"
    );
    let page = browser
        .get("/dashboard/actions/user.signed_in/versions/2?created=1")
        .await
        .text()
        .await
        .expect("body");
    let page = page.replace("&#34;", "\"").replace("&quot;", "\"");
    assert!(
        page.contains("\"version\": 2"),
        "the snippets emit version 2"
    );

    let (_, versions) = read(
        server
            .get("/audit_logs/actions/user.signed_in/schemas")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(versions["data"][0]["version"], 2);
    assert_eq!(
        versions["data"][0]["actor"]["metadata"]["required"],
        json!(["role"])
    );
    let authors: Vec<String> = server
        .database
        .query("SELECT created_by FROM schema_versions ORDER BY version")
        .iter()
        .map(|row| row[0].text())
        .collect();
    assert_eq!(authors, ["api key default", "user admin"]);
}

#[tokio::test]
async fn saving_an_identical_definition_keeps_the_version() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let base = [
        ("csrf_token", csrf.as_str()),
        ("target_type", "team"),
        ("target_metadata", ""),
        ("actor_metadata", ""),
        ("event_metadata", ""),
    ];
    let mut review_form = base.to_vec();
    review_form.push(("intent", "review"));
    let review = browser
        .post_form("/dashboard/actions/doc.viewed/edit", &review_form)
        .await
        .text()
        .await
        .expect("body");
    assert!(review.contains("No changes"), "identical to v1");
    let digest = field_value(&review, "reviewed").expect("digest");
    let mut save_form = base.to_vec();
    save_form.push(("intent", "save"));
    save_form.push(("reviewed", &digest));
    let response = browser
        .post_form("/dashboard/actions/doc.viewed/edit", &save_form)
        .await;
    assert_eq!(
        location(&response),
        "/dashboard/actions/doc.viewed/versions/1?unchanged=1"
    );
    let page = browser
        .get("/dashboard/actions/doc.viewed/versions/1?unchanged=1")
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("No changes, still <strong>version 1</strong>"));
}

#[tokio::test]
async fn new_event_refuses_an_action_name_outside_the_group_verb_form() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let response = browser
        .post_form(
            "/dashboard/actions/new",
            &[
                ("csrf_token", &csrf),
                ("name", "<script>"),
                ("target_types", "team"),
                ("event_metadata", ""),
                ("actor_metadata", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("is not a valid name: action names are two or more dot-separated segments"),
        "the rule is stated"
    );
    assert!(!page.contains("'<script>'"), "the name is escaped");
    let (_, listed) = read(
        server
            .get("/audit_logs/actions")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(listed["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn edit_event_reports_json_and_meta_schema_errors_inline() {
    let server = TestServer::start().await;
    server.create_schema("doc.viewed", &seed_v1()).await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let page = browser
        .post_form(
            "/dashboard/actions/doc.viewed/edit",
            &[
                ("csrf_token", &csrf),
                ("target_type", "team"),
                (
                    "target_metadata",
                    r#"{"type": "object", "properties": {"owner": {"type": "strin"}}}"#,
                ),
                ("actor_metadata", r#"{"type": "object","#),
                ("event_metadata", ""),
                ("intent", "review"),
            ],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("Not valid JSON at line 1"),
        "parse error shown"
    );
    assert!(
        !page.contains("id=\"review\""),
        "no review while a field is broken"
    );

    let page = browser
        .post_form(
            "/dashboard/actions/doc.viewed/edit",
            &[
                ("csrf_token", &csrf),
                ("target_type", "team"),
                (
                    "target_metadata",
                    r#"{"type": "object", "properties": {"owner": {"type": "strin"}}}"#,
                ),
                ("actor_metadata", ""),
                ("event_metadata", ""),
                ("intent", "review"),
            ],
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("targets[0].metadata is not a valid JSON Schema"),
        "meta-schema error beside the target's editor"
    );
}

#[tokio::test]
async fn api_keys_page_shows_a_new_secret_once_and_revokes() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    let csrf = browser.csrf_token().await;
    let response = browser
        .post_form(
            "/dashboard/api-keys",
            &[("csrf_token", &csrf), ("name", "billing")],
        )
        .await;
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let page = response.text().await.expect("body");
    let start = page.find("id=\"new-secret\">").expect("secret shown") + "id=\"new-secret\">".len();
    let secret = page[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("sk_"));
    let listed = browser
        .get("/dashboard/api-keys")
        .await
        .text()
        .await
        .expect("body");
    assert!(!listed.contains(&secret), "shown only once");
    let api = |secret: String| {
        let client = server.client.clone();
        let url = format!("{}/organizations", server.base);
        async move {
            client
                .get(url)
                .bearer_auth(secret)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    assert_eq!(api(secret.clone()).await, StatusCode::OK);
    let id_start = listed
        .find("/dashboard/api-keys/key_")
        .expect("revoke form")
        + "/dashboard/api-keys/".len();
    let id = listed[id_start..]
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let response = browser
        .post_form(
            &format!("/dashboard/api-keys/{id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(api(secret).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_create_adds_a_dashboard_user_who_can_sign_in() {
    let server = TestServer::start().await;
    let database_url = server.database.url().to_owned();
    let created = Command::new(stele_binary())
        .args([
            "--database-url",
            &database_url,
            "users",
            "create",
            "--username",
            "alice",
        ])
        .output()
        .expect("run stele users create");
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8_lossy(&created.stdout);
    let password = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        password.len() >= 20,
        "a generated password is printed: {stdout}"
    );

    let duplicate = Command::new(stele_binary())
        .args([
            "--database-url",
            &database_url,
            "users",
            "create",
            "--username",
            "alice",
            "--password",
            "long-enough-1",
        ])
        .output()
        .expect("run stele users create");
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));

    let short = Command::new(stele_binary())
        .args([
            "--database-url",
            &database_url,
            "users",
            "create",
            "--username",
            "bob",
            "--password",
            "short",
        ])
        .output()
        .expect("run stele users create");
    assert!(!short.status.success());

    let mut browser = Browser::new(&server);
    let response = browser.try_login("alice", &password).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = browser
        .get("/dashboard/actions")
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("alice"));
}

#[tokio::test]
async fn pages_link_a_favicon_that_is_served() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let login = browser
        .get("/dashboard/login")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        login.contains(r#"<link rel="icon" href="/dashboard/static/favicon.svg""#),
        "{login}"
    );
    let icon = browser.get("/dashboard/static/favicon.svg").await;
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(
        icon.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
        Some("image/svg+xml")
    );
    assert!(icon.text().await.expect("body").starts_with("<svg"));
}

#[tokio::test]
async fn users_set_password_replaces_a_lost_password_and_ends_its_sessions() {
    let server = TestServer::start().await;
    let database_url = server.database.url().to_owned();
    let mut old_session = Browser::new(&server);
    old_session.login().await;
    let set_password = |username: &str, password: Option<&str>| {
        let mut command = Command::new(stele_binary());
        command
            .args(["--database-url", &database_url, "users", "set-password"])
            .args(["--username", username])
            .stdin(std::process::Stdio::null())
            .env_remove("STELE_NEW_PASSWORD");
        if let Some(password) = password {
            command.env("STELE_NEW_PASSWORD", password);
        }
        command.output().expect("run stele users set-password")
    };

    let short = set_password("admin", Some("short"));
    assert!(!short.status.success(), "{short:?}");
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"),
        "{short:?}"
    );
    let unknown = set_password("nobody", Some("long-enough-1"));
    assert!(!unknown.status.success(), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    let no_terminal = set_password("admin", None);
    assert!(!no_terminal.status.success(), "{no_terminal:?}");
    assert!(String::from_utf8_lossy(&no_terminal.stderr).contains("STELE_NEW_PASSWORD"));
    let page = old_session.get("/dashboard/actions").await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "refused resets change nothing"
    );

    let reset = set_password("admin", Some("a-new-password"));
    assert!(reset.status.success(), "{reset:?}");
    let ended = old_session.get("/dashboard/actions").await;
    assert_eq!(
        ended.status(),
        StatusCode::SEE_OTHER,
        "the old session ended"
    );
    assert!(location(&ended).starts_with("/dashboard/login"));
    let mut browser = Browser::new(&server);
    let old = browser.try_login("admin", "admin-password").await;
    assert_ne!(
        old.status(),
        StatusCode::SEE_OTHER,
        "the old password fails"
    );
    let new = browser.try_login("admin", "a-new-password").await;
    assert_eq!(
        new.status(),
        StatusCode::SEE_OTHER,
        "the new password signs in"
    );
}

#[tokio::test]
async fn not_found_pages_keep_the_navigation_when_signed_in() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    browser.login().await;
    for path in [
        "/dashboard/no-such-page",
        "/dashboard/organizations/org_01MISSINGMISSINGMISSING00",
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let html = response.text().await.expect("body");
        assert!(
            html.contains(r#"<nav aria-label="Sections">"#),
            "{path}: {html}"
        );
        assert!(html.contains("Sign out"), "{path}: {html}");
    }
}
