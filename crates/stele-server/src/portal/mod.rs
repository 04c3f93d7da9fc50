//! The Admin Portal: server-rendered pages under `/portal` where one customer
//! organization's IT admins read, export and verify that organization's audit log, opened
//! by a one-time link the vendor's app generates (`POST /portal/generate_link`).
//!
//! Every page but the link's landing takes a [`session::PortalUser`], and every query
//! reads the organization from that session, never from the URL: another organization's
//! event, export or proof id is simply not found. The portal has its own cookie and CSRF
//! tokens and never opens the operator dashboard. Pages reuse the dashboard's rendering
//! helpers and stylesheet, with the operator's branding on top.

pub mod events;
pub mod launch;
pub mod log_streams;
pub mod session;
pub mod verify;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use stele_core::model::PortalIntent;

use crate::dashboard::page::{render_with_status, ErrorPageContent, PageError};
use crate::portal::session::{PortalLayout, PortalUser};
use crate::state::AppState;

const PORTAL_STYLE: &str = include_str!("../../static/portal.css");

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(home))
        .route("/portal/launch", get(launch::redeem))
        .route("/portal/events", get(events::index))
        .route("/portal/events/{event_id}", get(events::show))
        .route("/portal/events/{event_id}/proof", get(events::proof_bundle))
        .route("/portal/exports", post(events::export))
        .route("/portal/exports/{export_id}", get(events::download))
        .route("/portal/verify", get(verify::show))
        .route(
            "/portal/log-streams",
            get(log_streams::index).post(log_streams::create),
        )
        .route(
            "/portal/log-streams/{stream_id}/test",
            post(log_streams::test),
        )
        .route(
            "/portal/log-streams/{stream_id}/delete",
            post(log_streams::delete),
        )
        .route("/portal/sign-out", post(session::sign_out))
        .route("/portal/static/brand.css", get(brand_css))
        .route("/portal/{*rest}", get(not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            portal_error_pages,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
}

/// The landing page of the session's intent.
pub fn home_path(intent: PortalIntent) -> &'static str {
    match intent {
        PortalIntent::AuditLogs => "/portal/events",
        PortalIntent::LogStreams => "/portal/log-streams",
    }
}

async fn home(user: PortalUser) -> Redirect {
    Redirect::to(home_path(user.session.intent))
}

async fn not_found(_user: PortalUser) -> PageError {
    PageError::NotFound("There is no such page.".into())
}

/// A page that only says something: errors, a used link, a signed-out session.
#[derive(Template)]
#[template(path = "portal/message.html")]
pub struct MessagePage<'a> {
    pub layout: PortalLayout,
    pub title: &'a str,
    pub message: &'a str,
}

/// A message page with `status`.
pub fn message(state: &AppState, status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage {
        layout: PortalLayout::anonymous(state),
        title,
        message: text,
    };
    render_with_status(status, &page).unwrap_or_else(|error| error.into_response())
}

/// Error pages of handlers (shared with the dashboard as [`PageError`]) are rendered
/// again in the portal's own layout, so a portal user never sees the operator's.
async fn portal_error_pages(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    match response.extensions().get::<ErrorPageContent>() {
        Some(content) => message(&state, content.status(), content.title(), content.message()),
        None => response,
    }
}

/// The portal's own styles and the accent colour the operator chose, as a stylesheet
/// (the CSP allows no inline style).
async fn brand_css(State(state): State<AppState>) -> Response {
    let mut css = PORTAL_STYLE.to_owned();
    if let Some(colour) = &state.config.portal_accent_color {
        css.push_str(&format!(
            ":root {{ --accent: {colour}; --accent-dark: color-mix(in srgb, {colour} 80%, black); }}\n"
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        css,
    )
        .into_response()
}

/// The `frame-ancestors` sources: the operator's, or none.
fn frame_ancestors(state: &AppState) -> &str {
    state
        .config
        .portal_frame_ancestors
        .as_deref()
        .unwrap_or("'none'")
}

/// The origin (`https://host[:port]`) of the logo URL, which the CSP must allow.
fn logo_origin(state: &AppState) -> Option<String> {
    let url = state.config.portal_logo_url.as_deref()?;
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

/// Portal pages load only this server's stylesheet (and the operator's logo), run no
/// script at all, may be framed only by the operator's `--portal-frame-ancestors`, leak no
/// URL to other sites, and are never cached (they show one organization's log).
async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let img = match logo_origin(&state) {
        Some(origin) => format!("'self' data: {origin}"),
        None => "'self' data:".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src {img}; form-action 'self'; frame-ancestors {}; base-uri 'none'",
        frame_ancestors(&state)
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if state.config.portal_frame_ancestors.is_none() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
