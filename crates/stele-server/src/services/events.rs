//! Audit events: the checks of `POST /audit_logs/events`, in the order the contract gives
//! (shape, organization, action and version, metadata limits, JSON Schemas), the append,
//! and reading stored events back (search and one event by id).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use stele_core::event::{altered_numbers, parse_create_event, CreateEventRequest, EventInput};
use stele_core::ids::IdKind;
use stele_core::model::{
    AppendedEvent, EventQuery, HashedEvent, Idempotent, NewEvent, OccurredAtKey, Organization,
    StoredEvent,
};
use stele_core::pagination::{Page, PageRequest};
use stele_core::schema::SchemaViolation;
use stele_core::timestamp::now_millis;
use stele_store::{EventToAppend, Store, StoreError};

use crate::services::schemas::ValidatorCache;

use crate::services::{IdempotencyRecordFor, ServiceError};

/// Organizations recently seen to exist. Only positive answers are cached, and the append
/// transaction checks existence again, so a stale entry can never store an orphan event.
#[derive(Default)]
pub struct KnownOrganizations {
    seen: Mutex<HashMap<String, Instant>>,
}

const KNOWN_ORGANIZATION_TTL: Duration = Duration::from_secs(30);

impl KnownOrganizations {
    async fn exists(&self, store: &dyn Store, id: &str) -> Result<bool, StoreError> {
        if self
            .seen
            .lock()
            .ok()
            .and_then(|seen| seen.get(id).copied())
            .is_some_and(|at| at.elapsed() < KNOWN_ORGANIZATION_TTL)
        {
            return Ok(true);
        }
        let exists = store.get_organization(id).await?.is_some();
        if exists {
            if let Ok(mut seen) = self.seen.lock() {
                if seen.len() > 100_000 {
                    seen.clear();
                }
                seen.insert(id.to_owned(), Instant::now());
            }
        }
        Ok(exists)
    }
}

/// An event that passed every check, ready to append.
pub struct ValidatedEvent {
    pub organization_id: String,
    pub event: EventInput,
    /// The organization does not exist yet and is created with the event
    /// (`--auto-create-organizations`).
    pub creates_organization: bool,
}

/// One item of a batch: the create-event body and, when the item has an idempotency key,
/// the builder of the record stored with it. An item the API already refused (its shape
/// around the body) is its refusal.
pub type BatchItem = Result<BatchItemRequest, ServiceError>;

pub struct BatchItemRequest {
    pub body: Value,
    pub idempotency: Option<IdempotencyRecordFor<str>>,
}

/// An event ready to append, and whether admitting it created its organization (which is
/// removed again if the event is not stored).
struct AdmittedEvent {
    event: NewEvent,
    created_organization: bool,
}

/// Validating, appending and reading audit events.
#[derive(Clone)]
pub struct EventService {
    store: Arc<dyn Store>,
    validators: Arc<ValidatorCache>,
    known_organizations: Arc<KnownOrganizations>,
    auto_create_organizations: bool,
}

