//! The events viewer of one organization: the search filters, newest first, "load more"
//! paging by keyset cursor, one event's detail (stored JSON and chain hash), and the
//! Export button.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use stele_core::export::ExportFormat;
use stele_core::model::{EventQuery, OccurredAtKey, Organization, StoredEvent};
use stele_core::pagination::{Cursor, Page, PageRequest, SortOrder};
use stele_core::timestamp::{format_millis, parse_rfc3339, to_unix_millis, UnixMillis};

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::page::{
    display_time, path_segment, render, render_with_status, FormData, Layout, PageError,
};
use crate::responses::proof_bundle_download;
use crate::services::activity::{actions, ActivityTarget};
use crate::services::exports;
use crate::services::filters::repeated;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

/// The list filters, as typed: each list field holds comma-separated values, and the range
/// fields hold `datetime-local` values (UTC) or RFC 3339 date-times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub actions: String,
    pub actor_ids: String,
    pub actor_names: String,
    pub target_types: String,
    pub target_ids: String,
    pub range_start: String,
    pub range_end: String,
    /// `occurred_at` to list by occurred time (the search API's `order_by`); empty for
    /// the order events were stored in.
    pub order_by: String,
}

/// The `order_by` value that lists events by occurred time.
const BY_OCCURRED_AT: &str = "occurred_at";

/// The list fields with their query names and labels, in form order.
pub const LIST_FIELDS: [(&str, &str); 5] = [
    ("actions", "Actions"),
    ("actor_ids", "Actor ids"),
    ("actor_names", "Actor names"),
    ("target_types", "Target types"),
    ("target_ids", "Target ids"),
];

impl Filters {
    /// The list filters as the form shows them: each field with what was typed in it.
    pub fn fields(&self) -> Vec<FilterField> {
        LIST_FIELDS
            .iter()
            .map(|(name, label)| FilterField {
                name,
                label,
                value: self.list(name).to_owned(),
            })
            .collect()
    }

    /// Reads the filters from query or form pairs. Repeated parameters (the API's
    /// `actions=a&actions=b`) are accepted as well as comma-separated values.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let list = |name: &str| repeated(pairs, name).join(", ");
        let single = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim().to_owned())
                .unwrap_or_default()
        };
        Filters {
            actions: list("actions"),
            actor_ids: list("actor_ids"),
            actor_names: list("actor_names"),
            target_types: list("target_types"),
            target_ids: list("target_ids"),
            range_start: single("range_start"),
            range_end: single("range_end"),
            order_by: single("order_by"),
        }
    }

    pub fn list(&self, name: &str) -> &str {
        match name {
            "actions" => &self.actions,
            "actor_ids" => &self.actor_ids,
            "actor_names" => &self.actor_names,
            "target_types" => &self.target_types,
            _ => &self.target_ids,
        }
    }

    /// Whether no filter narrows the list (the order does not).
    pub fn is_empty(&self) -> bool {
        Filters {
            order_by: String::new(),
            ..self.clone()
        } == Filters::default()
    }

    /// Whether the list is in occurred-time order rather than stored order.
    pub fn by_occurred_at(&self) -> bool {
        self.order_by == BY_OCCURRED_AT
    }

    /// The search these filters describe, or what is wrong with them (for people).
    pub fn to_query(&self, organization_id: &str) -> Result<EventQuery, Vec<String>> {
        let mut errors = Vec::new();
        let from = parse_time("From", &self.range_start, false, &mut errors);
        let to = parse_time("To", &self.range_end, true, &mut errors);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                errors.push("The range is empty: “From” is later than “To”.".to_owned());
            }
        }
        if !self.order_by.is_empty() && !self.by_occurred_at() && self.order_by != "sequence" {
            errors.push("The order is either the stored order or the occurred time.".to_owned());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EventQuery {
            organization_id: organization_id.to_owned().into(),
            actions: split_values(&self.actions),
            actor_ids: split_values(&self.actor_ids),
            actor_names: split_values(&self.actor_names),
            target_types: split_values(&self.target_types),
            target_ids: split_values(&self.target_ids),
            occurred_from: from,
            occurred_to: to,
            up_to_sequence: None,
        })
    }

    /// The filters as a query string (`actions=...&range_end=...`), without empty fields.
    pub fn query_string(&self) -> String {
        LIST_FIELDS
            .iter()
            .map(|(name, _)| (*name, self.list(name)))
            .chain([
                ("range_start", self.range_start.as_str()),
                ("range_end", self.range_end.as_str()),
                ("order_by", self.order_by.as_str()),
            ])
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name}={}", path_segment(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Rewrites parsed range bounds as `datetime-local` values, so the date pickers show
    /// them (an end of `19:46` reads back as `19:46:59`, which covers the same span).
    pub fn normalized(&self, query: &EventQuery) -> Filters {
        let local = |millis: Option<UnixMillis>| {
            millis.map(|millis| format_millis(millis)[..19].to_owned())
        };
        Filters {
            range_start: local(query.occurred_from).unwrap_or_default(),
            range_end: local(query.occurred_to).unwrap_or_default(),
            ..self.clone()
        }
    }
}

