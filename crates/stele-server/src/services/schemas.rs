//! Actions and their immutable schema versions, with a cache of compiled validators.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use stele_core::action_name::{is_valid_action_name, ACTION_NAME_RULE};
use stele_core::compatibility::{compare, CompatibilityReport};
use stele_core::event::parse_create_event;
use stele_core::model::{ActionSummary, Idempotent, IdempotentWrite, SchemaVersion, StoredEvent};
use stele_core::pagination::{Page, PageRequest, SortOrder};
use stele_core::schema::{
    parse_schema_definition, CompiledSchema, SchemaDefinition, SchemaViolation,
};
use stele_core::timestamp::now_millis;
use stele_store::Store;

use crate::services::ServiceError;

/// Compiled validators per (action, version). Versions never change once created, so an
/// entry never goes stale and the cache needs no invalidation, even across replicas.
#[derive(Default)]
pub struct ValidatorCache {
    compiled: RwLock<HashMap<(String, i64), Arc<CompiledSchema>>>,
}

impl ValidatorCache {
    /// The compiled version, loading it on first use; `None` when it does not exist.
    pub async fn get(
        &self,
        store: &dyn Store,
        action: &str,
        version: i64,
    ) -> Result<Option<Arc<CompiledSchema>>, ServiceError> {
        let key = (action.to_owned(), version);
        if let Some(found) = self
            .compiled
            .read()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
        {
            return Ok(Some(found));
        }
        let Some(stored) = store.get_schema_version(action, version).await? else {
            return Ok(None);
        };
        let compiled =
            CompiledSchema::compile(action, version, &stored.definition).map_err(|problem| {
                ServiceError::Corrupt {
                    record: format!("schema {action} v{version}"),
                    detail: problem.to_string(),
                }
            })?;
        let compiled = Arc::new(compiled);
        if let Ok(mut cache) = self.compiled.write() {
            cache.insert(key, Arc::clone(&compiled));
        }
        Ok(Some(compiled))
    }
}

/// How many of an action's most recent events a proposed version is tried against.
pub const IMPACT_SAMPLE: u32 = 1_000;
/// How many failing events a check shows.
pub const IMPACT_EXAMPLES: usize = 3;

/// A stored event the proposed version would reject, and why.
#[derive(Debug, Clone)]
pub struct FailingEvent {
    pub id: String,
    pub organization_id: String,
    /// The version it was validated against when it was stored.
    pub version: i64,
    pub received_at: i64,
    pub errors: Vec<SchemaViolation>,
}

/// How a proposed version fares against recently stored events.
#[derive(Debug, Clone, Default)]
pub struct Impact {
    pub checked: usize,
    /// Checked events the proposal rejects, whatever version they were stored under.
    failing: usize,
    /// Of the failing events, those the latest version accepts (see [`Impact::would_fail`]).
    newly_failing: usize,
    /// Up to [`IMPACT_EXAMPLES`] of the newly failing events, newest first.
    newly_failing_examples: Vec<FailingEvent>,
}

impl Impact {
    /// What saving the proposal breaks: checked events the latest version accepts and the
    /// proposal rejects, which is also the evidence the compatibility verdict is checked
    /// against. Events that already fail the latest version were sent under an older one;
    /// their emitters keep validating against it, so saving changes nothing for them. Zero
    /// when the proposal equals the latest version. Every report of a schema check (the
    /// API's and the dashboard's review) counts this number, not [`Impact::already_failing`].
    pub fn would_fail(&self) -> usize {
        self.newly_failing
    }

    /// Checked events the latest version already rejects (stored under older versions).
    pub fn already_failing(&self) -> usize {
        self.failing.saturating_sub(self.newly_failing)
    }

    /// Up to [`IMPACT_EXAMPLES`] of the events counted by [`Impact::would_fail`], newest first.
    pub fn would_fail_examples(&self) -> &[FailingEvent] {
        &self.newly_failing_examples
    }
}

/// The dry run of a new schema version: what saving it would do.
#[derive(Debug, Clone)]
pub struct SchemaCheck {
    pub action: String,
    pub latest: Option<SchemaVersion>,
    pub proposed: SchemaDefinition,
    /// False when the proposal equals the latest version, so saving changes nothing.
    pub would_create: bool,
    /// The version saving would leave as latest.
    pub resulting_version: i64,
    pub report: CompatibilityReport,
    pub impact: Impact,
}

