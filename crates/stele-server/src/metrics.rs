//! Prometheus metrics: every metric Stele exports is named, described and given its
//! histogram buckets here, and `GET /metrics` renders them.
//!
//! Metrics are recorded through the `metrics` facade (`metrics::counter!(NAME, ...)`)
//! wherever the thing measured happens; the store records its group commits itself
//! (`stele_store::telemetry`). Gauges that describe the present (connection pool, write
//! queue, checkpoint age) are read from the store when a scrape asks, so they are never
//! stale. To add a metric: a name constant and a line in [`describe`] (with buckets in
//! [`BUCKETS`] for a histogram), then record it where it happens, or, for a gauge read
//! from the store, set it in [`Metrics::render`]. Every label value must come from a
//! bounded set (a route template, an error code, a backend), never from request data.
//!
//! One recorder serves the whole process (the facade is process-wide): several servers
//! started in one process, as some tests do, share their counters.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use stele_core::log_stream::{LogStreamState, LogStreamType, StreamPositions};
use stele_core::timestamp::now_millis;
use stele_store::telemetry::{GROUP_COMMIT_DURATION, GROUP_COMMIT_FAILURES, GROUP_COMMIT_SIZE};
use stele_store::Store;

/// Counter: HTTP requests answered, by `method`, matched `route` template and `status`.
pub const HTTP_REQUESTS: &str = "stele_http_requests_total";
/// Histogram: seconds from receiving a request to its response headers, by `method` and
/// `route` (the matched template, `unmatched` for paths no route serves).
pub const HTTP_REQUEST_DURATION: &str = "stele_http_request_duration_seconds";
/// Counter: events stored (durably committed), by `source` (`api`, `import`).
pub const EVENTS_INGESTED: &str = "stele_events_ingested_total";
/// Histogram: seconds an ingest request took, validation and durable commit included, by
/// `route` and `outcome` (`accepted`, `rejected`).
pub const INGEST_DURATION: &str = "stele_ingest_duration_seconds";
/// Counter: refused ingest requests, by error `code` (the `code` of the JSON error body).
pub const INGEST_ERRORS: &str = "stele_ingest_errors_total";
/// Histogram: seconds one event search took (one page).
pub const SEARCH_DURATION: &str = "stele_search_duration_seconds";
/// Histogram: seconds an export download took from its first byte to its last, by
/// `format` and `outcome` (`complete`, `failed`).
pub const EXPORT_DURATION: &str = "stele_export_duration_seconds";
/// Counter: events written into export downloads, by `format`.
pub const EXPORTED_EVENTS: &str = "stele_exported_events_total";
/// Gauge: age in seconds of the oldest event no signed checkpoint covers yet, across all
/// organizations (0 when every log is signed).
pub const CHECKPOINT_AGE: &str = "stele_checkpoint_age_seconds";
/// Counter: log stream deliveries a destination refused or that failed, by stream `type`
/// and `reason` (`credentials`, `retry`).
pub const STREAM_DELIVERY_FAILURES: &str = "stele_stream_delivery_failures_total";
/// Counter: checkpoints signed by this process.
pub const CHECKPOINTS_SIGNED: &str = "stele_checkpoints_signed_total";
/// Counter: checkpoint passes that failed for one organization.
pub const CHECKPOINT_FAILURES: &str = "stele_checkpoint_failures_total";
/// Gauge: database connections, by `state` (`in_use`, `idle`).
pub const POOL_CONNECTIONS: &str = "stele_database_pool_connections";
/// Gauge: most connections the pool opens (PostgreSQL only; SQLite's readers are unbounded).
pub const POOL_MAX_CONNECTIONS: &str = "stele_database_pool_max_connections";
/// Gauge: requests waiting for a free database connection.
pub const POOL_WAITING: &str = "stele_database_pool_waiting_requests";
/// Gauge: writes queued for the next group commit.
pub const WRITE_QUEUE: &str = "stele_group_commit_queue_depth";
/// Gauge: 1 when the last scrape could not read the checkpoint age or the log streams'
/// positions from the database.
pub const SCRAPE_ERRORS: &str = "stele_metrics_scrape_errors";
/// Gauge, per stream (at most [`STREAM_SERIES_LIMIT`] streams, the most lagging): events
/// of its organization not delivered yet, by `stream_id`, `organization_id`, `type`, `state`.
pub const STREAM_LAG: &str = "stele_stream_lag_events";
/// Gauge: log streams, by `type` and `state` (every combination, 0 included).
pub const STREAMS: &str = "stele_streams";
/// Gauge: the largest lag (events) among the streams of one `type` in one `state`.
pub const STREAMS_MAX_LAG: &str = "stele_streams_max_lag_events";
/// The most streams that get a series of their own in [`STREAM_LAG`]: the label set grows
/// with the number of streams, which grows with the number of organizations, so it is
/// capped; [`STREAMS`] and [`STREAMS_MAX_LAG`] always cover every stream.
pub const STREAM_SERIES_LIMIT: u32 = 1_000;

