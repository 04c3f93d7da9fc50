//! `GET /audit_logs/activity`: Stele's own activity log (every operator action), with the
//! search endpoint's parameters and envelope. Each item carries the activity log's
//! `organization_id`, so the proof endpoints prove it like any organization's event.

use axum::extract::{Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ApiError;
use crate::api::events::{event_list, search_filter, search_metadata, EventList};
use crate::api::extract::{Activity, ListQuery};
use crate::services::activity::{actions, ActivityTarget};
use crate::state::AppState;
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_activity))
}

#[utoipa::path(get, path = "/audit_logs/activity", tag = "audit logs",
    description = "Stele's activity log: every operator action (sign-ins, API key and user changes, schema versions, retention, organization changes, exports and downloads, searches and proof bundles). Needs an `admin` key not restricted to organizations. Items are stored events of the organization `org_00000000000000000000000000`.",
    params(("actions" = Option<Vec<String>>, Query, description = "Repeatable; also `actions[]`"),
           ("actor_ids" = Option<Vec<String>>, Query), ("actor_names" = Option<Vec<String>>, Query),
           ("target_types" = Option<Vec<String>>, Query), ("target_ids" = Option<Vec<String>>, Query),
           ("range_start" = Option<String>, Query, description = "Inclusive lower bound on occurred_at"),
           ("range_end" = Option<String>, Query, description = "Inclusive upper bound on occurred_at"),
           ("limit" = Option<u32>, Query), ("before" = Option<String>, Query), ("after" = Option<String>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = EventList),
              (status = 401, description = "Missing or unknown API key"),
              (status = 403, description = "The key lacks the admin scope or is restricted to organizations (forbidden)"),
              (status = 422, description = "Invalid filters")))]
pub async fn search_activity(
    State(state): State<AppState>,
    Activity(activity): Activity,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<axum::Json<EventList>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    let mut errors = Vec::new();
    let filter = search_filter(&query, ACTIVITY_LOG_ORGANIZATION_ID.to_owned(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let page = state
        .activity
        .search(filter.clone(), query.numeric_page()?)
        .await?;
    state
        .activity
        .record_with(
            &activity,
            actions::ACTIVITY_SEARCHED,
            vec![ActivityTarget::organization(ACTIVITY_LOG_ORGANIZATION_ID)],
            search_metadata(&filter, page.data.len()),
        )
        .await?;
    Ok(axum::Json(event_list(&query, page)?))
}
