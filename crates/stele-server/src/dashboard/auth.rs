//! Who is using the dashboard: the session cookie, the extractor that turns it into a
//! [`DashboardUser`] (or a redirect to the login page), and the CSRF check every
//! state-changing form goes through.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use crate::dashboard::page::{FormData, Layout, PageError};
use crate::services::sessions;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "stele_session";
pub const LOGIN_CSRF_COOKIE: &str = "stele_login_csrf";
pub const CSRF_FIELD: &str = "csrf_token";

/// A signed-in dashboard user, from a valid session cookie.
#[derive(Debug, Clone)]
pub struct DashboardUser {
    pub username: String,
    /// The token forms of this session must carry.
    pub csrf_token: String,
    /// The session token from the cookie (needed to sign out).
    pub session_token: String,
    /// This user, this request: what the activity log records as the actor.
    pub activity: ActivityContext,
}

// The layout constructor for a signed-in page lives beside the user it reads, so the page
// module (which the extractor below uses for its errors) does not depend back on this one.
impl Layout {
    pub fn for_user(user: &DashboardUser, section: &'static str) -> Self {
        Layout {
            username: Some(user.username.clone()),
            csrf_token: user.csrf_token.clone(),
            section,
        }
    }
}

impl DashboardUser {
    /// What schema versions record as their author.
    pub fn author(&self) -> String {
        format!("user {}", self.username)
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        if sessions::secrets_match(&self.csrf_token, form.get(CSRF_FIELD)) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "This form was not accepted because its security token is missing or out of date. Go back, reload the page and try again.".into(),
            ))
        }
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// Whether the browser reached us over HTTPS. Stele itself speaks plain HTTP, so HTTPS
/// means a TLS-terminating proxy that says so in `X-Forwarded-Proto` or `Forwarded`.
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Lax always, Secure over HTTPS.
/// `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where to send someone who needs to sign in first, remembering where they were going.
fn login_redirect(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/dashboard");
    let next = if parts.method == axum::http::Method::GET {
        next
    } else {
        "/dashboard"
    };
    let target = format!(
        "/dashboard/login?next={}",
        crate::dashboard::page::path_segment(next)
    );
    Redirect::to(&target).into_response()
}

use crate::origin::RequestOrigin;
use crate::services::activity::{ActivityContext, Actor};

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|token| !token.is_empty())
        else {
            return Err(login_redirect(parts));
        };
        match state.sessions.find(&token).await {
            Ok(Some(session)) => Ok(DashboardUser {
                activity: RequestOrigin::from_parts(parts).context(Actor::User {
                    id: session.user_id.to_string(),
                    username: session.username.clone(),
                }),
                username: session.username,
                csrf_token: sessions::csrf_token(&token),
                session_token: token,
            }),
            Ok(None) => Err(login_redirect(parts)),
            Err(error) => Err(PageError::from(error).into_response()),
        }
    }
}

/// Only same-site paths under `/dashboard` are followed after sign-in, so the login page
/// cannot be used to bounce someone to another site.
pub fn safe_next(next: &str) -> &str {
    let inside = next == "/dashboard" || next.starts_with("/dashboard/");
    if inside && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/dashboard/actions"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; stele_session=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let plain = set_cookie("s", "v", "/dashboard", 60, false);
        assert_eq!(
            plain,
            "s=v; Path=/dashboard; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        let secure = set_cookie("s", "v", "/dashboard", 60, true);
        assert!(secure.to_str().unwrap_or_default().ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&headers));
        assert!(!is_https(&HeaderMap::new()));
    }

    #[test]
    fn next_stays_inside_the_dashboard() {
        assert_eq!(
            safe_next("/dashboard/organizations"),
            "/dashboard/organizations"
        );
        assert_eq!(safe_next("https://evil.example/"), "/dashboard/actions");
        assert_eq!(safe_next("/dashboard//evil.example"), "/dashboard/actions");
        assert_eq!(safe_next("/dashboardx"), "/dashboard/actions");
    }
}
