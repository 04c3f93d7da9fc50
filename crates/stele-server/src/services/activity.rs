//! The activity log: every operator action (sign-ins, key and user changes, schema
//! versions, retention, organization changes, exports and downloads, reads of audit data)
//! as an audit event in Stele's own log, the reserved organization
//! [`ACTIVITY_LOG_ORGANIZATION_ID`]. Those events go through the same append, hash chain,
//! Merkle tree and signed checkpoints as a customer's, so the proof endpoints prove them
//! and `stele verify` checks them.
//!
//! Features call [`ActivityLog::record`] with who acted ([`ActivityContext`]), what they
//! did (a name from [`actions`]) and on what ([`ActivityTarget`]).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
use stele_core::event::parse_create_event;
use stele_core::model::{ApiKey, EventId, EventQuery, Idempotent, NewEvent, StoredEvent};
use stele_core::pagination::{Page, PageRequest};
use stele_core::timestamp::{format_millis, now_millis};
use stele_store::Store;

use crate::services::ServiceError;

/// The action names of the activity log (`docs/access-control.md` lists them with their
/// targets). New features add theirs here.
pub mod actions {
    pub const USER_SIGNED_IN: &str = "user.signed_in";
    pub const USER_SIGN_IN_FAILED: &str = "user.sign_in_failed";
    pub const USER_SIGNED_OUT: &str = "user.signed_out";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_PASSWORD_CHANGED: &str = "user.password_changed";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    pub const SCHEMA_VERSION_CREATED: &str = "schema_version.created";
    pub const RETENTION_UPDATED: &str = "retention.updated";
    pub const ORGANIZATION_CREATED: &str = "organization.created";
    pub const ORGANIZATION_UPDATED: &str = "organization.updated";
    pub const ORGANIZATION_DELETION_STARTED: &str = "organization.deletion_started";
    pub const ORGANIZATION_DELETED: &str = "organization.deleted";
    pub const EXPORT_CREATED: &str = "export.created";
    pub const EXPORT_DOWNLOADED: &str = "export.downloaded";
    pub const EVENTS_SEARCHED: &str = "events.searched";
    pub const EVENT_VIEWED: &str = "event.viewed";
    pub const PROOF_BUNDLE_DOWNLOADED: &str = "proof_bundle.downloaded";
    pub const ACTIVITY_SEARCHED: &str = "activity.searched";
    pub const SIGNING_KEY_ADDED: &str = "signing_key.added";
    pub const PORTAL_LINK_CREATED: &str = "portal_link.created";
    pub const PORTAL_LINK_REVOKED: &str = "portal_link.revoked";
    pub const PORTAL_LINK_REDEEMED: &str = "portal_link.redeemed";
    pub const LOG_STREAM_CREATED: &str = "log_stream.created";
    pub const LOG_STREAM_DELETED: &str = "log_stream.deleted";
    pub const LOG_STREAM_REPLAYED: &str = "log_stream.replayed";
    pub const LOG_STREAM_PAUSED: &str = "log_stream.paused";
    pub const LOG_STREAM_RESUMED: &str = "log_stream.resumed";
    pub const LOG_STREAM_TESTED: &str = "log_stream.tested";
    pub const QUARANTINE_LISTED: &str = "quarantine.listed";
    pub const QUARANTINED_EVENT_ACCEPTED: &str = "quarantined_event.accepted";
    pub const QUARANTINED_EVENT_DISCARDED: &str = "quarantined_event.discarded";
    pub const QUARANTINED_EVENTS_ACCEPTED: &str = "quarantined_events.accepted";
}

/// Longest actor name, target name or address kept in an activity event.
const MAX_TEXT: usize = 200;

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// Who acted.
#[derive(Debug, Clone, PartialEq)]
pub enum Actor {
    /// An API request, by key id and name.
    ApiKey { id: String, name: String },
    /// A signed-in dashboard user.
    User { id: String, username: String },
    /// Someone not (yet) signed in, e.g. a failed sign-in, by the username they gave.
    Anonymous { attempted_username: String },
    /// A holder of a signed download link (links are bearer tokens: whoever has one).
    DownloadLink,
    /// A customer's IT admin in an Admin Portal session, by the `external_user_id` the
    /// vendor gave the link (empty when it gave none).
    PortalUser {
        organization_id: String,
        external_user_id: String,
    },
    /// The `stele` command line, run by the named operating-system user.
    CommandLine { os_user: String },
    /// Stele itself (start-up, background work).
    System,
}

/// Who acted, and from where: the actor, the request id and the source address.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityContext {
    pub actor: Actor,
    pub request_id: Option<String>,
    /// The peer address of the connection (Stele does not trust forwarding headers).
    pub source_address: Option<String>,
    pub user_agent: Option<String>,
}

