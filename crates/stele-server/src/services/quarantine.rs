//! Quarantine: an event refused by its schema (unknown action or version, undeclared target
//! type, metadata failing a limit or a JSON Schema) is kept with its exact body and errors
//! instead of being lost, and can be accepted later (validated again, against the version
//! it named or another one) or discarded. Entries expire after a configurable period.
//!
//! [`QuarantineService::keep_refused`] is the one path from a refusal to the quarantine:
//! single create-event and every item of a batch go through it.

use std::sync::Arc;

use serde_json::Value;
use stele_core::event::parse_create_event;
use stele_core::ids::IdKind;
use stele_core::model::{AppendedEvent, Idempotent};
use stele_core::pagination::{Page, PageRequest};
use stele_core::quarantine::{
    reason_of, QuarantineCount, Quarantined, QuarantinedEvent, MAX_BODY_BYTES, MAX_PER_ORGANIZATION,
};
use stele_core::schema::SchemaViolation;
use stele_core::timestamp::{now_millis, UnixMillis};
use stele_store::{Store, StoreError};

use crate::services::activity::{actions, ActivityContext, ActivityLog, ActivityTarget};
use crate::services::events::EventService;
use crate::services::{IdempotencyRecordFor, QuarantineNote, ServiceError};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The most entries one "accept them all under vN" runs through in one call.
pub const MAX_ACCEPT_ALL: u32 = 1_000;

/// `quarantine_error.code` when the organization already holds the maximum.
pub const QUARANTINE_FULL: &str = "quarantine_full";
/// `quarantine_error.code` when the organization does not exist yet (with
/// `--auto-create-organizations`, only an accepted event creates it).
pub const QUARANTINE_ORGANIZATION_UNKNOWN: &str = "quarantine_organization_unknown";
/// `quarantine_error.code` when the body is over the size kept.
pub const QUARANTINE_BODY_TOO_LARGE: &str = "quarantine_body_too_large";

/// An entry accepted as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedEvent {
    pub event: AppendedEvent,
    pub quarantine_id: String,
}

impl AcceptedEvent {
    /// Records the acceptance in the activity log (from the API and the dashboard alike).
    pub async fn record_in(
        &self,
        log: &ActivityLog,
        context: &ActivityContext,
        organization_id: &str,
    ) -> Result<(), ServiceError> {
        log.record(
            context,
            actions::QUARANTINED_EVENT_ACCEPTED,
            vec![
                ActivityTarget::quarantined_event(&self.quarantine_id),
                ActivityTarget::new("event", self.event.id.as_ref()),
                ActivityTarget::organization(organization_id),
            ],
        )
        .await?;
        Ok(())
    }
}

/// What "accept them all under vN" did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptAllOutcome {
    pub accepted: u64,
    /// Entries that still fail the target version (they stay quarantined).
    pub still_failing: u64,
    /// Whether entries were left unvisited because the call stopped at [`MAX_ACCEPT_ALL`].
    pub more: bool,
}

/// Keeping, listing, accepting, discarding and expiring quarantined events.
#[derive(Clone)]
pub struct QuarantineService {
    store: Arc<dyn Store>,
    events: EventService,
    retention_days: u64,
}

impl QuarantineService {
    pub fn new(store: Arc<dyn Store>, events: EventService, retention_days: u64) -> Self {
        Self {
            store,
            events,
            retention_days,
        }
    }

