//! Quarantine: refused events kept per organization under a cap, listed, claimed for
//! acceptance once, discarded, counted and expired.

use std::sync::Arc;

use stele_core::ids::IdKind;
use stele_core::pagination::{Cursor, SortOrder};
use stele_core::quarantine::{Quarantined, QuarantinedEvent};
use stele_core::schema::SchemaViolation;
use stele_core::timestamp::UnixMillis;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    a_kept_event_reads_back_exactly,
    keeping_stops_at_the_organization_cap,
    keeping_for_an_unknown_organization_is_refused,
    a_request_key_is_kept_once,
    concurrent_keeps_never_pass_the_cap,
    the_list_pages_by_id_within_one_organization,
    acceptance_is_claimed_once,
    discard_is_scoped_to_the_organization,
    counts_group_by_action_version_and_reason,
    entries_of_an_action_are_listed_across_organizations,
    purge_removes_entries_up_to_the_cutoff,
    deleting_the_organization_deletes_its_entries,
);

fn entry(
    organization_id: &str,
    action: &str,
    version: i64,
    reason: &str,
    at: UnixMillis,
) -> QuarantinedEvent {
    QuarantinedEvent {
        id: IdKind::QuarantinedEvent.generate(),
        organization_id: organization_id.into(),
        action: action.into(),
        version,
        body: format!(
            r#"{{ "organization_id": "{organization_id}", "event": {{"action": "{action}"}} }}"#
        )
        .into_bytes(),
        errors: vec![
            SchemaViolation::new("/targets/0/type", reason),
            SchemaViolation::new("/metadata/role", "\"x\" is not of type \"integer\""),
        ],
        reason: reason.into(),
        request_key: None,
        accepted_event_id: None,
        created_at: at,
    }
}

async fn keep(backend: &Backend, entry: QuarantinedEvent, limit: u64) -> Quarantined {
    backend
        .quarantine_event(entry, limit)
        .await
        .expect("quarantine event")
}

async fn kept_id(backend: &Backend, entry: QuarantinedEvent) -> String {
    match keep(backend, entry, 100).await {
        Quarantined::Kept(id) => id,
        Quarantined::Full => panic!("quarantine unexpectedly full"),
    }
}

async fn a_kept_event_reads_back_exactly(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let original = entry("org_a", "user.signed_in", 3, "undeclared", 1_000);
    let id = kept_id(&backend, original.clone()).await;
    assert_eq!(id, original.id);
    let read = backend
        .get_quarantined("org_a", &id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(read, original);
}

async fn keeping_stops_at_the_organization_cap(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    for _ in 0..2 {
        kept_id(&backend, entry("org_a", "a", 1, "r", 1)).await;
    }
    assert_eq!(
        keep(&backend, entry("org_a", "a", 1, "r", 1), 2).await,
        Quarantined::Full
    );
    // The cap is per organization.
    assert!(matches!(
        keep(&backend, entry("org_b", "a", 1, "r", 1), 2).await,
        Quarantined::Kept(_)
    ));
    let page = backend
        .list_quarantined("org_a", page(100, SortOrder::Asc, None))
        .await
        .expect("list");
    assert_eq!(page.data.len(), 2);
}

async fn keeping_for_an_unknown_organization_is_refused(backend: Backend) {
    let outcome = backend
        .quarantine_event(entry("org_missing", "a", 1, "r", 1), 10)
        .await;
    assert!(
        matches!(outcome, Err(StoreError::OrganizationNotFound)),
        "{outcome:?}"
    );
}

async fn a_request_key_is_kept_once(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let mut first = entry("org_a", "a", 1, "r", 1);
    first.request_key = Some("key_1:retry:abc".into());
    let mut retry = entry("org_a", "a", 1, "r", 2);
    retry.request_key = first.request_key.clone();
    let first_id = kept_id(&backend, first).await;
    assert_eq!(kept_id(&backend, retry).await, first_id);
    let page = backend
        .list_quarantined("org_a", page(100, SortOrder::Asc, None))
        .await
        .expect("list");
    assert_eq!(page.data.len(), 1);
}

async fn concurrent_keeps_never_pass_the_cap(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let store = Arc::clone(&backend.store);
    let outcomes = race((0..12).map(|_| {
        let store = Arc::clone(&store);
        async move {
            store
                .quarantine_event(entry("org_a", "a", 1, "r", 1), 5)
                .await
                .expect("keep")
        }
    }))
    .await;
    let kept = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Quarantined::Kept(_)))
        .count();
    assert_eq!(kept, 5);
    let page = backend
        .list_quarantined("org_a", page(100, SortOrder::Asc, None))
        .await
        .expect("list");
    assert_eq!(page.data.len(), 5);
}