/// Checks the name of an action being defined (see [`ACTION_NAME_RULE`]).
fn check_action_name(action: &str) -> Result<(), ServiceError> {
    if !is_valid_action_name(action) {
        return Err(ServiceError::invalid_field(
            "action",
            format!("{action:?} is not a valid action name: {ACTION_NAME_RULE}."),
        ));
    }
    Ok(())
}

/// Actions and their schema versions: creating, checking and reading them.
#[derive(Clone)]
pub struct SchemaService {
    store: Arc<dyn Store>,
}

/// The bytes two definitions are compared by; a definition that cannot be encoded is an
/// error rather than equal to every other such definition.
fn canonical(definition: &SchemaDefinition) -> Result<Vec<u8>, ServiceError> {
    definition
        .to_canonical_bytes()
        .map_err(|error| ServiceError::Internal(format!("encoding a schema definition: {error}")))
}

impl SchemaService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// One version of `action`, if it exists.
    pub async fn version(
        &self,
        action: &str,
        version: i64,
    ) -> Result<Option<SchemaVersion>, ServiceError> {
        Ok(self.store.get_schema_version(action, version).await?)
    }

    /// Creates the next version of `action` from a request body, or returns the latest
    /// version unchanged when the definition is identical. The flag says whether it is new.
    pub async fn create_version(
        &self,
        action: &str,
        body: &Value,
        created_by: &str,
    ) -> Result<(SchemaVersion, bool), ServiceError> {
        match self
            .create_version_idempotently(action, body, created_by, None)
            .await?
        {
            Idempotent::Done(outcome) => Ok(outcome),
            // Only a write that claimed a key can find it taken.
            Idempotent::AlreadyDone(_) => Err(ServiceError::Internal(
                "a schema version written without an idempotency key was reported as a replay"
                    .into(),
            )),
        }
    }

    /// [`create_version`] that stores its idempotency record in the same transaction.
    pub async fn create_version_idempotently(
        &self,
        action: &str,
        body: &Value,
        created_by: &str,
        idempotency: Option<IdempotentWrite<(SchemaVersion, bool)>>,
    ) -> Result<Idempotent<(SchemaVersion, bool)>, ServiceError> {
        check_action_name(action)?;
        let definition = parse_schema_definition(body).map_err(ServiceError::InvalidRequest)?;
        Ok(self
            .store
            .create_schema_version(action, definition, created_by, now_millis(), idempotency)
            .await?)
    }

    /// Dry run of `create_version` from a request body.
    pub async fn check_version(
        &self,
        action: &str,
        body: &Value,
    ) -> Result<SchemaCheck, ServiceError> {
        check_action_name(action)?;
        let definition = parse_schema_definition(body).map_err(ServiceError::InvalidRequest)?;
        self.check_definition(action, definition).await
    }

    /// The latest version of `action`, if it exists.
    pub async fn latest_version(
        &self,
        action: &str,
    ) -> Result<Option<SchemaVersion>, ServiceError> {
        let Some(latest) = self
            .store
            .schema_version_numbers(action)
            .await?
            .last()
            .copied()
        else {
            return Ok(None);
        };
        Ok(self.store.get_schema_version(action, latest).await?)
    }

    /// Dry run of saving an already parsed definition as the next version of `action`.
    pub async fn check_definition(
        &self,
        action: &str,
        proposed: SchemaDefinition,
    ) -> Result<SchemaCheck, ServiceError> {
        let latest = self.latest_version(action).await?;
        let would_create = match &latest {
            None => true,
            Some(latest) => canonical(&latest.definition)? != canonical(&proposed)?,
        };
        let resulting_version = match &latest {
            None => 1,
            Some(latest) if would_create => latest.version + 1,
            Some(latest) => latest.version,
        };
        let mut report = compare(latest.as_ref().map(|latest| &latest.definition), &proposed);
        let impact = if let Some(latest) = &latest {
            let compiled = CompiledSchema::compile(action, resulting_version, &proposed)
                .map_err(|problem| ServiceError::invalid_field("body", problem))?;
            let latest_compiled =
                CompiledSchema::compile(action, latest.version, &latest.definition).map_err(
                    |problem| ServiceError::Corrupt {
                        record: format!("schema {action} v{}", latest.version),
                        detail: problem.to_string(),
                    },
                )?;
            let events = self
                .store
                .recent_events_of_action(action, IMPACT_SAMPLE)
                .await?;
            let impact = measure_impact(&compiled, &latest_compiled, &events);
            report.contradicted_by_stored_events(impact.would_fail(), latest.version);
            impact
        } else {
            Impact::default()
        };
        Ok(SchemaCheck {
            action: action.to_owned(),
            latest,
            proposed,
            would_create,
            resulting_version,
            report,
            impact,
        })
    }

    /// Every version of `action`, oldest first; `ActionNotFound` when it does not exist.
    pub async fn all_versions(&self, action: &str) -> Result<Vec<SchemaVersion>, ServiceError> {
        let mut versions = Vec::new();
        let mut page = PageRequest {
            limit: stele_core::pagination::MAX_LIMIT,
            order: SortOrder::Asc,
            cursor: None,
        };
        loop {
            let found = self.list_versions(action, page.clone()).await?;
            let after = found.after.clone();
            versions.extend(found.data);
            match after.and_then(|key| key.parse::<i64>().ok()) {
                Some(key) => page.cursor = Some(stele_core::pagination::Cursor::After(key)),
                None => return Ok(versions),
            }
        }
    }

    /// Every action with its latest version, in the order they were first defined.
    pub async fn all_actions(&self) -> Result<Vec<ActionSummary>, ServiceError> {
        let mut actions = Vec::new();
        let mut page = PageRequest {
            limit: stele_core::pagination::MAX_LIMIT,
            order: SortOrder::Asc,
            cursor: None,
        };
        loop {
            let found = self.list_actions(page.clone()).await?;
            let after = found.after.clone();
            actions.extend(found.data);
            match after.and_then(|key| key.parse::<i64>().ok()) {
                Some(key) => page.cursor = Some(stele_core::pagination::Cursor::After(key)),
                None => return Ok(actions),
            }
        }
    }

    pub async fn list_versions(
        &self,
        action: &str,
        page: PageRequest<i64>,
    ) -> Result<Page<SchemaVersion>, ServiceError> {
        self.store
            .list_schema_versions(action, page)
            .await?
            .ok_or_else(|| ServiceError::ActionNotFound(action.to_owned()))
    }

    pub async fn list_actions(
        &self,
        page: PageRequest<i64>,
    ) -> Result<Page<ActionSummary>, ServiceError> {
        Ok(self.store.list_actions(page).await?)
    }
}

