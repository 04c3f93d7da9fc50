//! Organizations: the list (a page at a time), a form to create one, and each one's page
//! with its retention setting.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use stele_core::model::{Organization, OrganizationFilter};
use stele_core::pagination::{Cursor, PageRequest, SortOrder};

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::page::{
    display_time, path_segment, render, render_with_status, thousands, FormData, Layout, PageError,
};
use crate::dashboard::quarantine::{self, QuarantineSummary};
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
            return Ok(Redirect::to(&format!(
                "/dashboard/organizations?created={}",
                path_segment(&organization.id)
            ))
            .into_response())
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
            quarantine,
            quarantine_notice: None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
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
    let mut view = OrganizationPage::new(&user, organization, quarantine);
    view.saved = query.saved.is_some();
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
            Ok(Redirect::to(&format!(
                "/dashboard/organizations/{}?saved=1",
                path_segment(&organization.id)
            ))
            .into_response())
        }
        Err(error) => {
            let quarantine = quarantine::summary(&state, &organization.id).await?;
            let mut view = OrganizationPage::new(&user, organization, quarantine);
            view.error = Some(error);
            view.days = typed;
            render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
    }
}
