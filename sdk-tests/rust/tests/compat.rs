//! Compatibility tests: the official `workos` crate (3.5.0) against a running Stele.
//!
//! Environment (set by the repo's top-level test script, or by hand):
//! - `STELE_BASE_URL`: e.g. `http://127.0.0.1:8080`
//! - `STELE_API_KEY`: an API key the server accepts
//!
//! The SDK's built-in reqwest transport is wrapped in a passive recorder so the tests can
//! also check what went over the wire (method, path, headers, status codes such as 201 vs
//! 200 and 204). The recorder never alters a request or a response.
//!
//! Every test creates its own organization and action names (unique suffix), so the tests
//! are independent and can run in parallel against one shared server.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use workos::audit_logs::{
    CreateEventParams, CreateSchemaParams, ListActionSchemasParams, ListActionsParams,
};
use workos::organizations::{
    CreateOrganizationParams, ListOrganizationsParams, UpdateOrganizationParams,
};
use workos::transport::{
    HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportError,
};
use workos::{
    AuditLogEvent, AuditLogEventActor, AuditLogEventActorMetadataOneOf, AuditLogEventContext,
    AuditLogEventIngestion, AuditLogEventTarget, AuditLogSchema, AuditLogSchemaActorInput,
    AuditLogSchemaInput, AuditLogSchemaTargetInput, Client, Error, OrganizationDomainData,
    OrganizationDomainDataState, OrganizationDomainState, OrganizationInput, PaginationOrder,
    RequestOptions, UpdateOrganization,
};

// ---------------------------------------------------------------------------------------
// Environment and client
// ---------------------------------------------------------------------------------------

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "environment variable {name} is not set: point the Rust SDK suite at a running \
             Stele with STELE_BASE_URL (e.g. http://127.0.0.1:8080) and STELE_API_KEY"
        ),
    }
}

fn base_url() -> String {
    // The SDK builds URLs as `format!("{base}{path}")`, so a trailing slash would give `//`.
    required_env("STELE_BASE_URL")
        .trim_end_matches('/')
        .to_owned()
}

/// One HTTP exchange as seen by the transport.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    url: String,
    request_headers: HashMap<String, String>,
    request_body: Option<Value>,
    status: u16,
    response_headers: HashMap<String, String>,
    response_body: Vec<u8>,
}

impl Exchange {
    fn path(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.url);
        rest.find('/').map(|i| &rest[i..]).unwrap_or("/")
    }

    fn response_json(&self) -> Value {
        serde_json::from_slice(&self.response_body).unwrap_or_else(|e| {
            panic!(
                "{} {}: response body is not JSON ({e}): {:?}",
                self.method,
                self.url,
                String::from_utf8_lossy(&self.response_body)
            )
        })
    }
}

type Log = Arc<Mutex<Vec<Exchange>>>;

/// Passive wrapper around the SDK's own reqwest transport that records each exchange.
struct Recording {
    inner: ReqwestTransport,
    log: Log,
}

fn header_map(headers: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    headers.into_iter().collect()
}

impl HttpTransport for Recording {
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        req: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let method = req.method.to_string();
            let url = req.url.clone();
            let request_headers = header_map(req.headers.iter().map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            }));
            let request_body = req
                .body
                .as_ref()
                .map(|b| serde_json::from_slice(b).expect("the SDK sent a non-JSON body"));
            let resp = self.inner.execute(req).await?;
            let response_headers = header_map(resp.headers.iter().map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            }));
            self.log.lock().expect("recorder lock").push(Exchange {
                method,
                url,
                request_headers,
                request_body,
                status: resp.status.as_u16(),
                response_headers,
                response_body: resp.body.to_vec(),
            });
            Ok(resp)
        })
    }
}

struct Harness {
    client: Client,
    log: Log,
}

impl Harness {
    fn new() -> Self {
        Self::with_key(&required_env("STELE_API_KEY"))
    }

    fn with_key(api_key: &str) -> Self {
        let log: Log = Arc::default();
        let transport = Recording {
            // Same construction the SDK uses for its default transport (30 s timeout).
            inner: ReqwestTransport::with_timeout(Duration::from_secs(30)),
            log: Arc::clone(&log),
        };
        let client = Client::builder()
            .api_key(api_key)
            .base_url(base_url())
            .transport(Arc::new(transport))
            .build();
        Self { client, log }
    }

    /// Number of exchanges recorded so far; pair with [`Self::since`].
    fn mark(&self) -> usize {
        self.log.lock().expect("recorder lock").len()
    }

    /// Exchanges since `mark`; also checks the response conventions every endpoint shares.
    fn since(&self, mark: usize) -> Vec<Exchange> {
        let log = self.log.lock().expect("recorder lock");
        let out = log[mark..].to_vec();
        for ex in &out {
            assert!(
                ex.response_headers
                    .get("x-request-id")
                    .is_some_and(|v| !v.is_empty()),
                "{} {} (status {}): no X-Request-ID header",
                ex.method,
                ex.path(),
                ex.status
            );
            if !ex.response_body.is_empty() {
                let ct = ex
                    .response_headers
                    .get("content-type")
                    .map(String::as_str)
                    .unwrap_or("");
                assert!(
                    ct.starts_with("application/json"),
                    "{} {} (status {}): Content-Type is {ct:?}, expected application/json",
                    ex.method,
                    ex.path(),
                    ex.status
                );
            }
        }
        out
    }

