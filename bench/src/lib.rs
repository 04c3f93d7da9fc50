//! Shared pieces of Stele's benchmark tools: synthetic events that vary like real traffic.

use serde_json::{json, Value};
use stele_core::event::{parse_create_event, EventInput};
use stele_core::timestamp::{format_millis, UnixMillis};

pub const ACTIONS: [&str; 4] = [
    "user.signed_in",
    "user.signed_out",
    "document.viewed",
    "document.shared",
];

/// Schema definition every benchmark action uses: two target types and a small metadata schema.
pub fn bench_schema() -> Value {
    json!({
        "targets": [{"type": "team"}, {"type": "document"}],
        "actor": {"metadata": {"type": "object", "properties": {"role": {"type": "string"}}}},
        "metadata": {"type": "object", "properties": {"request_id": {"type": "string"}}}
    })
}

/// The `index`-th synthetic event of an organization: actors, targets and actions vary so
/// indexes see realistic spreads (1,000 actors, 10,000 documents, 100 teams).
pub fn synthetic_event_body(organization_id: &str, index: u64) -> Value {
    json!({
        "organization_id": organization_id,
        "event": {
            "action": ACTIONS[(index % 4) as usize],
            "occurred_at": format_millis(occurred_at(index)),
            "actor": {"id": format!("user_{}", index % 1000), "type": "user", "name": format!("User {}", index % 1000),
                      "metadata": {"role": if index.is_multiple_of(10) { "admin" } else { "member" }}},
            "targets": [{"id": format!("team_{}", index % 100), "type": "team"},
                        {"id": format!("doc_{}", index % 10_000), "type": "document"}],
            "context": {"location": format!("10.{}.{}.{}", index % 256, (index / 256) % 256, index % 7), "user_agent": "bench/1.0"},
            "metadata": {"request_id": format!("req_{index}")}
        }
    })
}

/// When the `index`-th event of an organization happened: one every 250 ms from
/// 2026-01-01, in order, as a real log's history is (10 million events span 29 days).
pub fn occurred_at(index: u64) -> UnixMillis {
    const START: UnixMillis = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    START + index as UnixMillis * 250
}

pub fn synthetic_event(organization_id: &str, index: u64) -> EventInput {
    // The body above is valid by construction.
    parse_create_event(&synthetic_event_body(organization_id, index))
        .map(|request| request.event)
        .unwrap_or_else(|errors| {
            panic!("synthetic event is invalid: {errors:?}");
        })
}
