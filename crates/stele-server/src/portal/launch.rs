//! The landing of a portal link: redeems its one-time secret into a portal session and
//! sends the browser to the page of the link's intent, so the secret leaves the address
//! bar at once.

use crate::origin::RequestOrigin;
use crate::services::activity::{actions, ActivityTarget, Actor};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::dashboard::page::PageError;
use crate::portal::session::session_cookie;
use crate::portal::{home_path, message};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct LaunchParams {
    #[serde(default)]
    secret: String,
}

pub async fn redeem(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    params: Result<Query<LaunchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let secret = params
        .map(|Query(params)| params.secret)
        .unwrap_or_default();
    let Some((token, session)) = state.portal.redeem(&secret).await? else {
        return Ok(message(
            &state,
            StatusCode::FORBIDDEN,
            "This link can no longer be used",
            "Portal links work once and only for 5 minutes, and stop working when access is revoked. Open the portal again from your application to get a new link.",
        ));
    };
    let actor = Actor::PortalUser {
        organization_id: session.organization_id.to_string(),
        external_user_id: session.external_user_id.clone().unwrap_or_default(),
    };
    state
        .activity
        .record_with(
            &origin.context(actor),
            actions::PORTAL_LINK_REDEEMED,
            vec![ActivityTarget::organization(&session.organization_id)],
            serde_json::Map::from_iter([(
                "intent".to_owned(),
                serde_json::json!(session.intent.as_str()),
            )]),
        )
        .await?;
    let max_age = u64::try_from((session.expires_at - session.created_at) / 1000).unwrap_or(0);
    let mut response = Redirect::to(home_path(session.intent)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &headers, &token, max_age),
    );
    Ok(response)
}
