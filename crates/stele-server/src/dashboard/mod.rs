//! The web dashboard: server-rendered pages under `/dashboard`, one file per page, sharing
//! the services the API uses. Every page but the login form needs a session
//! ([`auth::DashboardUser`]); every state-changing form carries a CSRF token.
//!
//! No build step: templates are compiled into the binary by askama, and the stylesheet
//! and the small script are embedded with `include_str!`.

pub mod actions;
pub mod api_keys;
pub mod auth;
pub mod diff;
pub mod editor;
pub mod events;
pub mod log_streams;
pub mod login;
pub mod organizations;
pub mod page;
pub mod quarantine;
pub mod snippets;
pub mod versions;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::dashboard::auth::{cookie, DashboardUser, SESSION_COOKIE};
use crate::dashboard::page::{ErrorPageContent, Layout, PageError};
use crate::services::sessions;
use crate::state::AppState;

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/dashboard.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/", get(home))
        .route("/dashboard/login", get(login::show).post(login::submit))
        .route("/dashboard/logout", post(login::logout))
        .route("/dashboard/actions", get(actions::index))
        .route(
            "/dashboard/actions/new",
            get(actions::new_form).post(actions::create),
        )
        .route(
            "/dashboard/actions/{action}/edit",
            get(editor::show).post(editor::submit),
        )
        .route(
            "/dashboard/actions/{action}/versions",
            get(versions::history),
        )
        .route(
            "/dashboard/actions/{action}/versions/{version}",
            get(versions::show),
        )
        .route(
            "/dashboard/organizations",
            get(organizations::index).post(organizations::create),
        )
        .route("/dashboard/organizations/{id}", get(organizations::show))
        .route(
            "/dashboard/organizations/{id}/retention",
            post(organizations::set_retention),
        )
        .route(
            "/dashboard/organizations/{id}/log_streams",
            post(log_streams::create),
        )
        .route(
            "/dashboard/organizations/{id}/log_streams/{stream_id}/{verb}",
            post(log_streams::act),
        )
        .route(
            "/dashboard/organizations/{id}/quarantine/{quarantine_id}/accept",
            post(quarantine::accept),
        )
        .route(
            "/dashboard/organizations/{id}/quarantine/{quarantine_id}/discard",
            post(quarantine::discard),
        )
        .route(
            "/dashboard/actions/{action}/quarantine/accept",
            post(quarantine::accept_all),
        )
        .route("/dashboard/organizations/{id}/events", get(events::index))
        .route(
            "/dashboard/organizations/{id}/events/{event_id}",
            get(events::show),
        )
        .route(
            "/dashboard/organizations/{id}/events/{event_id}/proof",
            get(events::proof_bundle),
        )
        .route(
            "/dashboard/organizations/{id}/exports",
            post(events::export),
        )
        .route(
            "/dashboard/api-keys",
            get(api_keys::index).post(api_keys::create),
        )
        .route("/dashboard/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/dashboard/activity", get(activity))
        .route("/dashboard/static/style.css", get(style))
        .route("/dashboard/static/dashboard.js", get(script))
        .route("/dashboard/static/favicon.svg", get(favicon))
        .route("/dashboard/{*rest}", get(not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            error_pages_keep_navigation,
        ))
        .layer(middleware::from_fn(security_headers))
}

/// Renders an error page again with the navigation and Sign out when the request carries
/// a valid session, so a 404 or a refused form does not strand a signed-in user.
async fn error_pages_keep_navigation(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let token = cookie(request.headers(), SESSION_COOKIE).filter(|token| !token.is_empty());
    let response = next.run(request).await;
    let (Some(content), Some(token)) = (response.extensions().get::<ErrorPageContent>(), token)
    else {
        return response;
    };
    match state.sessions.find(&token).await {
        Ok(Some(session)) => content.render(Layout {
            username: Some(session.username),
            csrf_token: sessions::csrf_token(&token),
            section: "",
        }),
        _ => response,
    }
}

async fn home(_user: DashboardUser) -> Redirect {
    Redirect::to("/dashboard/actions")
}

/// The activity log is the reserved organization's log: its events page (filters,
/// paging, event detail and proof bundles) is the activity page.
async fn activity(_user: DashboardUser) -> Redirect {
    Redirect::to(&format!(
        "/dashboard/organizations/{}/events",
        stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
    ))
}

async fn not_found(_user: DashboardUser) -> PageError {
    PageError::NotFound("There is no such page.".into())
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}

/// Pages may load only this server's own stylesheet and script, may not be framed (so no
/// clickjacking of the Save button), and do not leak their URLs to other sites.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}
