//! The Edit Event page: target types, the three kinds of metadata JSON Schema with inline
//! parse and meta-schema errors, a small property builder, the "Review changes" panel and
//! saving the next version through the same service as the API.
//!
//! Everything works without JavaScript: each button posts the whole form with an
//! `intent`, and the server answers with the page in its new state.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stele_core::compatibility::{Change, Compatibility};
use stele_core::schema::{parse_schema_definition, SchemaDefinition};
use stele_core::FieldError;

use crate::dashboard::auth::DashboardUser;
use crate::dashboard::page::{
    display_time, path_segment, render, thousands, FormData, Layout, PageError,
};
use crate::services::activity::{actions, ActivityTarget};
use crate::services::schemas::{self, SchemaCheck};
use crate::services::ServiceError;
use crate::state::AppState;

/// A JSON editor field: its form name, the text as typed, and what is wrong with it.
#[derive(Debug, Clone)]
pub struct JsonField {
    pub name: String,
    pub text: String,
    pub error: Option<String>,
}

impl JsonField {
    pub fn new(name: &str, text: &str) -> Self {
        JsonField {
            name: name.to_owned(),
            text: text.to_owned(),
            error: None,
        }
    }

    fn from_schema(name: &str, schema: Option<&Value>) -> Self {
        let text = schema
            .and_then(|schema| serde_json::to_string_pretty(schema).ok())
            .unwrap_or_default();
        JsonField::new(name, &text)
    }
}

/// The schema a field holds: `None` when it is empty or broken (then `error` says why).
pub fn parse_json_field(field: &mut JsonField) -> Option<Value> {
    if field.text.trim().is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(&field.text) {
        Ok(value @ Value::Object(_)) => Some(value),
        Ok(_) => {
            field.error = Some("A metadata schema must be a JSON object (a JSON Schema).".into());
            None
        }
        Err(error) => {
            field.error = Some(format!(
                "Not valid JSON at line {}, column {}: {}",
                error.line(),
                error.column(),
                describe_json_error(&error)
            ));
            None
        }
    }
}

/// serde_json's message without its trailing position (shown separately).
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    }
}

pub struct TargetRow {
    pub index: usize,
    pub kind: String,
    pub metadata: JsonField,
}

/// One row of a change table.
pub struct ChangeRow {
    pub pointer: String,
    pub kind: &'static str,
    pub compatibility: &'static str,
    pub label: &'static str,
    pub reason: String,
    pub old: String,
    pub new: String,
}

fn compact(value: Option<&Value>) -> String {
    value
        .and_then(|value| serde_json::to_string(value).ok())
        .unwrap_or_default()
}

pub fn compatibility_label(compatibility: Compatibility) -> &'static str {
    match compatibility {
        Compatibility::Compatible => "Compatible",
        Compatibility::MayBreak => "May break",
        Compatibility::Breaking => "Breaking",
    }
}

impl ChangeRow {
    pub fn from_change(change: &Change) -> Self {
        ChangeRow {
            pointer: change.pointer.clone(),
            kind: change.kind.as_str(),
            compatibility: change.compatibility.as_str(),
            label: compatibility_label(change.compatibility),
            reason: change.reason.clone(),
            old: compact(change.old.as_ref()),
            new: compact(change.new.as_ref()),
        }
    }
}

pub struct ExampleRow {
    pub id: String,
    pub organization_id: String,
    pub version: i64,
    pub received_at: String,
    pub errors: Vec<(String, String)>,
}

/// The "Review changes" panel.
pub struct ReviewView {
    pub would_create: bool,
    pub latest_version: i64,
    pub resulting_version: i64,
    pub verdict: &'static str,
    pub verdict_label: &'static str,
    pub verdict_summary: String,
    pub changes: Vec<ChangeRow>,
    pub reasons: Vec<ChangeRow>,
    pub checked: usize,
    /// Checked events the latest version accepts and the proposal rejects (see
    /// [`schemas::Impact::newly_failing`]): what saving would break.
    pub newly_failing: usize,
    /// Checked events that already fail the latest version (sent under an older one).
    pub already_failing: usize,
    pub sample_limit: String,
    pub examples: Vec<ExampleRow>,
}

