//! Signing in and out. The login form carries its own CSRF token (a random value also set
//! as a short-lived cookie) because there is no session yet to derive one from.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;

use crate::dashboard::auth::{
    cookie, is_https, safe_next, set_cookie, DashboardUser, CSRF_FIELD, LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
};
use crate::dashboard::page::{no_store, render_with_status, FormData, Layout, PageError};
use crate::origin::RequestOrigin;
use crate::services::activity::{actions, ActivityTarget, Actor};
use crate::services::sessions::{self, LoginError};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    login_csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

fn new_login_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Renders the form, reusing the nonce from the cookie when there is one so that two open
/// login tabs both keep working.
fn login_page(
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let nonce = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|nonce| nonce.len() >= 32)
        .unwrap_or_else(new_login_nonce);
    let page = LoginPage {
        layout: Layout::anonymous(),
        login_csrf: nonce.clone(),
        next: safe_next(next).to_owned(),
        username: username.to_owned(),
        error,
    };
    let mut response = no_store(render_with_status(status, &page)?);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_CSRF_COOKIE,
            &nonce,
            "/dashboard/login",
            3600,
            is_https(headers),
        ),
    );
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = query.next.unwrap_or_default();
    // Someone already signed in goes straight on.
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if state.sessions.find(&token).await?.is_some() {
            return Ok(Redirect::to(safe_next(&next)).into_response());
        }
    }
    login_page(&headers, StatusCode::OK, &next, "", None)
}

pub async fn submit(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !sessions::secrets_match(&expected, form.get(CSRF_FIELD)) {
        return Err(PageError::Forbidden(
            "The sign-in form expired or was not sent by this site. Reload the login page and try again.".into(),
        ));
    }
    let (username, password, next) = (
        form.get("username").trim(),
        form.get("password"),
        form.get("next"),
    );
    match state
        .sessions
        .login(username, password, origin.address.as_deref())
        .await
    {
        Ok((token, session)) => {
            let actor = Actor::User {
                id: session.user_id.to_string(),
                username: session.username.clone(),
            };
            state
                .activity
                .record(
                    &origin.context(actor),
                    actions::USER_SIGNED_IN,
                    vec![ActivityTarget::named(
                        "user",
                        session.user_id.as_ref(),
                        &session.username,
                    )],
                )
                .await?;
            let secure = is_https(&headers);
            let max_age = state.config.session_ttl_hours.saturating_mul(3600);
            let mut response = Redirect::to(safe_next(next)).into_response();
            let cookies = response.headers_mut();
            cookies.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, "/dashboard", max_age, secure),
            );
            cookies.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", "/dashboard/login", 0, secure),
            );
            Ok(response)
        }
        Err(LoginError::InvalidCredentials) => {
            let actor = Actor::Anonymous {
                attempted_username: username.to_owned(),
            };
            state
                .activity
                .record(
                    &origin.context(actor),
                    actions::USER_SIGN_IN_FAILED,
                    vec![ActivityTarget::named("user", username, username)],
                )
                .await?;
            login_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                next,
                username,
                Some("Wrong username or password.".into()),
            )
        }
        Err(LoginError::Throttled { retry_after_secs }) => {
            let mut response = login_page(
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                username,
                Some(format!(
                    "Too many failed sign-ins for this user from this address. Wait {retry_after_secs} s and try again."
                )),
            )?;
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(LoginError::Service(error)) => Err(error.into()),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    user: DashboardUser,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    state.sessions.logout(&user.session_token).await?;
    state
        .activity
        .record(&user.activity, actions::USER_SIGNED_OUT, Vec::new())
        .await?;
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/dashboard", 0, is_https(&headers)),
    );
    Ok(response)
}
