//! Throughput of the CSV row writer on synthetic stored events (the shape `bench/` seeds),
//! against the JSON-tree writer it replaced, in one run:
//! `cargo run --release -p stele-core --example csv_rows -- [ROWS]`.

use std::time::Instant;

use serde_json::{json, Value};
use stele_core::canonical::to_canonical_bytes;
use stele_core::export::{write_event, ExportFormat, CSV_TARGET_GROUPS};

fn stored_event(index: u64) -> Vec<u8> {
    let event = json!({
        "id": format!("audit_log_event_01KB{index:022}"), "organization_id": "org_01KB000000000000000000000",
        "sequence": index + 1, "version": 1, "action": "user.signed_in",
        "occurred_at": "2026-01-01T00:00:00.250Z", "received_at": "2026-11-26T10:00:00.000Z",
        "actor": {"id": format!("user_{}", index % 1000), "type": "user", "name": format!("User {}", index % 1000),
                  "metadata": {"role": if index.is_multiple_of(10) { "admin" } else { "member" }}},
        "targets": [{"id": format!("team_{}", index % 100), "type": "team"},
                    {"id": format!("doc_{}", index % 10_000), "type": "document"}],
        "context": {"location": format!("10.{}.{}.{}", index % 256, (index / 256) % 256, index % 7), "user_agent": "bench/1.0"},
        "metadata": {"request_id": format!("req_{index}")}
    });
    to_canonical_bytes(&event).expect("canonical")
}

/// The writer before: a `serde_json::Value` tree and a `csv::Writer` per row.
fn tree_row(canonical: &[u8], out: &mut Vec<u8>) {
    let event: Value = serde_json::from_slice(canonical).expect("json");
    let text = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut row: Vec<String> = [
        &event["id"],
        &event["organization_id"],
        &event["sequence"],
        &event["version"],
        &event["action"],
        &event["occurred_at"],
        &event["received_at"],
        &event["actor"]["id"],
        &event["actor"]["type"],
        &event["actor"]["name"],
        &event["actor"]["metadata"],
        &event["targets"],
        &event["context"]["location"],
        &event["context"]["user_agent"],
        &event["metadata"],
    ]
    .into_iter()
    .map(text)
    .collect();
    let targets = event["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for group in 0..CSV_TARGET_GROUPS {
        let target = targets.get(group).unwrap_or(&Value::Null);
        for field in ["id", "type", "name", "metadata"] {
            row.push(text(&target[field]));
        }
    }
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&row).expect("row");
    writer.flush().expect("flush");
}

fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let events: Vec<Vec<u8>> = (0..rows).map(stored_event).collect();
    for round in 1..=3 {
        let mut out = Vec::with_capacity(256 * 1024);
        let started = Instant::now();
        for event in &events {
            tree_row(event, &mut out);
            if out.len() > 256 * 1024 {
                out.clear();
            }
        }
        let before = rows as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for event in &events {
            write_event(ExportFormat::Csv, event, &mut out).expect("row");
            if out.len() > 256 * 1024 {
                out.clear();
            }
        }
        let after = rows as f64 / started.elapsed().as_secs_f64();
        println!("round {round}: JSON tree writer {before:.0} rows/s, streaming writer {after:.0} rows/s ({:.2}x)", after / before);
    }
}
