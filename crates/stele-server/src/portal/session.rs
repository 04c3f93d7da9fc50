//! Who is using the portal: the portal session cookie (apart from the dashboard's), the
//! extractor that turns it into a [`PortalUser`] pinned to one organization, the CSRF
//! check of portal forms, the branded layout, and signing out.

use crate::services::activity::{ActivityContext, Actor};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stele_core::model::{PortalIntent, PortalSession};

use crate::dashboard::auth::{cookie, is_https, CSRF_FIELD};
use crate::dashboard::page::{FormData, PageError};
use crate::portal::message;
use crate::services::portal::csrf_token;
use crate::services::sessions::secrets_match;
use crate::state::AppState;

pub const PORTAL_COOKIE: &str = "stele_portal";

/// Whether the portal is embedded over HTTPS: frame ancestors are configured and the
/// public URL is `https://`. Only then do cookies need `SameSite=None` (and so `Secure`).
pub fn embedded_over_https(state: &AppState) -> bool {
    state.config.portal_frame_ancestors.is_some()
        && state
            .config
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
}

/// The portal session cookie: always `HttpOnly` and scoped to `/portal`; `Secure;
/// SameSite=None; Partitioned` when embedded over HTTPS (so it is sent inside the
/// vendor's frame), otherwise `SameSite=Lax` (sent when the vendor's app navigates to the
/// link) and `Secure` over HTTPS. `max_age_secs` 0 deletes it.
pub fn session_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age_secs: u64,
) -> HeaderValue {
    let attributes = if embedded_over_https(state) {
        "; Secure; SameSite=None; Partitioned".to_owned()
    } else {
        let https = is_https(headers)
            || state
                .config
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"));
        format!("; SameSite=Lax{}", if https { "; Secure" } else { "" })
    };
    let text = format!(
        "{PORTAL_COOKIE}={value}; Path=/portal; Max-Age={max_age_secs}; HttpOnly{attributes}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Someone in a live portal session: the session (its organization is the only one any
/// portal query reads), the cookie token and the CSRF token of its forms.
#[derive(Debug, Clone)]
pub struct PortalUser {
    pub session: PortalSession,
    pub token: String,
    pub csrf_token: String,
}

impl PortalUser {
    pub fn organization_id(&self) -> &str {
        &self.session.organization_id
    }

    /// Who this session's actions are recorded as in the activity log.
    pub fn activity(&self, origin: &crate::origin::RequestOrigin) -> ActivityContext {
        origin.context(Actor::PortalUser {
            organization_id: self.session.organization_id.to_string(),
            external_user_id: self.session.external_user_id.clone().unwrap_or_default(),
        })
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        if secrets_match(&self.csrf_token, form.get(CSRF_FIELD)) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "This form was not accepted because its security token is missing or out of date. Go back, reload the page and try again.".into(),
            ))
        }
    }

    /// Refuses a page of another intent than the one the link was generated for.
    pub fn require(&self, intent: PortalIntent) -> Result<(), PageError> {
        if self.session.intent == intent {
            Ok(())
        } else {
            Err(PageError::NotFound(
                "This portal session was opened for another purpose; ask your application for a link to this page.".into(),
            ))
        }
    }
}

/// The answer to a request without a live portal session.
fn session_ended(state: &AppState) -> Response {
    message(
        state,
        StatusCode::UNAUTHORIZED,
        "Your portal session has ended",
        "Portal sessions end when you sign out, when they expire, or when your access is revoked. Open the portal again from your application.",
    )
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, PORTAL_COOKIE).filter(|token| !token.is_empty())
        else {
            return Err(session_ended(state));
        };
        match state.portal.find(&token).await {
            Ok(Some(session)) => Ok(PortalUser {
                session,
                csrf_token: csrf_token(&token),
                token,
            }),
            Ok(None) => Err(session_ended(state)),
            Err(error) => Err(PageError::from(error).into_response()),
        }
    }
}

/// What every portal page's layout shows: the operator's branding, the organization, the
/// way back to the vendor's app, and (in a session) the navigation and Sign out.
#[derive(Debug, Clone, Default)]
pub struct PortalLayout {
    pub product_name: String,
    pub logo_url: Option<String>,
    pub organization_name: Option<String>,
    /// `(href, app name)` of "Back to <app>".
    pub back: Option<(String, String)>,
    pub csrf_token: String,
    /// Whether a session is shown (navigation and Sign out).
    pub signed_in: bool,
    /// Whether the session is for the audit log (otherwise log streams).
    pub audit_logs: bool,
    pub section: &'static str,
}

/// What the header calls the deployment when the operator set no product name.
pub const DEFAULT_PRODUCT_NAME: &str = "Admin Portal";

impl PortalLayout {
    /// Branding only: for pages shown outside a session.
    pub fn anonymous(state: &AppState) -> Self {
        PortalLayout {
            product_name: state
                .config
                .portal_product_name
                .clone()
                .unwrap_or_else(|| DEFAULT_PRODUCT_NAME.to_owned()),
            logo_url: state.config.portal_logo_url.clone(),
            ..PortalLayout::default()
        }
    }

    pub fn for_user(
        state: &AppState,
        user: &PortalUser,
        organization_name: &str,
        section: &'static str,
    ) -> Self {
        let mut layout = Self::anonymous(state);
        layout.organization_name = Some(organization_name.to_owned());
        layout.back = user
            .session
            .return_url
            .as_ref()
            .map(|url| (url.clone(), app_name(state, url)));
        layout.csrf_token = user.csrf_token.clone();
        layout.signed_in = true;
        layout.audit_logs = user.session.intent == PortalIntent::AuditLogs;
        layout.section = section;
        layout
    }
}

/// What "Back to <app>" names: the operator's product name, or the return URL's host.
fn app_name(state: &AppState, return_url: &str) -> String {
    if let Some(name) = &state.config.portal_product_name {
        return name.clone();
    }
    return_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .filter(|host| !host.is_empty())
        .unwrap_or("your application")
        .to_owned()
}

/// Ends the session (CSRF-checked) and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: PortalUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    state.portal.end(&user.token).await?;
    let mut layout = PortalLayout::anonymous(&state);
    layout.back = user
        .session
        .return_url
        .as_ref()
        .map(|url| (url.clone(), app_name(&state, url)));
    let page = crate::portal::MessagePage {
        layout,
        title: "Signed out",
        message: "Your portal session has ended. Open the portal again from your application.",
    };
    let mut response = crate::dashboard::page::render(&page)?;
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &headers, "", 0));
    Ok(response)
}
