//! The log streams page of a `log_streams` portal session. This deployment has no log
//! streams yet, so the page says so plainly rather than showing an empty list.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::dashboard::page::{render, PageError};
use crate::portal::session::{PortalLayout, PortalUser};
use crate::state::AppState;
use stele_core::model::PortalIntent;

#[derive(Template)]
#[template(path = "portal/log_streams.html")]
struct LogStreamsPage {
    layout: PortalLayout,
}

pub async fn index(State(state): State<AppState>, user: PortalUser) -> Result<Response, PageError> {
    user.require(PortalIntent::LogStreams)?;
    let organization = state.organizations.get(user.organization_id()).await?;
    render(&LogStreamsPage {
        layout: PortalLayout::for_user(&state, &user, &organization.name, "log-streams"),
    })
}
