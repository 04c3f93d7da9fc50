//! Log streams: an organization's events pushed, in sequence order and at least once, to
//! its SIEM or bucket. This service owns the rules of configuring a stream (destination
//! settings, sealed secrets, private destinations, limits), the operator actions (test,
//! pause, resume, replay, delete), and the delivery of one leased stream, which the
//! `log_streams` worker runs.

pub mod delivery;
pub mod objects;
pub mod outbound;
pub mod sealing;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use stele_core::ids::IdKind;
use stele_core::log_stream::{
    retry_delay, LogStream, LogStreamState, LogStreamType, StreamDelivery, StreamFailure,
};
use stele_core::timestamp::now_millis;
use stele_core::FieldError;
use stele_store::Store;
use tokio::sync::watch;

use self::delivery::{fitting_events, Batch, DeliveryFailure, MAX_BATCH_EVENTS};
use self::outbound::DestinationPolicy;
use self::sealing::StreamSecretsKey;
use self::settings::{destination, destination_url, parse_settings, Destination};
use crate::error_code::ErrorCode;
use crate::services::ServiceError;

/// Most streams one organization may have.
pub const MAX_STREAMS_PER_ORGANIZATION: usize = 10;

/// How delivery is paced; every value has a `serve` flag.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How long a partial batch waits for more events before it is sent.
    pub batch_wait: Duration,
    /// How long a replica's lease on a stream lasts without renewal.
    pub lease: Duration,
    /// The first retry's backoff; doubled per failure, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            batch_wait: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
        }
    }
}

/// What a test delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub success: bool,
    pub message: String,
}

#[derive(Clone)]
pub struct LogStreamService {
    store: Arc<dyn Store>,
    key: Option<Arc<StreamSecretsKey>>,
    policy: DestinationPolicy,
    client: reqwest::Client,
    options: DeliveryOptions,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl LogStreamService {
    pub fn new(
        store: Arc<dyn Store>,
        key: Option<StreamSecretsKey>,
        policy: DestinationPolicy,
        options: DeliveryOptions,
    ) -> Self {
        Self {
            store,
            key: key.map(Arc::new),
            client: policy.client(),
            policy,
            options,
        }
    }

    async fn require_organization(&self, organization_id: &str) -> Result<(), ServiceError> {
        match self.store.get_organization(organization_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::OrganizationNotFound(
                organization_id.to_owned(),
            )),
        }
    }

    fn not_found(id: &str) -> ServiceError {
        ServiceError::NotFound {
            kind: "Log stream",
            id: id.to_owned(),
        }
    }

    /// An organization's streams, oldest first.
    pub async fn list(&self, organization_id: &str) -> Result<Vec<LogStream>, ServiceError> {
        self.require_organization(organization_id).await?;
        Ok(self.store.list_log_streams(organization_id).await?)
    }

    /// The organization's first stream (what `audit_log_configuration` shows).
    pub async fn first(&self, organization_id: &str) -> Result<Option<LogStream>, ServiceError> {
        Ok(self
            .store
            .list_log_streams(organization_id)
            .await?
            .into_iter()
            .next())
    }

    pub async fn get(&self, organization_id: &str, id: &str) -> Result<LogStream, ServiceError> {
        self.require_organization(organization_id).await?;
        self.store
            .get_log_stream(organization_id, id)
            .await?
            .ok_or_else(|| Self::not_found(id))
    }

    /// The organization's newest sequence (for lag: newest minus the cursor).
    pub async fn latest_sequence(&self, organization_id: &str) -> Result<i64, ServiceError> {
        Ok(i64::try_from(self.store.tree_size(organization_id).await?).unwrap_or(i64::MAX))
    }