/// Rebuilds the create-event body a stored record came from: the record is the event's
/// fields plus `organization_id`, `id`, `sequence` and `received_at`, which parsing ignores.
fn stored_event_errors(stored: &StoredEvent, schema: &CompiledSchema) -> Vec<SchemaViolation> {
    let record: Map<String, Value> = match serde_json::from_slice(&stored.canonical) {
        Ok(record) => record,
        Err(error) => {
            return vec![SchemaViolation::new(
                "",
                format!("the stored event could not be read: {error}"),
            )]
        }
    };
    let body = serde_json::json!({
        "organization_id": stored.organization_id,
        "event": Value::Object(record),
    });
    match parse_create_event(&body) {
        Ok(request) => schema.violations(&request.event),
        Err(errors) => errors
            .into_iter()
            .map(|error| SchemaViolation::new("", error.message))
            .collect(),
    }
}

/// Tries `proposed` on stored events, telling apart those the `latest` version accepts
/// (see [`Impact::newly_failing`]).
fn measure_impact(
    proposed: &CompiledSchema,
    latest: &CompiledSchema,
    events: &[StoredEvent],
) -> Impact {
    let mut impact = Impact {
        checked: events.len(),
        ..Impact::default()
    };
    for stored in events {
        let errors = stored_event_errors(stored, proposed);
        if errors.is_empty() {
            continue;
        }
        let failing = FailingEvent {
            id: stored.id.clone().into(),
            organization_id: stored.organization_id.clone().into(),
            version: stored.version,
            received_at: stored.received_at,
            errors,
        };
        impact.failing += 1;
        if stored_event_errors(stored, latest).is_empty() {
            impact.newly_failing += 1;
            if impact.newly_failing_examples.len() < IMPACT_EXAMPLES {
                impact.newly_failing_examples.push(failing);
            }
        }
    }
    impact
}