    /// How long an entry is kept, in milliseconds.
    fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention_days)
            .unwrap_or(i64::MAX / DAY_MS)
            .saturating_mul(DAY_MS)
    }

    /// When an entry quarantined at `created_at` expires.
    pub fn expires_at(&self, created_at: UnixMillis) -> UnixMillis {
        created_at.saturating_add(self.retention_ms())
    }

    /// The refusal path of create-event, for one event (a single request or one batch
    /// item). `error` is what validating `body` ended in: a schema refusal
    /// ([`ServiceError::InvalidEvent`]) is offered to the quarantine and comes back as
    /// [`ServiceError::RefusedEvent`], saying whether it was kept; any other error comes
    /// back unchanged. `exact` is the body's bytes as received (the body is re-encoded
    /// when absent); `request_key` identifies a request sent with an `Idempotency-Key`, so
    /// its retries are kept once. A store failure while keeping is returned as such (a
    /// 5xx the client retries), so a refused event is never dropped unannounced.
    pub async fn keep_refused(
        &self,
        body: &Value,
        exact: Option<&[u8]>,
        request_key: Option<String>,
        error: ServiceError,
    ) -> ServiceError {
        let ServiceError::InvalidEvent(violations) = error else {
            return error;
        };
        match self.keep(body, exact, request_key, &violations).await {
            Ok(quarantine) => ServiceError::RefusedEvent {
                violations,
                quarantine,
            },
            Err(error) => error,
        }
    }

    async fn keep(
        &self,
        body: &Value,
        exact: Option<&[u8]>,
        request_key: Option<String>,
        violations: &[SchemaViolation],
    ) -> Result<QuarantineNote, ServiceError> {
        // A schema refusal comes after the shape checks, so the body parses.
        let request = parse_create_event(body).map_err(ServiceError::InvalidRequest)?;
        let bytes = match exact {
            Some(bytes) => bytes.to_vec(),
            None => serde_json::to_vec(body)
                .map_err(|error| ServiceError::Internal(format!("encoding a body: {error}")))?,
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Ok(QuarantineNote::NotKept {
                code: QUARANTINE_BODY_TOO_LARGE,
                message: format!(
                    "The event was not kept in quarantine: its body is {} bytes, over the {MAX_BODY_BYTES}-byte limit.",
                    bytes.len()
                ),
            });
        }
        let organization_id = request.organization_id.clone();
        let entry = QuarantinedEvent {
            id: IdKind::QuarantinedEvent.generate(),
            organization_id: organization_id.clone().into(),
            action: request.event.action,
            version: request.event.version,
            body: bytes,
            errors: violations.to_vec(),
            reason: reason_of(violations),
            request_key,
            accepted_event_id: None,
            created_at: now_millis(),
        };
        let kept = match self
            .store
            .quarantine_event(entry, MAX_PER_ORGANIZATION)
            .await
        {
            // With --auto-create-organizations an unknown organization passes validation's
            // existence check, but a refused event creates nothing (only an accepted one
            // creates its organization), so there is no quarantine to keep it in.
            Err(StoreError::OrganizationNotFound)
                if self.events.creates_unknown_organizations() =>
            {
                return Ok(QuarantineNote::NotKept {
                    code: QUARANTINE_ORGANIZATION_UNKNOWN,
                    message: format!(
                        "The event was not kept in quarantine: organization '{organization_id}' does not exist yet (its first accepted event creates it)."
                    ),
                });
            }
            other => other,
        }
        .map_err(|error| ServiceError::on_organization(error, &organization_id))?;
        Ok(match kept {
            Quarantined::Kept(id) => QuarantineNote::Kept(id),
            Quarantined::Full => QuarantineNote::NotKept {
                code: QUARANTINE_FULL,
                message: format!(
                    "The event was not kept in quarantine: organization '{organization_id}' already holds {MAX_PER_ORGANIZATION} quarantined events, the limit. Accept or discard some, or wait for them to expire."
                ),
            },
        })
    }

    async fn require_organization(&self, organization_id: &str) -> Result<(), ServiceError> {
        match self.store.get_organization(organization_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::OrganizationNotFound(
                organization_id.to_owned(),
            )),
        }
    }

    /// One page of the organization's quarantined events.
    pub async fn list(
        &self,
        organization_id: &str,
        page: PageRequest<String>,
    ) -> Result<Page<QuarantinedEvent>, ServiceError> {
        self.require_organization(organization_id).await?;
        Ok(self.store.list_quarantined(organization_id, page).await?)
    }

    /// One quarantined event of the organization.
    pub async fn get(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<QuarantinedEvent, ServiceError> {
        self.store
            .get_quarantined(organization_id, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Counts per action, named version and first error.
    pub async fn counts(
        &self,
        organization_id: &str,
    ) -> Result<Vec<QuarantineCount>, ServiceError> {
        Ok(self.store.quarantine_counts(organization_id).await?)
    }

    /// Quarantined events of `action` (all organizations), per version they named.
    pub async fn counts_of_action(&self, action: &str) -> Result<Vec<(i64, u64)>, ServiceError> {
        Ok(self.store.quarantine_counts_of_action(action).await?)
    }

    /// Validates a quarantined event again, against `version` or the version it named,
    /// and on success stores it as an event (recording the quarantine id in its stored
    /// form) and removes it from the quarantine. Still failing: 400 with the new errors,
    /// and the entry stays. An accept interrupted after its append is finished by the
    /// next one, which answers with the event already stored.
    pub async fn accept(
        &self,
        organization_id: &str,
        id: &str,
        version: Option<i64>,
        idempotency: Option<IdempotencyRecordFor<str>>,
    ) -> Result<Idempotent<AcceptedEvent>, ServiceError> {
        let entry = self.get(organization_id, id).await?;
        if let Some(done) = self.finish_interrupted(&entry).await? {
            return Ok(Idempotent::Done(done));
        }
        let body: Value =
            serde_json::from_slice(&entry.body).map_err(|error| ServiceError::Corrupt {
                record: format!("quarantined event {id}"),
                detail: format!("the kept body is not JSON: {error}"),
            })?;
        let mut request = parse_create_event(&body).map_err(ServiceError::InvalidRequest)?;
        request.organization_id = organization_id.to_owned();
        if let Some(version) = version {
            request.event.version = version;
        }
        request.event.quarantine_id = Some(entry.id.clone());
        let validated = match self.events.validate_request(request).await {
            Ok(validated) => validated,
            Err(ServiceError::InvalidEvent(violations)) => {
                return Err(ServiceError::RefusedEvent {
                    violations,
                    quarantine: QuarantineNote::Kept(entry.id),
                })
            }
            Err(other) => return Err(other),
        };
        let event_id = self
            .store
            .claim_quarantine_acceptance(organization_id, id, &IdKind::Event.generate())
            .await?
            .ok_or_else(|| not_found(id))?;
        let outcome = self
            .events
            .append_validated(validated, event_id, idempotency)
            .await?;
        if let Idempotent::Done(_) = outcome {
            self.store.discard_quarantined(organization_id, id).await?;
        }
        Ok(match outcome {
            Idempotent::Done(event) => Idempotent::Done(AcceptedEvent {
                event,
                quarantine_id: entry.id,
            }),
            Idempotent::AlreadyDone(record) => Idempotent::AlreadyDone(record),
        })
    }

    /// When an earlier accept of `entry` stored its event but stopped before removing the
    /// entry: removes it and returns that event.
    async fn finish_interrupted(
        &self,
        entry: &QuarantinedEvent,
    ) -> Result<Option<AcceptedEvent>, ServiceError> {
        let Some(event_id) = &entry.accepted_event_id else {
            return Ok(None);
        };
        let Some(stored) = self
            .store
            .get_event(&entry.organization_id, event_id)
            .await?
        else {
            return Ok(None);
        };
        self.store
            .discard_quarantined(&entry.organization_id, &entry.id)
            .await?;
        Ok(Some(AcceptedEvent {
            event: AppendedEvent {
                id: stored.event.id,
                sequence: stored.event.sequence,
                received_at: stored.event.received_at,
            },
            quarantine_id: entry.id.clone(),
        }))
    }

    /// Accepts, under `to_version`, every quarantined event of `action` that named
    /// `from_version` (all organizations, oldest first, at most [`MAX_ACCEPT_ALL`] per
    /// call); those that still fail stay quarantined.
    pub async fn accept_all(
        &self,
        action: &str,
        from_version: i64,
        to_version: i64,
    ) -> Result<AcceptAllOutcome, ServiceError> {
        let mut outcome = AcceptAllOutcome::default();
        let mut after: Option<String> = None;
        let mut visited = 0u32;
        loop {
            let batch = self
                .store
                .quarantined_of_action(action, from_version, after.clone(), 100)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(outcome);
            };
            after = Some(last.id.clone());
            for entry in batch {
                if visited == MAX_ACCEPT_ALL {
                    outcome.more = true;
                    return Ok(outcome);
                }
                visited += 1;
                match self
                    .accept(&entry.organization_id, &entry.id, Some(to_version), None)
                    .await
                {
                    Ok(_) => outcome.accepted += 1,
                    // Still refused by the schema, or by a rule of the request's shape
                    // added since it was kept (such as the timestamp forms refused now):
                    // it stays, and the pass goes on with the others.
                    Err(ServiceError::RefusedEvent { .. } | ServiceError::InvalidRequest(_)) => {
                        outcome.still_failing += 1
                    }
                    // Discarded or purged meanwhile.
                    Err(ServiceError::NotFound { .. } | ServiceError::OrganizationNotFound(_)) => {}
                    Err(other) => return Err(other),
                }
            }
        }
    }

    /// Removes one entry without storing it.
    pub async fn discard(&self, organization_id: &str, id: &str) -> Result<(), ServiceError> {
        if self.store.discard_quarantined(organization_id, id).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// Deletes entries older than the retention period at `now`; returns how many.
    pub async fn purge_expired(&self, now: UnixMillis) -> Result<u64, ServiceError> {
        let cutoff = now.saturating_sub(self.retention_ms());
        Ok(self.store.purge_quarantine(cutoff).await?)
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound {
        kind: "Quarantined event",
        id: id.to_owned(),
    }
}