impl ActivityContext {
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            request_id: None,
            source_address: None,
            user_agent: None,
        }
    }

    pub fn api_key(key: &ApiKey) -> Self {
        Self::new(Actor::ApiKey {
            id: key.id.to_string(),
            name: key.name.clone(),
        })
    }

    /// The command line, as the operating-system user running it.
    pub fn command_line() -> Self {
        let os_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        Self::new(Actor::CommandLine { os_user })
    }

    pub fn system() -> Self {
        Self::new(Actor::System)
    }

    pub fn with_request(
        mut self,
        request_id: Option<String>,
        source_address: Option<String>,
        user_agent: Option<String>,
    ) -> Self {
        self.request_id = request_id;
        self.source_address = source_address;
        self.user_agent = user_agent;
        self
    }

    fn actor_json(&self) -> Value {
        let (id, kind, name) = match &self.actor {
            Actor::ApiKey { id, name } => (id.clone(), "api_key", name.clone()),
            Actor::User { id, username } => (id.clone(), "user", username.clone()),
            Actor::Anonymous { attempted_username } => (
                "anonymous".to_owned(),
                "anonymous",
                attempted_username.clone(),
            ),
            Actor::DownloadLink => (
                "download_link".to_owned(),
                "download_link",
                "signed download link".to_owned(),
            ),
            Actor::PortalUser {
                organization_id,
                external_user_id,
            } => (
                format!("portal:{}", clip(external_user_id)),
                "portal_user",
                format!("Admin Portal of {organization_id}"),
            ),
            Actor::CommandLine { os_user } => {
                (format!("cli:{}", clip(os_user)), "cli", os_user.clone())
            }
            Actor::System => ("stele".to_owned(), "system", "Stele".to_owned()),
        };
        json!({"id": clip(&id), "type": kind, "name": clip(&name)})
    }
}

/// What an action was done to.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTarget {
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
}

impl ActivityTarget {
    pub fn new(kind: &str, id: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            id: clip(id),
            name: None,
        }
    }

    pub fn named(kind: &str, id: &str, name: &str) -> Self {
        Self {
            name: Some(clip(name)),
            ..Self::new(kind, id)
        }
    }

    pub fn organization(id: &str) -> Self {
        Self::new("organization", id)
    }

    pub fn quarantined_event(id: &str) -> Self {
        Self::new("quarantined_event", id)
    }

    pub fn log_stream(id: &str) -> Self {
        Self::new("log_stream", id)
    }

    /// A schema version, as `action@version`.
    pub fn schema_version(action: &str, version: i64) -> Self {
        Self::named("schema_version", &format!("{action}@{version}"), action)
    }

    pub fn api_key(key: &ApiKey) -> Self {
        Self::named("api_key", key.id.as_ref(), &key.name)
    }

    fn to_json(&self) -> Value {
        let mut target = Map::new();
        target.insert("id".into(), Value::String(self.id.clone()));
        target.insert("type".into(), Value::String(self.kind.clone()));
        if let Some(name) = &self.name {
            target.insert("name".into(), Value::String(name.clone()));
        }
        Value::Object(target)
    }
}

/// Writes and reads the activity log.
#[derive(Clone)]
pub struct ActivityLog {
    store: Arc<dyn Store>,
}

impl ActivityLog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Appends one activity event, durably, and returns its id. Callers record a write
    /// right after it commits and a read before its data is returned (so a read whose
    /// record fails is refused).
    pub async fn record(
        &self,
        context: &ActivityContext,
        action: &str,
        targets: Vec<ActivityTarget>,
    ) -> Result<EventId, ServiceError> {
        self.record_with(context, action, targets, Map::new()).await
    }

    /// [`ActivityLog::record`] with extra metadata (string values of at most 500
    /// characters, as for any event).
    pub async fn record_with(
        &self,
        context: &ActivityContext,
        action: &str,
        targets: Vec<ActivityTarget>,
        mut metadata: Map<String, Value>,
    ) -> Result<EventId, ServiceError> {
        if let Some(request_id) = &context.request_id {
            metadata.insert("request_id".into(), Value::String(clip(request_id)));
        }
        let mut event_context = Map::new();
        event_context.insert(
            "location".into(),
            Value::String(clip(context.source_address.as_deref().unwrap_or("local"))),
        );
        if let Some(user_agent) = &context.user_agent {
            event_context.insert("user_agent".into(), Value::String(clip(user_agent)));
        }
        let body = json!({
            "organization_id": ACTIVITY_LOG_ORGANIZATION_ID,
            "event": {
                "action": action,
                "occurred_at": format_millis(now_millis()),
                "actor": context.actor_json(),
                "targets": targets.iter().map(ActivityTarget::to_json).collect::<Vec<_>>(),
                "context": Value::Object(event_context),
                "metadata": Value::Object(metadata),
            }
        });
        let request = parse_create_event(&body).map_err(|errors| {
            ServiceError::Internal(format!(
                "activity event {action} is malformed: {:?}",
                errors
                    .iter()
                    .map(|error| &error.message)
                    .collect::<Vec<_>>()
            ))
        })?;
        let id = EventId::generate();
        let outcome = self
            .store
            .append_event(
                NewEvent {
                    id: id.clone(),
                    organization_id: ACTIVITY_LOG_ORGANIZATION_ID.into(),
                    event: request.event,
                },
                None,
            )
            .await
            .map_err(|error| {
                tracing::error!(%error, action, "could not record an activity event");
                ServiceError::from(error)
            })?;
        Ok(match outcome {
            Idempotent::Done(appended) => appended.id,
            Idempotent::AlreadyDone(_) => id,
        })
    }

    /// One page of the activity log matching `query` (its organization is set here).
    pub async fn search(
        &self,
        mut query: EventQuery,
        page: PageRequest<i64>,
    ) -> Result<Page<StoredEvent>, ServiceError> {
        query.organization_id = ACTIVITY_LOG_ORGANIZATION_ID.into();
        Ok(self.store.search_events(query, page).await?)
    }
}
