//! Delivering one batch to one destination: the wire format of each destination type
//! (names and shapes fixed by the contract), Standard Webhooks signatures, and how a
//! destination's answer is read (acknowledged, credentials refused, or retry later).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::Sha256;
use stele_core::chain::ChainHash;
use stele_core::log_stream::{LogStreamType, PurgedGap, StreamEvent};
use stele_core::timestamp::parse_instant;

use super::outbound::capped_body;
use super::settings::Destination;

/// Most events in one batch (Datadog's per-request limit, and a sane one for the rest).
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Most bytes of one `GenericHttps` or Splunk request body.
pub const MAX_HTTP_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Datadog's documented per-request payload limit (uncompressed).
pub const DATADOG_MAX_BYTES: usize = 5_000_000;
/// Most uncompressed bytes of one object in a bucket.
pub const MAX_OBJECT_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// One delivery: events of one organization, in sequence order with no holes, after an
/// optional purged gap.
#[derive(Debug, Clone)]
pub struct Batch {
    pub organization_id: String,
    pub stream_id: String,
    /// The first sequence delivered (after the gap); `last_sequence + 1` when only a gap
    /// is reported.
    pub first_sequence: i64,
    pub last_sequence: i64,
    /// The chain hash of event `first_sequence - 1` (32 zero bytes before the first).
    pub previous_hash: ChainHash,
    /// The newest signed checkpoint note covering `last_sequence`, if one is signed yet.
    pub checkpoint: Option<String>,
    pub gap: Option<PurgedGap>,
    pub events: Vec<StreamEvent>,
    /// A test delivery (no events; the cursor does not move).
    pub test: bool,
}

/// Why a delivery did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// The destination refused the stream's credentials (HTTP 401 or 403).
    Credentials(String),
    /// Anything that may pass: unreachable, timeout, 5xx, 429, or a refusal of the batch;
    /// `retry_after` is the destination's `Retry-After`, when it sent one.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
}

impl DeliveryFailure {
    pub fn retry(message: impl Into<String>) -> Self {
        DeliveryFailure::Retry {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            DeliveryFailure::Credentials(message) | DeliveryFailure::Retry { message, .. } => {
                message
            }
        }
    }
}

/// How many of `events` (at least one, when there are any) fit in one batch to a
/// destination of type `kind`, by count and bytes.
pub fn fitting_events(kind: LogStreamType, events: &[StreamEvent]) -> usize {
    let max_bytes = match kind {
        LogStreamType::Datadog => DATADOG_MAX_BYTES,
        LogStreamType::GenericHttps | LogStreamType::Splunk => MAX_HTTP_BATCH_BYTES,
        LogStreamType::S3 | LogStreamType::GoogleCloudStorage => MAX_OBJECT_BATCH_BYTES,
    };
    // Room for the envelope, a gap entry and per-entry wrapping.
    let mut used = 2048;
    let mut count = 0;
    for event in events.iter().take(MAX_BATCH_EVENTS) {
        let size = match kind {
            // The event travels as an escaped JSON string: each quote and backslash doubles.
            LogStreamType::Datadog => {
                event.canonical.len()
                    + event
                        .canonical
                        .iter()
                        .filter(|byte| matches!(byte, b'"' | b'\\') || **byte < 0x20)
                        .count()
                        * 5
                    + 256
            }
            _ => event.canonical.len() + 256,
        };
        if count > 0 && used + size > max_bytes {
            break;
        }
        used += size;
        count += 1;
    }
    count
}

fn raw(event: &StreamEvent) -> Result<Box<RawValue>, DeliveryFailure> {
    String::from_utf8(event.canonical.clone())
        .ok()
        .and_then(|text| RawValue::from_string(text).ok())
        .ok_or_else(|| {
            DeliveryFailure::retry(format!("stored event {} is not JSON text", event.sequence))
        })
}

/// The `GenericHttps` body: the range, the chain hash before it, the covering checkpoint,
/// any purged gap, and the stored event bytes exactly as hashed.
pub fn generic_body(batch: &Batch) -> Result<Vec<u8>, DeliveryFailure> {
    let events = batch
        .events
        .iter()
        .map(raw)
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({
        "organization_id": batch.organization_id,
        "first_sequence": batch.first_sequence,
        "last_sequence": batch.last_sequence,
        "previous_hash": hex::encode(batch.previous_hash),
        "checkpoint": batch.checkpoint,
        "gap": batch.gap.map(|gap| json!({
            "first_sequence": gap.first_sequence,
            "last_sequence": gap.last_sequence,
            "reason": "purged_by_retention",
        })),
        "events": events,
    });
    if batch.test {
        body["test"] = json!(true);
    }
    serde_json::to_vec(&body).map_err(|error| DeliveryFailure::retry(error.to_string()))
}

