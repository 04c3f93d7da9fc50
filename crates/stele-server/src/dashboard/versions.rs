//! Version history of an action (who created each version, and when), a side-by-side diff
//! between any two versions, and one version's page with the snippets that emit it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;
use stele_core::compatibility::compare;
use stele_core::model::{OrganizationFilter, SchemaVersion};
use stele_core::pagination::PageRequest;

use crate::dashboard::actions::schema_labels;
use crate::dashboard::auth::{is_https, DashboardUser};
use crate::dashboard::diff::{side_by_side, Row};
use crate::dashboard::editor::{compatibility_label, ChangeRow};
use crate::dashboard::page::{display_time, path_segment, render, Layout, PageError};
use crate::dashboard::quarantine::{self, QuarantineOffer};
use crate::dashboard::snippets::{self, Snippets};
use crate::services::ServiceError;
use crate::state::AppState;

pub struct VersionRow {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub target_types: String,
    pub schemas: String,
}

pub struct Comparison {
    pub from: i64,
    pub to: i64,
    pub rows: Vec<Row>,
    pub changes: Vec<ChangeRow>,
    pub verdict: &'static str,
    pub verdict_label: &'static str,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    action: String,
    path: String,
    versions: Vec<VersionRow>,
    numbers: Vec<i64>,
    comparison: Option<Comparison>,
    latest: i64,
    quarantine: Vec<QuarantineOffer>,
    quarantine_notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
    /// Set after "accept them under vN": how many were accepted and still fail.
    #[serde(default)]
    accepted: Option<u64>,
    #[serde(default)]
    still_failing: Option<u64>,
    #[serde(default)]
    more: Option<bool>,
}

fn pretty(version: &SchemaVersion) -> String {
    serde_json::to_string_pretty(&version.definition).unwrap_or_default()
}

pub async fn history(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(action): Path<String>,
    Query(query): Query<CompareQuery>,
) -> Result<Response, PageError> {
    let versions = state.schemas.all_versions(&action).await?;
    let latest = versions.last().map_or(1, |version| version.version);
    let to = query.to.unwrap_or(latest);
    let from = query.from.unwrap_or((to - 1).max(1));
    let find = |number: i64| versions.iter().find(|version| version.version == number);
    let comparison = match (find(from), find(to)) {
        (Some(old), Some(new)) if versions.len() > 1 => {
            let report = compare(Some(&old.definition), &new.definition);
            Some(Comparison {
                from,
                to,
                rows: side_by_side(&pretty(old), &pretty(new)),
                changes: report.changes.iter().map(ChangeRow::from_change).collect(),
                verdict: report.verdict.as_str(),
                verdict_label: compatibility_label(report.verdict),
            })
        }
        (Some(_), Some(_)) => None,
        _ => {
            return Err(PageError::NotFound(format!(
                "'{action}' has no version {}.",
                if find(from).is_none() { from } else { to }
            )))
        }
    };
    let quarantine = quarantine::offers(&state, &action, latest).await?;
    let quarantine_notice = query.accepted.map(|accepted| {
        let mut notice = format!(
            "Accepted {accepted} quarantined event{} under v{latest}.",
            if accepted == 1 { "" } else { "s" }
        );
        if let Some(failing) = query.still_failing.filter(|failing| *failing > 0) {
            notice.push_str(&format!(" {failing} still fail and stay quarantined."));
        }
        if query.more == Some(true) {
            notice.push_str(" More remain: accept again to continue.");
        }
        notice
    });
    render(&HistoryPage {
        layout: Layout::for_user(&user, "actions"),
        latest,
        quarantine,
        quarantine_notice,
        path: path_segment(&action),
        numbers: versions
            .iter()
            .rev()
            .map(|version| version.version)
            .collect(),
        versions: versions
            .iter()
            .rev()
            .map(|version| VersionRow {
                version: version.version,
                created_at: display_time(version.created_at),
                created_by: version.created_by.clone(),
                target_types: version
                    .definition
                    .target_types()
                    .collect::<Vec<_>>()
                    .join(", "),
                schemas: schema_labels(&version.definition).join(", "),
            })
            .collect(),
        action,
        comparison,
    })
}

#[derive(Template)]
#[template(path = "version.html")]
struct VersionPage {
    layout: Layout,
    action: String,
    path: String,
    version: i64,
    latest_version: i64,
    created_at: String,
    created_by: String,
    definition: String,
    created: bool,
    unchanged: bool,
    snippets: Snippets,
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    unchanged: Option<String>,
}

/// How the browser reached the server, for snippets that point back at it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty())
        .unwrap_or("127.0.0.1:8080");
    let scheme = if is_https(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub async fn show(
    State(state): State<AppState>,
    user: DashboardUser,
    headers: HeaderMap,
    Path((action, number)): Path<(String, i64)>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, PageError> {
    let version = state
        .schemas
        .version(&action, number)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("'{action}' has no version {number}.")))?;
    let latest = state
        .schemas
        .latest_version(&action)
        .await?
        .ok_or_else(|| ServiceError::ActionNotFound(action.clone()))?;
    // The newest organization, so the snippets run as shown; none yet means a placeholder.
    let organization = state
        .organizations
        .list(
            OrganizationFilter::default(),
            PageRequest {
                limit: 1,
                ..PageRequest::default()
            },
        )
        .await?
        .data
        .into_iter()
        .next()
        .map(|organization| organization.id.to_string());
    render(&VersionPage {
        layout: Layout::for_user(&user, "actions"),
        path: path_segment(&action),
        version: version.version,
        latest_version: latest.version,
        created_at: display_time(version.created_at),
        created_by: version.created_by.clone(),
        definition: pretty(&version),
        created: query.created.is_some(),
        unchanged: query.unchanged.is_some(),
        snippets: snippets::for_version(
            &base_url(&headers),
            &action,
            version.version,
            &version.definition,
            organization.as_deref(),
        ),
        action,
    })
}
