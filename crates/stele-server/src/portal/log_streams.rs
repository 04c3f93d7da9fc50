//! The log streams of a `log_streams` portal session's organization: the list with each
//! stream's destination, state, progress and last error; adding a stream (one small form
//! per destination type, so it works without JavaScript); a test delivery; deleting. Every
//! call names the session's organization, so another organization's stream id is not
//! found. Destination rules (private addresses, sealed secrets, limits) are the log
//! stream service's, the same as over the API.

use crate::origin::RequestOrigin;
use crate::services::activity::{actions, ActivityTarget};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use stele_core::log_stream::{LogStream, LogStreamType};
use stele_core::model::PortalIntent;

use crate::dashboard::page::{display_time, path_segment, render_with_status, FormData, PageError};
use crate::portal::session::{PortalLayout, PortalUser};
use crate::services::ServiceError;
use crate::state::AppState;

/// One input of an "add a stream" form.
pub struct SettingField {
    pub name: &'static str,
    pub label: &'static str,
    pub required: bool,
    /// Write-only: a password input, never shown again.
    pub secret: bool,
    pub hint: &'static str,
}

const fn field(
    name: &'static str,
    label: &'static str,
    required: bool,
    secret: bool,
    hint: &'static str,
) -> SettingField {
    SettingField {
        name,
        label,
        required,
        secret,
        hint,
    }
}

/// The form of one destination type.
pub struct TypeForm {
    pub kind: &'static str,
    pub title: &'static str,
    pub fields: Vec<SettingField>,
}

/// The settings each destination type takes (docs/log-streams.md), as form fields.
fn type_forms() -> Vec<TypeForm> {
    vec![
        TypeForm {
            kind: "GenericHttps",
            title: "HTTPS endpoint (webhook)",
            fields: vec![
                field(
                    "endpoint",
                    "Endpoint URL",
                    true,
                    false,
                    "https://siem.example.com/ingest",
                ),
                field(
                    "secret",
                    "Signing secret",
                    false,
                    true,
                    "whsec_… (Standard Webhooks); optional",
                ),
            ],
        },
        TypeForm {
            kind: "Splunk",
            title: "Splunk (HTTP Event Collector)",
            fields: vec![
                field(
                    "endpoint",
                    "HEC URL",
                    true,
                    false,
                    "https://splunk.example.com:8088",
                ),
                field("token", "HEC token", true, true, ""),
                field("index", "Index", false, false, "optional"),
                field("source", "Source", false, false, "optional"),
            ],
        },
        TypeForm {
            kind: "Datadog",
            title: "Datadog",
            fields: vec![
                field(
                    "site",
                    "Site",
                    false,
                    false,
                    "datadoghq.com, datadoghq.eu, … (or an endpoint)",
                ),
                field(
                    "endpoint",
                    "Endpoint URL",
                    false,
                    false,
                    "instead of a site",
                ),
                field("api_key", "API key", true, true, ""),
            ],
        },
        TypeForm {
            kind: "S3",
            title: "Amazon S3 (or S3-compatible)",
            fields: vec![
                field("bucket", "Bucket", true, false, ""),
                field("region", "Region", true, false, "eu-west-1"),
                field(
                    "endpoint",
                    "Endpoint URL",
                    false,
                    false,
                    "only for S3-compatible stores",
                ),
                field("access_key_id", "Access key id", true, false, ""),
                field("secret_access_key", "Secret access key", true, true, ""),
                field("prefix", "Prefix", false, false, "optional"),
            ],
        },
        TypeForm {
            kind: "GoogleCloudStorage",
            title: "Google Cloud Storage",
            fields: vec![
                field("bucket", "Bucket", true, false, ""),
                field(
                    "service_account_key",
                    "Service account key (JSON)",
                    false,
                    true,
                    "optional",
                ),
                field("endpoint", "Endpoint URL", false, false, "optional"),
                field("prefix", "Prefix", false, false, "optional"),
            ],
        },
    ]
}

/// One row of the streams table.
pub struct StreamRow {
    pub id: String,
    pub id_path: String,
    pub kind: &'static str,
    pub destination: String,
    pub state: &'static str,
    pub delivered_sequence: i64,
    pub last_synced_at: String,
    pub last_error: String,
}

