//! Retention: periods per organization, and purging the oldest events without breaking
//! the chain or the Merkle tree.

use serde_json::json;
use stele_core::chain::link;
use stele_core::merkle::leaf_hash;
use stele_core::model::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    retention_periods_are_set_cleared_and_listed,
    purges_take_the_oldest_events_in_batches,
    a_purge_with_nothing_older_than_the_cutoff_changes_nothing,
    a_batch_exactly_as_large_as_the_expired_events_purges_them_all,
    purging_everything_keeps_the_tree_and_the_chain_continues,
    the_chain_verifies_and_leaf_hashes_survive_after_a_purge,
    purged_leaves_are_kept_only_where_no_block_node_covers_them,
);

async fn retention_periods_are_set_cleared_and_listed(backend: Backend) {
    for id in ["org_a", "org_b", "org_c"] {
        create_organization(&*backend, id).await;
    }
    assert!(backend
        .organizations_with_retention()
        .await
        .expect("list")
        .is_empty());
    backend.set_retention("org_b", Some(30)).await.expect("set");
    backend.set_retention("org_a", Some(7)).await.expect("set");
    let listed = |backend: &Backend| {
        let store = std::sync::Arc::clone(&backend.store);
        async move {
            store
                .organizations_with_retention()
                .await
                .expect("list")
                .into_iter()
                .map(|(id, days)| (id.to_string(), days))
                .collect::<Vec<(String, i64)>>()
        }
    };
    assert_eq!(
        listed(&backend).await,
        [("org_a".to_owned(), 7), ("org_b".to_owned(), 30)]
    );
    let org_a = backend
        .get_organization("org_a")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(org_a.retention_period_in_days, Some(7));

    backend.set_retention("org_b", None).await.expect("clear");
    backend
        .set_retention("org_a", Some(90))
        .await
        .expect("change");
    assert_eq!(listed(&backend).await, [("org_a".to_owned(), 90)]);
    let org_b = backend
        .get_organization("org_b")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(org_b.retention_period_in_days, None);

    let missing = backend.set_retention("org_missing", Some(1)).await;
    assert!(
        matches!(missing, Err(StoreError::OrganizationNotFound)),
        "{missing:?}"
    );
}

async fn purges_take_the_oldest_events_in_batches(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let appended = append_spaced(&*backend, "org_a", 6).await;
    append(&*backend, "org_b", "user.signed_in").await;
    // Events 1..=4 were received before the cutoff, 5 and 6 at or after it.
    let cutoff = appended[4].received_at;

    let first = backend
        .purge_events("org_a", cutoff, 3)
        .await
        .expect("purge");
    assert_eq!(
        first,
        PurgeOutcome {
            purged: 3,
            more: true
        }
    );
    assert_eq!(
        sequences(&search_all(&*backend, query("org_a")).await),
        [4, 5, 6]
    );
    let second = backend
        .purge_events("org_a", cutoff, 3)
        .await
        .expect("purge");
    assert_eq!(
        second,
        PurgeOutcome {
            purged: 1,
            more: false
        }
    );
    assert_eq!(
        sequences(&search_all(&*backend, query("org_a")).await),
        [5, 6]
    );
    let third = backend
        .purge_events("org_a", cutoff, 3)
        .await
        .expect("purge");
    assert_eq!(
        third,
        PurgeOutcome {
            purged: 0,
            more: false
        }
    );

    assert_eq!(
        sequences(&search_all(&*backend, query("org_b")).await),
        [1],
        "another organization keeps its events"
    );
    let report = verify(&*backend, Some("org_a")).await;
    assert_eq!(report.events, 2);
    for purged in &appended[..4] {
        assert_eq!(
            backend.get_event("org_a", &purged.id).await.expect("get"),
            None
        );
    }
}

async fn a_purge_with_nothing_older_than_the_cutoff_changes_nothing(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_empty").await;
    let appended = append_spaced(&*backend, "org_a", 3).await;
    let nothing = backend
        .purge_events("org_a", appended[0].received_at, 10)
        .await
        .expect("purge");
    assert_eq!(
        nothing,
        PurgeOutcome {
            purged: 0,
            more: false
        }
    );
    assert_eq!(
        backend
            .purge_events("org_empty", now() + 60_000, 10)
            .await
            .expect("purge"),
        PurgeOutcome {
            purged: 0,
            more: false
        }
    );
    assert_eq!(
        sequences(&search_all(&*backend, query("org_a")).await),
        [1, 2, 3]
    );
    let report = verify(&*backend, None).await;
    assert_eq!(report.events, 3);
    assert_eq!(
        append(&*backend, "org_a", "user.signed_in").await.sequence,
        4
    );
}

async fn a_batch_exactly_as_large_as_the_expired_events_purges_them_all(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let appended = append_spaced(&*backend, "org_a", 5).await;
    let cutoff = appended[3].received_at;
    let exact = backend
        .purge_events("org_a", cutoff, 3)
        .await
        .expect("purge");
    // The pass stopped at its batch size, so it cannot tell whether more remain: it says
    // there may be; the next pass finds none.
    assert_eq!(
        exact,
        PurgeOutcome {
            purged: 3,
            more: true
        }
    );
    let next = backend
        .purge_events("org_a", cutoff, 3)
        .await
        .expect("purge");
    assert_eq!(
        next,
        PurgeOutcome {
            purged: 0,
            more: false
        }
    );
    assert_eq!(
        sequences(&search_all(&*backend, query("org_a")).await),
        [4, 5]
    );

    // One more than the expired events: everything expired goes and none is left.
    let cutoff = appended[4].received_at;
    let larger = backend
        .purge_events("org_a", cutoff, 2)
        .await
        .expect("purge");
    assert_eq!(
        larger,
        PurgeOutcome {
            purged: 1,
            more: false
        }
    );
    assert_eq!(sequences(&search_all(&*backend, query("org_a")).await), [5]);
}

