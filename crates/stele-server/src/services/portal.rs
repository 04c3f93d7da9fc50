//! The Admin Portal: links the vendor's app generates for one of its customers' IT admins
//! (WorkOS's `POST /portal/generate_link`), the portal sessions they start, and revoking
//! an admin's links and sessions (`POST /portal/revoke_link`).
//!
//! A link carries a random 256-bit secret that is stored only as its SHA-256, works once
//! and expires after [`LINK_LIFETIME_MS`]; redeeming it starts a session pinned to the
//! link's organization, whose cookie token is likewise stored only as a hash. Every portal
//! page reads the organization from the session, never from the request.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stele_core::model::{
    NewPortalLink, NewPortalSession, PortalIntent, PortalRevocation, PortalSession,
};
use stele_core::timestamp::now_millis;
use stele_core::FieldError;
use stele_store::Store;

use crate::error_code::ErrorCode;
use crate::services::api_keys::hash_secret;
use crate::services::sessions::generate_token;
use crate::services::ServiceError;

/// How long a generated link can be redeemed (WorkOS: 5 minutes).
pub const LINK_LIFETIME_MS: i64 = 5 * 60_000;
/// The longest `external_user_id`, in characters.
pub const MAX_EXTERNAL_USER_ID_CHARS: usize = 256;
/// The longest `return_url` or `success_url`, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The most IT contact emails one request may name (WorkOS: 20).
pub const MAX_IT_CONTACT_EMAILS: usize = 20;

/// A `generate_link` body, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRequest {
    pub organization: String,
    pub intent: PortalIntent,
    pub external_user_id: Option<String>,
    pub return_url: Option<String>,
}

/// The intents served, as a message lists them.
pub fn served_intents() -> String {
    PortalIntent::SERVED
        .iter()
        .map(|intent| intent.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn optional_text<'a>(
    body: &'a Value,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_str()),
        Some(_) => {
            errors.push(FieldError::invalid_type(field, "a string"));
            None
        }
    }
}

fn required_text<'a>(body: &'a Value, field: &str, errors: &mut Vec<FieldError>) -> &'a str {
    match optional_text(body, field, errors) {
        Some(text) if !text.trim().is_empty() => text,
        Some(_) => {
            errors.push(FieldError::invalid(
                field,
                format!("{field} must not be empty."),
            ));
            ""
        }
        None => {
            if !errors.iter().any(|error| error.field == field) {
                errors.push(FieldError::required(field));
            }
            ""
        }
    }
}

/// An absolute `http(s)://` URL that a page may link to.
fn check_url(field: &str, url: &str, errors: &mut Vec<FieldError>) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let has_host =
        rest.is_some_and(|rest| !rest.split(['/', '?', '#']).next().unwrap_or("").is_empty());
    if !has_host
        || url.len() > MAX_URL_BYTES
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(FieldError::invalid(
            field,
            format!("{field} must be an absolute http:// or https:// URL of at most {MAX_URL_BYTES} bytes, without spaces."),
        ));
    }
}

fn check_emails(body: &Value, field: &str, errors: &mut Vec<FieldError>) {
    match body.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Array(emails)) => {
            if emails.len() > MAX_IT_CONTACT_EMAILS {
                errors.push(FieldError::invalid(
                    field,
                    format!("{field} accepts at most {MAX_IT_CONTACT_EMAILS} addresses."),
                ));
            }
            for (index, email) in emails.iter().enumerate() {
                let valid = email.as_str().is_some_and(|email| {
                    email.len() <= 320
                        && email.contains('@')
                        && !email.chars().any(char::is_whitespace)
                });
                if !valid {
                    errors.push(FieldError::invalid(
                        format!("{field}[{index}]"),
                        "Each address must be an email address (at most 320 characters).",
                    ));
                }
            }
        }
        Some(_) => errors.push(FieldError::invalid_type(
            field,
            "an array of email addresses",
        )),
    }
}

