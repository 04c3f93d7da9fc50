//! Appending events: sequences, the hash chain, reading one event back, verification.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use stele_core::chain::{link, GENESIS};
use stele_core::model::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    appends_number_each_organization_from_one_and_chain_each_event_to_the_previous,
    an_append_to_an_unknown_organization_is_refused,
    a_group_append_commits_its_items_in_order_and_answers_each,
    concurrent_appends_to_one_organization_are_gapless_and_verify,
    get_event_is_pinned_to_its_organization,
    imported_events_are_appended_once_per_import_key,
    recent_events_of_an_action_are_newest_first_across_organizations,
    verify_log_counts_organizations_and_events_and_reports_progress,
);

async fn appends_number_each_organization_from_one_and_chain_each_event_to_the_previous(
    backend: Backend,
) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let mut appended = Vec::new();
    for organization in ["org_a", "org_b", "org_a", "org_a", "org_b"] {
        let event = new_event(organization, event_json("user.signed_in", json!({})));
        let id = event.id.to_string();
        let outcome = append_event(&*backend, event).await;
        assert_eq!(outcome.id.as_str(), id);
        appended.push((organization, outcome));
    }
    let numbers: Vec<(&str, i64)> = appended
        .iter()
        .map(|(organization, event)| (*organization, event.sequence))
        .collect();
    assert_eq!(
        numbers,
        [
            ("org_a", 1),
            ("org_b", 1),
            ("org_a", 2),
            ("org_a", 3),
            ("org_b", 2)
        ]
    );

    for organization in ["org_a", "org_b"] {
        let mut previous = GENESIS;
        for (_, event) in appended.iter().filter(|(o, _)| *o == organization) {
            let stored = stored(&*backend, organization, &event.id).await;
            assert_eq!(stored.event.id.as_str(), event.id.as_str());
            assert_eq!(stored.event.organization_id.as_str(), organization);
            assert_eq!(stored.event.sequence, event.sequence);
            assert_eq!(stored.event.received_at, event.received_at);
            assert_eq!(stored.event.version, 1);
            assert_eq!(
                stored.hash,
                link(&previous, &stored.event.canonical),
                "{organization} #{} chains to its predecessor",
                event.sequence
            );
            let record: Value =
                serde_json::from_slice(&stored.event.canonical).expect("canonical JSON");
            assert_eq!(record["id"], event.id.as_str());
            assert_eq!(record["organization_id"], organization);
            assert_eq!(record["sequence"], event.sequence);
            assert_eq!(record["action"], "user.signed_in");
            previous = stored.hash;
        }
    }
    let report = verify(&*backend, None).await;
    assert_eq!((report.organizations, report.events), (2, 5));
}

async fn an_append_to_an_unknown_organization_is_refused(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let refused = backend
        .append_event(
            new_event("org_missing", event_json("user.signed_in", json!({}))),
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::OrganizationNotFound)),
        "{refused:?}"
    );
    assert_eq!(backend.tree_size("org_missing").await.expect("size"), 0);
    // The refusal took no sequence number anywhere.
    assert_eq!(
        append(&*backend, "org_a", "user.signed_in").await.sequence,
        1
    );
}

async fn concurrent_appends_to_one_organization_are_gapless_and_verify(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let peers = backend.peers(200).await;
    let appended = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                let event = new_event(
                    "org_a",
                    event_json(
                        "user.signed_in",
                        json!({"actor": {"id": format!("user_{index}"), "type": "user"}}),
                    ),
                );
                done(store.append_event(event, None).await.expect("append"))
            }),
    )
    .await;
    let mut numbers: Vec<i64> = appended.iter().map(|event| event.sequence).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=200).collect::<Vec<i64>>());
    let report = verify(&*backend, Some("org_a")).await;
    assert_eq!((report.organizations, report.events), (1, 200));
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 200);
    let all = search_all(&*backend, query("org_a")).await;
    assert_eq!(all.len(), 100, "a search page holds at most its limit");
    for event in &appended {
        let stored = stored(&*backend, "org_a", &event.id).await;
        assert_eq!(stored.event.sequence, event.sequence);
    }
}

async fn get_event_is_pinned_to_its_organization(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let event = append(&*backend, "org_a", "user.signed_in").await;
    append(&*backend, "org_b", "user.signed_in").await;
    assert!(backend
        .get_event("org_a", &event.id)
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        backend.get_event("org_b", &event.id).await.expect("get"),
        None,
        "another organization's event is not reachable through org_b"
    );
    assert_eq!(
        backend
            .get_event("org_missing", &event.id)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        backend
            .get_event("org_a", "audit_log_event_missing")
            .await
            .expect("get"),
        None
    );
}