async fn purging_everything_keeps_the_tree_and_the_chain_continues(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let appended = append_spaced(&*backend, "org_a", 4).await;
    let last = stored(&*backend, "org_a", &appended[3].id).await;
    let leaves = backend.leaf_hashes("org_a", 0, 4).await.expect("leaves");

    let all = backend
        .purge_events("org_a", now() + 60_000, 1_000)
        .await
        .expect("purge");
    assert_eq!(
        all,
        PurgeOutcome {
            purged: 4,
            more: false
        }
    );
    assert!(search_all(&*backend, query("org_a")).await.is_empty());
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 4);
    assert_eq!(
        backend.leaf_hashes("org_a", 0, 4).await.expect("leaves"),
        leaves
    );
    let report = verify(&*backend, None).await;
    assert_eq!(report.events, 0);

    // The next event continues the numbering and chains from the last purged one.
    let next = append(&*backend, "org_a", "user.signed_in").await;
    assert_eq!(next.sequence, 5);
    let next = stored(&*backend, "org_a", &next.id).await;
    assert_eq!(next.hash, link(&last.hash, &next.event.canonical));
    let report = verify(&*backend, Some("org_a")).await;
    assert_eq!((report.organizations, report.events), (1, 1));
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 5);
}

async fn the_chain_verifies_and_leaf_hashes_survive_after_a_purge(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let appended = append_spaced(&*backend, "org_a", 4).await;
    // Events 1..=4 target team_1; a fifth targets something else.
    append_event(
        &*backend,
        new_event(
            "org_a",
            event_json(
                "user.signed_in",
                json!({"targets": [{"id": "doc_x", "type": "doc"}]}),
            ),
        ),
    )
    .await;
    let mut expected = Vec::new();
    for event in &appended {
        expected.push(leaf_hash(
            &stored(&*backend, "org_a", &event.id).await.event.canonical,
        ));
    }
    assert_eq!(
        backend.leaf_hashes("org_a", 0, 4).await.expect("leaves"),
        expected,
        "leaf i is the hash of event i + 1's canonical bytes"
    );

    let outcome = backend
        .purge_events("org_a", appended[2].received_at, 100)
        .await
        .expect("purge");
    assert_eq!(
        outcome,
        PurgeOutcome {
            purged: 2,
            more: false
        }
    );
    let report = verify(&*backend, Some("org_a")).await;
    assert_eq!(report.events, 3);
    assert_eq!(
        backend.leaf_hashes("org_a", 0, 4).await.expect("leaves"),
        expected,
        "purged events' leaf hashes are kept"
    );
    assert_eq!(
        backend.leaf_hashes("org_a", 1, 3).await.expect("leaves"),
        expected[1..3]
    );
    let bytes = backend.event_bytes("org_a", 0, 10).await.expect("bytes");
    let numbers: Vec<i64> = bytes.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(numbers, [3, 4, 5], "only retained events have bytes");
    assert_eq!(
        sequences(
            &search_all(
                &*backend,
                EventQuery {
                    target_ids: vec!["team_1".into()],
                    ..query("org_a")
                }
            )
            .await
        ),
        [3, 4],
        "purged events leave the target index"
    );
    assert_eq!(
        sequences(
            &search_all(
                &*backend,
                EventQuery {
                    target_types: vec!["doc".into()],
                    ..query("org_a")
                }
            )
            .await
        ),
        [5]
    );
}

async fn purged_leaves_are_kept_only_where_no_block_node_covers_them(backend: Backend) {
    create_organization(&*backend, "org_kept").await;
    create_organization(&*backend, "org_covered").await;
    // A level-8 node for the first 256-leaf block: proofs read it instead of the leaves.
    backend
        .store_tree_nodes("org_covered", 8, vec![(0, [8; 32])])
        .await
        .expect("store block node");
    let kept = append_spaced(&*backend, "org_kept", 3).await;
    let covered = append_spaced(&*backend, "org_covered", 3).await;
    for (organization, appended) in [("org_kept", &kept), ("org_covered", &covered)] {
        let outcome = backend
            .purge_events(organization, appended[2].received_at, 100)
            .await
            .expect("purge");
        assert_eq!(outcome.purged, 2, "{organization}");
    }
    assert_eq!(
        backend.tree_node_count("org_kept", 0).await.expect("count"),
        2
    );
    assert_eq!(
        backend
            .tree_node_count("org_covered", 0)
            .await
            .expect("count"),
        0,
        "no leaf hash is kept where the block node stands for them"
    );
    assert_eq!(
        backend
            .leaf_hashes("org_kept", 0, 3)
            .await
            .expect("leaves")
            .len(),
        3
    );
    let missing = backend.leaf_hashes("org_covered", 0, 3).await;
    assert!(
        matches!(missing, Err(StoreError::Corrupt { .. })),
        "{missing:?}"
    );
    assert_eq!(
        backend
            .leaf_hashes("org_covered", 2, 3)
            .await
            .expect("leaves")
            .len(),
        1,
        "the retained leaf is still read from its bytes"
    );
}
