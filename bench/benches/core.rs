//! Micro-benchmarks of the pure functions on the event write path: parsing, validation,
//! canonical encoding and hashing. Run with `cargo bench -p stele-bench`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use stele_bench::{bench_schema, synthetic_event, synthetic_event_body};
use stele_core::chain::{link, GENESIS};
use stele_core::event::parse_create_event;
use stele_core::schema::{parse_schema_definition, CompiledSchema};

fn write_path(c: &mut Criterion) {
    let body = synthetic_event_body("org_bench", 42);
    let text = serde_json::to_vec(&body).unwrap_or_default();
    let event = synthetic_event("org_bench", 42);
    let definition =
        parse_schema_definition(&bench_schema()).unwrap_or_else(|_| panic!("valid schema"));
    let schema =
        CompiledSchema::compile("user.signed_in", 1, &definition).unwrap_or_else(|e| panic!("{e}"));
    let canonical = event
        .canonical_record("audit_log_event_01", "org_bench", 7, 0)
        .unwrap_or_default();

    c.bench_function("parse_json_and_shape", |b| {
        b.iter(|| {
            let value: serde_json::Value =
                serde_json::from_slice(black_box(&text)).unwrap_or_default();
            parse_create_event(&value).is_ok()
        })
    });
    c.bench_function("validate_against_schema", |b| {
        b.iter(|| schema.violations(black_box(&event)).len())
    });
    c.bench_function("canonical_record", |b| {
        b.iter(|| {
            black_box(&event)
                .canonical_record("audit_log_event_01", "org_bench", 7, 0)
                .map(|bytes| bytes.len())
        })
    });
    c.bench_function("chain_link_sha256", |b| {
        b.iter(|| link(black_box(&GENESIS), black_box(&canonical)))
    });
}

criterion_group!(benches, write_path);
criterion_main!(benches);
