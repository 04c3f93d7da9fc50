//! The audit log of the session's organization: events newest first with the filters and
//! "load more" paging of the dashboard's viewer (the same search, so it stays fast at
//! millions of events), one event's detail and proof bundle, and CSV or proven JSONL
//! exports. Every query takes the organization from the session.

use crate::origin::RequestOrigin;
use crate::services::activity::{actions, ActivityTarget};
use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use stele_core::export::ExportFormat;
use stele_core::model::{Idempotent, PortalIntent};
use stele_core::timestamp::format_millis;

use crate::dashboard::events::{
    load_more_after, text_at, viewer_page, EventRow, FilterField, Filters,
};
use crate::dashboard::page::{
    display_time, path_segment, render, render_with_status, FormData, PageError,
};
use crate::portal::session::{PortalLayout, PortalUser};
use crate::responses::proof_bundle_download;
use crate::services::exports::{self, is_downloadable};
use crate::state::AppState;

const EVENTS_PATH: &str = "/portal/events";

#[derive(Template)]
#[template(path = "portal/events.html")]
struct EventsPage {
    layout: PortalLayout,
    fields: Vec<FilterField>,
    filters: Filters,
    filtered: bool,
    errors: Vec<String>,
    rows: Vec<EventRow>,
    load_more: Option<String>,
    continued: bool,
}

impl EventsPage {
    fn new(layout: PortalLayout, filters: Filters) -> Self {
        EventsPage {
            layout,
            fields: filters.fields(),
            filtered: !filters.is_empty(),
            filters,
            errors: Vec::new(),
            rows: Vec::new(),
            load_more: None,
            continued: false,
        }
    }

    fn rejected(mut self, errors: Vec<String>) -> Result<Response, PageError> {
        self.errors = errors;
        render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &self)
    }
}

/// The session's organization and the layout of an audit-log page, or a 404 for a
/// session opened for another intent.
async fn audit_log_layout(
    state: &AppState,
    user: &PortalUser,
    section: &'static str,
) -> Result<PortalLayout, PageError> {
    user.require(PortalIntent::AuditLogs)?;
    let organization = state.organizations.get(user.organization_id()).await?;
    Ok(PortalLayout::for_user(
        state,
        user,
        &organization.name,
        section,
    ))
}

pub async fn index(
    State(state): State<AppState>,
    user: PortalUser,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let layout = audit_log_layout(&state, &user, "events").await?;
    let filters = Filters::from_pairs(&pairs);
    let mut view = EventsPage::new(layout, filters.clone());
    let query = match filters.to_query(user.organization_id()) {
        Ok(query) => query,
        Err(errors) => return view.rejected(errors),
    };
    let normalized = filters.normalized(&query);
    let page = match viewer_page(&state, query, &filters, &pairs).await? {
        Ok(page) => page,
        Err(message) => return view.rejected(vec![message]),
    };
    view.continued = load_more_after(&pairs).is_some();
    view.rows = page
        .data
        .iter()
        .map(|event| EventRow::from_stored(EVENTS_PATH, event))
        .collect();
    view.load_more = page.after.map(|after| {
        let filters = normalized.query_string();
        let separator = if filters.is_empty() { "" } else { "&" };
        format!(
            "{EVENTS_PATH}?{filters}{separator}after={}",
            path_segment(&after)
        )
    });
    view.filters = normalized;
    render(&view)
}

#[derive(Template)]
#[template(path = "portal/event.html")]
struct EventPage {
    layout: PortalLayout,
    id: String,
    id_path: String,
    action: String,
    sequence: i64,
    version: i64,
    occurred_at: String,
    received_at: String,
    received_at_rfc3339: String,
    actor: String,
    targets: Vec<String>,
    location: String,
    hash: String,
    leaf_hash: String,
    covered_by: Option<(u64, String)>,
    verifier_key: String,
    pretty: String,
}

