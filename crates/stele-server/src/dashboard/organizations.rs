//! Organizations: the list (a page at a time), a form to create one, and each one's page
//! with its retention setting and log streams.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use stele_core::model::{Organization, OrganizationFilter};
use stele_core::pagination::{Cursor, PageRequest, SortOrder};

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::log_streams::{
    stream_notice, stream_rows, stream_types, StreamForm, StreamRow,
};
use crate::dashboard::page::{
    display_time, path_segment, render, render_with_status, thousands, FormData, Layout, PageError,
};
use crate::dashboard::quarantine::{self, QuarantineSummary};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::organizations::OrganizationInput;
use crate::services::retention;
use crate::services::ServiceError;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

pub struct OrganizationRow {
    pub id: String,
    pub path: String,
    pub name: String,
    pub external_id: String,
    pub domains: String,
    pub created_at: String,
}

impl OrganizationRow {
    fn from_organization(organization: Organization) -> Self {
        OrganizationRow {
            domains: organization
                .domains
                .iter()
                .map(|domain| domain.domain.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            external_id: organization.external_id.unwrap_or_default(),
            created_at: display_time(organization.created_at),
            path: path_segment(&organization.id),
            id: organization.id.into(),
            name: organization.name,
        }
    }
}

#[derive(Template)]
#[template(path = "organizations.html")]
struct OrganizationsPage {
    layout: Layout,
    organizations: Vec<OrganizationRow>,
    next_page: Option<String>,
    created: Option<String>,
    errors: Vec<String>,
    name: String,
    external_id: String,
    domains: String,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    created: Option<String>,
}

async fn page(
    state: &AppState,
    user: &DashboardUser,
    after: Option<String>,
) -> Result<OrganizationsPage, PageError> {
    let found = state
        .organizations
        .list(
            OrganizationFilter::default(),
            PageRequest {
                limit: PAGE_SIZE,
                order: SortOrder::Desc,
                cursor: after.filter(|key| !key.is_empty()).map(Cursor::After),
            },
        )
        .await?;
    Ok(OrganizationsPage {
        layout: Layout::for_user(user, "organizations"),
        next_page: found.after.map(|key| path_segment(&key)),
        organizations: found
            .data
            .into_iter()
            .map(OrganizationRow::from_organization)
            .collect(),
        created: None,
        errors: Vec::new(),
        name: String::new(),
        external_id: String::new(),
        domains: String::new(),
    })
}

pub async fn index(
    State(state): State<AppState>,
    user: DashboardUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let mut view = page(&state, &user, query.after).await?;
    view.created = query.created;
    render(&view)
}

pub async fn create(
    State(state): State<AppState>,
    user: DashboardUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let name = form.get("name").trim().to_owned();
    let external_id = form.get("external_id").trim().to_owned();
    let domains = form.get("domains").to_owned();
    let input = OrganizationInput {
        name: name.clone(),
        external_id: (!external_id.is_empty()).then(|| external_id.clone()),
        domains: Some(
            domains
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|domain| !domain.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        ..OrganizationInput::default()
    };
    let errors = match state.organizations.create(input, None).await {
        Ok(stele_core::model::Idempotent::Done(organization)) => {
            state
                .activity
                .record(
                    &user.activity,
                    actions::ORGANIZATION_CREATED,
                    vec![ActivityTarget::named(
                        "organization",
                        organization.id.as_ref(),
                        &organization.name,
                    )],
                )
                .await?;
            return Ok(Redirect::to(&format!(
                "/dashboard/organizations?created={}",
                path_segment(&organization.id)
            ))
            .into_response());
        }
        Ok(stele_core::model::Idempotent::AlreadyDone(_)) => Vec::new(),
        Err(ServiceError::InvalidRequest(problems)) => problems
            .into_iter()
            .map(|problem| problem.message)
            .collect(),
        Err(ServiceError::Rejected { message, .. }) => vec![message],
        Err(other) => return Err(other.into()),
    };
    let mut view = page(&state, &user, None).await?;
    view.errors = errors;
    view.name = name;
    view.external_id = external_id;
    view.domains = domains;
    render(&view)
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    layout: Layout,
    organization: OrganizationRow,
    retention_period_in_days: Option<i64>,
    /// What the retention field shows: the current setting, or what was typed.
    days: String,
    saved: bool,
    error: Option<String>,
    min_days: i64,
    max_days: i64,
    /// The organization's log streams, with the newest sequence for their lag.
    streams: Vec<StreamRow>,
    stream_types: Vec<&'static str>,
    stream_notice: Option<String>,
    stream_error: Option<String>,
    /// What the add-stream form shows again after a refusal.
    stream_form: StreamForm,
    quarantine: QuarantineSummary,
    quarantine_notice: Option<&'static str>,
}

impl OrganizationPage {
    fn new(
        user: &DashboardUser,
        organization: Organization,
        quarantine: QuarantineSummary,
    ) -> Self {
        let retention_period_in_days = organization.retention_period_in_days;
        OrganizationPage {
            layout: Layout::for_user(user, "organizations"),
            organization: OrganizationRow::from_organization(organization),
            retention_period_in_days,
            days: retention_period_in_days
                .map(|days| days.to_string())
                .unwrap_or_default(),
            saved: false,
            error: None,
            min_days: retention::MIN_DAYS,
            max_days: retention::MAX_DAYS,
            streams: Vec::new(),
            stream_types: stream_types(),
            stream_notice: None,
            stream_error: None,
            stream_form: StreamForm::default(),
            quarantine,
            quarantine_notice: None,
        }
    }

    async fn with_streams(mut self, state: &AppState) -> Result<Self, PageError> {
        self.streams = stream_rows(state, &self.organization.id).await?;
        Ok(self)
    }
}

/// The organization page with a notice or an error about its log streams (what the
/// stream forms answer with).
pub async fn render_with_stream_message(
    state: &AppState,
    user: &DashboardUser,
    id: &str,
    notice: Option<String>,
    error: Option<(String, StreamForm)>,
) -> Result<Response, PageError> {
    let organization = state.organizations.get(id).await?;
    let quarantine = quarantine::summary(state, &organization.id).await?;
    let mut view = OrganizationPage::new(user, organization, quarantine)
        .with_streams(state)
        .await?;
    view.stream_notice = notice;
    match error {
        Some((error, form)) => {
            view.stream_error = Some(error);
            view.stream_form = form;
            render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
        None => render(&view),
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
    /// Which log stream action just succeeded (`created`, `paused`, ...).
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    quarantine: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let organization = state.organizations.get(&id).await?;
    let quarantine = quarantine::summary(&state, &organization.id).await?;
    let mut view = OrganizationPage::new(&user, organization, quarantine)
        .with_streams(&state)
        .await?;
    view.saved = query.saved.is_some();
    view.stream_notice = query.stream.as_deref().and_then(stream_notice);
    view.quarantine_notice = match query.quarantine.as_deref() {
        Some("accepted") => Some("Accepted: the event is stored and left the quarantine."),
        Some("discarded") => Some("Discarded: the quarantined event is deleted."),
        _ => None,
    };
    render(&view)
}

/// The retention form: `intent=clear` keeps events forever; otherwise `retention_period_in_days`
/// must be a whole number of days in the range the API accepts. A bad value changes nothing.
pub async fn set_retention(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let organization = state.organizations.get(&id).await?;
    let typed = form.get("retention_period_in_days").trim().to_owned();
    let days = if form.get("intent") == "clear" {
        Ok(None)
    } else {
        match typed.parse::<i64>() {
            Ok(days) if retention::is_valid_days(days) => Ok(Some(days)),
            _ => Err(format!(
                "Retention must be a whole number of days from {} to {} (or choose “Keep forever”); “{typed}” is not.",
                retention::MIN_DAYS,
                thousands(retention::MAX_DAYS as u64),
            )),
        }
    };
    match days {
        Ok(days) => {
            state.retention.set(&organization.id, days).await?;
            let mut metadata = serde_json::Map::new();
            metadata.insert(
                "retention_period_in_days".into(),
                days.map_or(serde_json::Value::String("forever".into()), Into::into),
            );
            state
                .activity
                .record_with(
                    &user.activity,
                    actions::RETENTION_UPDATED,
                    vec![ActivityTarget::organization(organization.id.as_ref())],
                    metadata,
                )
                .await?;
            Ok(Redirect::to(&format!(
                "/dashboard/organizations/{}?saved=1",
                path_segment(&organization.id)
            ))
            .into_response())
        }
        Err(error) => {
            let quarantine = quarantine::summary(&state, &organization.id).await?;
            let mut view = OrganizationPage::new(&user, organization, quarantine)
                .with_streams(&state)
                .await?;
            view.error = Some(error);
            view.days = typed;
            render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
    }
}