impl EventService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            validators: Arc::default(),
            known_organizations: Arc::default(),
            auto_create_organizations: false,
        }
    }

    /// With `enabled`, an event for an unknown but well-formed organization id creates
    /// that organization instead of being refused.
    pub fn auto_creating_organizations(mut self, enabled: bool) -> Self {
        self.auto_create_organizations = enabled;
        self
    }

    /// Runs every check of create-event without writing anything.
    pub async fn validate(&self, body: &Value) -> Result<ValidatedEvent, ServiceError> {
        let request = parse_create_event(body).map_err(ServiceError::InvalidRequest)?;
        // Only here, on what arrives: events already stored (re-read for schema checks)
        // and quarantined ones keep whatever numbers they were accepted with.
        let altered = altered_numbers(&request);
        if !altered.is_empty() {
            return Err(ServiceError::InvalidRequest(altered));
        }
        self.validate_request(request).await
    }

    /// Runs every check after the request shape, in the contract's order, on a parsed
    /// request (a quarantined event accepted under another version goes through here).
    pub async fn validate_request(
        &self,
        request: CreateEventRequest,
    ) -> Result<ValidatedEvent, ServiceError> {
        // Only Stele writes its own activity log.
        if stele_core::access::is_activity_log(&request.organization_id) {
            return Err(ServiceError::OrganizationNotFound(request.organization_id));
        }
        let creates_organization = if self
            .known_organizations
            .exists(self.store.as_ref(), &request.organization_id)
            .await?
        {
            false
        } else if self.auto_create_organizations
            && IdKind::Organization.matches(&request.organization_id)
        {
            true
        } else {
            return Err(ServiceError::OrganizationNotFound(request.organization_id));
        };
        let event = request.event;
        let Some(schema) = self
            .validators
            .get(self.store.as_ref(), &event.action, event.version)
            .await?
        else {
            return Err(ServiceError::InvalidEvent(vec![
                self.missing_version(&event).await?,
            ]));
        };
        let violations = schema.violations(&event);
        if !violations.is_empty() {
            return Err(ServiceError::InvalidEvent(violations));
        }
        Ok(ValidatedEvent {
            organization_id: request.organization_id,
            event,
            creates_organization,
        })
    }

    /// Explains a missing (action, version): either the action is unknown, or which versions exist.
    async fn missing_version(&self, event: &EventInput) -> Result<SchemaViolation, StoreError> {
        let versions = self.store.schema_version_numbers(&event.action).await?;
        Ok(if versions.is_empty() {
            SchemaViolation::new(
            "/action",
            format!(
                "action '{}' is not configured; create its schema with POST /audit_logs/actions/{}/schemas",
                event.action, event.action
            ),
        )
        } else {
            let list: Vec<String> = versions.iter().map(i64::to_string).collect();
            SchemaViolation::new(
                "/version",
                format!(
                    "version {} of action '{}' does not exist; existing versions: {}",
                    event.version,
                    event.action,
                    list.join(", ")
                ),
            )
        })
    }

    /// Validates and appends an event. `idempotency` builds the record to store atomically with
    /// the event, given the new event's id.
    pub async fn create(
        &self,
        body: &Value,
        idempotency: Option<IdempotencyRecordFor<str>>,
    ) -> Result<Idempotent<AppendedEvent>, ServiceError> {
        let validated = self.validate(body).await?;
        self.append_validated(validated, IdKind::Event.generate(), idempotency)
            .await
    }

    /// Appends an event that passed [`EventService::validate_request`] under the id `id`.
    pub async fn append_validated(
        &self,
        validated: ValidatedEvent,
        id: String,
        idempotency: Option<IdempotencyRecordFor<str>>,
    ) -> Result<Idempotent<AppendedEvent>, ServiceError> {
        let admitted = self.admit(validated, id).await?;
        let record = idempotency
            .map(|make_record| make_record(admitted.event.id.as_str()))
            .transpose()?;
        let organization_id = admitted.event.organization_id.to_string();
        let appended = self.store.append_event(admitted.event, record).await;
        // An organization created for this event stays only if the event was stored now
        // (a replayed key stored nothing).
        if !matches!(appended, Ok(Idempotent::Done(_))) && admitted.created_organization {
            self.discard_created_organization(&organization_id).await;
        }
        let outcome =
            appended.map_err(|error| ServiceError::on_organization(error, &organization_id))?;
        if matches!(outcome, Idempotent::Done(_)) {
            crate::metrics::record_ingested("api", 1);
        }
        Ok(outcome)
    }

    /// The event a validated request becomes, under `id`; with `--auto-create-organizations`
    /// the organization it names is created first. The single endpoint, quarantine accepts
    /// and each batch item all go through here.
    async fn admit(
        &self,
        validated: ValidatedEvent,
        id: String,
    ) -> Result<AdmittedEvent, ServiceError> {
        let created_organization = validated.creates_organization
            && self
                .create_organization_named_after_its_id(&validated.organization_id)
                .await?;
        Ok(AdmittedEvent {
            event: NewEvent {
                id: id.into(),
                organization_id: validated.organization_id.into(),
                event: validated.event,
            },
            created_organization,
        })
    }

    /// One batch item, admitted as the single endpoint admits an event, with the record its
    /// idempotency key is to hold.
    async fn admit_batch_item(
        &self,
        BatchItemRequest { body, idempotency }: BatchItemRequest,
    ) -> Result<(AdmittedEvent, Option<stele_core::model::IdempotencyRecord>), ServiceError> {
        let validated = self.validate(&body).await?;
        let admitted = self.admit(validated, IdKind::Event.generate()).await?;
        let record = idempotency
            .map(|make_record| make_record(admitted.event.id.as_str()))
            .transpose()?;
        Ok((admitted, record))
    }

    /// Removes an organization created for an event that was then not stored, so it does
    /// not stay behind (a failure is logged: the organization is then merely empty).
    async fn discard_created_organization(&self, organization_id: &str) {
        if let Err(error) = self
            .store
            .discard_unused_organization(organization_id)
            .await
        {
            tracing::warn!(organization = %organization_id, %error, "could not remove an organization created for an event that was not stored");
        }
    }

    /// Whether an event for an unknown, well-formed organization id creates it.
    pub fn creates_unknown_organizations(&self) -> bool {
        self.auto_create_organizations
    }

    /// Validates each item on its own and appends every accepted one in one durable
    /// commit. The result has one entry per item, in order: its appended event (or the
    /// record its idempotency key already held), or why it was refused. A refused item
    /// never holds back the others; the outer error means nothing was stored.
    pub async fn create_batch(
        &self,
        items: Vec<BatchItem>,
    ) -> Result<Vec<Result<Idempotent<AppendedEvent>, ServiceError>>, ServiceError> {
        let mut results: Vec<Option<Result<Idempotent<AppendedEvent>, ServiceError>>> =
            Vec::with_capacity(items.len());
        let mut to_append = Vec::with_capacity(items.len());
        // Per appended item: its index in `items`, its organization, and whether admitting
        // it created that organization.
        let mut appended_items = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let admitted = match item {
                Ok(request) => self.admit_batch_item(request).await,
                Err(refusal) => Err(refusal),
            };
            match admitted {
                Ok((admitted, idempotency)) => {
                    results.push(None);
                    appended_items.push((
                        index,
                        admitted.event.organization_id.to_string(),
                        admitted.created_organization,
                    ));
                    to_append.push(EventToAppend {
                        event: admitted.event,
                        idempotency,
                    });
                }
                Err(refusal) => results.push(Some(Err(refusal))),
            }
        }
        let outcomes = if to_append.is_empty() {
            Vec::new()
        } else {
            self.store.append_events(to_append).await?
        };
        let mut stored = 0;
        for ((index, organization_id, created_organization), outcome) in
            appended_items.into_iter().zip(outcomes)
        {
            match &outcome {
                Ok(Idempotent::Done(_)) => stored += 1,
                Ok(Idempotent::AlreadyDone(_)) => {}
                Err(_) if created_organization => {
                    self.discard_created_organization(&organization_id).await
                }
                Err(_) => {}
            }
            results[index] = Some(
                outcome.map_err(|error| ServiceError::on_organization(error, &organization_id)),
            );
        }
        crate::metrics::record_ingested("api", stored);
        Ok(results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(ServiceError::Internal(
                        "a batch item was not appended".into(),
                    ))
                })
            })
            .collect())
    }

    /// Creates an organization that an event named, unless a concurrent request did first;
    /// returns whether this call created it.
    async fn create_organization_named_after_its_id(&self, id: &str) -> Result<bool, ServiceError> {
        let now = now_millis();
        let organization = Organization {
            id: id.into(),
            name: id.to_owned(),
            external_id: None,
            metadata: Default::default(),
            domains: Vec::new(),
            retention_period_in_days: None,
            stripe_customer_id: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_organization(organization, None).await {
            Ok(_) => Ok(true),
            Err(StoreError::OrganizationIdTaken) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// An unknown organization is an error for a search rather than an empty page.
    async fn require_organization(&self, query: &EventQuery) -> Result<(), ServiceError> {
        match self.store.get_organization(&query.organization_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::OrganizationNotFound(
                query.organization_id.as_str().to_owned(),
            )),
        }
    }

    /// One page of the organization's events matching `query`; an unknown organization is an
    /// error rather than an empty page.
    pub async fn search(
        &self,
        query: EventQuery,
        page: PageRequest<i64>,
    ) -> Result<Page<StoredEvent>, ServiceError> {
        self.require_organization(&query).await?;
        let started = std::time::Instant::now();
        let page = self.store.search_events(query, page).await?;
        crate::metrics::record_search(started.elapsed());
        Ok(page)
    }

    /// One page of the organization's events matching `query`, ordered by `occurred_at`
    /// (ties broken by sequence); an unknown organization is an error.
    pub async fn search_by_occurred_at(
        &self,
        query: EventQuery,
        page: PageRequest<OccurredAtKey>,
    ) -> Result<Page<StoredEvent>, ServiceError> {
        self.require_organization(&query).await?;
        let started = std::time::Instant::now();
        let page = self.store.search_events_by_occurred_at(query, page).await?;
        crate::metrics::record_search(started.elapsed());
        Ok(page)
    }

    /// One of the organization's events with its chain hash.
    pub async fn get(&self, organization_id: &str, id: &str) -> Result<HashedEvent, ServiceError> {
        self.store
            .get_event(organization_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "Audit log event",
                id: id.to_owned(),
            })
    }
}