    /// The single exchange since `mark` (fails if the SDK retried or sent nothing).
    fn only(&self, mark: usize) -> Exchange {
        let mut v = self.since(mark);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one HTTP exchange, got {}: {:?}",
            v.len(),
            v.iter()
                .map(|e| format!("{} {} -> {}", e.method, e.path(), e.status))
                .collect::<Vec<_>>()
        );
        v.remove(0)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unwraps an SDK result, printing the full API error (status, code, body) on failure.
fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {}", describe(&e)),
    }
}

/// Expects an SDK call to fail with an API error and returns it.
fn api_err<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an API error, got success: {v:?}"),
        Err(e @ Error::Api(_)) => e,
        Err(e) => panic!("{what}: expected Error::Api, got {}", describe(&e)),
    }
}

fn describe(e: &Error) -> String {
    match e.api() {
        Some(api) => format!(
            "{e} [status={} code={:?} body={}]",
            api.status,
            api.code,
            String::from_utf8_lossy(&api.raw_body)
        ),
        None => format!("{e} ({e:?})"),
    }
}

fn error_body(e: &Error) -> Value {
    let api = e.api().expect("API error");
    serde_json::from_slice(&api.raw_body).unwrap_or_else(|err| {
        panic!(
            "error body is not JSON ({err}): {:?}",
            String::from_utf8_lossy(&api.raw_body)
        )
    })
}

/// RFC 3339 UTC with exactly three fractional digits and `Z`: `2022-09-08T19:46:03.435Z`.
fn assert_timestamp(ts: &str, field: &str) {
    let b = ts.as_bytes();
    let digits_at = |idx: &[usize]| idx.iter().all(|&i| b[i].is_ascii_digit());
    let ok_shape = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && digits_at(&[0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]);
    assert!(
        ok_shape,
        "{field} = {ts:?}: expected RFC 3339 UTC with 3 fractional digits and Z"
    );
}

fn assert_prefixed_id(id: &str, prefix: &str) {
    let ulid = id
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("id {id:?} should start with {prefix:?}"));
    assert_eq!(
        ulid.len(),
        26,
        "id {id:?}: expected {prefix} + 26-character ULID"
    );
    assert!(
        ulid.chars().all(|c| c.is_ascii_alphanumeric()),
        "id {id:?}: ULID part is not alphanumeric"
    );
}

fn json_map(v: Value) -> HashMap<String, Value> {
    serde_json::from_value(v).expect("a JSON object")
}