/// Checks a `generate_link` body: `organization` and `intent` required; `return_url`,
/// `success_url`, `external_user_id`, `it_contact_emails` (or the Node SDK's
/// `admin_emails`) optional; `intent_options` (SSO only) is ignored.
pub fn parse_link_request(body: &Value) -> Result<LinkRequest, ServiceError> {
    if !body.is_object() {
        return Err(ServiceError::InvalidRequest(vec![
            FieldError::invalid_type("body", "a JSON object"),
        ]));
    }
    let mut errors = Vec::new();
    let organization = required_text(body, "organization", &mut errors).to_owned();
    let intent_text = match body.get("intent") {
        None | Some(Value::Null) => {
            errors.push(FieldError::invalid(
                "intent",
                format!("intent is required: one of {}.", served_intents()),
            ));
            None
        }
        Some(Value::String(text)) => Some(text.as_str()),
        Some(_) => {
            errors.push(FieldError::invalid_type("intent", "a string"));
            None
        }
    };
    let external_user_id = optional_text(body, "external_user_id", &mut errors).map(str::to_owned);
    if let Some(id) = &external_user_id {
        if id.is_empty() || id.chars().count() > MAX_EXTERNAL_USER_ID_CHARS {
            errors.push(FieldError::invalid(
                "external_user_id",
                format!("external_user_id must be 1 to {MAX_EXTERNAL_USER_ID_CHARS} characters."),
            ));
        }
    }
    let return_url = optional_text(body, "return_url", &mut errors).map(str::to_owned);
    if let Some(url) = &return_url {
        check_url("return_url", url, &mut errors);
    }
    if let Some(url) = optional_text(body, "success_url", &mut errors) {
        check_url("success_url", url, &mut errors);
    }
    check_emails(body, "it_contact_emails", &mut errors);
    check_emails(body, "admin_emails", &mut errors);
    if !errors.is_empty() {
        return Err(ServiceError::InvalidRequest(errors));
    }
    let intent_text = intent_text.unwrap_or_default();
    let intent = PortalIntent::parse(intent_text).ok_or_else(|| ServiceError::Rejected {
        code: ErrorCode::PortalIntentNotServed,
        message: format!(
            "The Admin Portal of this deployment does not serve the intent '{intent_text}'; the intents served are: {}.",
            served_intents()
        ),
    })?;
    Ok(LinkRequest {
        organization,
        intent,
        external_user_id,
        return_url,
    })
}

/// Checks a `revoke_link` body: `{"organization", "external_user_id"}`, both required.
pub fn parse_revoke_request(body: &Value) -> Result<(String, String), ServiceError> {
    if !body.is_object() {
        return Err(ServiceError::InvalidRequest(vec![
            FieldError::invalid_type("body", "a JSON object"),
        ]));
    }
    let mut errors = Vec::new();
    let organization = required_text(body, "organization", &mut errors).to_owned();
    let external_user_id = required_text(body, "external_user_id", &mut errors).to_owned();
    if !errors.is_empty() {
        return Err(ServiceError::InvalidRequest(errors));
    }
    Ok((organization, external_user_id))
}

/// The CSRF token of forms shown within the portal session `session_token` names; derived
/// apart from the dashboard's, so one can never stand in for the other.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"stele portal csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Admin Portal links and sessions.
#[derive(Clone)]
pub struct PortalService {
    store: Arc<dyn Store>,
    session_ttl_ms: i64,
}

impl PortalService {
    pub fn new(store: Arc<dyn Store>, session_ttl_minutes: u64) -> Self {
        Self {
            store,
            session_ttl_ms: i64::try_from(session_ttl_minutes)
                .unwrap_or(1440)
                .saturating_mul(60_000),
        }
    }

    /// Stores a new link for `request`; returns its secret (the only copy).
    pub async fn generate_link(&self, request: LinkRequest) -> Result<String, ServiceError> {
        if self
            .store
            .get_organization(&request.organization)
            .await?
            .is_none()
        {
            return Err(ServiceError::OrganizationNotFound(request.organization));
        }
        let secret = generate_token();
        let created_at = now_millis();
        self.store
            .create_portal_link(NewPortalLink {
                token_hash: hash_secret(&secret),
                organization_id: request.organization.clone().into(),
                intent: request.intent,
                external_user_id: request.external_user_id,
                return_url: request.return_url,
                created_at,
                expires_at: created_at + LINK_LIFETIME_MS,
            })
            .await
            .map_err(|error| ServiceError::on_organization(error, &request.organization))?;
        Ok(secret)
    }