/// Histogram buckets, per metric. Latencies span a fast group commit (under a
/// millisecond) to a request stuck behind a full pool (the 10 s connect timeout).
const LATENCY: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LONG: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
/// Group commits hold at most 1,024 (SQLite) or 512 (PostgreSQL) jobs.
const BATCH: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
const BUCKETS: &[(&str, &[f64])] = &[
    (HTTP_REQUEST_DURATION, LATENCY),
    (INGEST_DURATION, LATENCY),
    (SEARCH_DURATION, LATENCY),
    (EXPORT_DURATION, LONG),
    (GROUP_COMMIT_DURATION, LATENCY),
    (GROUP_COMMIT_SIZE, BATCH),
];

fn describe() {
    describe_counter!(
        STREAM_DELIVERY_FAILURES,
        "Log stream deliveries that failed, by stream type and reason (credentials refused, or retried)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (to the response headers), by method and route template."
    );
    describe_counter!(EVENTS_INGESTED, "Audit events durably stored, by source.");
    describe_histogram!(INGEST_DURATION, Unit::Seconds, "Time an ingest request took, validation and durable commit included, by route and outcome.");
    describe_counter!(INGEST_ERRORS, "Refused ingest requests, by error code.");
    describe_histogram!(
        SEARCH_DURATION,
        Unit::Seconds,
        "Time one page of an event search took."
    );
    describe_histogram!(
        EXPORT_DURATION,
        Unit::Seconds,
        "Time an export download took from first to last byte, by format and outcome."
    );
    describe_counter!(
        EXPORTED_EVENTS,
        "Events written into export downloads, by format."
    );
    describe_gauge!(CHECKPOINT_AGE, Unit::Seconds, "Age of the oldest event not yet covered by a signed checkpoint, across all organizations (0 when all are covered).");
    describe_counter!(CHECKPOINTS_SIGNED, "Checkpoints signed by this process.");
    describe_counter!(
        CHECKPOINT_FAILURES,
        "Failed attempts to sign an organization's checkpoint."
    );
    describe_histogram!(
        GROUP_COMMIT_SIZE,
        "Writes committed together in one group commit, by backend."
    );
    describe_histogram!(
        GROUP_COMMIT_DURATION,
        Unit::Seconds,
        "Time of one group commit's transaction, through its durable commit, by backend."
    );
    describe_counter!(
        GROUP_COMMIT_FAILURES,
        "Group commits whose transaction did not commit as a whole, by backend."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections of this process, by state (in_use, idle)."
    );
    describe_gauge!(
        POOL_MAX_CONNECTIONS,
        "Most database connections this process opens (PostgreSQL)."
    );
    describe_gauge!(
        POOL_WAITING,
        "Requests waiting for a free database connection."
    );
    describe_gauge!(WRITE_QUEUE, "Writes queued for the next group commit.");
    describe_gauge!(
        SCRAPE_ERRORS,
        "1 when the last scrape could not read the database's checkpoint or log stream state."
    );
}