impl StreamRow {
    fn from_stream(stream: &LogStream) -> Self {
        let text = |name: &str| stream.settings.get(name).and_then(Value::as_str);
        let destination = match (text("endpoint"), text("bucket")) {
            (_, Some(bucket)) => match text("prefix") {
                Some(prefix) if !prefix.is_empty() => format!("{bucket}/{prefix}"),
                _ => bucket.to_owned(),
            },
            (Some(endpoint), None) => endpoint.to_owned(),
            (None, None) => String::new(),
        };
        StreamRow {
            id_path: path_segment(&stream.id),
            id: stream.id.clone(),
            kind: stream.stream_type.as_str(),
            destination,
            state: stream.state.as_str(),
            delivered_sequence: stream.delivered_sequence,
            last_synced_at: stream
                .last_synced_at
                .map(display_time)
                .unwrap_or_else(|| "never".to_owned()),
            last_error: stream.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/log_streams.html")]
struct LogStreamsPage {
    layout: PortalLayout,
    rows: Vec<StreamRow>,
    latest_sequence: i64,
    forms: Vec<TypeForm>,
    /// `(succeeded, text)` of the last action (a test delivery, a deletion).
    notice: Option<(bool, String)>,
    errors: Vec<String>,
}

async fn page(
    state: &AppState,
    user: &PortalUser,
    notice: Option<(bool, String)>,
    errors: Vec<String>,
) -> Result<LogStreamsPage, PageError> {
    user.require(PortalIntent::LogStreams)?;
    let organization_id = user.organization_id();
    let organization = state.organizations.get(organization_id).await?;
    let streams = state.log_streams.list(organization_id).await?;
    Ok(LogStreamsPage {
        layout: PortalLayout::for_user(state, user, &organization.name, "log-streams"),
        rows: streams.iter().map(StreamRow::from_stream).collect(),
        latest_sequence: state.log_streams.latest_sequence(organization_id).await?,
        forms: type_forms(),
        notice,
        errors,
    })
}

pub async fn index(State(state): State<AppState>, user: PortalUser) -> Result<Response, PageError> {
    let view = page(&state, &user, None, Vec::new()).await?;
    render_with_status(StatusCode::OK, &view)
}

/// What a refused change says, for people.
fn reasons(error: ServiceError) -> Result<Vec<String>, PageError> {
    match error {
        ServiceError::InvalidRequest(errors) => Ok(errors
            .into_iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect()),
        ServiceError::Rejected { message, .. } => Ok(vec![message]),
        other => Err(other.into()),
    }
}

/// Adds a stream from one type's form: only that type's settings are sent, and empty
/// optional fields are left out.
pub async fn create(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    user.require(PortalIntent::LogStreams)?;
    let kind = form.get("type");
    let Some(type_form) = type_forms()
        .into_iter()
        .find(|candidate| candidate.kind == kind)
    else {
        return Err(PageError::BadRequest(format!(
            "There is no stream type {kind:?}; the types are {}.",
            LogStreamType::ALL.map(|kind| kind.as_str()).join(", ")
        )));
    };
    let mut body = Map::new();
    body.insert("type".into(), Value::String(kind.to_owned()));
    for setting in &type_form.fields {
        let value = form.get(setting.name).trim();
        if !value.is_empty() {
            body.insert(setting.name.into(), Value::String(value.to_owned()));
        }
    }
    match state
        .log_streams
        .create(user.organization_id(), &Value::Object(body))
        .await
    {
        Ok(stream) => {
            record(
                &state,
                &user,
                &origin,
                actions::LOG_STREAM_CREATED,
                &stream.id,
            )
            .await?;
            Ok(Redirect::to("/portal/log-streams").into_response())
        }
        Err(error) => {
            let view = page(&state, &user, None, reasons(error)?).await?;
            render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
    }
}

/// Records a stream change made in the portal in the activity log.
async fn record(
    state: &AppState,
    user: &PortalUser,
    origin: &RequestOrigin,
    action: &str,
    stream_id: &str,
) -> Result<(), PageError> {
    state
        .activity
        .record(
            &user.activity(origin),
            action,
            vec![
                ActivityTarget::log_stream(stream_id),
                ActivityTarget::organization(user.organization_id()),
            ],
        )
        .await?;
    Ok(())
}

/// Sends a test delivery to one of the organization's streams and shows the outcome.
pub async fn test(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    Path(stream_id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    user.require(PortalIntent::LogStreams)?;
    let outcome = state
        .log_streams
        .test(user.organization_id(), &stream_id)
        .await?;
    record(
        &state,
        &user,
        &origin,
        actions::LOG_STREAM_TESTED,
        &stream_id,
    )
    .await?;
    let view = page(
        &state,
        &user,
        Some((outcome.success, outcome.message)),
        Vec::new(),
    )
    .await?;
    render_with_status(StatusCode::OK, &view)
}

/// Deletes one of the organization's streams.
pub async fn delete(
    State(state): State<AppState>,
    user: PortalUser,
    origin: RequestOrigin,
    Path(stream_id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    user.require(PortalIntent::LogStreams)?;
    state
        .log_streams
        .delete(user.organization_id(), &stream_id)
        .await?;
    record(
        &state,
        &user,
        &origin,
        actions::LOG_STREAM_DELETED,
        &stream_id,
    )
    .await?;
    let view = page(
        &state,
        &user,
        Some((true, format!("The stream {stream_id} was deleted."))),
        Vec::new(),
    )
    .await?;
    render_with_status(StatusCode::OK, &view)
}
