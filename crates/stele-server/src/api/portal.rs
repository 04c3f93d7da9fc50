//! Admin Portal links (WorkOS shapes): `POST /portal/generate_link` hands the vendor's app
//! a one-time link for one organization's IT admin; `POST /portal/revoke_link` revokes an
//! admin's links and ends the portal sessions started from them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::exports::public_base;
use crate::api::extract::{Activity, ApiCaller, JsonBody};
use crate::api::idempotency::NeverRecorded;
use crate::services::activity::{actions, ActivityTarget};
use crate::services::portal::{parse_link_request, parse_revoke_request};
use crate::state::AppState;

/// The `portal` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate_link))
        .routes(routes!(revoke_link))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalLinkResponse {
    /// Opens the Admin Portal for the organization; works once, within 5 minutes.
    #[schema(example = "https://audit.example.com/portal/launch?secret=...")]
    pub link: String,
}

/// Body: `{"organization", "intent": "audit_logs"|"log_streams", "return_url"?,
/// "success_url"?, "external_user_id"?, "it_contact_emails"? (or "admin_emails")}`.
#[utoipa::path(post, path = "/portal/generate_link", tag = "admin portal",
    request_body(content = Object, description = "organization, intent (audit_logs or log_streams), return_url?, success_url?, external_user_id? (1 to 256 characters), it_contact_emails? (at most 20)"),
    responses((status = 201, body = PortalLinkResponse),
              (status = 401, description = "Missing or invalid API key"),
              (status = 404, description = "Unknown organization"),
              (status = 422, description = "A malformed field (validation_failed), or an intent this deployment does not serve (portal_intent_not_served, naming the intents served)")))]
pub async fn generate_link(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request = parse_link_request(&body)?;
    let organization_id = request.organization.clone();
    let intent = request.intent.as_str();
    let external_user_id = request.external_user_id.clone();
    let secret = state.portal.generate_link(request).await?;
    let mut metadata = Map::new();
    metadata.insert("intent".to_owned(), json!(intent));
    if let Some(external_user_id) = external_user_id {
        metadata.insert("external_user_id".to_owned(), json!(external_user_id));
    }
    state
        .activity
        .record_with(
            &activity,
            actions::PORTAL_LINK_CREATED,
            vec![ActivityTarget::organization(&organization_id)],
            metadata,
        )
        .await?;
    // The secret rides in the query, which the request log never records (it logs paths).
    let link = format!(
        "{}/portal/launch?secret={secret}",
        public_base(&state, &headers)
    );
    let mut response = (StatusCode::CREATED, Json(PortalLinkResponse { link })).into_response();
    response.extensions_mut().insert(NeverRecorded);
    Ok(response)
}

/// Body: `{"organization", "external_user_id"}`.
#[utoipa::path(post, path = "/portal/revoke_link", tag = "admin portal",
    request_body(content = Object, description = "organization and external_user_id, both required"),
    responses((status = 204, description = "Every link generated for this external_user_id in this organization stopped working, and the portal sessions started from them ended"),
              (status = 401, description = "Missing or invalid API key"),
              (status = 404, description = "Unknown organization"),
              (status = 422, description = "A missing or malformed field")))]
pub async fn revoke_link(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Activity(activity): Activity,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    let (organization, external_user_id) = parse_revoke_request(&body)?;
    state
        .portal
        .revoke(&organization, &external_user_id)
        .await?;
    state
        .activity
        .record_with(
            &activity,
            actions::PORTAL_LINK_REVOKED,
            vec![ActivityTarget::organization(&organization)],
            Map::from_iter([("external_user_id".to_owned(), json!(external_user_id))]),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
