//! Migration from WorkOS (or another Stele): copying organizations, schema versions and
//! retention into this database, and loading a WorkOS CSV export as events. Both plan
//! first and refuse a conflicting target before writing anything; both write through the
//! store, so a server running on the same database sees consistent data throughout.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stele_core::ids::IdKind;
use stele_core::model::{Idempotent, ImportKey, ImportedEvents, NewEvent, Organization};
use stele_core::schema::SchemaDefinition;
use stele_store::{Store, StoreError};

use stele_core::action_name::{is_valid_action_name, ACTION_NAME_RULE};
use stele_core::schema::CompiledSchema;

use crate::services::events::{EventService, ValidatedEvent};
use crate::services::ServiceError;
use crate::services::{organizations, retention};

/// Everything `stele import` copies from a source, as read from it.
#[derive(Debug, Clone, Default)]
pub struct SourceSnapshot {
    /// Organizations with their retention in `retention_period_in_days`.
    pub organizations: Vec<Organization>,
    pub actions: Vec<SourceAction>,
}

/// An action with every schema version, version 1 first.
#[derive(Debug, Clone)]
pub struct SourceAction {
    pub name: String,
    pub versions: Vec<SchemaDefinition>,
}

/// What applying an import will write; empty when the target already holds everything.
#[derive(Debug, Default)]
pub struct ImportPlan {
    pub create_organizations: Vec<Organization>,
    /// `(organization id, days)` for organizations whose retention is unset here.
    pub set_retention: Vec<(String, i64)>,
    /// `(action, first new version number, definitions from that version on)`.
    pub add_versions: Vec<(String, i64, Vec<SchemaDefinition>)>,
}

impl ImportPlan {
    pub fn is_empty(&self) -> bool {
        self.create_organizations.is_empty()
            && self.set_retention.is_empty()
            && self.add_versions.is_empty()
    }
}

/// Why the target cannot take the source's history as it is.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the target conflicts with the source; nothing was written:\n  - {}", .0.join("\n  - "))]
    Conflicts(Vec<String>),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Apply(String),
}

/// A bad row of a CSV export: its line number and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    pub line: u64,
    pub message: String,
}

/// Plans and applies imports.
#[derive(Clone)]
pub struct ImportService {
    store: Arc<dyn Store>,
    events: EventService,
}

fn domain_states(organization: &Organization) -> Vec<(String, String)> {
    let mut domains: Vec<(String, String)> = organization
        .domains
        .iter()
        .map(|domain| (domain.domain.clone(), domain.state.clone()))
        .collect();
    domains.sort();
    domains
}

/// Differences between an organization here and the source's, field by field.
fn organization_differences(here: &Organization, source: &Organization) -> Vec<String> {
    let mut differences = Vec::new();
    if here.name != source.name {
        differences.push(format!(
            "name {:?} here, {:?} in the source",
            here.name, source.name
        ));
    }
    if here.external_id != source.external_id {
        differences.push(format!(
            "external_id {:?} here, {:?} in the source",
            here.external_id, source.external_id
        ));
    }
    if here.metadata != source.metadata {
        differences.push(format!(
            "metadata {} here, {} in the source",
            Value::Object(here.metadata.clone()),
            Value::Object(source.metadata.clone())
        ));
    }
    if here.stripe_customer_id != source.stripe_customer_id {
        differences.push(format!(
            "stripe_customer_id {:?} here, {:?} in the source",
            here.stripe_customer_id, source.stripe_customer_id
        ));
    }
    if domain_states(here) != domain_states(source) {
        differences.push("different domains".to_owned());
    }
    // An unset retention here is filled in (an interrupted import resumes); two set
    // periods that differ are a conflict.
    if let (Some(here_days), Some(source_days)) = (
        here.retention_period_in_days,
        source.retention_period_in_days,
    ) {
        if here_days != source_days {
            differences.push(format!(
                "retention {here_days} days here, {source_days} in the source"
            ));
        }
    }
    differences
}

fn canonical(definition: &SchemaDefinition) -> Result<Vec<u8>, ImportError> {
    definition
        .to_canonical_bytes()
        .map_err(|error| ImportError::Apply(format!("cannot encode a schema: {error}")))
}

impl ImportService {
    pub fn new(store: Arc<dyn Store>, events: EventService) -> Self {
        Self { store, events }
    }