#[allow(deprecated)] // `domains` is deprecated in the SDK model; we leave it unset.
fn org_input(
    name: &str,
    external_id: Option<&str>,
    metadata: &[(&str, &str)],
) -> OrganizationInput {
    OrganizationInput {
        name: name.to_owned(),
        allow_profiles_outside_organization: None,
        domains: None,
        domain_data: None,
        metadata: (!metadata.is_empty()).then(|| {
            metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
        external_id: external_id.map(str::to_owned),
    }
}

async fn create_org(h: &Harness, label: &str) -> String {
    let name = format!("rust-sdk {label} {}", unique_suffix());
    let org = ok(
        h.client
            .organizations()
            .create_organization(CreateOrganizationParams::new(org_input(&name, None, &[])))
            .await,
        "create_organization",
    );
    org.id
}

fn role_schema() -> Value {
    json!({"type": "object", "properties": {"role": {"type": "string"}}})
}

fn target(type_: &str) -> AuditLogSchemaTargetInput {
    AuditLogSchemaTargetInput {
        type_: type_.to_owned(),
        metadata: None,
    }
}

/// The seed's version 1: target `team`, no metadata schemas.
fn schema_v1() -> AuditLogSchemaInput {
    AuditLogSchemaInput {
        actor: None,
        targets: vec![target("team")],
        metadata: None,
    }
}

/// The seed's version 2: targets `team` and `resource`, actor metadata `role: string`.
fn schema_v2() -> AuditLogSchemaInput {
    AuditLogSchemaInput {
        actor: Some(AuditLogSchemaActorInput {
            metadata: json_map(role_schema()),
        }),
        targets: vec![target("team"), target("resource")],
        metadata: None,
    }
}

async fn create_schema(h: &Harness, action: &str, input: AuditLogSchemaInput) -> AuditLogSchema {
    ok(
        h.client
            .audit_logs()
            .create_schema(action, CreateSchemaParams::new(input))
            .await,
        &format!("create_schema({action})"),
    )
}

/// A fresh action with the seed's versions 1 and 2.
async fn seeded_action(h: &Harness) -> String {
    let action = format!("user.signed_in.rs{}", unique_suffix());
    assert_eq!(create_schema(h, &action, schema_v1()).await.version, 1);
    assert_eq!(create_schema(h, &action, schema_v2()).await.version, 2);
    action
}

fn event_target(type_: &str, id: &str) -> AuditLogEventTarget {
    AuditLogEventTarget {
        id: id.to_owned(),
        type_: type_.to_owned(),
        name: None,
        metadata: None,
    }
}

/// The seed's v2 event: `team` + `resource` targets, context, actor metadata `role`.
fn seed_v2_event(action: &str) -> AuditLogEvent {
    AuditLogEvent {
        action: action.to_owned(),
        occurred_at: "2022-09-08T19:46:03.435Z".to_owned(),
        actor: AuditLogEventActor {
            id: "user_01GBNJC3MX9ZZJW1FSTF4C5938".to_owned(),
            type_: "user".to_owned(),
            name: None,
            metadata: Some(HashMap::from([(
                "role".to_owned(),
                AuditLogEventActorMetadataOneOf::String("admin".to_owned()),
            )])),
        },
        targets: vec![
            event_target("team", "team_01GBNJD4MKHVKJGEWK42JNMBGS"),
            event_target("resource", "resource_01GBTAX2J37BAMB2D8GYDR2CC6"),
        ],
        context: AuditLogEventContext {
            location: "123.123.123.123".to_owned(),
            user_agent: Some("Chrome/104.0.0.0".to_owned()),
        },
        metadata: None,
        version: Some(2),
    }
}

/// A v1 event (version omitted): one `team` target, no actor metadata.
fn v1_event(action: &str, targets: Vec<AuditLogEventTarget>) -> AuditLogEvent {
    AuditLogEvent {
        action: action.to_owned(),
        occurred_at: "2022-09-08T19:46:03.435Z".to_owned(),
        actor: AuditLogEventActor {
            id: "user_01GBNJC3MX9ZZJW1FSTF4C5938".to_owned(),
            type_: "user".to_owned(),
            name: Some("Jane".to_owned()),
            metadata: None,
        },
        targets,
        context: AuditLogEventContext {
            location: "123.123.123.123".to_owned(),
            user_agent: None,
        },
        metadata: None,
        version: None,
    }
}

fn ingestion(org: &str, event: AuditLogEvent) -> CreateEventParams {
    CreateEventParams::new(AuditLogEventIngestion {
        organization_id: org.to_owned(),
        event,
    })
}

fn assert_instance_path(e: &Error, pointer: &str) {
    let body = error_body(e);
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("400 body has no `errors` array: {body}"));
    assert!(
        errors.iter().any(|x| x["instancePath"] == pointer),
        "expected an error with instancePath {pointer:?}, got {body}"
    );
}

// ---------------------------------------------------------------------------------------
// 1. Organizations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn organizations_create_get_list_update_delete() {
    let h = Harness::new();
    let orgs = h.client.organizations();
    let sfx = unique_suffix();
    let name = format!("rust-sdk org {sfx}");
    let external_id = format!("ext-{sfx}");

    // create: POST /organizations -> 201
    let m = h.mark();
    let created = ok(
        orgs.create_organization(CreateOrganizationParams::new(org_input(
            &name,
            Some(&external_id),
            &[("tier", "free")],
        )))
        .await,
        "create_organization",
    );
    let ex = h.only(m);
    assert_eq!((ex.method.as_str(), ex.path()), ("POST", "/organizations"));
    assert_eq!(ex.status, 201, "create organization status");
    assert_eq!(
        ex.request_body,
        Some(json!({"name": name, "external_id": external_id, "metadata": {"tier": "free"}}))
    );
    assert_eq!(created.object, "organization");
    assert_prefixed_id(&created.id, "org_");
    assert_eq!(created.name, name);
    assert!(created.domains.is_empty());
    assert_eq!(
        created.metadata.get("tier").map(String::as_str),
        Some("free")
    );
    assert_eq!(created.external_id.as_deref(), Some(external_id.as_str()));
    assert_timestamp(&created.created_at, "created_at");
    assert_timestamp(&created.updated_at, "updated_at");

    // get: GET /organizations/{id}
    let got = ok(orgs.get_organization(&created.id).await, "get_organization");
    assert_eq!(got.id, created.id);
    assert_eq!(got.name, name);
    assert_eq!(got.external_id.as_deref(), Some(external_id.as_str()));

    // get by external id: GET /organizations/external_id/{external_id}
    let by_ext = ok(
        orgs.get_organization_by_external_id(&external_id).await,
        "get_organization_by_external_id",
    );
    assert_eq!(by_ext.id, created.id);

    // list with search: GET /organizations?limit=10&order=desc&search=...
    let m = h.mark();
    let list = ok(
        orgs.list_organizations(ListOrganizationsParams {
            search: Some(name.clone()),
            ..Default::default()
        })
        .await,
        "list_organizations",
    );
    let ex = h.only(m);
    assert_eq!(ex.method, "GET");
    assert!(
        ex.path().starts_with("/organizations?"),
        "list path {}",
        ex.path()
    );
    assert_eq!(list.object, "list");
    let ids: Vec<&str> = list.data.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec![created.id.as_str()], "search by unique name");
    assert!(list.list_metadata.after.is_none());

    // plain list (no search) also decodes, and contains the org when paged through
    let mut after = None;
    let mut seen = false;
    for _ in 0..1000 {
        let page = ok(
            orgs.list_organizations(ListOrganizationsParams {
                after: after.clone(),
                limit: Some(100),
                ..Default::default()
            })
            .await,
            "list_organizations (paging)",
        );
        assert!(page.data.len() <= 100, "limit=100 returned more rows");
        seen |= page.data.iter().any(|o| o.id == created.id);
        after = page.list_metadata.after;
        if seen || after.is_none() {
            break;
        }
    }
    assert!(seen, "created organization not found by paging the list");

    // update: PUT /organizations/{id}
    let new_name = format!("{name} renamed");
    let m = h.mark();
    #[allow(deprecated)]
    let update = UpdateOrganization {
        name: Some(new_name.clone()),
        allow_profiles_outside_organization: None,
        domains: None,
        domain_data: None,
        stripe_customer_id: Some("cus_rust_sdk".to_owned()),
        metadata: Some(HashMap::from([("tier".to_owned(), "gold".to_owned())])),
        external_id: None,
    };
    let updated = ok(
        orgs.update_organization(&created.id, UpdateOrganizationParams::new(update))
            .await,
        "update_organization",
    );
    let ex = h.only(m);
    assert_eq!(ex.method, "PUT");
    assert_eq!(ex.path(), format!("/organizations/{}", created.id));
    assert_eq!(ex.status, 200);
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.name, new_name);
    assert_eq!(
        updated.metadata.get("tier").map(String::as_str),
        Some("gold")
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(
        updated.updated_at >= created.updated_at,
        "updated_at went backwards"
    );
    assert_eq!(created.stripe_customer_id, None, "absent until set");
    assert_eq!(updated.stripe_customer_id.as_deref(), Some("cus_rust_sdk"));
    let got = ok(
        orgs.get_organization(&created.id).await,
        "get_organization after update",
    );
    assert_eq!(got.name, new_name);
    assert_eq!(got.stripe_customer_id.as_deref(), Some("cus_rust_sdk"));

    // delete: DELETE /organizations/{id} -> 200 (WorkOS's spec), a JSON body the SDK ignores
    let m = h.mark();
    ok(
        orgs.delete_organization(&created.id).await,
        "delete_organization",
    );
    let ex = h.only(m);
    assert_eq!(ex.method, "DELETE");
    assert_eq!(ex.status, 200, "delete organization status");
    assert_eq!(ex.response_json()["deleted"], true);

    // get after delete -> typed 404
    let err = api_err(
        orgs.get_organization(&created.id).await,
        "get_organization after delete",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"), "{}", describe(&err));
    assert!(err.request_id().is_some(), "404 without X-Request-ID");
    let msg = &err.api().expect("api error").message;
    assert!(
        msg.contains(&created.id),
        "404 message should name the organization: {msg:?}"
    );

    // deleting again -> 404 as well
    let err = api_err(
        orgs.delete_organization(&created.id).await,
        "delete_organization twice",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
}

#[tokio::test]
async fn organization_domains_decode_into_sdk_models() {
    let h = Harness::new();
    let sfx = unique_suffix();
    let domain = format!("rs-{sfx}.example.com");
    let mut input = org_input(&format!("rust-sdk domains {sfx}"), None, &[]);
    input.domain_data = Some(vec![OrganizationDomainData {
        domain: domain.clone(),
        state: OrganizationDomainDataState::Verified,
    }]);
    let org = ok(
        h.client
            .organizations()
            .create_organization(CreateOrganizationParams::new(input))
            .await,
        "create_organization with domain_data",
    );
    assert_eq!(org.domains.len(), 1, "domains: {:?}", org.domains);
    let d = &org.domains[0];
    assert_eq!(d.object, "organization_domain");
    assert_prefixed_id(&d.id, "org_domain_");
    assert_eq!(d.organization_id, org.id);
    assert_eq!(d.domain, domain);
    assert!(
        matches!(d.state, Some(OrganizationDomainState::Verified)),
        "state: {:?}",
        d.state
    );
    assert_timestamp(&d.created_at, "domain created_at");
}

/// `ListOrganizationsParams::domains` is sent as `?domains=a.com,b.com` (WorkOS filter).
#[tokio::test]
async fn list_organizations_filters_by_domain() {
    let h = Harness::new();
    let sfx = unique_suffix();
    let domain = format!("rs-filter-{sfx}.example.com");
    let mut input = org_input(&format!("rust-sdk domain filter {sfx}"), None, &[]);
    input.domain_data = Some(vec![OrganizationDomainData {
        domain: domain.clone(),
        state: OrganizationDomainDataState::Verified,
    }]);
    let with_domain = ok(
        h.client
            .organizations()
            .create_organization(CreateOrganizationParams::new(input))
            .await,
        "create_organization with domain_data",
    );
    // a newer organization without that domain
    let other = create_org(&h, "domain filter other").await;

    let m = h.mark();
    let list = ok(
        h.client
            .organizations()
            .list_organizations(ListOrganizationsParams {
                domains: Some(vec![domain.clone()]),
                ..Default::default()
            })
            .await,
        "list_organizations(domains)",
    );
    let ex = h.only(m);
    assert!(
        ex.path().contains(&format!("domains={domain}")),
        "query: {}",
        ex.path()
    );
    let ids: Vec<&str> = list.data.iter().map(|o| o.id.as_str()).collect();
    assert!(
        !ids.contains(&other.as_str()),
        "the domains filter was ignored: an organization without {domain} was returned ({ids:?})"
    );
    assert_eq!(ids, vec![with_domain.id.as_str()]);
}

// ---------------------------------------------------------------------------------------
// 2. Schema versioning (seed flow)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn schema_versions_follow_the_seed_flow() {
    let h = Harness::new();
    let action = format!("user.signed_in.rs{}", unique_suffix());
    let schemas_path = format!("/audit_logs/actions/{action}/schemas");

    // v1: POST /audit_logs/actions/{action}/schemas {"targets":[{"type":"team"}]} -> 201
    let m = h.mark();
    let v1 = create_schema(&h, &action, schema_v1()).await;
    let ex = h.only(m);
    assert_eq!(
        (ex.method.as_str(), ex.path()),
        ("POST", schemas_path.as_str())
    );
    assert_eq!(
        ex.request_body,
        Some(json!({"targets": [{"type": "team"}]}))
    );
    assert_eq!(ex.status, 201, "first version must be created (201)");
    assert_eq!(v1.object, "audit_log_schema");
    assert_eq!(v1.version, 1);
    assert_eq!(
        v1.targets
            .iter()
            .map(|t| t.type_.as_str())
            .collect::<Vec<_>>(),
        ["team"]
    );
    assert!(v1.actor.is_none(), "v1 has no actor schema: {:?}", v1.actor);
    assert!(v1.metadata.is_none());
    assert_timestamp(&v1.created_at, "schema created_at");

    // v2: targets team + resource, actor metadata JSON Schema -> 201, version 2
    let m = h.mark();
    let v2 = create_schema(&h, &action, schema_v2()).await;
    let ex = h.only(m);
    assert_eq!(
        ex.request_body,
        Some(json!({
            "actor": {"metadata": role_schema()},
            "targets": [{"type": "team"}, {"type": "resource"}]
        }))
    );
    assert_eq!(
        ex.status, 201,
        "a changed definition must create a version (201)"
    );
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.targets
            .iter()
            .map(|t| t.type_.as_str())
            .collect::<Vec<_>>(),
        ["team", "resource"]
    );
    let actor = v2.actor.as_ref().expect("v2 must return the actor schema");
    assert_eq!(
        actor.metadata,
        json_map(role_schema()),
        "actor metadata schema must round-trip as JSON Schema"
    );

    // re-submitting v2 -> 200 with the existing version 2
    let m = h.mark();
    let again = create_schema(&h, &action, schema_v2()).await;
    let ex = h.only(m);
    assert_eq!(
        ex.status, 200,
        "identical definition must not create a version"
    );
    assert_eq!(again.version, 2);
    assert_eq!(again.created_at, v2.created_at);

    // list the action's schemas: newest first by default
    let m = h.mark();
    let page = ok(
        h.client
            .audit_logs()
            .list_action_schemas(&action, ListActionSchemasParams::default())
            .await,
        "list_action_schemas",
    );
    let ex = h.only(m);
    assert_eq!(ex.method, "GET");
    assert!(ex.path().starts_with(&format!("{schemas_path}?")));
    assert_eq!(ex.response_json()["object"], "list");
    assert_eq!(
        page.data.iter().map(|s| s.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert!(page.list_metadata.after.is_none());
    assert_eq!(page.data[0].targets.len(), 2);

    // ascending order
    let asc = ok(
        h.client
            .audit_logs()
            .list_action_schemas(
                &action,
                ListActionSchemasParams {
                    order: Some(PaginationOrder::Asc),
                    ..Default::default()
                },
            )
            .await,
        "list_action_schemas asc",
    );
    assert_eq!(
        asc.data.iter().map(|s| s.version).collect::<Vec<_>>(),
        [1, 2]
    );

    // paging with limit=1 walks both versions via `after`
    let first = ok(
        h.client
            .audit_logs()
            .list_action_schemas(
                &action,
                ListActionSchemasParams {
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await,
        "list_action_schemas limit=1",
    );
    assert_eq!(
        first.data.iter().map(|s| s.version).collect::<Vec<_>>(),
        [2]
    );
    let cursor = first
        .list_metadata
        .after
        .clone()
        .expect("limit=1 with 2 versions must return an `after` cursor");
    let second = ok(
        h.client
            .audit_logs()
            .list_action_schemas(
                &action,
                ListActionSchemasParams {
                    limit: Some(1),
                    after: Some(cursor),
                    ..Default::default()
                },
            )
            .await,
        "list_action_schemas limit=1 after",
    );
    assert_eq!(
        second.data.iter().map(|s| s.version).collect::<Vec<_>>(),
        [1]
    );

    // list actions (paged, limit 100): ours carries its latest schema (v2)
    let mut after = None;
    let mut found = None;
    for _ in 0..1000 {
        let page = ok(
            h.client
                .audit_logs()
                .list_actions(ListActionsParams {
                    after: after.clone(),
                    limit: Some(100),
                    ..Default::default()
                })
                .await,
            "list_actions",
        );
        found = page.data.into_iter().find(|a| a.name == action);
        after = page.list_metadata.after;
        if found.is_some() || after.is_none() {
            break;
        }
    }
    let listed = found.unwrap_or_else(|| panic!("action {action} not in list_actions"));
    assert_eq!(listed.object, "audit_log_action");
    assert_eq!(listed.schema.version, 2);
    assert_eq!(listed.schema.targets.len(), 2);
    assert_timestamp(&listed.created_at, "action created_at");
    assert_timestamp(&listed.updated_at, "action updated_at");

    // schemas of an unknown action -> 404
    let err = api_err(
        h.client
            .audit_logs()
            .list_action_schemas(
                &format!("no.such.action.{}", unique_suffix()),
                ListActionSchemasParams::default(),
            )
            .await,
        "list_action_schemas(unknown)",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
}

// ---------------------------------------------------------------------------------------
// 3. Emitting events
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_event_v2_seed_payload_and_v1_without_version() {
    let h = Harness::new();
    let org = create_org(&h, "events").await;
    let action = seeded_action(&h).await;

    // v2 event from the seed: POST /audit_logs/events -> 200 {"success":true,"id":...}
    let m = h.mark();
    let resp = ok(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, seed_v2_event(&action)))
            .await,
        "create_event v2",
    );
    let ex = h.only(m);
    assert_eq!(
        (ex.method.as_str(), ex.path()),
        ("POST", "/audit_logs/events")
    );
    let body = ex.request_body.clone().expect("request body");
    assert_eq!(body["organization_id"], org.as_str());
    assert_eq!(body["event"]["version"], 2);
    assert_eq!(body["event"]["context"]["user_agent"], "Chrome/104.0.0.0");
    assert_eq!(body["event"]["actor"]["metadata"], json!({"role": "admin"}));
    assert_eq!(ex.status, 200, "WorkOS's spec answers 200");
    assert!(resp.success);
    let v2_id = ex.response_json()["id"]
        .as_str()
        .expect("response id")
        .to_owned();
    assert_prefixed_id(&v2_id, "audit_log_event_");

    // v1 event, version omitted from the JSON
    let m = h.mark();
    let resp = ok(
        h.client
            .audit_logs()
            .create_event(ingestion(
                &org,
                v1_event(
                    &action,
                    vec![event_target("team", "team_01GBNJD4MKHVKJGEWK42JNMBGS")],
                ),
            ))
            .await,
        "create_event v1 (version omitted)",
    );
    let ex = h.only(m);
    let body = ex.request_body.clone().expect("request body");
    assert!(
        body["event"].get("version").is_none(),
        "SDK should omit version: {body}"
    );
    assert_eq!(ex.status, 200);
    assert!(resp.success);
    let v1_id = ex.response_json()["id"]
        .as_str()
        .expect("response id")
        .to_owned();
    assert_prefixed_id(&v1_id, "audit_log_event_");
    assert_ne!(v1_id, v2_id);

    // a v2 event may leave out a declared target type
    let mut only_resource = seed_v2_event(&action);
    only_resource.targets = vec![event_target("resource", "resource_x")];
    let resp = ok(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, only_resource))
            .await,
        "create_event v2 with one of two declared targets",
    );
    assert!(resp.success);
}

// ---------------------------------------------------------------------------------------
// 4. Errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_events_and_unknown_organization_give_typed_errors() {
    let h = Harness::new();
    let org = create_org(&h, "invalid").await;
    let action = seeded_action(&h).await;

    // v1 event with the undeclared target type `resource` -> 400 invalid_audit_log_event
    let event = v1_event(
        &action,
        vec![event_target(
            "resource",
            "resource_01GBTAX2J37BAMB2D8GYDR2CC6",
        )],
    );
    let err = api_err(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, event))
            .await,
        "create_event v1 with undeclared target",
    );
    assert_eq!(err.status(), Some(400), "{}", describe(&err));
    assert_eq!(
        err.code(),
        Some("invalid_audit_log_event"),
        "{}",
        describe(&err)
    );
    assert!(err.request_id().is_some());
    assert_eq!(err.api().expect("api").message, "Invalid Audit Log event.");
    assert_instance_path(&err, "/targets/0/type");

    // v2 event whose actor metadata breaks the JSON Schema -> 400 at /actor/metadata/role
    let mut bad_role = seed_v2_event(&action);
    bad_role.actor.metadata = Some(HashMap::from([(
        "role".to_owned(),
        AuditLogEventActorMetadataOneOf::F64(7.0),
    )]));
    let err = api_err(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, bad_role))
            .await,
        "create_event v2 with numeric role",
    );
    assert_eq!(err.status(), Some(400), "{}", describe(&err));
    assert_eq!(err.code(), Some("invalid_audit_log_event"));
    assert_instance_path(&err, "/actor/metadata/role");

    // a version that does not exist -> 400 invalid_audit_log_event
    let mut v3 = seed_v2_event(&action);
    v3.version = Some(3);
    let err = api_err(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, v3))
            .await,
        "create_event version 3",
    );
    assert_eq!(err.status(), Some(400), "{}", describe(&err));
    assert_eq!(err.code(), Some("invalid_audit_log_event"));

    // unknown organization -> 404 not_found
    let missing_org = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let err = api_err(
        h.client
            .audit_logs()
            .create_event(ingestion(missing_org, seed_v2_event(&action)))
            .await,
        "create_event unknown organization",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
    assert_eq!(err.code(), Some("not_found"), "{}", describe(&err));
    let msg = &err.api().expect("api").message;
    assert!(msg.contains(missing_org), "404 message: {msg:?}");
}