    /// Redeems a link's secret: the new session's cookie token and the session, or `None`
    /// when the link is unknown, used, expired or revoked (one answer for all, so a
    /// guesser learns nothing).
    pub async fn redeem(
        &self,
        secret: &str,
    ) -> Result<Option<(String, PortalSession)>, ServiceError> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let token = generate_token();
        let created_at = now_millis();
        let started = self
            .store
            .redeem_portal_link(
                hash_secret(secret),
                NewPortalSession {
                    token_hash: hash_secret(&token),
                    created_at,
                    expires_at: created_at.saturating_add(self.session_ttl_ms),
                },
            )
            .await?;
        Ok(started.map(|session| (token, session)))
    }

    /// The live portal session a cookie token names.
    pub async fn find(&self, token: &str) -> Result<Option<PortalSession>, ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .store
            .find_portal_session(hash_secret(token), now_millis())
            .await?)
    }

    pub async fn end(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.store.end_portal_session(hash_secret(token)).await?)
    }

    /// Revokes every link of `external_user_id` in `organization` and ends the sessions
    /// started from them. An unknown organization is a 404.
    pub async fn revoke(
        &self,
        organization: &str,
        external_user_id: &str,
    ) -> Result<PortalRevocation, ServiceError> {
        if self.store.get_organization(organization).await?.is_none() {
            return Err(ServiceError::OrganizationNotFound(organization.to_owned()));
        }
        Ok(self
            .store
            .revoke_portal_access(organization, external_user_id)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_link_request_keeps_what_the_sdks_send() {
        let request = parse_link_request(&json!({
            "organization": "org_1", "intent": "audit_logs",
            "return_url": "https://app.example.com/settings",
            "success_url": "https://app.example.com/done",
            "external_user_id": "user_42",
            "it_contact_emails": ["it@example.com"],
            "admin_emails": ["root@example.com"],
            "intent_options": {"sso": {"bookmark_slug": "x"}}
        }))
        .expect("valid");
        assert_eq!(
            request,
            LinkRequest {
                organization: "org_1".into(),
                intent: PortalIntent::AuditLogs,
                external_user_id: Some("user_42".into()),
                return_url: Some("https://app.example.com/settings".into()),
            }
        );
    }

    #[test]
    fn an_intent_not_served_is_refused_naming_the_intents_served() {
        let refused = parse_link_request(&json!({"organization": "org_1", "intent": "sso"}));
        match refused {
            Err(ServiceError::Rejected { code, message }) => {
                assert_eq!(code, ErrorCode::PortalIntentNotServed);
                assert!(message.contains("audit_logs, log_streams"), "{message}");
                assert!(message.contains("'sso'"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn return_urls_must_be_http_links() {
        for url in [
            "javascript:alert(1)",
            "/relative",
            "https://",
            "https://a b",
        ] {
            let refused = parse_link_request(
                &json!({"organization": "org_1", "intent": "audit_logs", "return_url": url}),
            );
            assert!(
                matches!(&refused, Err(ServiceError::InvalidRequest(errors)) if errors[0].field == "return_url"),
                "{url}: {refused:?}"
            );
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let Err(ServiceError::InvalidRequest(errors)) = parse_link_request(&json!({})) else {
            panic!("expected field errors");
        };
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["organization", "intent"]);
        assert!(errors[1].message.contains("audit_logs, log_streams"));
        let Err(ServiceError::InvalidRequest(errors)) =
            parse_revoke_request(&json!({"organization": "org_1"}))
        else {
            panic!("expected field errors");
        };
        assert_eq!(errors[0].field, "external_user_id");
    }

    #[test]
    fn portal_and_dashboard_csrf_tokens_differ() {
        assert_ne!(csrf_token("t"), crate::services::sessions::csrf_token("t"));
    }
}
