//! Exports: a snapshot fixed when created, and whether retention has since cut into it.

use stele_core::model::*;
use stele_core::timestamp::UnixMillis;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    an_export_fixes_its_snapshot_at_the_newest_sequence,
    an_export_of_an_unknown_organization_is_refused,
    an_export_is_incomplete_once_retention_purges_events_it_covered,
    an_export_after_everything_was_purged_snapshots_the_newest_sequence,
    a_purge_of_events_after_the_snapshot_leaves_an_export_complete,
);

fn export(id: &str, query: EventQuery, created_at: UnixMillis) -> Export {
    Export {
        id: id.into(),
        query,
        format: ExportFormat::Jsonl,
        created_at,
        complete: true,
    }
}

async fn create(backend: &Backend, export: Export) -> Export {
    done(
        backend
            .create_export(export, None)
            .await
            .expect("create export"),
    )
}

async fn an_export_fixes_its_snapshot_at_the_newest_sequence(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let empty = create(&backend, export("audit_log_export_0", query("org_a"), 10)).await;
    assert_eq!(empty.query.up_to_sequence, Some(0), "nothing stored yet");
    for _ in 0..3 {
        append(&*backend, "org_a", "doc.edited").await;
    }
    for _ in 0..5 {
        append(&*backend, "org_b", "doc.edited").await;
    }
    let filtered = EventQuery {
        actions: vec!["doc.edited".into()],
        actor_ids: vec!["user_1".into()],
        occurred_from: Some(5),
        // Whatever the caller asks, the snapshot is what is stored now.
        up_to_sequence: Some(1),
        ..query("org_a")
    };
    let created = create(&backend, export("audit_log_export_1", filtered.clone(), 20)).await;
    let expected = Export {
        query: EventQuery {
            up_to_sequence: Some(3),
            ..filtered
        },
        ..export("audit_log_export_1", query("org_a"), 20)
    };
    assert_eq!(created, expected);

    append(&*backend, "org_a", "doc.edited").await;
    let read = backend
        .get_export("audit_log_export_1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read, expected, "later events do not move the snapshot");
    assert_eq!(
        sequences(&search_all(&*backend, read.query).await),
        [1, 2, 3],
        "the snapshot's query sees the events stored when it was created"
    );
    assert_eq!(
        backend.get_export("audit_log_export_9").await.expect("get"),
        None
    );
}

async fn an_export_of_an_unknown_organization_is_refused(backend: Backend) {
    let refused = backend
        .create_export(export("audit_log_export_1", query("org_missing"), 10), None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::OrganizationNotFound)),
        "{refused:?}"
    );
    assert_eq!(
        backend.get_export("audit_log_export_1").await.expect("get"),
        None
    );
}

async fn an_export_is_incomplete_once_retention_purges_events_it_covered(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let appended = append_spaced(&*backend, "org_a", 3).await;
    append(&*backend, "org_b", "user.signed_in").await;
    create(&backend, export("audit_log_export_a", query("org_a"), 10)).await;
    create(&backend, export("audit_log_export_b", query("org_b"), 10)).await;
    let complete = |id: &'static str| {
        let store = std::sync::Arc::clone(&backend.store);
        async move {
            store
                .get_export(id)
                .await
                .expect("get")
                .expect("stored")
                .complete
        }
    };
    assert!(complete("audit_log_export_a").await);

    // Purge event 1 only.
    let outcome = backend
        .purge_events("org_a", appended[1].received_at, 100)
        .await
        .expect("purge");
    assert_eq!(outcome.purged, 1);
    assert!(
        !complete("audit_log_export_a").await,
        "event 1 was in the snapshot and is gone"
    );
    assert!(
        complete("audit_log_export_b").await,
        "another organization's purge does not touch it"
    );

    // An export made after the purge covers only what is retained, so it is complete
    // until the next purge.
    let after = create(&backend, export("audit_log_export_c", query("org_a"), 20)).await;
    assert_eq!(after.query.up_to_sequence, Some(3));
    assert!(complete("audit_log_export_c").await);
    backend
        .purge_events("org_a", appended[2].received_at, 100)
        .await
        .expect("purge");
    assert!(!complete("audit_log_export_c").await);
}

async fn an_export_after_everything_was_purged_snapshots_the_newest_sequence(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append_spaced(&*backend, "org_a", 3).await;
    let outcome = backend
        .purge_events("org_a", now() + 60_000, 100)
        .await
        .expect("purge");
    assert_eq!(outcome.purged, 3);
    // "Fixing its snapshot at the newest event committed so far": event 3 was committed
    // (and purged since); the tree still has three leaves.
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 3);
    let created = create(&backend, export("audit_log_export_1", query("org_a"), 10)).await;
    assert_eq!(created.query.up_to_sequence, Some(3));
    let read = backend
        .get_export("audit_log_export_1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.query.up_to_sequence, Some(3));
    assert!(read.complete);
}

async fn a_purge_of_events_after_the_snapshot_leaves_an_export_complete(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    // Created before any event: its snapshot is empty, so no purge can cut into it.
    let empty = create(&backend, export("audit_log_export_1", query("org_a"), 10)).await;
    assert_eq!(empty.query.up_to_sequence, Some(0));
    let appended = append_spaced(&*backend, "org_a", 3).await;
    let outcome = backend
        .purge_events("org_a", appended[1].received_at, 100)
        .await
        .expect("purge");
    assert_eq!(outcome.purged, 1);
    let read = backend
        .get_export("audit_log_export_1")
        .await
        .expect("get")
        .expect("stored");
    assert!(
        read.complete,
        "event 1 came after the snapshot, so the export can still be produced as it was"
    );
}