/// The record a destination without a batch envelope (Splunk, Datadog) receives for a
/// purged gap, before the batch's events.
fn gap_record(batch: &Batch, gap: PurgedGap) -> Value {
    json!({
        "type": "stele.log_stream.gap",
        "organization_id": batch.organization_id,
        "first_sequence": gap.first_sequence,
        "last_sequence": gap.last_sequence,
        "reason": "purged_by_retention",
        "previous_hash": hex::encode(batch.previous_hash),
        "checkpoint": batch.checkpoint,
    })
}

fn test_record(batch: &Batch) -> Value {
    json!({
        "type": "stele.log_stream.test",
        "organization_id": batch.organization_id,
        "stream_id": batch.stream_id,
        "message": "Test delivery from Stele: this stream reaches its destination.",
    })
}

/// Seconds since the epoch of an event's `occurred_at` (Splunk's `time`).
fn occurred_seconds(event: &Value) -> Option<f64> {
    let millis = parse_instant(event.get("occurred_at")?.as_str()?).ok()?;
    Some(millis as f64 / 1000.0)
}

/// The Splunk HEC body: one JSON event object per line (HEC's batch form).
pub fn splunk_body(
    batch: &Batch,
    index: Option<&str>,
    source: Option<&str>,
) -> Result<Vec<u8>, DeliveryFailure> {
    let envelope = |event: Value, time: Option<f64>, sequence: Option<i64>| {
        let mut entry = json!({
            "event": event,
            "source": source.unwrap_or("stele"),
            "sourcetype": "_json",
            "fields": {"organization_id": batch.organization_id},
        });
        if let Some(time) = time {
            entry["time"] = json!(time);
        }
        if let Some(sequence) = sequence {
            entry["fields"]["sequence"] = json!(sequence);
        }
        if let Some(index) = index {
            entry["index"] = json!(index);
        }
        entry
    };
    let mut lines = Vec::new();
    if batch.test {
        lines.push(envelope(test_record(batch), None, None));
    }
    if let Some(gap) = batch.gap {
        lines.push(envelope(gap_record(batch, gap), None, None));
    }
    for event in &batch.events {
        let parsed: Value = serde_json::from_slice(&event.canonical)
            .map_err(|error| DeliveryFailure::retry(error.to_string()))?;
        let time = occurred_seconds(&parsed);
        lines.push(envelope(parsed, time, Some(event.sequence)));
    }
    let mut body = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut body, &line)
            .map_err(|error| DeliveryFailure::retry(error.to_string()))?;
        body.push(b'\n');
    }
    Ok(body)
}

/// The Datadog logs intake v2 body: a JSON array of log entries, each event's stored
/// bytes as its `message`.
pub fn datadog_body(batch: &Batch) -> Result<Vec<u8>, DeliveryFailure> {
    let tags = format!("organization_id:{}", batch.organization_id);
    let entry = |message: String, sequence: Option<i64>| {
        let mut entry = json!({
            "ddsource": "stele",
            "service": "stele",
            "ddtags": tags,
            "organization_id": batch.organization_id,
            "message": message,
        });
        if let Some(sequence) = sequence {
            entry["sequence"] = json!(sequence);
        }
        entry
    };
    let mut entries = Vec::new();
    if batch.test {
        entries.push(entry(test_record(batch).to_string(), None));
    }
    if let Some(gap) = batch.gap {
        entries.push(entry(gap_record(batch, gap).to_string(), None));
    }
    for event in &batch.events {
        let message = String::from_utf8(event.canonical.clone())
            .map_err(|error| DeliveryFailure::retry(error.to_string()))?;
        entries.push(entry(message, Some(event.sequence)));
    }
    serde_json::to_vec(&entries).map_err(|error| DeliveryFailure::retry(error.to_string()))
}

/// The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256 of
/// "<id>.<timestamp>.<body>">`.
pub fn webhook_signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// `Retry-After` as a duration: delay-seconds, or an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = stele_core::log_stream::parse_http_date(value)?;
    let wait = date - stele_core::timestamp::now_millis();
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

/// Reads a destination's answer: 2xx acknowledged; 401/403 credentials refused; anything
/// else retried (with the destination's `Retry-After`).
async fn judge(response: reqwest::Response, what: &str) -> Result<(), DeliveryFailure> {
    let status = response.status();
    if status.is_success() {
        // Drain a little of the body so the connection can be reused.
        let _ = capped_body(response).await;
        return Ok(());
    }
    let wait = retry_after(&response);
    let body = capped_body(response).await;
    let excerpt: String = body.chars().take(300).collect();
    let message = format!(
        "{what} answered HTTP {}: {}",
        status.as_u16(),
        excerpt.trim()
    );
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(DeliveryFailure::Credentials(message));
    }
    Err(DeliveryFailure::Retry {
        message,
        retry_after: wait,
    })
}

