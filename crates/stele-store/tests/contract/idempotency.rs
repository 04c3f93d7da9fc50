//! Idempotency keys: one write per key however many requests race, the recorded response
//! for the rest, and the records' lifetime.

use serde_json::json;
use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::model::*;

use crate::support::*;

contract_tests!(
    racing_appends_with_one_key_store_one_event_and_replay_its_record,
    racing_organization_creates_with_one_key_create_one_organization,
    an_idempotent_schema_write_records_the_rendered_response,
    an_idempotent_export_is_created_once,
    records_are_found_saved_once_and_purged_by_age,
);

/// Splits racing outcomes into the index of the one that did the work and the records
/// the others were answered with.
fn one_done<T: std::fmt::Debug>(outcomes: &[Idempotent<T>]) -> (usize, Vec<IdempotencyRecord>) {
    let done: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| matches!(outcome, Idempotent::Done(_)).then_some(index))
        .collect();
    assert_eq!(done.len(), 1, "exactly one write is done: {outcomes:?}");
    let replayed = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Idempotent::AlreadyDone(record) => Some(record.clone()),
            Idempotent::Done(_) => None,
        })
        .collect();
    (done[0], replayed)
}

async fn racing_appends_with_one_key_store_one_event_and_replay_its_record(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    let peers = backend.peers(8).await;
    let outcomes = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                let event = new_event("org_a", event_json("user.signed_in", json!({})));
                let record =
                    idempotency_record("key_1", "retry-me", &format!("response {index}"), at);
                store
                    .append_event(event, Some(record))
                    .await
                    .expect("append")
            }),
    )
    .await;
    let (winner, replayed) = one_done(&outcomes);
    assert_eq!(replayed.len(), 7);
    let expected = idempotency_record("key_1", "retry-me", &format!("response {winner}"), at);
    for record in &replayed {
        assert_eq!(record, &expected, "every replay carries the first record");
    }
    let events = search_all(&*backend, query("org_a")).await;
    assert_eq!(sequences(&events), [1], "one event was stored");
    assert_eq!(
        backend
            .find_idempotency_record("key_1", "retry-me", at)
            .await
            .expect("find"),
        Some(expected)
    );

    // The same key under another scope (API key) is another key.
    let other = backend
        .append_event(
            new_event("org_a", event_json("user.signed_in", json!({}))),
            Some(idempotency_record("key_2", "retry-me", "other", at)),
        )
        .await
        .expect("append");
    assert_eq!(done(other).sequence, 2);
}

async fn racing_organization_creates_with_one_key_create_one_organization(backend: Backend) {
    let at = now();
    let peers = backend.peers(6).await;
    let outcomes = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                let organization = organization(&format!("org_{index}"), "Acme");
                let record =
                    idempotency_record("key_1", "create-acme", &format!("org_{index}"), at);
                store
                    .create_organization(organization, Some(record))
                    .await
                    .expect("create")
            }),
    )
    .await;
    let (winner, replayed) = one_done(&outcomes);
    for record in &replayed {
        assert_eq!(record.body, format!("org_{winner}").into_bytes());
    }
    let ids: Vec<String> = customer_organization_ids(backend.store.as_ref()).await;
    assert_eq!(ids, [format!("org_{winner}")]);
}

