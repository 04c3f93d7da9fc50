//! Log streams on the organization page: each stream's state and lag at a glance, a form
//! to add one, and the operator actions (test, pause, resume, replay from a sequence,
//! delete). Everything goes through `LogStreamService`, as the API does.

use crate::services::activity::{actions, ActivityTarget};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use stele_core::log_stream::{LogStream, LogStreamState, LogStreamType};

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::organizations::render_with_stream_message;
use crate::dashboard::page::{display_time, path_segment, thousands, FormData, PageError};
use crate::services::ServiceError;
use crate::state::AppState;

/// The settings fields the add form offers; each is sent only when filled in, so every
/// destination type takes the ones it knows (docs/log-streams.md lists them).
const SETTING_FIELDS: &[&str] = &[
    "endpoint",
    "site",
    "token",
    "api_key",
    "secret",
    "index",
    "source",
    "bucket",
    "region",
    "access_key_id",
    "secret_access_key",
    "prefix",
    "service_account_key",
];

/// One stream as the organization page shows it.
pub struct StreamRow {
    pub id: String,
    pub path: String,
    pub stream_type: &'static str,
    pub state: &'static str,
    /// `ok`, `warn` or `bad`: how the state badge is coloured.
    pub tone: &'static str,
    pub paused: bool,
    /// Where it delivers (endpoint or bucket), for recognising it.
    pub target: String,
    pub delivered_sequence: i64,
    pub delivered_events: String,
    /// Events stored but not yet acknowledged by the destination.
    pub lag: String,
    pub caught_up: bool,
    pub last_synced_at: String,
    pub last_error: String,
}

/// What the add form shows again after a refusal (secrets are never shown again).
#[derive(Debug, Default, Clone)]
pub struct StreamForm {
    pub stream_type: String,
    pub endpoint: String,
    pub bucket: String,
}

pub fn stream_types() -> Vec<&'static str> {
    LogStreamType::ALL
        .iter()
        .map(|kind| kind.as_str())
        .collect()
}