impl ReviewView {
    fn from_check(check: &SchemaCheck) -> Self {
        let verdict = check.report.verdict;
        let verdict_summary = match verdict {
            Compatibility::Compatible => {
                "Every event valid under the latest version stays valid.".to_owned()
            }
            Compatibility::Breaking => {
                "Some events valid under the latest version would be rejected.".to_owned()
            }
            Compatibility::MayBreak => {
                "The checker cannot prove that every event valid under the latest version stays valid."
                    .to_owned()
            }
        };
        ReviewView {
            would_create: check.would_create,
            latest_version: check.latest.as_ref().map_or(0, |latest| latest.version),
            resulting_version: check.resulting_version,
            verdict: verdict.as_str(),
            verdict_label: match verdict {
                Compatibility::Compatible => "Backward compatible",
                Compatibility::Breaking => "Breaking",
                Compatibility::MayBreak => "May break",
            },
            verdict_summary,
            changes: check
                .report
                .changes
                .iter()
                .map(ChangeRow::from_change)
                .collect(),
            reasons: check
                .report
                .breaking_changes()
                .map(ChangeRow::from_change)
                .collect(),
            checked: check.impact.checked,
            newly_failing: check.impact.would_fail(),
            already_failing: check.impact.already_failing(),
            sample_limit: thousands(u64::from(schemas::IMPACT_SAMPLE)),
            examples: check
                .impact
                .would_fail_examples()
                .iter()
                .map(|example| ExampleRow {
                    id: example.id.clone(),
                    organization_id: example.organization_id.clone(),
                    version: example.version,
                    received_at: display_time(example.received_at),
                    errors: example
                        .errors
                        .iter()
                        .map(|error| (error.instance_path.clone(), error.message.clone()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The types the property builder offers (what metadata values can be).
const PROPERTY_TYPES: [&str; 4] = ["string", "number", "integer", "boolean"];

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage {
    layout: Layout,
    action: String,
    path: String,
    latest_version: i64,
    targets: Vec<TargetRow>,
    actor_metadata: JsonField,
    event_metadata: JsonField,
    new_target_type: String,
    builder_choices: Vec<(String, String)>,
    builder_schema: String,
    builder_name: String,
    builder_type: String,
    builder_required: bool,
    notices: Vec<String>,
    errors: Vec<String>,
    review: Option<ReviewView>,
    reviewed_digest: String,
}

impl EditPage {
    /// The builder's type choices, with the one last used marked.
    fn type_options(&self) -> Vec<(&'static str, bool)> {
        PROPERTY_TYPES
            .iter()
            .map(|kind| (*kind, *kind == self.builder_type))
            .collect()
    }

    fn blank(user: &DashboardUser, action: &str, latest_version: i64) -> Self {
        EditPage {
            layout: Layout::for_user(user, "actions"),
            action: action.to_owned(),
            path: path_segment(action),
            latest_version,
            targets: Vec::new(),
            actor_metadata: JsonField::new("actor_metadata", ""),
            event_metadata: JsonField::new("event_metadata", ""),
            new_target_type: String::new(),
            builder_choices: Vec::new(),
            builder_schema: "metadata".into(),
            builder_name: String::new(),
            builder_type: "string".into(),
            builder_required: false,
            notices: Vec::new(),
            errors: Vec::new(),
            review: None,
            reviewed_digest: String::new(),
        }
    }

    fn prefill(&mut self, definition: &SchemaDefinition) {
        self.targets = definition
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| TargetRow {
                index,
                kind: target.kind.clone(),
                metadata: JsonField::from_schema("target_metadata", target.metadata.as_ref()),
            })
            .collect();
        self.actor_metadata = JsonField::from_schema(
            "actor_metadata",
            definition.actor.as_ref().map(|actor| &actor.metadata),
        );
        self.event_metadata =
            JsonField::from_schema("event_metadata", definition.metadata.as_ref());
    }

    fn read_form(&mut self, form: &FormData) {
        let kinds: Vec<&str> = form.all("target_type").collect();
        let schemas: Vec<&str> = form.all("target_metadata").collect();
        self.targets = kinds
            .iter()
            .enumerate()
            .map(|(index, kind)| TargetRow {
                index,
                kind: (*kind).to_owned(),
                metadata: JsonField::new(
                    "target_metadata",
                    schemas.get(index).copied().unwrap_or_default(),
                ),
            })
            .collect();
        self.actor_metadata = JsonField::new("actor_metadata", form.get("actor_metadata"));
        self.event_metadata = JsonField::new("event_metadata", form.get("event_metadata"));
        self.new_target_type = form.get("new_target_type").trim().to_owned();
        self.builder_schema = form.get("builder_schema").to_owned();
        self.builder_name = form.get("builder_name").trim().to_owned();
        self.builder_type = form.get("builder_type").to_owned();
        self.builder_required = !form.get("builder_required").is_empty();
    }

    fn renumber(&mut self) {
        for (index, row) in self.targets.iter_mut().enumerate() {
            row.index = index;
        }
        self.builder_choices = vec![
            ("metadata".to_owned(), "Event metadata".to_owned()),
            ("actor".to_owned(), "Actor metadata".to_owned()),
        ];
        self.builder_choices.extend(self.targets.iter().map(|row| {
            (
                format!("target:{}", row.index),
                format!("Target '{}' metadata", row.kind),
            )
        }));
    }

    fn add_target(&mut self) {
        let kind = std::mem::take(&mut self.new_target_type);
        if kind.is_empty() {
            self.errors.push("Type a target type name to add.".into());
        } else if self.targets.iter().any(|row| row.kind == kind) {
            self.errors
                .push(format!("Target type '{kind}' is already listed."));
        } else {
            self.notices.push(format!(
                "Added target type '{kind}'. Review the changes before saving."
            ));
            self.targets.push(TargetRow {
                index: self.targets.len(),
                metadata: JsonField::new("target_metadata", ""),
                kind,
            });
        }
    }

    fn remove_target(&mut self, index: &str) {
        match index
            .parse::<usize>()
            .ok()
            .filter(|index| *index < self.targets.len())
        {
            Some(index) => {
                let removed = self.targets.remove(index);
                self.notices.push(format!(
                    "Removed target type '{}'. Review the changes before saving.",
                    removed.kind
                ));
            }
            None => self
                .errors
                .push("That target type is no longer listed.".into()),
        }
    }

    fn builder_field(&mut self) -> Option<&mut JsonField> {
        match self.builder_schema.as_str() {
            "metadata" => Some(&mut self.event_metadata),
            "actor" => Some(&mut self.actor_metadata),
            other => {
                let index = other.strip_prefix("target:")?.parse::<usize>().ok()?;
                self.targets.get_mut(index).map(|row| &mut row.metadata)
            }
        }
    }

    /// The property builder: adds `{name: {"type": ...}}` (and `required`) to one schema.
    fn add_property(&mut self) {
        let name = self.builder_name.clone();
        let kind = self.builder_type.clone();
        let required = self.builder_required;
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            self.errors.push(
                "Property names are 1 to 40 characters of A-Z, a-z, 0-9, '_' or '-' (the metadata key rule).".into(),
            );
            return;
        }
        if !PROPERTY_TYPES.contains(&kind.as_str()) {
            self.errors
                .push("Choose string, number, integer or boolean.".into());
            return;
        }
        let Some(field) = self.builder_field() else {
            self.errors
                .push("Choose which schema the property goes into.".into());
            return;
        };
        let mut schema = if field.text.trim().is_empty() {
            json!({"type": "object", "properties": {}})
        } else {
            match parse_json_field(field) {
                Some(schema) => schema,
                None => return,
            }
        };
        let Some(root) = schema.as_object_mut() else {
            return;
        };
        let properties = root
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(properties) = properties.as_object_mut() else {
            field.error = Some("\"properties\" must be an object to add a property.".into());
            return;
        };
        properties.insert(name.clone(), json!({"type": kind}));
        if required {
            let list = root
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                if !list.iter().any(|item| item == name.as_str()) {
                    list.push(Value::String(name.clone()));
                }
            }
        }
        field.text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        field.error = None;
        self.notices.push(format!(
            "Added {}property '{name}' ({kind}). Review the changes before saving.",
            if required { "required " } else { "" }
        ));
        self.builder_name.clear();
        self.builder_required = false;
    }

    /// The request body the form describes, as the API would receive it, leaving out every
    /// field that does not parse (its inline error says why); the flag is false when one
    /// did not. The other fields are still checked as JSON Schemas, so a single review
    /// shows every field's errors.
    fn body(&mut self) -> (Value, bool) {
        let mut ok = true;
        let mut targets = Vec::new();
        for row in &mut self.targets {
            let mut target = Map::new();
            target.insert("type".into(), Value::String(row.kind.clone()));
            if let Some(schema) = parse_json_field(&mut row.metadata) {
                target.insert("metadata".into(), schema);
            }
            ok &= row.metadata.error.is_none();
            targets.push(Value::Object(target));
        }
        let mut body = Map::new();
        body.insert("targets".into(), Value::Array(targets));
        if let Some(schema) = parse_json_field(&mut self.actor_metadata) {
            body.insert("actor".into(), json!({"metadata": schema}));
        }
        if let Some(schema) = parse_json_field(&mut self.event_metadata) {
            body.insert("metadata".into(), schema);
        }
        ok &= self.actor_metadata.error.is_none() && self.event_metadata.error.is_none();
        (Value::Object(body), ok)
    }

    /// Puts definition errors (meta-schema failures...) beside the field they belong to.
    fn place_errors(&mut self, errors: Vec<FieldError>) {
        for error in errors {
            let field = error.field.as_str();
            let slot = if field == "metadata" {
                Some(&mut self.event_metadata)
            } else if field == "actor.metadata" {
                Some(&mut self.actor_metadata)
            } else {
                field
                    .strip_prefix("targets[")
                    .and_then(|rest| rest.strip_suffix("].metadata"))
                    .and_then(|index| index.parse::<usize>().ok())
                    .and_then(|index| self.targets.get_mut(index))
                    .map(|row| &mut row.metadata)
            };
            match slot {
                Some(field) => field.error = Some(error.message),
                None => self.errors.push(error.message),
            }
        }
    }
}

/// Ties a review to exactly what was reviewed: the proposed definition and the version it
/// was compared with. Saving something else asks for a new review.
fn review_digest(definition: &SchemaDefinition, latest_version: i64) -> Result<String, PageError> {
    let canonical = definition
        .to_canonical_bytes()
        .map_err(|error| PageError::Internal(format!("encoding a schema definition: {error}")))?;
    let digest = Sha256::new()
        .chain_update(latest_version.to_be_bytes())
        .chain_update(canonical)
        .finalize();
    Ok(hex::encode(digest))
}

pub async fn show(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(action): Path<String>,
) -> Result<Response, PageError> {
    let latest = state
        .schemas
        .latest_version(&action)
        .await?
        .ok_or_else(|| ServiceError::ActionNotFound(action.clone()))?;
    let mut page = EditPage::blank(&user, &action, latest.version);
    page.prefill(&latest.definition);
    page.renumber();
    render(&page)
}

pub async fn submit(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(action): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let latest = state
        .schemas
        .latest_version(&action)
        .await?
        .ok_or_else(|| ServiceError::ActionNotFound(action.clone()))?;
    let mut page = EditPage::blank(&user, &action, latest.version);
    page.read_form(&form);
    let intent = form.get("intent");
    match intent {
        "add_target" => page.add_target(),
        "add_property" => page.add_property(),
        _ => {
            if let Some(index) = intent.strip_prefix("remove_target:") {
                page.remove_target(index);
            }
        }
    }
    page.renumber();
    let reviewing = matches!(intent, "review" | "save" | "");
    if !reviewing {
        return render(&page);
    }
    let (body, every_field_parsed) = page.body();
    let definition = match parse_schema_definition(&body) {
        Ok(definition) if every_field_parsed => definition,
        parsed => {
            if let Err(errors) = parsed {
                page.place_errors(errors);
            }
            page.errors
                .push("Fix the highlighted fields, then review again.".into());
            return render(&page);
        }
    };
    let digest = review_digest(&definition, latest.version)?;
    if intent == "save" {
        if form.get("reviewed") == digest {
            let (version, created) = state
                .schemas
                .create_version(&action, &body, &user.author())
                .await?;
            if created {
                state
                    .activity
                    .record(
                        &user.activity,
                        actions::SCHEMA_VERSION_CREATED,
                        vec![ActivityTarget::schema_version(&action, version.version)],
                    )
                    .await?;
            }
            let outcome = if created { "created" } else { "unchanged" };
            return Ok(Redirect::to(&format!(
                "/dashboard/actions/{}/versions/{}?{outcome}=1",
                path_segment(&action),
                version.version
            ))
            .into_response());
        }
        page.notices.push(
            "The definition changed after it was reviewed (or a new version was saved meanwhile). Review these changes, then save."
                .into(),
        );
    }
    let check = state.schemas.check_definition(&action, definition).await?;
    page.review = Some(ReviewView::from_check(&check));
    page.reviewed_digest = digest;
    render(&page)
}
