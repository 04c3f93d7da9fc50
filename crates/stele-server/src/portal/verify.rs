//! "Verify this yourself": how the organization's admins can check, without trusting this
//! server, that what they downloaded is exactly what the log holds: the deployment's
//! public key, the log's origin, and the commands.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use stele_core::model::PortalIntent;

use crate::dashboard::page::{render, PageError};
use crate::portal::session::{PortalLayout, PortalUser};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal/verify.html")]
struct VerifyPage {
    layout: PortalLayout,
    verifier_key: String,
    origin: String,
    tree_size: u64,
}

pub async fn show(State(state): State<AppState>, user: PortalUser) -> Result<Response, PageError> {
    user.require(PortalIntent::AuditLogs)?;
    let organization = state.organizations.get(user.organization_id()).await?;
    let signer = state.transparency.signer();
    render(&VerifyPage {
        layout: PortalLayout::for_user(&state, &user, &organization.name, "verify"),
        verifier_key: signer.verifier().encoded(),
        origin: signer.origin(&organization.id),
        tree_size: state.transparency.tree_size(&organization.id).await?,
    })
}
