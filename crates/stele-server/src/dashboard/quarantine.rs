//! The quarantine on the dashboard: the summary card of an organization's page (counts
//! per action, named version and first error, the newest entries with accept and
//! discard), and the "accept them under vN" offer of an action's version history.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use stele_core::model::Idempotent;
use stele_core::pagination::{PageRequest, SortOrder};

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::page::{display_time, path_segment, thousands, FormData, PageError};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::ServiceError;
use crate::state::AppState;

/// How many of the newest entries the organization page lists.
const RECENT_ENTRIES: u32 = 20;

pub struct CountRow {
    pub action: String,
    pub action_path: String,
    pub version: i64,
    pub reason: String,
    pub count: String,
}

pub struct EntryRow {
    pub id: String,
    pub action: String,
    pub version: i64,
    pub reason: String,
    pub created_at: String,
    pub expires_at: String,
}

/// The quarantine card of an organization's page.
pub struct QuarantineSummary {
    pub total: String,
    pub counts: Vec<CountRow>,
    pub entries: Vec<EntryRow>,
    pub more: bool,
}

impl QuarantineSummary {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

pub async fn summary(
    state: &AppState,
    organization_id: &str,
) -> Result<QuarantineSummary, PageError> {
    let counts = state.quarantine.counts(organization_id).await?;
    let page = state
        .quarantine
        .list(
            organization_id,
            PageRequest {
                limit: RECENT_ENTRIES,
                order: SortOrder::Desc,
                cursor: None,
            },
        )
        .await?;
    Ok(QuarantineSummary {
        total: thousands(counts.iter().map(|count| count.count).sum()),
        counts: counts
            .into_iter()
            .map(|count| CountRow {
                action_path: path_segment(&count.action),
                action: count.action,
                version: count.version,
                reason: count.reason,
                count: thousands(count.count),
            })
            .collect(),
        more: page.after.is_some(),
        entries: page
            .data
            .into_iter()
            .map(|entry| EntryRow {
                created_at: display_time(entry.created_at),
                expires_at: display_time(state.quarantine.expires_at(entry.created_at)),
                id: entry.id,
                action: entry.action,
                version: entry.version,
                reason: entry.reason,
            })
            .collect(),
    })
}

/// "N quarantined events fail vX; accept them under vLatest?" on an action's history.
pub struct QuarantineOffer {
    pub version: i64,
    pub count: String,
    /// Whether accepting under the latest version is offered (not for the latest itself).
    pub offer: bool,
}

pub async fn offers(
    state: &AppState,
    action: &str,
    latest: i64,
) -> Result<Vec<QuarantineOffer>, PageError> {
    Ok(state
        .quarantine
        .counts_of_action(action)
        .await?
        .into_iter()
        .map(|(version, count)| QuarantineOffer {
            version,
            count: thousands(count),
            offer: version != latest,
        })
        .collect())
}

/// Accepts one entry, under the version typed in the form or the one it named.
pub async fn accept(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((id, quarantine_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let typed = form.get("version").trim();
    let version = if typed.is_empty() {
        None
    } else {
        match typed.parse::<i64>() {
            Ok(version) if version >= 1 => Some(version),
            _ => {
                return Err(PageError::BadRequest(format!(
                    "The version must be a whole number of 1 or more; “{typed}” is not."
                )))
            }
        }
    };
    match state
        .quarantine
        .accept(&id, &quarantine_id, version, None)
        .await
    {
        Ok(outcome) => {
            if let Idempotent::Done(accepted) = &outcome {
                accepted
                    .record_in(&state.activity, &user.activity, &id)
                    .await?;
            }
            Ok(back_to_organization(&id, "accepted"))
        }
        Err(ServiceError::RefusedEvent { violations, .. }) => Err(PageError::BadRequest(format!(
            "The event still fails its schema and stays quarantined: {}",
            violations
                .into_iter()
                .map(|violation| format!("{}: {}", violation.instance_path, violation.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        Err(other) => Err(other.into()),
    }
}

pub async fn discard(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((id, quarantine_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    state.quarantine.discard(&id, &quarantine_id).await?;
    state
        .activity
        .record(
            &user.activity,
            actions::QUARANTINED_EVENT_DISCARDED,
            vec![
                ActivityTarget::quarantined_event(&quarantine_id),
                ActivityTarget::organization(&id),
            ],
        )
        .await?;
    Ok(back_to_organization(&id, "discarded"))
}

fn back_to_organization(id: &str, what: &str) -> Response {
    Redirect::to(&format!(
        "/dashboard/organizations/{}?quarantine={what}#quarantine",
        path_segment(id)
    ))
    .into_response()
}

/// Accepts every quarantined event of the action that named `from` under version `to`.
pub async fn accept_all(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(action): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let number = |name: &str| {
        form.get(name).parse::<i64>().map_err(|_| {
            PageError::BadRequest(format!("The form field {name} is not a version number."))
        })
    };
    let (from, to) = (number("from")?, number("to")?);
    let outcome = state.quarantine.accept_all(&action, from, to).await?;
    // One record for the whole pass (each accepted event names its entry in its own stored
    // form), with what it did.
    let metadata = [
        ("from_version", Value::from(from)),
        ("accepted", Value::from(outcome.accepted)),
        ("still_failing", Value::from(outcome.still_failing)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    state
        .activity
        .record_with(
            &user.activity,
            actions::QUARANTINED_EVENTS_ACCEPTED,
            vec![ActivityTarget::schema_version(&action, to)],
            metadata,
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/dashboard/actions/{}/versions?accepted={}&still_failing={}&more={}#quarantine",
        path_segment(&action),
        outcome.accepted,
        outcome.still_failing,
        outcome.more
    ))
    .into_response())
}