async fn recent_events_of_an_action_are_newest_first_across_organizations(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let mut of_action = Vec::new();
    for (organization, action) in [
        ("org_a", "doc.edited"),
        ("org_b", "doc.edited"),
        ("org_a", "doc.viewed"),
        ("org_b", "doc.edited"),
        ("org_a", "doc.edited"),
        ("org_b", "doc.viewed"),
    ] {
        let event = append(&*backend, organization, action).await;
        if action == "doc.edited" {
            of_action.push(event.id.to_string());
        }
    }
    let recent = backend
        .recent_events_of_action("doc.edited", 3)
        .await
        .expect("recent");
    let ids: Vec<String> = recent.iter().map(|event| event.id.to_string()).collect();
    let newest: Vec<String> = of_action.iter().rev().take(3).cloned().collect();
    assert_eq!(ids, newest);
    let first: Value = serde_json::from_slice(&recent[0].canonical).expect("canonical JSON");
    assert_eq!(first["action"], "doc.edited");
    assert_eq!(recent[0].organization_id.as_str(), "org_a");
    assert_eq!(recent[0].sequence, 3);

    let every = backend
        .recent_events_of_action("doc.edited", 100)
        .await
        .expect("recent");
    assert_eq!(every.len(), 4);
    assert!(backend
        .recent_events_of_action("doc.deleted", 10)
        .await
        .expect("recent")
        .is_empty());
}

async fn verify_log_counts_organizations_and_events_and_reports_progress(backend: Backend) {
    let empty = verify(&*backend, None).await;
    assert_eq!((empty.organizations, empty.events), (0, 0));

    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    create_organization(&*backend, "org_quiet").await;
    for _ in 0..3 {
        append(&*backend, "org_a", "user.signed_in").await;
    }
    append(&*backend, "org_b", "user.signed_in").await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&seen);
    let report = backend
        .verify_log(
            None,
            Box::new(move |count| recorder.lock().expect("lock").push(count)),
        )
        .await
        .expect("verify");
    assert_eq!(
        report,
        VerifyReport {
            organizations: 2,
            events: 4,
            first_break: None,
        },
        "organizations without events are not counted"
    );
    assert_eq!(
        seen.lock().expect("lock").last().copied(),
        Some(4),
        "progress ends at the total"
    );
    let one = verify(&*backend, Some("org_a")).await;
    assert_eq!((one.organizations, one.events), (1, 3));
    let none = verify(&*backend, Some("org_missing")).await;
    assert_eq!((none.organizations, none.events), (0, 0));
}

async fn imported_events_are_appended_once_per_import_key(backend: Backend) {
    create_organization(&*backend, "org_import").await;
    append(&*backend, "org_import", "user.signed_in").await;
    let imported = |key: u8| {
        (
            [key; 32],
            new_event("org_import", event_json("user.signed_in", json!({}))),
        )
    };
    let first = backend
        .append_imported_events("org_import", vec![imported(1), imported(2), imported(1)])
        .await
        .expect("import");
    assert_eq!(
        first,
        ImportedEvents {
            appended: 2,
            skipped: 1
        },
        "a key repeated within one call is stored once"
    );
    let again = backend
        .append_imported_events("org_import", vec![imported(2), imported(3)])
        .await
        .expect("import again");
    assert_eq!(
        again,
        ImportedEvents {
            appended: 1,
            skipped: 1
        }
    );
    append(&*backend, "org_import", "user.signed_in").await;
    let sequences: Vec<i64> = search_all(&*backend, query("org_import"))
        .await
        .iter()
        .map(|event| event.sequence)
        .collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [1, 2, 3, 4, 5],
        "imported and live events share one chain"
    );
    let report = backend
        .verify_log(None, Box::new(|_| {}))
        .await
        .expect("verify");
    assert!(report.first_break.is_none(), "{report:?}");
    let missing = backend.append_imported_events("org_missing", vec![]).await;
    assert!(
        matches!(missing, Err(StoreError::OrganizationNotFound)),
        "{missing:?}"
    );
}

async fn a_group_append_commits_its_items_in_order_and_answers_each(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let item = |organization: &str, key: Option<(&str, &str)>| EventToAppend {
        event: new_event(organization, event_json("user.signed_in", json!({}))),
        idempotency: key.map(|(key, body)| idempotency_record("scope", key, body, now())),
    };
    let items = vec![
        item("org_a", Some(("k1", "first"))),
        item("org_missing", None),
        item("org_b", None),
        item("org_a", Some(("k1", "second"))),
        item("org_a", None),
    ];
    let ids: Vec<String> = items.iter().map(|item| item.event.id.to_string()).collect();
    let outcomes = backend.append_events(items).await.expect("group commits");
    assert_eq!(outcomes.len(), 5);
    let appended = |index: usize| match &outcomes[index] {
        Ok(Idempotent::Done(appended)) => appended.clone(),
        other => panic!("item {index}: {other:?}"),
    };
    assert_eq!(
        (appended(0).id.as_str(), appended(0).sequence),
        (ids[0].as_str(), 1)
    );
    assert!(matches!(outcomes[1], Err(StoreError::OrganizationNotFound)));
    assert_eq!(appended(2).sequence, 1);
    // A key claimed earlier in the same group holds the first item's record.
    match &outcomes[3] {
        Ok(Idempotent::AlreadyDone(record)) => assert_eq!(record.body, b"first"),
        other => panic!("item 3: {other:?}"),
    }
    assert_eq!(
        (appended(4).id.as_str(), appended(4).sequence),
        (ids[4].as_str(), 2)
    );
    let report = verify(&*backend, None).await;
    assert_eq!((report.organizations, report.events), (2, 3));
    assert!(backend
        .get_event("org_a", &ids[3])
        .await
        .expect("read")
        .is_none());
    assert!(backend
        .append_events(Vec::new())
        .await
        .expect("empty")
        .is_empty());
}