/// As WorkOS: deleting an organization deletes its audit events with it (off-boarding and
/// test teardown depend on it); its events are no longer searchable and new ones are 404.
#[tokio::test]
async fn deleting_an_organization_with_events_deletes_them() {
    let h = Harness::new();
    let org = create_org(&h, "delete-with-events").await;
    let action = seeded_action(&h).await;
    for _ in 0..2 {
        ok(
            h.client
                .audit_logs()
                .create_event(ingestion(&org, seed_v2_event(&action)))
                .await,
            "create_event",
        );
    }
    let m = h.mark();
    ok(
        h.client.organizations().delete_organization(&org).await,
        "delete_organization with events",
    );
    let ex = h.only(m);
    assert_eq!(ex.status, 200, "delete organization status");
    assert_eq!(ex.response_json()["purged_events"], 2);
    let err = api_err(
        h.client.organizations().get_organization(&org).await,
        "get_organization after delete",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
    let err = api_err(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, seed_v2_event(&action)))
            .await,
        "create_event after delete",
    );
    assert!(err.is_not_found(), "expected 404, got {}", describe(&err));
}

#[tokio::test]
async fn wrong_api_key_is_unauthorized() {
    let h = Harness::with_key("sk_test_definitely_not_a_key");
    let err = api_err(
        h.client
            .organizations()
            .get_organization("org_01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .await,
        "get_organization with a bad key",
    );
    assert!(
        err.is_unauthorized(),
        "expected 401, got {}",
        describe(&err)
    );
    assert!(err.request_id().is_some());
}

// ---------------------------------------------------------------------------------------
// 5. Idempotency
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_event_idempotency_key_replays_and_rejects_reuse() {
    let h = Harness::new();
    let org = create_org(&h, "idem").await;
    let action = seeded_action(&h).await;
    let key = format!("stele-rust-{}", unique_suffix());
    let opts = RequestOptions::new().idempotency_key(key.clone());

    let mut ids = Vec::new();
    for attempt in 1..=2 {
        let m = h.mark();
        let resp = ok(
            h.client
                .audit_logs()
                .create_event_with_options(ingestion(&org, seed_v2_event(&action)), Some(&opts))
                .await,
            &format!("create_event with idempotency key (attempt {attempt})"),
        );
        let ex = h.only(m);
        assert_eq!(
            ex.request_headers.get("idempotency-key"),
            Some(&key),
            "SDK must send the Idempotency-Key header"
        );
        assert_eq!(
            ex.status, 200,
            "attempt {attempt}: replay keeps the first status"
        );
        assert!(resp.success);
        ids.push(ex.response_json()["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(
        ids[0], ids[1],
        "the retry must replay the first response (same event id), not store a second event"
    );

    // same key, different event -> 400 idempotency_key_reused
    let mut other = seed_v2_event(&action);
    other.actor.id = "user_someone_else".to_owned();
    let err = api_err(
        h.client
            .audit_logs()
            .create_event_with_options(ingestion(&org, other), Some(&opts))
            .await,
        "create_event with a reused idempotency key",
    );
    assert_eq!(err.status(), Some(400), "{}", describe(&err));
    assert_eq!(
        err.code(),
        Some("idempotency_key_reused"),
        "{}",
        describe(&err)
    );

    // a fresh key for the different event works
    let fresh = RequestOptions::new().idempotency_key(format!("{key}-2"));
    let mut other = seed_v2_event(&action);
    other.actor.id = "user_someone_else".to_owned();
    let resp = ok(
        h.client
            .audit_logs()
            .create_event_with_options(ingestion(&org, other), Some(&fresh))
            .await,
        "create_event with a fresh idempotency key",
    );
    assert!(resp.success);
}

// ---------------------------------------------------------------------------------------
// Retention, audit log configuration and exports
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn audit_log_configuration_decodes_into_the_sdk_model() {
    let h = Harness::new();
    let org = create_org(&h, "configuration").await;
    let mark = h.mark();
    let config = ok(
        h.client
            .organizations()
            .get_audit_log_configuration(&org)
            .await,
        "get_audit_log_configuration",
    );
    let ex = h.only(mark);
    assert_eq!(ex.method, "GET");
    assert_eq!(
        ex.path(),
        format!("/organizations/{org}/audit_log_configuration")
    );
    assert_eq!(ex.status, 200);
    // The SDK types `retention_period_in_days` as i64: no retention set is reported as 0.
    assert_eq!(
        ex.response_json(),
        json!({"organization_id": org, "retention_period_in_days": 0, "state": "active"})
    );
    assert_eq!(config.organization_id, org);
    assert_eq!(config.retention_period_in_days, 0);
    assert_eq!(config.state, workos::AuditLogConfigurationState::Active);
    assert!(config.log_stream.is_none());

    ok(
        h.client
            .audit_logs()
            .update_organization_audit_logs_retention(
                &org,
                workos::audit_logs::UpdateOrganizationAuditLogsRetentionParams::new(
                    workos::audit_logs::UpdateOrganizationAuditLogsRetentionParamsBody::new(
                        workos::audit_logs::Retention::Period {
                            retention_period:
                                workos::UpdateAuditLogsRetentionRetentionPeriod::V3Months,
                        },
                    ),
                ),
            )
            .await,
        "update_organization_audit_logs_retention",
    );
    let config = ok(
        h.client
            .organizations()
            .get_audit_log_configuration(&org)
            .await,
        "get_audit_log_configuration after setting retention",
    );
    assert_eq!(config.retention_period_in_days, 90);

    let err = api_err(
        h.client
            .organizations()
            .get_audit_log_configuration("org_01H00000000000000000000000")
            .await,
        "get_audit_log_configuration of an unknown organization",
    );
    assert_eq!(err.status(), Some(404), "{}", describe(&err));
}

#[tokio::test]
async fn retention_reads_and_updates_in_both_body_forms() {
    use workos::audit_logs::{
        Retention, UpdateOrganizationAuditLogsRetentionParams as Params,
        UpdateOrganizationAuditLogsRetentionParamsBody as Body,
    };
    let h = Harness::new();
    let org = create_org(&h, "retention").await;
    let initial = ok(
        h.client
            .audit_logs()
            .get_organization_audit_logs_retention(&org)
            .await,
        "get_organization_audit_logs_retention",
    );
    assert_eq!(initial.retention_period_in_days, None, "kept forever");

    let mark = h.mark();
    let by_days = ok(
        h.client
            .audit_logs()
            .update_organization_audit_logs_retention(
                &org,
                Params::new(Body::new(Retention::PeriodInDays {
                    retention_period_in_days: 365,
                })),
            )
            .await,
        "update retention by days",
    );
    let ex = h.only(mark);
    assert_eq!(ex.method, "PUT");
    assert_eq!(
        ex.path(),
        format!("/organizations/{org}/audit_logs_retention")
    );
    assert_eq!(
        ex.request_body,
        Some(json!({"retention_period_in_days": 365}))
    );
    assert_eq!(by_days.retention_period_in_days, Some(365));

    let by_period = ok(
        h.client
            .audit_logs()
            .update_organization_audit_logs_retention(
                &org,
                Params::new(Body::new(Retention::Period {
                    retention_period: workos::UpdateAuditLogsRetentionRetentionPeriod::V2Years,
                })),
            )
            .await,
        "update retention by period",
    );
    assert_eq!(by_period.retention_period_in_days, Some(730));
    let read_back = ok(
        h.client
            .audit_logs()
            .get_organization_audit_logs_retention(&org)
            .await,
        "get_organization_audit_logs_retention after update",
    );
    assert_eq!(read_back.retention_period_in_days, Some(730));
}

#[tokio::test]
#[allow(deprecated)] // `actors` is deprecated in the SDK model; it is left unset.
async fn exports_are_created_and_become_ready_with_a_url() {
    use workos::audit_logs::CreateExportParams;
    let h = Harness::new();
    let org = create_org(&h, "export").await;
    let action = seeded_action(&h).await;
    ok(
        h.client
            .audit_logs()
            .create_event(ingestion(&org, seed_v2_event(&action)))
            .await,
        "create_event",
    );
    let mark = h.mark();
    let created = ok(
        h.client
            .audit_logs()
            .create_export(CreateExportParams::new(workos::AuditLogExportCreation {
                organization_id: org.clone(),
                range_start: "2022-09-08T00:00:00.000Z".to_owned(),
                range_end: "2022-09-09T00:00:00.000Z".to_owned(),
                actions: Some(vec![action.clone()]),
                actors: None,
                actor_names: None,
                actor_ids: None,
                targets: Some(vec!["team".to_owned()]),
            }))
            .await,
        "create_export",
    );
    let ex = h.only(mark);
    assert_eq!(ex.method, "POST");
    assert_eq!(ex.path(), "/audit_logs/exports");
    assert_eq!(ex.status, 201);
    assert_prefixed_id(&created.id, "audit_log_export_");
    assert_eq!(created.object, "audit_log_export");
    assert_timestamp(&created.created_at, "created_at");

    let mut export = created;
    for _ in 0..150 {
        if export.state != workos::AuditLogExportState::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        export = ok(
            h.client.audit_logs().get_export(&export.id).await,
            "get_export",
        );
    }
    assert_eq!(export.state, workos::AuditLogExportState::Ready);
    let url = export.url.expect("a ready export has a url");
    assert!(url.starts_with("http"), "url {url:?}");

    let err = api_err(
        h.client
            .audit_logs()
            .get_export("audit_log_export_01H00000000000000000000000")
            .await,
        "get_export of an unknown export",
    );
    assert_eq!(err.status(), Some(404), "{}", describe(&err));
}

#[tokio::test]
#[allow(deprecated)] // `domains` is deprecated in the SDK model; it is left unset.
async fn update_organization_changes_only_the_fields_sent() {
    let h = Harness::new();
    let orgs = h.client.organizations();
    let name = format!("rust-sdk partial {}", unique_suffix());
    let external_id = format!("ext-partial-{}", unique_suffix());
    let created = ok(
        orgs.create_organization(CreateOrganizationParams::new(org_input(
            &name,
            Some(&external_id),
            &[("tier", "gold")],
        )))
        .await,
        "create_organization",
    );
    let only = |field: &str| -> UpdateOrganization {
        UpdateOrganization {
            name: (field == "name").then(|| format!("{name} renamed")),
            allow_profiles_outside_organization: None,
            domains: None,
            domain_data: None,
            stripe_customer_id: None,
            metadata: (field == "metadata")
                .then(|| HashMap::from([("tier".to_owned(), "platinum".to_owned())])),
            external_id: (field == "external_id").then(|| format!("{external_id}-new")),
        }
    };

    let mark = h.mark();
    let updated = ok(
        orgs.update_organization(&created.id, UpdateOrganizationParams::new(only("metadata")))
            .await,
        "update_organization (metadata only)",
    );
    let ex = h.only(mark);
    assert_eq!(
        ex.request_body,
        Some(json!({"metadata": {"tier": "platinum"}})),
        "the SDK omits unset fields"
    );
    assert_eq!(updated.name, name);
    assert_eq!(updated.external_id.as_deref(), Some(external_id.as_str()));
    assert_eq!(updated.metadata["tier"], "platinum");

    let updated = ok(
        orgs.update_organization(&created.id, UpdateOrganizationParams::new(only("name")))
            .await,
        "update_organization (name only)",
    );
    assert_eq!(updated.name, format!("{name} renamed"));
    assert_eq!(updated.external_id.as_deref(), Some(external_id.as_str()));
    assert_eq!(updated.metadata["tier"], "platinum");

    let updated = ok(
        orgs.update_organization(
            &created.id,
            UpdateOrganizationParams::new(only("external_id")),
        )
        .await,
        "update_organization (external_id only)",
    );
    assert_eq!(updated.name, format!("{name} renamed"));
    assert_eq!(
        updated.external_id.as_deref(),
        Some(format!("{external_id}-new").as_str())
    );
    assert_eq!(updated.metadata["tier"], "platinum");
}