async fn an_idempotent_schema_write_records_the_rendered_response(backend: Backend) {
    let at = now();
    let write = |body: &str| IdempotentWrite::<(SchemaVersion, bool)> {
        claim: idempotency_record("key_1", "schema-1", body, at),
        respond: Box::new(|(version, new): &(SchemaVersion, bool)| {
            (
                if *new { 201 } else { 200 },
                format!("v{}", version.version).into_bytes(),
            )
        }),
    };
    let first = backend
        .create_schema_version(
            "user.signed_in",
            definition(json!({"targets": [{"type": "team"}]})),
            "key ci",
            at,
            Some(write("placeholder")),
        )
        .await
        .expect("create");
    let (version, new) = done(first);
    assert_eq!((version.version, new), (1, true));
    let recorded = backend
        .find_idempotency_record("key_1", "schema-1", at)
        .await
        .expect("find")
        .expect("recorded");
    assert_eq!(
        (recorded.status, recorded.body.as_slice()),
        (201, b"v1".as_slice()),
        "the rendered response replaces the placeholder"
    );

    // A replay, even with another definition, creates nothing and answers as recorded.
    let replay = backend
        .create_schema_version(
            "user.signed_in",
            definition(json!({"targets": [{"type": "user"}]})),
            "key ci",
            at + 1,
            Some(write("placeholder again")),
        )
        .await
        .expect("replay");
    assert_eq!(replay, Idempotent::AlreadyDone(recorded));
    assert_eq!(
        backend
            .schema_version_numbers("user.signed_in")
            .await
            .expect("numbers"),
        [1]
    );
}

async fn an_idempotent_export_is_created_once(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append(&*backend, "org_a", "user.signed_in").await;
    let at = now();
    let export = |id: &str| Export {
        id: id.into(),
        query: query("org_a"),
        format: ExportFormat::Csv,
        created_at: at,
        complete: true,
    };
    let record = idempotency_record("key_1", "export-1", "first", at);
    done(
        backend
            .create_export(export("audit_log_export_1"), Some(record.clone()))
            .await
            .expect("create"),
    );
    let replay = backend
        .create_export(
            export("audit_log_export_2"),
            Some(idempotency_record("key_1", "export-1", "second", at)),
        )
        .await
        .expect("replay");
    assert_eq!(replay, Idempotent::AlreadyDone(record));
    assert_eq!(
        backend.get_export("audit_log_export_2").await.expect("get"),
        None
    );
}

async fn records_are_found_saved_once_and_purged_by_age(backend: Backend) {
    let base = 10 * REPLAY_WINDOW_MS;
    let first = idempotency_record("key_1", "k", "first", base);
    assert_eq!(
        backend
            .save_idempotency_record(first.clone())
            .await
            .expect("save"),
        first
    );
    let later = idempotency_record("key_1", "k", "later", base + 5);
    assert_eq!(
        backend.save_idempotency_record(later).await.expect("save"),
        first,
        "an unexpired record stays in force"
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_1", "k", base + 10)
            .await
            .expect("find"),
        Some(first.clone())
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_1", "k", base + REPLAY_WINDOW_MS - 1)
            .await
            .expect("find"),
        Some(first.clone()),
        "still within the replay window"
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_1", "k", base + REPLAY_WINDOW_MS)
            .await
            .expect("find"),
        None,
        "expired once the window has passed"
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_2", "k", base + 10)
            .await
            .expect("find"),
        None,
        "keys are per scope"
    );

    // Once expired, the key can be used again.
    let reused = idempotency_record("key_1", "k", "reused", base + REPLAY_WINDOW_MS);
    assert_eq!(
        backend
            .save_idempotency_record(reused.clone())
            .await
            .expect("save"),
        reused
    );

    for (key, at) in [("a", 100), ("b", 200), ("c", 300)] {
        backend
            .save_idempotency_record(idempotency_record("key_9", key, key, at))
            .await
            .expect("save");
    }
    assert_eq!(
        backend.purge_idempotency_records(250).await.expect("purge"),
        2,
        "the two records created before the cutoff"
    );
    assert_eq!(
        backend.purge_idempotency_records(250).await.expect("purge"),
        0
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_9", "c", 300)
            .await
            .expect("find")
            .map(|record| record.body),
        Some(b"c".to_vec())
    );
    assert_eq!(
        backend
            .find_idempotency_record("key_9", "a", 100)
            .await
            .expect("find"),
        None
    );
    assert!(backend
        .find_idempotency_record("key_1", "k", base + REPLAY_WINDOW_MS)
        .await
        .expect("find")
        .is_some());
}