async fn the_list_pages_by_id_within_one_organization(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let mut ids = Vec::new();
    for at in 0..5 {
        ids.push(kept_id(&backend, entry("org_a", "a", 1, "r", at)).await);
        kept_id(&backend, entry("org_b", "a", 1, "r", at)).await;
    }
    let first = backend
        .list_quarantined("org_a", page(2, SortOrder::Desc, None))
        .await
        .expect("list");
    let first_ids: Vec<&str> = first.data.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(first_ids, [ids[4].as_str(), ids[3].as_str()]);
    let after = first.after.clone().expect("more");
    let second = backend
        .list_quarantined(
            "org_a",
            page(2, SortOrder::Desc, Some(Cursor::After(after))),
        )
        .await
        .expect("list");
    let second_ids: Vec<&str> = second.data.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(second_ids, [ids[2].as_str(), ids[1].as_str()]);
    assert!(second
        .data
        .iter()
        .all(|entry| entry.organization_id == "org_a"));
}

async fn acceptance_is_claimed_once(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let id = kept_id(&backend, entry("org_a", "a", 1, "r", 1)).await;
    let first = backend
        .claim_quarantine_acceptance("org_a", &id, "audit_log_event_first")
        .await
        .expect("claim");
    assert_eq!(first.as_deref(), Some("audit_log_event_first"));
    let second = backend
        .claim_quarantine_acceptance("org_a", &id, "audit_log_event_second")
        .await
        .expect("claim");
    assert_eq!(second.as_deref(), Some("audit_log_event_first"));
    let other = backend
        .claim_quarantine_acceptance("org_b", &id, "audit_log_event_third")
        .await
        .expect("claim");
    assert_eq!(other, None);
    let read = backend
        .get_quarantined("org_a", &id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        read.accepted_event_id.as_deref(),
        Some("audit_log_event_first")
    );
}

async fn discard_is_scoped_to_the_organization(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let id = kept_id(&backend, entry("org_a", "a", 1, "r", 1)).await;
    assert!(backend
        .get_quarantined("org_b", &id)
        .await
        .expect("get")
        .is_none());
    assert!(!backend
        .discard_quarantined("org_b", &id)
        .await
        .expect("discard"));
    assert!(backend
        .discard_quarantined("org_a", &id)
        .await
        .expect("discard"));
    assert!(!backend
        .discard_quarantined("org_a", &id)
        .await
        .expect("discard"));
    assert!(backend
        .get_quarantined("org_a", &id)
        .await
        .expect("get")
        .is_none());
}

async fn counts_group_by_action_version_and_reason(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    for _ in 0..3 {
        kept_id(
            &backend,
            entry("org_a", "user.signed_in", 3, "undeclared team", 1),
        )
        .await;
    }
    kept_id(&backend, entry("org_a", "user.signed_in", 3, "bad role", 1)).await;
    kept_id(&backend, entry("org_a", "user.signed_in", 2, "bad role", 1)).await;
    kept_id(
        &backend,
        entry("org_b", "user.signed_in", 3, "undeclared team", 1),
    )
    .await;
    let counts = backend.quarantine_counts("org_a").await.expect("counts");
    let rows: Vec<(String, i64, String, u64)> = counts
        .into_iter()
        .map(|c| (c.action, c.version, c.reason, c.count))
        .collect();
    assert_eq!(
        rows,
        [
            ("user.signed_in".into(), 3, "undeclared team".into(), 3),
            ("user.signed_in".into(), 2, "bad role".into(), 1),
            ("user.signed_in".into(), 3, "bad role".into(), 1),
        ]
    );
    let per_version = backend
        .quarantine_counts_of_action("user.signed_in")
        .await
        .expect("counts");
    assert_eq!(per_version, [(2, 1), (3, 5)]);
}

async fn entries_of_an_action_are_listed_across_organizations(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let a = kept_id(&backend, entry("org_a", "x", 3, "r", 1)).await;
    kept_id(&backend, entry("org_a", "x", 2, "r", 1)).await;
    kept_id(&backend, entry("org_a", "y", 3, "r", 1)).await;
    let b = kept_id(&backend, entry("org_b", "x", 3, "r", 1)).await;
    let all = backend
        .quarantined_of_action("x", 3, None, 10)
        .await
        .expect("list");
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    let rest = backend
        .quarantined_of_action("x", 3, Some(a.clone()), 10)
        .await
        .expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, b);
}

async fn purge_removes_entries_up_to_the_cutoff(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let old = kept_id(&backend, entry("org_a", "a", 1, "r", 1_000)).await;
    let edge = kept_id(&backend, entry("org_a", "a", 1, "r", 2_000)).await;
    let young = kept_id(&backend, entry("org_a", "a", 1, "r", 3_000)).await;
    assert_eq!(backend.purge_quarantine(2_000).await.expect("purge"), 2);
    for gone in [old, edge] {
        assert!(backend
            .get_quarantined("org_a", &gone)
            .await
            .expect("get")
            .is_none());
    }
    assert!(backend
        .get_quarantined("org_a", &young)
        .await
        .expect("get")
        .is_some());
}

async fn deleting_the_organization_deletes_its_entries(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    kept_id(&backend, entry("org_a", "a", 1, "r", 1)).await;
    backend
        .delete_organization("org_a", 0)
        .await
        .expect("delete");
    assert!(backend
        .quarantine_counts_of_action("a")
        .await
        .expect("counts")
        .is_empty());
}