fn row(stream: LogStream, latest: i64) -> StreamRow {
    let target = ["endpoint", "bucket"]
        .iter()
        .find_map(|field| stream.settings.get(*field).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let lag = (latest - stream.delivered_sequence).max(0);
    StreamRow {
        path: path_segment(&stream.id),
        id: stream.id,
        stream_type: stream.stream_type.as_str(),
        state: stream.state.as_str(),
        tone: match stream.state {
            LogStreamState::Active => "ok",
            LogStreamState::Inactive => "warn",
            LogStreamState::Error | LogStreamState::Invalid => "bad",
        },
        paused: stream.state == LogStreamState::Inactive,
        target,
        delivered_sequence: stream.delivered_sequence,
        delivered_events: thousands(u64::try_from(stream.delivered_events).unwrap_or(0)),
        lag: thousands(u64::try_from(lag).unwrap_or(0)),
        caught_up: lag == 0,
        last_synced_at: stream
            .last_synced_at
            .map(display_time)
            .unwrap_or_else(|| "never".into()),
        last_error: stream.last_error.unwrap_or_default(),
    }
}

/// The organization's streams with their lag behind its newest event.
pub async fn stream_rows(
    state: &AppState,
    organization_id: &str,
) -> Result<Vec<StreamRow>, PageError> {
    let streams = state.log_streams.list(organization_id).await?;
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let latest = state.log_streams.latest_sequence(organization_id).await?;
    Ok(streams
        .into_iter()
        .map(|stream| row(stream, latest))
        .collect())
}

/// The notice for `?stream=<what happened>` after a redirect.
pub fn stream_notice(what: &str) -> Option<String> {
    Some(
        match what {
            "created" => "Log stream added; delivery starts from the organization's first event.",
            "paused" => "Log stream paused.",
            "resumed" => "Log stream resumed.",
            "replayed" => "Replay scheduled: delivery continues from the chosen sequence.",
            "deleted" => "Log stream deleted.",
            _ => return None,
        }
        .to_owned(),
    )
}

fn redirect(id: &str, what: &str) -> Response {
    Redirect::to(&format!(
        "/dashboard/organizations/{}?stream={what}#log-streams",
        path_segment(id)
    ))
    .into_response()
}

/// A refusal a person can act on, as the page shows it; anything else is an error page.
fn refusal(error: ServiceError) -> Result<String, PageError> {
    match error {
        ServiceError::InvalidRequest(problems) => Ok(problems
            .into_iter()
            .map(|problem| format!("{}: {}", problem.field, problem.message))
            .collect::<Vec<_>>()
            .join(" ")),
        ServiceError::Rejected { message, .. } => Ok(message),
        other => Err(other.into()),
    }
}

/// The add form: `type` and the settings fields that were filled in.
pub async fn create(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let mut body = Map::new();
    body.insert("type".into(), Value::String(form.get("type").to_owned()));
    for field in SETTING_FIELDS {
        let value = form.get(field).trim();
        if !value.is_empty() {
            body.insert((*field).to_owned(), Value::String(value.to_owned()));
        }
    }
    match state.log_streams.create(&id, &Value::Object(body)).await {
        Ok(stream) => {
            record(&state, &user, actions::LOG_STREAM_CREATED, &id, &stream.id).await?;
            Ok(redirect(&id, "created"))
        }
        Err(error) => {
            let message = refusal(error)?;
            let kept = StreamForm {
                stream_type: form.get("type").to_owned(),
                endpoint: form.get("endpoint").to_owned(),
                bucket: form.get("bucket").to_owned(),
            };
            render_with_stream_message(&state, &user, &id, None, Some((message, kept))).await
        }
    }
}

/// Records a stream change made on this page in the activity log.
async fn record(
    state: &AppState,
    user: &DashboardUser,
    action: &str,
    organization_id: &str,
    stream_id: &str,
) -> Result<(), PageError> {
    state
        .activity
        .record(
            &user.activity,
            action,
            vec![
                ActivityTarget::log_stream(stream_id),
                ActivityTarget::organization(organization_id),
            ],
        )
        .await?;
    Ok(())
}

/// One stream's actions: `test`, `pause`, `resume`, `replay` (with `from_sequence`) and
/// `delete`.
pub async fn act(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((id, stream_id, verb)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let streams = &state.log_streams;
    let outcome = match verb.as_str() {
        "test" => {
            let tested = streams.test(&id, &stream_id).await?;
            record(&state, &user, actions::LOG_STREAM_TESTED, &id, &stream_id).await?;
            let message = format!("Test delivery to {stream_id}: {}", tested.message);
            return if tested.success {
                render_with_stream_message(&state, &user, &id, Some(message), None).await
            } else {
                render_with_stream_message(
                    &state,
                    &user,
                    &id,
                    None,
                    Some((message, StreamForm::default())),
                )
                .await
            };
        }
        "pause" => streams.pause(&id, &stream_id).await.map(|_| "paused"),
        "resume" => streams.resume(&id, &stream_id).await.map(|_| "resumed"),
        "delete" => streams.delete(&id, &stream_id).await.map(|_| "deleted"),
        "replay" => {
            let typed = form.get("from_sequence").trim();
            let from = match typed.parse::<i64>() {
                Ok(from) => Value::from(from),
                Err(_) => Value::String(typed.to_owned()),
            };
            let body = serde_json::json!({ "from_sequence": from });
            streams
                .replay(&id, &stream_id, &body)
                .await
                .map(|_| "replayed")
        }
        other => {
            return Err(PageError::BadRequest(format!(
                "Unknown log stream action {other:?}."
            )))
        }
    };
    match outcome {
        Ok(what) => {
            let action = match what {
                "paused" => actions::LOG_STREAM_PAUSED,
                "resumed" => actions::LOG_STREAM_RESUMED,
                "deleted" => actions::LOG_STREAM_DELETED,
                _ => actions::LOG_STREAM_REPLAYED,
            };
            record(&state, &user, action, &id, &stream_id).await?;
            Ok(redirect(&id, what))
        }
        Err(error) => {
            let message = refusal(error)?;
            render_with_stream_message(
                &state,
                &user,
                &id,
                None,
                Some((message, StreamForm::default())),
            )
            .await
        }
    }
}
