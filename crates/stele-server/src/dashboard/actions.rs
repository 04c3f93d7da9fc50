//! The Audit Logs configuration page (every action with its latest version) and the
//! "Create event" form that defines a new action.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use stele_core::action_name::{is_valid_action_name, ACTION_NAME_RULE};
use stele_core::schema::SchemaDefinition;

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::editor::{parse_json_field, JsonField};
use crate::dashboard::page::{
    display_time, path_segment, render, render_with_status, FormData, Layout, PageError,
};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::ServiceError;
use crate::state::AppState;

pub struct ActionRow {
    pub name: String,
    pub path: String,
    pub version: i64,
    pub target_types: Vec<String>,
    pub schemas: Vec<String>,
    pub created_at: String,
    pub created_by: String,
}

/// Which metadata schemas a definition sets, as short labels for the table.
pub fn schema_labels(definition: &SchemaDefinition) -> Vec<String> {
    let mut labels = Vec::new();
    if definition.metadata.is_some() {
        labels.push("event".to_owned());
    }
    if definition.actor.is_some() {
        labels.push("actor".to_owned());
    }
    for target in &definition.targets {
        if target.metadata.is_some() {
            labels.push(format!("target: {}", target.kind));
        }
    }
    labels
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsPage {
    layout: Layout,
    actions: Vec<ActionRow>,
}

pub async fn index(
    State(state): State<AppState>,
    user: DashboardUser,
) -> Result<Response, PageError> {
    let mut actions: Vec<ActionRow> = state
        .schemas
        .all_actions()
        .await?
        .into_iter()
        .map(|action| ActionRow {
            path: path_segment(&action.name),
            version: action.latest.version,
            target_types: action
                .latest
                .definition
                .target_types()
                .map(str::to_owned)
                .collect(),
            schemas: schema_labels(&action.latest.definition),
            created_at: display_time(action.latest.created_at),
            created_by: action.latest.created_by,
            name: action.name,
        })
        .collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    render(&ActionsPage {
        layout: Layout::for_user(&user, "actions"),
        actions,
    })
}

#[derive(Template)]
#[template(path = "action_new.html")]
struct NewActionPage {
    layout: Layout,
    name: String,
    target_types: String,
    event_metadata: JsonField,
    actor_metadata: JsonField,
    errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct NewActionQuery {
    #[serde(default)]
    name: Option<String>,
}

pub async fn new_form(
    user: DashboardUser,
    Query(query): Query<NewActionQuery>,
) -> Result<Response, PageError> {
    render(&NewActionPage {
        layout: Layout::for_user(&user, "actions"),
        name: query.name.unwrap_or_default(),
        target_types: String::new(),
        event_metadata: JsonField::new("event_metadata", ""),
        actor_metadata: JsonField::new("actor_metadata", ""),
        errors: Vec::new(),
    })
}

pub async fn create(
    State(state): State<AppState>,
    user: DashboardUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let name = form.get("name").trim().to_owned();
    let target_types = form.get("target_types").to_owned();
    let mut event_metadata = JsonField::new("event_metadata", form.get("event_metadata"));
    let mut actor_metadata = JsonField::new("actor_metadata", form.get("actor_metadata"));
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push("Give the event a name, such as user.signed_in.".to_owned());
    } else if !is_valid_action_name(&name) {
        errors.push(format!("'{name}' is not a valid name: {ACTION_NAME_RULE}."));
    } else if state.schemas.latest_version(&name).await?.is_some() {
        errors.push(format!(
            "An event named '{name}' already exists; use Edit Event on the configuration page to change it."
        ));
    }
    let targets: Vec<Value> = target_types
        .split([',', '\n'])
        .map(str::trim)
        .filter(|kind| !kind.is_empty())
        .map(|kind| json!({"type": kind}))
        .collect();
    let mut body = Map::new();
    body.insert("targets".into(), Value::Array(targets));
    if let Some(schema) = parse_json_field(&mut event_metadata) {
        body.insert("metadata".into(), schema);
    }
    if let Some(schema) = parse_json_field(&mut actor_metadata) {
        body.insert("actor".into(), json!({"metadata": schema}));
    }
    if errors.is_empty() && event_metadata.error.is_none() && actor_metadata.error.is_none() {
        match state
            .schemas
            .create_version(&name, &Value::Object(body), &user.author())
            .await
        {
            Ok((version, created)) => {
                if created {
                    state
                        .activity
                        .record(
                            &user.activity,
                            actions::SCHEMA_VERSION_CREATED,
                            vec![ActivityTarget::schema_version(&name, version.version)],
                        )
                        .await?;
                }
                return Ok(Redirect::to(&format!(
                    "/dashboard/actions/{}/versions/{}?created=1",
                    path_segment(&name),
                    version.version
                ))
                .into_response());
            }
            Err(ServiceError::InvalidRequest(problems)) => {
                for problem in problems {
                    match problem.field.as_str() {
                        "metadata" => event_metadata.error = Some(problem.message),
                        "actor.metadata" => actor_metadata.error = Some(problem.message),
                        _ => errors.push(problem.message),
                    }
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &NewActionPage {
            layout: Layout::for_user(&user, "actions"),
            name,
            target_types,
            event_metadata,
            actor_metadata,
            errors,
        },
    )
}