/// The process's Prometheus recorder, installed on first use. When another recorder is
/// already installed (Stele embedded in a program with its own), `/metrics` renders a
/// recorder of its own that nothing records into: empty but valid.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in BUCKETS {
            builder = builder
                .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                .expect("every bucket list above is non-empty");
        }
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, "a metrics recorder is already installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        // Series that dashboards and alerts read exist from the start, at zero.
        metrics::counter!(EVENTS_INGESTED, "source" => "api").increment(0);
        metrics::counter!(CHECKPOINTS_SIGNED).increment(0);
        metrics::counter!(CHECKPOINT_FAILURES).increment(0);
        // Histograms are drained into their buckets by upkeep, not only when scraped, so
        // memory stays flat when nobody scrapes.
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("stele-metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        if let Err(error) = started {
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// Renders `/metrics`, reading the present-state gauges from the store first.
#[derive(Clone)]
pub struct Metrics {
    store: Arc<dyn Store>,
}

impl Metrics {
    /// Installs the process's recorder if no server did yet.
    pub fn new(store: Arc<dyn Store>) -> Self {
        handle();
        Self { store }
    }

    /// The Prometheus text exposition of every metric. The log streams' gauges are
    /// written from the database's answer at each scrape, not kept in the recorder, so a
    /// deleted stream's series disappears with it.
    pub async fn render(&self) -> String {
        let pool = self.store.pool_status();
        metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use").set(pool.in_use_connections as f64);
        metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(pool.idle_connections as f64);
        if let Some(max) = pool.max_connections {
            metrics::gauge!(POOL_MAX_CONNECTIONS).set(max as f64);
        }
        metrics::gauge!(POOL_WAITING).set(pool.waiting_requests as f64);
        metrics::gauge!(WRITE_QUEUE).set(pool.queued_writes as f64);
        let mut failed = false;
        match self.store.oldest_unsigned_event_received_at().await {
            Ok(oldest) => {
                let age_ms = oldest.map_or(0, |at| now_millis().saturating_sub(at).max(0));
                metrics::gauge!(CHECKPOINT_AGE).set(age_ms as f64 / 1000.0);
            }
            Err(error) => {
                // The last value stays; the scrape itself still answers.
                tracing::warn!(%error, "reading the checkpoint age for /metrics failed");
                failed = true;
            }
        }
        let streams = match self.store.log_stream_positions(STREAM_SERIES_LIMIT).await {
            Ok(positions) => render_streams(&positions),
            Err(error) => {
                // No stream series rather than stale ones.
                tracing::warn!(%error, "reading the log streams' positions for /metrics failed");
                failed = true;
                String::new()
            }
        };
        metrics::gauge!(SCRAPE_ERRORS).set(if failed { 1.0 } else { 0.0 });
        let mut text = handle().render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&streams);
        text
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The log streams' gauges in the text format: the totals for every type and state (0
/// where there is no such stream), then each listed stream's lag.
fn render_streams(positions: &StreamPositions) -> String {
    use std::fmt::Write;
    fn header(text: &mut String, name: &str, help: &str) {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    }
    let mut counts = String::new();
    let mut lags = String::new();
    for stream_type in LogStreamType::ALL {
        for state in LogStreamState::ALL {
            let totals = positions
                .totals
                .iter()
                .find(|t| t.stream_type == stream_type && t.state == state);
            let labels = format!(
                "type=\"{}\",state=\"{}\"",
                stream_type.as_str(),
                state.as_str()
            );
            let (streams, max_lag) = totals.map_or((0, 0), |t| (t.streams, t.max_lag));
            let _ = writeln!(counts, "{STREAMS}{{{labels}}} {streams}");
            let _ = writeln!(lags, "{STREAMS_MAX_LAG}{{{labels}}} {max_lag}");
        }
    }
    let mut text = String::new();
    header(&mut text, STREAMS, "Log streams, by type and state.");
    text.push_str(&counts);
    header(
        &mut text,
        STREAMS_MAX_LAG,
        "The largest lag, in events, among the log streams of one type in one state.",
    );
    text.push_str(&lags);
    header(
        &mut text,
        STREAM_LAG,
        &format!(
            "Events of its organization a log stream has not delivered yet (the {STREAM_SERIES_LIMIT} most lagging streams)."
        ),
    );
    for stream in &positions.streams {
        let _ = writeln!(
            text,
            "{STREAM_LAG}{{stream_id=\"{}\",organization_id=\"{}\",type=\"{}\",state=\"{}\"}} {}",
            label_value(&stream.id),
            label_value(stream.organization_id.as_str()),
            stream.stream_type.as_str(),
            stream.state.as_str(),
            stream.lag()
        );
    }
    text
}

/// The routes whose requests are ingest, for the ingest metrics (their templates).
pub const INGEST_ROUTES: &[&str] = &["/audit_logs/events", "/audit_logs/events/batch"];

/// Records one answered HTTP request; `error_code` is the JSON error's `code`, if any.
pub fn record_request(
    method: &axum::http::Method,
    route: &str,
    status: u16,
    elapsed: Duration,
    error_code: Option<&'static str>,
) {
    let method = method_label(method);
    let route = route.to_owned();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if method == "POST" && INGEST_ROUTES.contains(&route.as_str()) {
        let outcome = if status < 300 { "accepted" } else { "rejected" };
        metrics::histogram!(INGEST_DURATION, "route" => route, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        if status >= 400 {
            let code = error_code.unwrap_or("unknown");
            metrics::counter!(INGEST_ERRORS, "code" => code).increment(1);
        }
    }
}

/// The method as a label; methods outside the standard set share one value, so a client
/// inventing methods cannot grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts events stored through `source` (`api`, `import`).
pub fn record_ingested(source: &'static str, count: u64) {
    metrics::counter!(EVENTS_INGESTED, "source" => source).increment(count);
}

pub fn record_search(elapsed: Duration) {
    metrics::histogram!(SEARCH_DURATION).record(elapsed.as_secs_f64());
}

pub fn record_export(format: &'static str, complete: bool, elapsed: Duration, events: u64) {
    let outcome = if complete { "complete" } else { "failed" };
    metrics::histogram!(EXPORT_DURATION, "format" => format, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    metrics::counter!(EXPORTED_EVENTS, "format" => format).increment(events);
}

pub fn record_checkpoint(signed: bool) {
    if signed {
        metrics::counter!(CHECKPOINTS_SIGNED).increment(1);
    } else {
        metrics::counter!(CHECKPOINT_FAILURES).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::log_stream::{StreamPosition, StreamTotals};

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed() {
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(label_value("org_01J"), "org_01J");
    }

    #[test]
    fn stream_gauges_cover_every_type_and_state_and_list_each_stream() {
        let positions = StreamPositions {
            streams: vec![StreamPosition {
                id: "log_stream_1".into(),
                organization_id: "org_\"x\"".into(),
                stream_type: LogStreamType::Splunk,
                state: LogStreamState::Error,
                delivered_sequence: 3,
                newest_sequence: 10,
            }],
            totals: vec![StreamTotals {
                stream_type: LogStreamType::Splunk,
                state: LogStreamState::Error,
                streams: 1,
                max_lag: 7,
            }],
        };
        let text = render_streams(&positions);
        let samples = |name: &str| {
            text.lines()
                .filter(|line| line.starts_with(&format!("{name}{{")))
                .count()
        };
        assert_eq!(samples(STREAMS), 20);
        assert_eq!(samples(STREAMS_MAX_LAG), 20);
        assert!(text.contains("stele_streams{type=\"Splunk\",state=\"error\"} 1\n"));
        assert!(text.contains("stele_streams{type=\"S3\",state=\"active\"} 0\n"));
        assert!(text.contains("stele_streams_max_lag_events{type=\"Splunk\",state=\"error\"} 7\n"));
        assert!(text.contains(
            "stele_stream_lag_events{stream_id=\"log_stream_1\",organization_id=\"org_\\\"x\\\"\",type=\"Splunk\",state=\"error\"} 7\n"
        ));
        assert_eq!(text.matches("# TYPE ").count(), 3);
    }
}
