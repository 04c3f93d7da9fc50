//! Log streams: an organization's events pushed, in sequence order, to its SIEM or
//! bucket. The records the store keeps, and the pure rules of delivery: what a batch
//! carries (the sequence range, the chain hash before it, a purged gap), how long to wait
//! after a failure, and what an object in a bucket is called.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chain::ChainHash;
use crate::ids::OrganizationId;
use crate::timestamp::UnixMillis;

/// Where a stream delivers; spelled as WorkOS spells it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogStreamType {
    Datadog,
    Splunk,
    S3,
    GoogleCloudStorage,
    GenericHttps,
}

impl LogStreamType {
    pub const ALL: [LogStreamType; 5] = [
        LogStreamType::Datadog,
        LogStreamType::Splunk,
        LogStreamType::S3,
        LogStreamType::GoogleCloudStorage,
        LogStreamType::GenericHttps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogStreamType::Datadog => "Datadog",
            LogStreamType::Splunk => "Splunk",
            LogStreamType::S3 => "S3",
            LogStreamType::GoogleCloudStorage => "GoogleCloudStorage",
            LogStreamType::GenericHttps => "GenericHttps",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A stream's state, in WorkOS's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStreamState {
    /// Delivering (or caught up).
    Active,
    /// Paused by an operator: nothing is delivered until it is resumed.
    Inactive,
    /// The last attempt failed for a reason that may pass (the destination was down,
    /// answered 5xx or 429); delivery is retried with backoff.
    Error,
    /// The destination refused the stream's credentials (401/403); retried rarely, and
    /// active again as soon as the destination accepts a batch.
    Invalid,
}

impl LogStreamState {
    pub const ALL: [LogStreamState; 4] = [
        LogStreamState::Active,
        LogStreamState::Inactive,
        LogStreamState::Error,
        LogStreamState::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogStreamState::Active => "active",
            LogStreamState::Inactive => "inactive",
            LogStreamState::Error => "error",
            LogStreamState::Invalid => "invalid",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// A log stream as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStream {
    /// `log_stream_` + ULID.
    pub id: String,
    pub organization_id: OrganizationId,
    pub stream_type: LogStreamType,
    pub state: LogStreamState,
    /// The destination's settings that are not secret (a JSON object).
    pub settings: serde_json::Value,
    /// The secret settings (tokens, keys, HMAC secrets), sealed with the deployment's
    /// stream key; `None` when the destination was configured without any.
    pub sealed_secrets: Option<Vec<u8>>,
    /// The durable cursor: the last sequence the destination acknowledged (0: none yet).
    pub delivered_sequence: i64,
    /// Events delivered since the stream was created (replays count again).
    pub delivered_events: i64,
    /// Failed attempts since the last successful delivery.
    pub failures: i64,
    pub last_synced_at: Option<UnixMillis>,
    pub last_error: Option<String>,
    /// No delivery is attempted before this time (backoff after a failure).
    pub next_attempt_at: UnixMillis,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A delivered batch, recorded only if the process still holds the stream's lease and the
/// cursor is still where the batch started (a replay in between wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDelivery {
    pub stream_id: String,
    pub lease_owner: String,
    pub expected_sequence: i64,
    pub delivered_sequence: i64,
    pub delivered_events: i64,
    pub at: UnixMillis,
    pub lease_until: UnixMillis,
}

/// A failed attempt: the stream's new state, why, and when to try again. Releases the
/// lease so any replica may take the retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFailure {
    pub stream_id: String,
    pub lease_owner: String,
    pub state: LogStreamState,
    pub error: String,
    pub next_attempt_at: UnixMillis,
}

/// One stored event as a stream delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub sequence: i64,
    /// The exact stored (canonical) bytes: a JSON object.
    pub canonical: Vec<u8>,
    /// Its chain hash.
    pub hash: ChainHash,
}

/// Events purged by retention before a stream delivered them: sequences `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PurgedGap {
    pub first_sequence: i64,
    pub last_sequence: i64,
}

/// What a stream reads after its cursor: the hash the next event chains from, any gap
/// retention left right after the cursor, then events in sequence order with no holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvents {
    /// The chain hash of the event just before the first one in `events` (after `gap`).
    pub previous_hash: ChainHash,
    pub gap: Option<PurgedGap>,
    pub events: Vec<StreamEvent>,
}

impl StreamEvents {
    /// The last sequence this read covers (the last event's, else the gap's): where the
    /// cursor moves once the destination acknowledged it.
    pub fn covers_up_to(&self) -> Option<i64> {
        self.events
            .last()
            .map(|event| event.sequence)
            .or(self.gap.map(|gap| gap.last_sequence))
    }
}