pub async fn show(
    State(state): State<AppState>,
    user: PortalUser,
    Path(event_id): Path<String>,
) -> Result<Response, PageError> {
    let layout = audit_log_layout(&state, &user, "events").await?;
    let organization_id = user.organization_id();
    let found = state.events.get(organization_id, &event_id).await?;
    let record: Value = serde_json::from_slice(&found.event.canonical)
        .map_err(|error| PageError::Internal(format!("stored event is not JSON: {error}")))?;
    let pretty = serde_json::to_string_pretty(&record)
        .map_err(|error| PageError::Internal(error.to_string()))?;
    let covered_by = state
        .transparency
        .checkpoint_covering(organization_id, found.event.sequence as u64)
        .await?
        .map(|checkpoint| (checkpoint.tree_size, display_time(checkpoint.created_at)));
    let row = EventRow::from_stored(EVENTS_PATH, &found.event);
    let actor = match (row.actor_name.is_empty(), row.actor_id.is_empty()) {
        (false, _) => format!("{} ({} {})", row.actor_name, row.actor_type, row.actor_id),
        (true, _) => format!("{} {}", row.actor_type, row.actor_id),
    };
    let view = EventPage {
        layout,
        id_path: path_segment(&found.event.id),
        id: found.event.id.clone().into(),
        action: text_at(&record, "/action").to_owned(),
        sequence: found.event.sequence,
        version: found.event.version,
        occurred_at: row.occurred_at,
        received_at: display_time(found.event.received_at),
        received_at_rfc3339: format_millis(found.event.received_at),
        actor,
        targets: row.targets,
        location: row.location,
        hash: hex::encode(found.hash),
        leaf_hash: hex::encode(stele_core::merkle::leaf_hash(&found.event.canonical)),
        covered_by,
        verifier_key: state.transparency.signer().verifier().encoded(),
        pretty,
    };
    render(&view)
}

/// One event's proof bundle (proven JSONL).
pub async fn proof_bundle(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    Path(event_id): Path<String>,
) -> Result<Response, PageError> {
    user.require(PortalIntent::AuditLogs)?;
    let bundle = state
        .transparency
        .proof_bundle(user.organization_id(), &event_id)
        .await?;
    state
        .activity
        .record(
            &user.activity(&origin),
            actions::PROOF_BUNDLE_DOWNLOADED,
            vec![
                ActivityTarget::new("event", &event_id),
                ActivityTarget::organization(user.organization_id()),
            ],
        )
        .await?;
    Ok(proof_bundle_download(&event_id, bundle))
}

/// The export buttons: a CSV or proven JSONL export of the current filters, downloaded
/// through this session (the API's signed links are not handed out).
pub async fn export(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let layout = audit_log_layout(&state, &user, "events").await?;
    let format = match form.get("format") {
        "csv" => ExportFormat::Csv,
        "proven_jsonl" => ExportFormat::ProvenJsonl,
        other => {
            return Err(PageError::BadRequest(format!(
                "There is no export format {other:?}; choose CSV or proven JSONL."
            )))
        }
    };
    let filters = Filters::from_pairs(&form.0);
    let query = match filters.to_query(user.organization_id()) {
        Ok(query) => query,
        Err(errors) => return EventsPage::new(layout, filters).rejected(errors),
    };
    exports::check_range(query.occurred_from, query.occurred_to)?;
    let created = state
        .exports
        .create(exports::prepare(query, format), None)
        .await?;
    let Idempotent::Done(export) = created else {
        return Err(PageError::Internal(
            "an export without an idempotency key was reported as a replay".into(),
        ));
    };
    state
        .activity
        .record(
            &user.activity(&origin),
            actions::EXPORT_CREATED,
            vec![
                ActivityTarget::new("export", export.id.as_ref()),
                ActivityTarget::organization(user.organization_id()),
            ],
        )
        .await?;
    Ok(Redirect::to(&format!("/portal/exports/{}", path_segment(&export.id))).into_response())
}

/// Downloads an export of the session's organization; any other export id is not found.
pub async fn download(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    Path(export_id): Path<String>,
) -> Result<Response, PageError> {
    user.require(PortalIntent::AuditLogs)?;
    let not_found = || PageError::NotFound(format!("Export not found: '{export_id}'."));
    let export = state
        .exports
        .get(&export_id)
        .await?
        .filter(|export| export.query.organization_id == user.session.organization_id)
        .ok_or_else(not_found)?;
    if !is_downloadable(&export) {
        return Err(PageError::NotFound(
            "This export can no longer be downloaded (exports are kept for 24 hours, and retention may have removed events it covered); create a new one.".into(),
        ));
    }
    state
        .activity
        .record(
            &user.activity(&origin),
            actions::EXPORT_DOWNLOADED,
            vec![
                ActivityTarget::new("export", export.id.as_ref()),
                ActivityTarget::organization(user.organization_id()),
            ],
        )
        .await?;
    let format = export.format;
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        export.id,
        format.file_extension()
    );
    let mut response = Response::new(Body::from_stream(state.exports.stream(export)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