fn transport_failure(what: &str, error: reqwest::Error) -> DeliveryFailure {
    // The chain of sources carries the resolver's refusal of a private address.
    let mut message = format!("{what} could not be reached: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    DeliveryFailure::retry(message)
}

/// Sends one batch to an HTTP destination (`GenericHttps`, `Splunk`, `Datadog`).
pub async fn send_http(
    client: &reqwest::Client,
    destination: &Destination,
    batch: &Batch,
    now_seconds: i64,
) -> Result<(), DeliveryFailure> {
    let (request, what) = match destination {
        Destination::GenericHttps {
            endpoint,
            headers,
            secret,
        } => {
            let body = generic_body(batch)?;
            let mut request = client
                .post(endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(secret) = secret {
                // The same id for every attempt at this batch, so receivers can deduplicate.
                let id = if batch.test {
                    format!("msg_{}_test_{now_seconds}", batch.stream_id)
                } else {
                    format!(
                        "msg_{}_{}_{}",
                        batch.stream_id, batch.first_sequence, batch.last_sequence
                    )
                };
                let signature = webhook_signature(secret, &id, now_seconds, &body);
                request = request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", now_seconds.to_string())
                    .header("webhook-signature", signature);
            }
            (request.body(body), "the endpoint")
        }
        Destination::Splunk {
            endpoint,
            token,
            index,
            source,
        } => (
            client
                .post(endpoint)
                .header(reqwest::header::AUTHORIZATION, format!("Splunk {token}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(splunk_body(batch, index.as_deref(), source.as_deref())?),
            "Splunk",
        ),
        Destination::Datadog { endpoint, api_key } => (
            client
                .post(endpoint)
                .header("DD-API-KEY", api_key.as_str())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(datadog_body(batch)?),
            "Datadog",
        ),
        Destination::S3 { .. } | Destination::GoogleCloudStorage { .. } => {
            return Err(DeliveryFailure::retry(
                "object store destinations are not delivered over plain HTTP",
            ))
        }
    };
    let response = request
        .send()
        .await
        .map_err(|error| transport_failure(what, error))?;
    judge(response, what).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(events: Vec<StreamEvent>) -> Batch {
        Batch {
            organization_id: "org_1".into(),
            stream_id: "log_stream_1".into(),
            first_sequence: 4,
            last_sequence: 5,
            previous_hash: [0xab; 32],
            checkpoint: None,
            gap: Some(PurgedGap {
                first_sequence: 1,
                last_sequence: 3,
            }),
            events,
            test: false,
        }
    }

    fn event(sequence: i64) -> StreamEvent {
        StreamEvent {
            sequence,
            canonical: format!(
                r#"{{"occurred_at":"2026-01-01T00:00:00.000Z","sequence":{sequence}}}"#
            )
            .into_bytes(),
            hash: [0; 32],
        }
    }

    #[test]
    fn the_generic_body_carries_the_stored_bytes_verbatim() {
        let body = generic_body(&batch(vec![event(4), event(5)])).expect("body");
        let text = String::from_utf8(body).expect("utf-8");
        assert!(text.contains(r#"{"occurred_at":"2026-01-01T00:00:00.000Z","sequence":4}"#));
        let parsed: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["previous_hash"], hex::encode([0xab; 32]));
        assert_eq!(parsed["gap"]["last_sequence"], 3);
        assert_eq!(parsed["checkpoint"], Value::Null);
    }

    #[test]
    fn standard_webhooks_signatures_match_the_specification_example() {
        // The example of the Standard Webhooks reference implementations.
        let secret = BASE64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let signature = webhook_signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn batches_fit_count_and_bytes_limits() {
        let small: Vec<StreamEvent> = (1..=1500).map(event).collect();
        assert_eq!(fitting_events(LogStreamType::Datadog, &small), 1000);
        let big = StreamEvent {
            sequence: 1,
            canonical: vec![b'"'; 900_000],
            hash: [0; 32],
        };
        let bigs = vec![big.clone(), big.clone(), big];
        assert_eq!(fitting_events(LogStreamType::Datadog, &bigs), 1);
        assert_eq!(fitting_events(LogStreamType::GenericHttps, &bigs), 3);
        assert_eq!(fitting_events(LogStreamType::GenericHttps, &[]), 0);
    }
}