/// Where one stream stands, for monitoring: its cursor against its organization's newest
/// sequence (purged events included, so a stream that fell behind a purge still lags until
/// it reported the gap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    pub id: String,
    pub organization_id: OrganizationId,
    pub stream_type: LogStreamType,
    pub state: LogStreamState,
    pub delivered_sequence: i64,
    pub newest_sequence: i64,
}

impl StreamPosition {
    /// Events committed to the organization's log that the stream has not delivered yet.
    pub fn lag(&self) -> i64 {
        (self.newest_sequence - self.delivered_sequence).max(0)
    }
}

/// The streams of one type in one state, across every organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTotals {
    pub stream_type: LogStreamType,
    pub state: LogStreamState,
    pub streams: i64,
    /// The largest [`StreamPosition::lag`] among them.
    pub max_lag: i64,
}

/// Every stream's delivery position, read in one snapshot: the totals cover every stream,
/// `streams` holds at most the number asked for, the most lagging first (ties by id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPositions {
    pub streams: Vec<StreamPosition>,
    /// One entry per (type, state) that has streams, in no particular order.
    pub totals: Vec<StreamTotals>,
}

/// The backoff before retry number `failures` (1 for the first retry): exponential from
/// `base`, capped at `cap`, with "equal jitter" (half fixed, half random, from `unit` in
/// `[0, 1)`), so replicas retrying the same destination spread out. A `Retry-After` from
/// the destination wins when it asks for longer, up to `cap`.
pub fn retry_delay(
    failures: i64,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    let exponent = u32::try_from(failures.clamp(1, 30) - 1).unwrap_or(0);
    let exponential = base
        .checked_mul(1u32 << exponent.min(20))
        .unwrap_or(cap)
        .min(cap);
    let half = exponential / 2;
    let jittered = half + half.mul_f64(unit.clamp(0.0, 1.0));
    match retry_after {
        Some(asked) => jittered.max(asked.min(cap)),
        None => jittered,
    }
}

/// The object name of a batch in a bucket:
/// `<prefix>/<organization id>/<yyyy>/<mm>/<dd>/<first>-<last>.ndjson.gz`, sequences
/// zero-padded to 12 digits so names sort in delivery order. `date` is `(y, m, d)` of the
/// delivery (UTC).
pub fn object_name(
    prefix: &str,
    organization_id: &str,
    date: (i32, u8, u8),
    first_sequence: i64,
    last_sequence: i64,
) -> String {
    let prefix = prefix.trim_matches('/');
    let (year, month, day) = date;
    let name = format!(
        "{organization_id}/{year:04}/{month:02}/{day:02}/{first_sequence:012}-{last_sequence:012}.ndjson.gz"
    );
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// The UTC calendar date `(year, month, day)` of `millis`, for object names.
pub fn utc_date(millis: UnixMillis) -> (i32, u8, u8) {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (at.year(), u8::from(at.month()), at.day())
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, the form `Retry-After` may take) as
/// Unix milliseconds.
pub fn parse_http_date(text: &str) -> Option<UnixMillis> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(text.trim(), format).ok()?;
    Some(crate::timestamp::to_unix_millis(at.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_states_round_trip_their_wire_spelling() {
        for kind in LogStreamType::ALL {
            assert_eq!(LogStreamType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(LogStreamType::parse("generichttps"), None);
        assert_eq!(
            LogStreamState::parse("invalid"),
            Some(LogStreamState::Invalid)
        );
        assert_eq!(LogStreamState::parse("paused"), None);
    }

    #[test]
    fn retry_delay_grows_exponentially_within_jitter_and_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        assert_eq!(
            retry_delay(1, base, cap, None, 0.0),
            Duration::from_millis(500)
        );
        assert_eq!(retry_delay(1, base, cap, None, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(4, base, cap, None, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(40, base, cap, None, 0.999), cap.mul_f64(0.9995));
        // Retry-After asks for longer: honoured, up to the cap.
        assert_eq!(
            retry_delay(1, base, cap, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(1, base, cap, Some(Duration::from_secs(9999)), 0.5),
            cap
        );
    }

    #[test]
    fn utc_dates_name_the_day_of_delivery() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(1_772_236_800_000), (2026, 2, 28));
    }

    #[test]
    fn http_dates_parse_as_retry_after_sends_them() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("tomorrow"), None);
    }

    #[test]
    fn object_names_sort_by_sequence_under_the_prefix() {
        assert_eq!(
            object_name("audit/", "org_1", (2026, 3, 7), 1, 250),
            "audit/org_1/2026/03/07/000000000001-000000000250.ndjson.gz"
        );
        assert_eq!(
            object_name("", "org_1", (2026, 12, 31), 1000, 1001),
            "org_1/2026/12/31/000000001000-000000001001.ndjson.gz"
        );
    }
}