    /// Creates a stream from a request body `{"type", ...destination settings}`. Delivery
    /// starts from the organization's first event.
    pub async fn create(
        &self,
        organization_id: &str,
        body: &Value,
    ) -> Result<LogStream, ServiceError> {
        let Some(body) = body.as_object() else {
            return Err(ServiceError::InvalidRequest(vec![
                FieldError::invalid_type("body", "a JSON object"),
            ]));
        };
        let kind = match body.get("type") {
            None | Some(Value::Null) => {
                return Err(ServiceError::InvalidRequest(vec![FieldError::required(
                    "type",
                )]))
            }
            Some(Value::String(text)) => LogStreamType::parse(text).ok_or_else(|| {
                let types: Vec<&str> = LogStreamType::ALL.iter().map(|t| t.as_str()).collect();
                ServiceError::invalid_field(
                    "type",
                    format!("type must be one of {}", types.join(", ")),
                )
            })?,
            Some(_) => {
                return Err(ServiceError::InvalidRequest(vec![
                    FieldError::invalid_type("type", "a string"),
                ]))
            }
        };
        let parsed = parse_settings(kind, body).map_err(ServiceError::InvalidRequest)?;
        self.require_organization(organization_id).await?;
        if let Some(url) = destination_url(&parsed.public) {
            self.policy.parse_url(&url).map_err(|message| {
                ServiceError::invalid_field("endpoint", format!("endpoint: {message}"))
            })?;
            self.policy
                .check_destination(&url)
                .await
                .map_err(|message| ServiceError::Rejected {
                    code: ErrorCode::DestinationNotAllowed,
                    message: format!("endpoint: {message}"),
                })?;
        }
        let id = IdKind::LogStream.generate();
        let sealed_secrets = match &parsed.secrets {
            None => None,
            Some(secrets) => {
                let Some(key) = &self.key else {
                    return Err(ServiceError::Rejected {
                        code: ErrorCode::StreamSecretsKeyNotConfigured,
                        message: format!(
                            "A {} stream carries secrets, which Stele encrypts with the deployment's stream secrets key, and none is configured: start Stele with --stream-secrets-key-file (STELE_STREAM_SECRETS_KEY_FILE) or STELE_STREAM_SECRETS_KEY (32 random bytes, base64: `openssl rand -base64 32`).",
                            kind.as_str()
                        ),
                    });
                };
                let plaintext = serde_json::to_vec(secrets)
                    .map_err(|error| ServiceError::Internal(error.to_string()))?;
                Some(key.seal(&id, &plaintext).map_err(ServiceError::Internal)?)
            }
        };
        let existing = self.store.list_log_streams(organization_id).await?;
        if existing.len() >= MAX_STREAMS_PER_ORGANIZATION {
            return Err(ServiceError::Rejected {
                code: ErrorCode::LogStreamLimitReached,
                message: format!(
                    "An organization may have at most {MAX_STREAMS_PER_ORGANIZATION} log streams; delete one first."
                ),
            });
        }
        let now = now_millis();
        let stream = LogStream {
            id,
            organization_id: organization_id.into(),
            stream_type: kind,
            state: LogStreamState::Active,
            settings: parsed.public,
            sealed_secrets,
            delivered_sequence: 0,
            delivered_events: 0,
            failures: 0,
            last_synced_at: None,
            last_error: None,
            next_attempt_at: 0,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_log_stream(stream)
            .await
            .map_err(|error| ServiceError::on_organization(error, organization_id))
    }

    pub async fn delete(&self, organization_id: &str, id: &str) -> Result<(), ServiceError> {
        self.require_organization(organization_id).await?;
        if self.store.delete_log_stream(organization_id, id).await? {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    /// Pauses a stream (`inactive`): nothing is delivered until it is resumed.
    pub async fn pause(&self, organization_id: &str, id: &str) -> Result<LogStream, ServiceError> {
        self.set_state(organization_id, id, LogStreamState::Inactive)
            .await
    }

    /// Resumes a paused, failing or refused stream: delivery is attempted at once.
    pub async fn resume(&self, organization_id: &str, id: &str) -> Result<LogStream, ServiceError> {
        self.set_state(organization_id, id, LogStreamState::Active)
            .await
    }

    async fn set_state(
        &self,
        organization_id: &str,
        id: &str,
        state: LogStreamState,
    ) -> Result<LogStream, ServiceError> {
        self.require_organization(organization_id).await?;
        self.store
            .set_log_stream_state(organization_id, id, state, now_millis())
            .await?
            .ok_or_else(|| Self::not_found(id))
    }

    /// Delivers again from `from_sequence` (1 to the newest sequence + 1): the cursor moves
    /// to `from_sequence - 1`, backwards or forwards.
    pub async fn replay(
        &self,
        organization_id: &str,
        id: &str,
        body: &Value,
    ) -> Result<LogStream, ServiceError> {
        let from = match body.get("from_sequence") {
            None | Some(Value::Null) => {
                return Err(ServiceError::InvalidRequest(vec![FieldError::required(
                    "from_sequence",
                )]))
            }
            Some(value) => value.as_i64().ok_or_else(|| {
                ServiceError::InvalidRequest(vec![FieldError::invalid_type(
                    "from_sequence",
                    "an integer",
                )])
            })?,
        };
        self.get(organization_id, id).await?;
        let latest = self.latest_sequence(organization_id).await?;
        if from < 1 || from > latest + 1 {
            return Err(ServiceError::invalid_field(
                "from_sequence",
                format!(
                    "from_sequence must be between 1 and {} (the newest sequence + 1)",
                    latest + 1
                ),
            ));
        }
        self.store
            .rewind_log_stream(organization_id, id, from - 1, now_millis())
            .await?
            .ok_or_else(|| Self::not_found(id))
    }

    fn open_destination(&self, stream: &LogStream) -> Result<Destination, String> {
        let secrets = match &stream.sealed_secrets {
            None => Value::Object(Map::new()),
            Some(sealed) => {
                let key = self.key.as_ref().ok_or(
                    "the stream's secrets cannot be opened: no stream secrets key is configured (STELE_STREAM_SECRETS_KEY_FILE or STELE_STREAM_SECRETS_KEY)",
                )?;
                let plaintext = key.open(&stream.id, sealed)?;
                serde_json::from_slice(&plaintext)
                    .map_err(|_| "the stream's secrets are damaged".to_owned())?
            }
        };
        destination(stream.stream_type, &stream.settings, &secrets)
    }

    /// Sends a batch; `bucket` is the destination's opened bucket, for object stores (one is
    /// opened for this batch alone when it is `None`).
    async fn send(
        &self,
        destination: &Destination,
        bucket: Option<&objects::Bucket>,
        batch: &Batch,
    ) -> Result<(), DeliveryFailure> {
        let now_seconds = now_millis() / 1000;
        match destination {
            Destination::S3 { .. } | Destination::GoogleCloudStorage { .. } => {
                let opened;
                let bucket = match bucket {
                    Some(bucket) => bucket,
                    None => {
                        opened = objects::open_bucket(destination, &self.policy)?;
                        &opened
                    }
                };
                objects::put_batch(bucket, destination, &self.policy, batch, now_millis()).await
            }
            _ => {
                if let Destination::GenericHttps { endpoint, .. }
                | Destination::Splunk { endpoint, .. }
                | Destination::Datadog { endpoint, .. } = destination
                {
                    // The URL form is checked again at every delivery (the client's
                    // resolver checks every address it connects to).
                    self.policy
                        .check_url(endpoint)
                        .map_err(DeliveryFailure::retry)?;
                }
                delivery::send_http(&self.client, destination, batch, now_seconds).await
            }
        }
    }

    /// Sends a test delivery (no events; the cursor does not move) and reports whether the
    /// destination accepted it. Changes nothing.
    pub async fn test(&self, organization_id: &str, id: &str) -> Result<TestOutcome, ServiceError> {
        let stream = self.get(organization_id, id).await?;
        let destination = match self.open_destination(&stream) {
            Ok(destination) => destination,
            Err(message) => {
                return Ok(TestOutcome {
                    success: false,
                    message,
                })
            }
        };
        let read = self
            .store
            .log_stream_events(organization_id, stream.delivered_sequence, 0)
            .await?;
        let after = read.covers_up_to().unwrap_or(stream.delivered_sequence);
        let batch = Batch {
            organization_id: organization_id.to_owned(),
            stream_id: stream.id.clone(),
            first_sequence: after + 1,
            last_sequence: after,
            previous_hash: read.previous_hash,
            checkpoint: None,
            gap: None,
            events: Vec::new(),
            test: true,
        };
        Ok(match self.send(&destination, None, &batch).await {
            Ok(()) => TestOutcome {
                success: true,
                message: "The destination accepted the test delivery.".into(),
            },
            Err(failure) => TestOutcome {
                success: false,
                message: failure.message().to_owned(),
            },
        })
    }

    /// Leases up to `limit` streams that are due for delivery to `owner`.
    pub async fn lease_due(&self, owner: &str, limit: u32) -> Result<Vec<LogStream>, ServiceError> {
        let now = now_millis();
        Ok(self
            .store
            .lease_log_streams(owner, now, now + millis(self.options.lease), limit)
            .await?)
    }

    async fn record_failure(&self, stream: &LogStream, owner: &str, failure: DeliveryFailure) {
        let (state, retry_after, reason) = match &failure {
            DeliveryFailure::Credentials(_) => (LogStreamState::Invalid, None, "credentials"),
            DeliveryFailure::Retry { retry_after, .. } => {
                (LogStreamState::Error, *retry_after, "retry")
            }
        };
        metrics::counter!(
            crate::metrics::STREAM_DELIVERY_FAILURES,
            "type" => stream.stream_type.as_str(),
            "reason" => reason
        )
        .increment(1);
        let delay = retry_delay(
            stream.failures + 1,
            self.options.retry_base,
            self.options.retry_cap,
            retry_after,
            rand::random::<f64>(),
        );
        tracing::warn!(
            stream = %stream.id,
            organization = %stream.organization_id,
            state = state.as_str(),
            retry_in_ms = delay.as_millis() as u64,
            error = failure.message(),
            "log stream delivery failed"
        );
        let recorded = self
            .store
            .record_log_stream_failure(StreamFailure {
                stream_id: stream.id.clone(),
                lease_owner: owner.to_owned(),
                state,
                error: failure.message().chars().take(1000).collect(),
                next_attempt_at: now_millis() + millis(delay),
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(stream = %stream.id, %error, "cannot record a log stream failure");
        }
    }

    /// Gives up `owner`'s lease on a stream (a later pass, or another replica, takes it).
    pub async fn release_lease(&self, stream: &LogStream, owner: &str) {
        if let Err(error) = self.store.release_log_stream_lease(&stream.id, owner).await {
            tracing::warn!(stream = %stream.id, %error, "cannot release a log stream lease");
        }
    }

    /// Delivers a stream leased to `owner` until it is caught up, a delivery fails (the
    /// failure and its backoff are recorded), the lease is lost, or `shutdown` fires.
    /// The cursor moves only after the destination acknowledged a batch.
    pub async fn deliver(
        &self,
        mut stream: LogStream,
        owner: &str,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let destination = match self.open_destination(&stream) {
            Ok(destination) => destination,
            Err(message) => {
                self.record_failure(&stream, owner, DeliveryFailure::retry(message))
                    .await;
                return;
            }
        };
        let bucket = match destination {
            Destination::S3 { .. } | Destination::GoogleCloudStorage { .. } => {
                match objects::open_bucket(&destination, &self.policy) {
                    Ok(bucket) => Some(bucket),
                    Err(failure) => {
                        self.record_failure(&stream, owner, failure).await;
                        return;
                    }
                }
            }
            _ => None,
        };
        let organization_id = stream.organization_id.as_str().to_owned();
        let mut waited = false;
        loop {
            if *shutdown.borrow() {
                self.release_lease(&stream, owner).await;
                return;
            }
            let read = match self
                .store
                .log_stream_events(
                    &organization_id,
                    stream.delivered_sequence,
                    MAX_BATCH_EVENTS as u32,
                )
                .await
            {
                Ok(read) => read,
                Err(error) => {
                    self.record_failure(
                        &stream,
                        owner,
                        DeliveryFailure::retry(format!("reading the events failed: {error}")),
                    )
                    .await;
                    return;
                }
            };
            if read.events.is_empty() && read.gap.is_none() {
                self.release_lease(&stream, owner).await;
                return;
            }
            // Time batching: a partial batch waits once for more events; full batches
            // (a stream catching up) go out back to back.
            if read.events.len() < MAX_BATCH_EVENTS
                && read.gap.is_none()
                && !waited
                && !self.options.batch_wait.is_zero()
            {
                waited = true;
                tokio::select! {
                    _ = tokio::time::sleep(self.options.batch_wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            waited = false;
            let count = fitting_events(stream.stream_type, &read.events);
            let events = read.events[..count].to_vec();
            let last_sequence = events
                .last()
                .map(|event| event.sequence)
                .or(read.gap.map(|gap| gap.last_sequence))
                .unwrap_or(stream.delivered_sequence);
            let first_sequence = events
                .first()
                .map_or(last_sequence + 1, |event| event.sequence);
            let checkpoint = match self.store.latest_checkpoint(&organization_id).await {
                Ok(Some(checkpoint)) if checkpoint.tree_size as i64 >= last_sequence => {
                    Some(checkpoint.note)
                }
                Ok(_) => None,
                Err(error) => {
                    self.record_failure(
                        &stream,
                        owner,
                        DeliveryFailure::retry(format!("reading the checkpoint failed: {error}")),
                    )
                    .await;
                    return;
                }
            };
            let lease_until = now_millis() + millis(self.options.lease);
            match self
                .store
                .renew_log_stream_lease(&stream.id, owner, lease_until)
                .await
            {
                Ok(true) => {}
                // The stream was paused, or the lease expired and another replica took the
                // stream: stop here. Releasing gives a paused stream's lease up at once (a
                // lease another process holds is left alone).
                Ok(false) => {
                    self.release_lease(&stream, owner).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(stream = %stream.id, %error, "cannot renew a log stream lease");
                    return;
                }
            }
            let batch = Batch {
                organization_id: organization_id.clone(),
                stream_id: stream.id.clone(),
                first_sequence,
                last_sequence,
                previous_hash: read.previous_hash,
                checkpoint,
                gap: read.gap,
                events,
                test: false,
            };
            if let Err(failure) = self.send(&destination, bucket.as_ref(), &batch).await {
                self.record_failure(&stream, owner, failure).await;
                return;
            }
            let recorded = self
                .store
                .record_log_stream_delivery(StreamDelivery {
                    stream_id: stream.id.clone(),
                    lease_owner: owner.to_owned(),
                    expected_sequence: stream.delivered_sequence,
                    delivered_sequence: last_sequence,
                    delivered_events: count as i64,
                    at: now_millis(),
                    lease_until: now_millis() + millis(self.options.lease),
                })
                .await;
            match recorded {
                Ok(true) => {
                    stream.delivered_sequence = last_sequence;
                    stream.failures = 0;
                }
                // A replay moved the cursor, or the lease was lost: the next lease starts
                // from the stored cursor.
                Ok(false) => {
                    self.release_lease(&stream, owner).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(stream = %stream.id, %error, "cannot record a log stream delivery; it will be delivered again");
                    return;
                }
            }
        }
    }
}