/// Comma-separated values, trimmed, without empties.
fn split_values(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a range bound: an RFC 3339 date-time, or a `datetime-local` value (`YYYY-MM-DDTHH:MM`
/// with optional `:SS`) or a bare date, both taken as UTC. An end bound covers the whole
/// minute, second or day it names, because the range is inclusive.
fn parse_time(
    label: &str,
    text: &str,
    is_end: bool,
    errors: &mut Vec<String>,
) -> Option<UnixMillis> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Some(at) = parse_rfc3339(text) {
        return Some(to_unix_millis(at));
    }
    let text = text.replacen(' ', "T", 1);
    let (completed, span_ms) = match text.len() {
        10 => (format!("{text}T00:00:00Z"), 86_400_000),
        16 => (format!("{text}:00Z"), 60_000),
        19 => (format!("{text}Z"), 1_000),
        _ => (String::new(), 0),
    };
    match parse_rfc3339(&completed) {
        Some(at) => Some(to_unix_millis(at) + if is_end { span_ms - 1 } else { 0 }),
        None => {
            errors.push(format!(
                "“{label}” is not a date and time: use 2022-09-08T19:46 (UTC) or an RFC 3339 date-time."
            ));
            None
        }
    }
}

/// One row of the events table, read from the stored JSON.
pub struct EventRow {
    pub id: String,
    pub href: String,
    pub sequence: i64,
    pub version: i64,
    pub action: String,
    pub occurred_at: String,
    pub actor_name: String,
    pub actor_id: String,
    pub actor_type: String,
    pub targets: Vec<String>,
    pub location: String,
}

pub fn text_at<'a>(record: &'a Value, pointer: &str) -> &'a str {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl EventRow {
    /// The row of `event`, linking to its page under `events_path` (the list's own path,
    /// so the dashboard and the Admin Portal each link within themselves).
    pub fn from_stored(events_path: &str, event: &StoredEvent) -> Self {
        let record: Value = serde_json::from_slice(&event.canonical).unwrap_or(Value::Null);
        let targets = record
            .get("targets")
            .and_then(Value::as_array)
            .map(|targets| {
                targets
                    .iter()
                    .map(|target| {
                        format!("{}: {}", text_at(target, "/type"), text_at(target, "/id"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let occurred_at = parse_rfc3339(text_at(&record, "/occurred_at"))
            .map(|at| display_time(to_unix_millis(at)))
            .unwrap_or_default();
        EventRow {
            href: format!("{events_path}/{}", path_segment(&event.id)),
            id: event.id.clone().into(),
            sequence: event.sequence,
            version: event.version,
            action: text_at(&record, "/action").to_owned(),
            occurred_at,
            actor_name: text_at(&record, "/actor/name").to_owned(),
            actor_id: text_at(&record, "/actor/id").to_owned(),
            actor_type: text_at(&record, "/actor/type").to_owned(),
            targets,
            location: text_at(&record, "/context/location").to_owned(),
        }
    }
}

/// One filter input of the form.
pub struct FilterField {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    organization: Organization,
    organization_path: String,
    fields: Vec<FilterField>,
    filters: Filters,
    filtered: bool,
    errors: Vec<String>,
    rows: Vec<EventRow>,
    /// The "Load more" link, when older matching events exist.
    load_more: Option<String>,
    /// Whether this page continues from a cursor (so a link back to the newest is useful).
    continued: bool,
}

impl EventsPage {
    fn new(user: &DashboardUser, organization: Organization, filters: Filters) -> Self {
        EventsPage {
            layout: Layout::for_user(user, section_of(&organization.id)),
            organization_path: path_segment(&organization.id),
            organization,
            fields: filters.fields(),
            filtered: !filters.is_empty(),
            filters,
            errors: Vec::new(),
            rows: Vec::new(),
            load_more: None,
            continued: false,
        }
    }

    /// The page showing `errors` in place of results, with what was typed kept.
    fn rejected(mut self, errors: Vec<String>) -> Result<Response, PageError> {
        self.errors = errors;
        render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &self)
    }
}

/// The navigation section an organization's pages belong to: the activity log has its own.
fn section_of(organization_id: &str) -> &'static str {
    if stele_core::access::is_activity_log(organization_id) {
        "activity"
    } else {
        "organizations"
    }
}

/// The `after` a "Load more" link carries (the last event shown: its sequence, or its
/// occurred time and sequence), when this page continues a list. Shared with the Admin
/// Portal's events page.
pub fn load_more_after(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .find(|(key, _)| key == "after")
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// The page request of an events viewer: newest first, from the "Load more" cursor if any,
/// or the message for a damaged one.
fn viewer_page_request<K: std::str::FromStr>(
    pairs: &[(String, String)],
) -> Result<PageRequest<K>, String> {
    let cursor = match load_more_after(pairs).map(str::parse::<K>) {
        None => None,
        Some(Ok(key)) => Some(Cursor::After(key)),
        Some(Err(_)) => {
            return Err(
                "This “load more” link is damaged; start again from the newest events.".into(),
            )
        }
    };
    Ok(PageRequest {
        limit: PAGE_SIZE,
        order: SortOrder::Desc,
        cursor,
    })
}

/// One page of an events viewer (the dashboard's, or the Admin Portal's) in the order
/// `filters` choose, continuing from the "Load more" cursor of `pairs`; the inner error is
/// the message for a damaged cursor.
pub async fn viewer_page(
    state: &AppState,
    query: EventQuery,
    filters: &Filters,
    pairs: &[(String, String)],
) -> Result<Result<Page<StoredEvent>, String>, PageError> {
    let page = if filters.by_occurred_at() {
        match viewer_page_request::<OccurredAtKey>(pairs) {
            Ok(request) => state.events.search_by_occurred_at(query, request).await?,
            Err(message) => return Ok(Err(message)),
        }
    } else {
        match viewer_page_request::<i64>(pairs) {
            Ok(request) => state.events.search(query, request).await?,
            Err(message) => return Ok(Err(message)),
        }
    };
    Ok(Ok(page))
}

pub async fn index(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(organization_id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let organization = state.organizations.get_log(&organization_id).await?;
    let filters = Filters::from_pairs(&pairs);
    let mut view = EventsPage::new(&user, organization, filters.clone());
    let query = match filters.to_query(&view.organization.id) {
        Ok(query) => query,
        Err(errors) => return view.rejected(errors),
    };
    let normalized = filters.normalized(&query);
    let page = match viewer_page(&state, query, &filters, &pairs).await? {
        Ok(page) => page,
        Err(message) => return view.rejected(vec![message]),
    };
    view.continued = load_more_after(&pairs).is_some();
    state
        .activity
        .record(
            &user.activity,
            actions::EVENTS_SEARCHED,
            vec![ActivityTarget::organization(view.organization.id.as_ref())],
        )
        .await?;
    view.rows = page
        .data
        .iter()
        .map(|event| {
            EventRow::from_stored(
                &format!("/dashboard/organizations/{}/events", view.organization_path),
                event,
            )
        })
        .collect();
    view.load_more = page.after.map(|after| {
        let filters = normalized.query_string();
        let separator = if filters.is_empty() { "" } else { "&" };
        format!(
            "/dashboard/organizations/{}/events?{filters}{separator}after={}",
            view.organization_path,
            path_segment(&after)
        )
    });
    view.filters = normalized;
    render(&view)
}

/// The Export button: creates a CSV export of the current filters and range, then sends
/// the browser to its signed download link (exports are ready as soon as they exist).
pub async fn export(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(organization_id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let organization = state.organizations.get_log(&organization_id).await?;
    let filters = Filters::from_pairs(&form.0);
    let query = match filters.to_query(&organization.id) {
        Ok(query) => query,
        Err(errors) => return EventsPage::new(&user, organization, filters).rejected(errors),
    };
    exports::check_range(query.occurred_from, query.occurred_to)?;
    let created = state
        .exports
        .create(exports::prepare(query, ExportFormat::Csv), None)
        .await?;
    let stele_core::model::Idempotent::Done(export) = created else {
        return Err(PageError::Internal(
            "an export without an idempotency key was reported as a replay".into(),
        ));
    };
    state
        .activity
        .record(
            &user.activity,
            actions::EXPORT_CREATED,
            vec![
                ActivityTarget::new("export", export.id.as_ref()),
                ActivityTarget::organization(organization.id.as_ref()),
            ],
        )
        .await?;
    let download = state.exports.download_path(&export.id).await?;
    Ok(Redirect::to(&download).into_response())
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    layout: Layout,
    organization: Organization,
    organization_path: String,
    id: String,
    action: String,
    sequence: i64,
    version: i64,
    occurred_at: String,
    received_at: String,
    received_at_rfc3339: String,
    hash: String,
    leaf_hash: String,
    /// The smallest signed checkpoint that covers this event: (tree size, signed at).
    covered_by: Option<(u64, String)>,
    verifier_key: String,
    pretty: String,
    canonical: String,
}

pub async fn show(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((organization_id, event_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let organization = state.organizations.get_log(&organization_id).await?;
    let found = state.events.get(&organization.id, &event_id).await?;
    state
        .activity
        .record(
            &user.activity,
            actions::EVENT_VIEWED,
            vec![
                ActivityTarget::new("event", &event_id),
                ActivityTarget::organization(organization.id.as_ref()),
            ],
        )
        .await?;
    let canonical = String::from_utf8_lossy(&found.event.canonical).into_owned();
    let record: Value = serde_json::from_str(&canonical)
        .map_err(|error| PageError::Internal(format!("stored event is not JSON: {error}")))?;
    let pretty = serde_json::to_string_pretty(&record)
        .map_err(|error| PageError::Internal(error.to_string()))?;
    let covered_by = state
        .transparency
        .checkpoint_covering(&organization.id, found.event.sequence as u64)
        .await?
        .map(|checkpoint| (checkpoint.tree_size, display_time(checkpoint.created_at)));
    let view = EventPage {
        leaf_hash: hex::encode(stele_core::merkle::leaf_hash(&found.event.canonical)),
        covered_by,
        verifier_key: state.transparency.signer().verifier().encoded(),
        layout: Layout::for_user(&user, section_of(&organization.id)),
        organization_path: path_segment(&organization.id),
        organization,
        action: text_at(&record, "/action").to_owned(),
        occurred_at: text_at(&record, "/occurred_at").to_owned(),
        id: found.event.id.into(),
        sequence: found.event.sequence,
        version: found.event.version,
        received_at: display_time(found.event.received_at),
        received_at_rfc3339: format_millis(found.event.received_at),
        hash: hex::encode(found.hash),
        pretty,
        canonical,
    };
    render(&view)
}

/// Downloads one event's proof bundle (proven JSONL; signs a checkpoint first when none
/// covers the event yet).
pub async fn proof_bundle(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((organization_id, event_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let organization = state.organizations.get_log(&organization_id).await?;
    let bundle = state
        .transparency
        .proof_bundle(&organization.id, &event_id)
        .await?;
    state
        .activity
        .record(
            &user.activity,
            actions::PROOF_BUNDLE_DOWNLOADED,
            vec![
                ActivityTarget::new("event", &event_id),
                ActivityTarget::organization(organization.id.as_ref()),
            ],
        )
        .await?;
    Ok(proof_bundle_download(&event_id, bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn lists_accept_commas_and_repeated_parameters() {
        let filters = Filters::from_pairs(&pairs(&[
            ("actions", "user.signed_in, user.signed_out"),
            ("actions[]", "document.shared"),
            ("actor_ids", " "),
        ]));
        let query = filters.to_query("org_1").expect("valid");
        assert_eq!(
            query.actions,
            ["user.signed_in", "user.signed_out", "document.shared"]
        );
        assert!(query.actor_ids.is_empty());
        assert_eq!(query.organization_id, "org_1");
    }

    #[test]
    fn datetime_local_bounds_are_utc_and_ends_are_inclusive() {
        let filters = Filters::from_pairs(&pairs(&[
            ("range_start", "2022-09-08T19:46"),
            ("range_end", "2022-09-08T19:46"),
        ]));
        let query = filters.to_query("org_1").expect("valid");
        let start = query.occurred_from.expect("start");
        assert_eq!(format_millis(start), "2022-09-08T19:46:00.000Z");
        assert_eq!(
            format_millis(query.occurred_to.expect("end")),
            "2022-09-08T19:46:59.999Z"
        );
        let normalized = filters.normalized(&query);
        assert_eq!(normalized.range_end, "2022-09-08T19:46:59");
        let again = normalized.to_query("org_1").expect("valid");
        assert_eq!(again.occurred_to, query.occurred_to);

        let day = Filters {
            range_end: "2022-09-08".into(),
            ..Filters::default()
        };
        assert_eq!(
            format_millis(day.to_query("o").expect("valid").occurred_to.expect("end")),
            "2022-09-08T23:59:59.999Z"
        );
        let exact = Filters {
            range_start: "2022-09-08T19:46:03.435Z".into(),
            ..Filters::default()
        };
        assert_eq!(
            exact.to_query("o").expect("valid").occurred_from,
            Some(start + 3435)
        );
    }

    #[test]
    fn bad_dates_and_empty_ranges_are_explained() {
        let filters = Filters {
            range_start: "yesterday".into(),
            ..Filters::default()
        };
        let errors = filters.to_query("o").expect_err("invalid");
        assert!(errors[0].contains("“From” is not a date"), "{errors:?}");
        let backwards = Filters {
            range_start: "2022-09-09T00:00".into(),
            range_end: "2022-09-08T00:00".into(),
            ..Filters::default()
        };
        let errors = backwards.to_query("o").expect_err("empty range");
        assert!(errors[0].contains("later than"), "{errors:?}");
    }

    #[test]
    fn the_query_string_keeps_only_filled_fields_and_escapes_them() {
        let filters = Filters {
            actor_names: "Jane Doe".into(),
            range_end: "2022-09-08T19:46:59".into(),
            ..Filters::default()
        };
        assert_eq!(
            filters.query_string(),
            "actor_names=Jane%20Doe&range_end=2022-09-08T19%3A46%3A59"
        );
        assert_eq!(Filters::default().query_string(), "");
    }
}