    /// Compares the source with this database; every conflict is reported at once.
    pub async fn plan(&self, source: &SourceSnapshot) -> Result<ImportPlan, ImportError> {
        let mut plan = ImportPlan::default();
        let mut conflicts = Vec::new();
        for organization in &source.organizations {
            let id = &organization.id;
            if stele_core::access::is_activity_log(id) {
                conflicts.push(format!(
                    "organization id '{id}' is reserved for Stele's activity log"
                ));
                continue;
            }
            if !IdKind::Organization.matches(id) {
                conflicts.push(format!(
                    "organization id '{id}' is not 'org_' followed by a 26-character ULID in upper case"
                ));
                continue;
            }
            // The checks the API applies, so nothing enters this way that it would refuse.
            let problems = organizations::field_problems(organization);
            if !problems.is_empty() {
                conflicts.push(format!(
                    "organization {id}: {}",
                    problems
                        .iter()
                        .map(|problem| format!("{}: {}", problem.field, problem.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                continue;
            }
            if let Some(days) = organization
                .retention_period_in_days
                .filter(|days| !retention::is_valid_days(*days))
            {
                conflicts.push(format!(
                    "organization {id}: retention of {days} days is outside what Stele keeps ({} to {} days)",
                    retention::MIN_DAYS,
                    retention::MAX_DAYS
                ));
                continue;
            }
            match self.store.get_organization(id).await? {
                Some(here) => {
                    let differences = organization_differences(&here, organization);
                    if !differences.is_empty() {
                        conflicts.push(format!(
                            "organization {id} exists with different data: {}",
                            differences.join("; ")
                        ));
                    } else if let (None, Some(days)) = (
                        here.retention_period_in_days,
                        organization.retention_period_in_days,
                    ) {
                        plan.set_retention.push((id.to_string(), days));
                    }
                }
                None => {
                    if let Some(external_id) = &organization.external_id {
                        if let Some(holder) = self
                            .store
                            .get_organization_by_external_id(external_id)
                            .await?
                        {
                            conflicts.push(format!(
                                "organization {id}: external_id {external_id:?} is already used here by organization {}",
                                holder.id
                            ));
                            continue;
                        }
                    }
                    if let Some(days) = organization.retention_period_in_days {
                        plan.set_retention.push((id.to_string(), days));
                    }
                    plan.create_organizations.push(organization.clone());
                }
            }
        }
        for action in &source.actions {
            if !is_valid_action_name(&action.name) {
                conflicts.push(format!(
                    "action {:?} is not a valid action name: {ACTION_NAME_RULE}",
                    action.name
                ));
                continue;
            }
            let invalid: Vec<String> = action
                .versions
                .iter()
                .enumerate()
                .filter_map(|(index, definition)| {
                    CompiledSchema::compile(&action.name, index as i64 + 1, definition)
                        .err()
                        .map(|problem| format!("version {}: {problem}", index + 1))
                })
                .collect();
            if !invalid.is_empty() {
                conflicts.push(format!("action {}: {}", action.name, invalid.join("; ")));
                continue;
            }
            let source_versions = action
                .versions
                .iter()
                .map(canonical)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(position) = source_versions
                .windows(2)
                .position(|pair| pair[0] == pair[1])
            {
                conflicts.push(format!(
                    "action {}: source versions {} and {} are identical, which Stele stores as one version",
                    action.name,
                    position + 1,
                    position + 2
                ));
                continue;
            }
            let numbers = self.store.schema_version_numbers(&action.name).await?;
            let mut here = Vec::new();
            for number in &numbers {
                let version = self
                    .store
                    .get_schema_version(&action.name, *number)
                    .await?
                    .ok_or_else(|| {
                        ImportError::Apply(format!("version {number} of {} vanished", action.name))
                    })?;
                here.push(canonical(&version.definition)?);
            }
            if here.len() > source_versions.len() {
                conflicts.push(format!(
                    "action {} has {} versions here but {} in the source",
                    action.name,
                    here.len(),
                    source_versions.len()
                ));
                continue;
            }
            if let Some(index) = here
                .iter()
                .zip(&source_versions)
                .position(|(here, source)| here != source)
            {
                conflicts.push(format!(
                    "action {}: version {} here differs from the source's version {}",
                    action.name,
                    index + 1,
                    index + 1
                ));
                continue;
            }
            if here.len() < source_versions.len() {
                plan.add_versions.push((
                    action.name.clone(),
                    here.len() as i64 + 1,
                    action.versions[here.len()..].to_vec(),
                ));
            }
        }
        if conflicts.is_empty() {
            Ok(plan)
        } else {
            Err(ImportError::Conflicts(conflicts))
        }
    }

    /// Writes a plan, one store transaction per organization and per version, calling
    /// `progress` after each.
    pub async fn apply(
        &self,
        plan: ImportPlan,
        created_by: &str,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), ImportError> {
        for organization in plan.create_organizations {
            let id = organization.id.clone();
            self.store
                .create_organization(organization, None)
                .await
                .map_err(|error| match error {
                    StoreError::OrganizationIdTaken => ImportError::Apply(format!(
                        "organization {id} was created here while importing; run the import again"
                    )),
                    other => other.into(),
                })?;
            progress(format!("created organization {id}"));
        }
        for (id, days) in plan.set_retention {
            self.store.set_retention(&id, Some(days)).await?;
            progress(format!("set retention of {id} to {days} days"));
        }
        for (action, first, versions) in plan.add_versions {
            for (offset, definition) in versions.into_iter().enumerate() {
                let expected = first + offset as i64;
                let at = stele_core::timestamp::now_millis();
                let (version, created) = match self
                    .store
                    .create_schema_version(&action, definition, created_by, at, None)
                    .await?
                {
                    Idempotent::Done(outcome) => outcome,
                    Idempotent::AlreadyDone(_) => {
                        return Err(ImportError::Apply("unexpected idempotent replay".into()))
                    }
                };
                if !created || version.version != expected {
                    return Err(ImportError::Apply(format!(
                        "action {action}: expected to create version {expected} but the database holds version {} (changed while importing?)",
                        version.version
                    )));
                }
                progress(format!("created {action} version {expected}"));
            }
        }
        Ok(())
    }

    /// Validates every row of a WorkOS CSV export as an event of `organization_id`
    /// against the newest schema version of its action that accepts it (or the version a
    /// `version` column names), then, only if every row passed, appends them in file
    /// order, each marked as imported; rows imported before (same import key, see
    /// [`import_key`]) are skipped. `progress` gets the number of rows stored or skipped.
    pub async fn import_events(
        &self,
        organization_id: &str,
        csv: impl std::io::Read,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Result<ImportedEvents, Vec<RowProblem>>, ImportError> {
        // Only Stele writes its own activity log.
        if stele_core::access::is_activity_log(organization_id)
            || self
                .store
                .get_organization(organization_id)
                .await?
                .is_none()
        {
            return Err(ServiceError::OrganizationNotFound(organization_id.to_owned()).into());
        }
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(csv);
        let headers = match reader.headers() {
            Ok(headers) if headers.is_empty() => {
                // An empty file is more likely a failed download than an empty export,
                // which still has its header row.
                return Ok(Err(vec![RowProblem {
                    line: 1,
                    message: "the file is empty; an export starts with a header row".into(),
                }]));
            }
            Ok(headers) => headers.clone(),
            Err(error) => {
                return Ok(Err(vec![RowProblem {
                    line: 1,
                    message: error.to_string(),
                }]))
            }
        };
        let mut validated = Vec::new();
        let mut problems = Vec::new();
        let mut occurrences: HashMap<[u8; 32], u64> = HashMap::new();
        for record in reader.records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    problems.push(RowProblem {
                        line: error.position().map_or(0, |position| position.line()),
                        message: error.to_string(),
                    });
                    continue;
                }
            };
            let line = record.position().map_or(0, |position| position.line());
            let body = match event_body(organization_id, &headers, &record) {
                Ok(body) => body,
                Err(message) => {
                    problems.push(RowProblem { line, message });
                    continue;
                }
            };
            match self.validate_row(&body).await? {
                Ok(event) => {
                    let content = row_content_hash(&body)?;
                    let occurrence = occurrences.entry(content).or_default();
                    validated.push((import_key(&content, *occurrence), event));
                    *occurrence += 1;
                }
                Err(message) => problems.push(RowProblem { line, message }),
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let mut outcome = ImportedEvents::default();
        let mut rows = validated.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<(ImportKey, NewEvent)> = rows
                .by_ref()
                .take(IMPORT_CHUNK)
                .map(|(key, mut event)| {
                    event.event.imported = true;
                    (
                        key,
                        NewEvent {
                            id: IdKind::Event.generate().into(),
                            organization_id: event.organization_id.into(),
                            event: event.event,
                        },
                    )
                })
                .collect();
            let done = self
                .store
                .append_imported_events(organization_id, chunk)
                .await?;
            outcome.appended += done.appended;
            outcome.skipped += done.skipped;
            progress(outcome.appended + outcome.skipped);
        }
        Ok(Ok(outcome))
    }

    async fn validate_row(
        &self,
        body: &Value,
    ) -> Result<Result<ValidatedEvent, String>, ImportError> {
        let action = body["event"]["action"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let candidates: Vec<i64> = match body["event"].get("version") {
            Some(_) => vec![0],
            None => {
                let mut numbers = self.store.schema_version_numbers(&action).await?;
                numbers.reverse();
                if numbers.is_empty() {
                    vec![0]
                } else {
                    numbers
                }
            }
        };
        let mut first_error = None;
        for version in candidates {
            let mut body = body.clone();
            if version > 0 {
                body["event"]["version"] = json!(version);
            }
            match self.events.validate(&body).await {
                Ok(event) => return Ok(Ok(event)),
                Err(error) => {
                    first_error.get_or_insert(describe(error));
                }
            }
        }
        Ok(Err(first_error.unwrap_or_default()))
    }
}

/// How many rows one store transaction appends: a file's rows are all validated first,
/// then stored in transactions of this many, each with its rows' import keys, so an
/// interrupted import is finished by running it again.
const IMPORT_CHUNK: usize = 1_000;

/// SHA-256 of the RFC 8785 form of the create-event body a row describes: the same row in
/// any later export of the same events has the same hash, however its columns are ordered.
fn row_content_hash(body: &Value) -> Result<[u8; 32], ImportError> {
    let bytes = stele_core::canonical::to_canonical_bytes(body)
        .map_err(|error| ImportError::Apply(format!("cannot encode a row: {error}")))?;
    Ok(Sha256::digest(bytes).into())
}

/// The key that makes importing a row again a no-op: the row's content hash and how many
/// identical rows came before it in the file, so genuinely repeated events (same actor,
/// action, targets and millisecond) are all kept, and re-importing the file (or a later
/// export overlapping it) skips each of them once.
fn import_key(content: &[u8; 32], occurrence: u64) -> ImportKey {
    let mut hasher = Sha256::new();
    hasher.update(content);
    hasher.update(occurrence.to_be_bytes());
    hasher.finalize().into()
}

fn describe(error: ServiceError) -> String {
    match error {
        ServiceError::InvalidRequest(errors) => errors
            .into_iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect::<Vec<_>>()
            .join("; "),
        ServiceError::InvalidEvent(violations) => violations
            .into_iter()
            .map(|violation| format!("{}: {}", violation.instance_path, violation.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A create-event body from one CSV row (WorkOS export columns; JSON in the metadata ones).
fn event_body(
    organization_id: &str,
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
) -> Result<Value, String> {
    let field = |name: &str| {
        headers
            .iter()
            .position(|header| header.trim() == name)
            .and_then(|index| record.get(index))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let json_object = |name: &str| -> Result<Option<Value>, String> {
        match field(name) {
            None => Ok(None),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) if map.is_empty() => Ok(None),
                Ok(value @ Value::Object(_)) => Ok(Some(value)),
                Ok(Value::Null) => Ok(None),
                _ => Err(format!("column {name} is not a JSON object: {text}")),
            },
        }
    };
    let mut actor = Map::new();
    actor.insert("id".into(), json!(field("actor_id")));
    actor.insert("type".into(), json!(field("actor_type")));
    if let Some(name) = field("actor_name") {
        actor.insert("name".into(), json!(name));
    }
    if let Some(metadata) = json_object("actor_metadata")? {
        actor.insert("metadata".into(), metadata);
    }
    let mut targets = Vec::new();
    for n in 1.. {
        let id = field(&format!("target_id_{n}"));
        let kind = field(&format!("target_type_{n}"));
        if !headers
            .iter()
            .any(|header| header.trim() == format!("target_id_{n}"))
        {
            break;
        }
        if id.is_none() && kind.is_none() {
            continue;
        }
        let mut target = Map::new();
        target.insert("id".into(), json!(id));
        target.insert("type".into(), json!(kind));
        if let Some(name) = field(&format!("target_name_{n}")) {
            target.insert("name".into(), json!(name));
        }
        if let Some(metadata) = json_object(&format!("target_metadata_{n}"))? {
            target.insert("metadata".into(), metadata);
        }
        targets.push(Value::Object(target));
    }
    let mut context = Map::new();
    context.insert("location".into(), json!(field("context_location")));
    if let Some(user_agent) = field("context_user_agent") {
        context.insert("user_agent".into(), json!(user_agent));
    }
    let mut event = Map::new();
    event.insert("action".into(), json!(field("action")));
    event.insert("occurred_at".into(), json!(field("occurred_at")));
    event.insert("actor".into(), Value::Object(actor));
    event.insert("targets".into(), Value::Array(targets));
    event.insert("context".into(), Value::Object(context));
    if let Some(metadata) = json_object("metadata")? {
        event.insert("metadata".into(), metadata);
    }
    if let Some(version) = field("version") {
        let version: i64 = version
            .parse()
            .map_err(|_| format!("column version is not an integer: {version}"))?;
        event.insert("version".into(), json!(version));
    }
    Ok(json!({"organization_id": organization_id, "event": event}))
}
