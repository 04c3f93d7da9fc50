//! The Merkle tree's storage and signed checkpoints.

use stele_core::merkle::{leaf_hash, Hash};
use stele_core::model::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    tree_size_and_leaf_hashes_follow_the_appended_events,
    tree_nodes_are_stored_once_and_counted_per_level,
    a_checkpoint_is_saved_once_per_size_and_queried_by_size,
    thinning_keeps_the_newest_checkpoint_of_each_period,
    uncheckpointed_logs_are_those_ahead_of_their_newest_checkpoint,
    uncheckpointed_logs_agree_with_tree_size_after_everything_was_purged,
    signing_keys_are_registered_once_and_listed_oldest_first,
    event_bytes_pages_through_the_canonical_bytes,
    the_oldest_unsigned_event_is_the_first_after_each_logs_newest_checkpoint,
);

fn hash(byte: u8) -> Hash {
    [byte; 32]
}

async fn tree_size_and_leaf_hashes_follow_the_appended_events(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 0);
    assert_eq!(backend.tree_size("org_missing").await.expect("size"), 0);
    let mut leaves = Vec::new();
    for _ in 0..3 {
        let appended = append(&*backend, "org_a", "user.signed_in").await;
        let stored = stored(&*backend, "org_a", &appended.id).await;
        leaves.push(leaf_hash(&stored.event.canonical));
    }
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 3);
    assert_eq!(
        backend.leaf_hashes("org_a", 0, 3).await.expect("leaves"),
        leaves
    );
    assert_eq!(
        backend.leaf_hashes("org_a", 1, 2).await.expect("leaves"),
        leaves[1..2]
    );
    assert!(backend
        .leaf_hashes("org_a", 2, 2)
        .await
        .expect("leaves")
        .is_empty());
    let beyond = backend.leaf_hashes("org_a", 2, 4).await;
    assert!(
        matches!(beyond, Err(StoreError::Corrupt { .. })),
        "a leaf neither stored nor kept is reported: {beyond:?}"
    );
}

async fn tree_nodes_are_stored_once_and_counted_per_level(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    assert_eq!(backend.tree_node_count("org_a", 8).await.expect("count"), 0);
    backend
        .store_tree_nodes("org_a", 8, vec![(0, hash(1)), (1, hash(2))])
        .await
        .expect("store");
    // Storing again is harmless and changes nothing already stored.
    backend
        .store_tree_nodes("org_a", 8, vec![(1, hash(9)), (2, hash(3))])
        .await
        .expect("store again");
    backend
        .store_tree_nodes("org_a", 8, Vec::new())
        .await
        .expect("store nothing");
    backend
        .store_tree_nodes("org_a", 16, vec![(0, hash(4))])
        .await
        .expect("store another level");
    assert_eq!(
        backend.tree_nodes("org_a", 8, 0, 10).await.expect("nodes"),
        [(0, hash(1)), (1, hash(2)), (2, hash(3))]
    );
    assert_eq!(
        backend.tree_nodes("org_a", 8, 1, 2).await.expect("nodes"),
        [(1, hash(2))],
        "the range is half-open"
    );
    assert_eq!(backend.tree_node_count("org_a", 8).await.expect("count"), 3);
    assert_eq!(
        backend.tree_node_count("org_a", 16).await.expect("count"),
        1
    );
    assert_eq!(
        backend.tree_node_count("org_a", 24).await.expect("count"),
        0
    );
    assert_eq!(backend.tree_node_count("org_b", 8).await.expect("count"), 0);
    assert!(backend
        .tree_nodes("org_b", 8, 0, 10)
        .await
        .expect("nodes")
        .is_empty());
}

async fn a_checkpoint_is_saved_once_per_size_and_queried_by_size(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    assert_eq!(
        backend.latest_checkpoint("org_a").await.expect("latest"),
        None
    );
    for (size, at) in [(2, 100), (5, 200), (9, 300)] {
        let saved = backend
            .save_checkpoint(checkpoint("org_a", size, at))
            .await
            .expect("save");
        assert_eq!(saved, checkpoint("org_a", size, at));
    }
    let mut rival = checkpoint("org_a", 5, 999);
    rival.note = "another signature".into();
    rival.root_hash = hash(0xee);
    assert_eq!(
        backend.save_checkpoint(rival).await.expect("save"),
        checkpoint("org_a", 5, 200),
        "the checkpoint of that size already in force"
    );
    backend
        .save_checkpoint(checkpoint("org_b", 50, 400))
        .await
        .expect("save");

    assert_eq!(
        backend.latest_checkpoint("org_a").await.expect("latest"),
        Some(checkpoint("org_a", 9, 300))
    );
    let covering = |min_size| {
        let store = std::sync::Arc::clone(&backend.store);
        async move {
            store
                .checkpoint_covering("org_a", min_size)
                .await
                .expect("covering")
                .map(|checkpoint| checkpoint.tree_size)
        }
    };
    assert_eq!(covering(0).await, Some(2));
    assert_eq!(covering(3).await, Some(5));
    assert_eq!(covering(5).await, Some(5), "at least min_size");
    assert_eq!(covering(10).await, None);

    let sizes = |checkpoints: Vec<Checkpoint>| -> Vec<u64> {
        checkpoints.iter().map(|c| c.tree_size).collect()
    };
    assert_eq!(
        sizes(
            backend
                .list_checkpoints("org_a", 0, 10)
                .await
                .expect("list")
        ),
        [2, 5, 9]
    );
    assert_eq!(
        sizes(backend.list_checkpoints("org_a", 2, 1).await.expect("list")),
        [5],
        "after_size is exclusive and limit applies"
    );
    assert!(backend
        .list_checkpoints("org_a", 9, 10)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        backend
            .list_checkpoints("org_b", 0, 10)
            .await
            .expect("list"),
        [checkpoint("org_b", 50, 400)]
    );
}

async fn thinning_keeps_the_newest_checkpoint_of_each_period(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    // Periods of 1000 ms: [1000, 2000) holds sizes 1 and 2, [2000, 3000) sizes 3 and 4;
    // size 5 is not older than the cutoff.
    for (size, at) in [(1, 1_100), (2, 1_900), (3, 2_100), (4, 2_900), (5, 5_000)] {
        backend
            .save_checkpoint(checkpoint("org_a", size, at))
            .await
            .expect("save");
    }
    for (size, at) in [(10, 1_200), (11, 1_300)] {
        backend
            .save_checkpoint(checkpoint("org_b", size, at))
            .await
            .expect("save");
    }
    let deleted = backend.thin_checkpoints(4_000, 1_000).await.expect("thin");
    assert_eq!(deleted, 3);
    let sizes = |organization: &'static str| {
        let store = std::sync::Arc::clone(&backend.store);
        async move {
            store
                .list_checkpoints(organization, 0, 100)
                .await
                .expect("list")
                .iter()
                .map(|c| c.tree_size)
                .collect::<Vec<u64>>()
        }
    };
    assert_eq!(sizes("org_a").await, [2, 4, 5]);
    assert_eq!(sizes("org_b").await, [11], "periods are per organization");
    assert_eq!(
        backend.thin_checkpoints(4_000, 1_000).await.expect("thin"),
        0,
        "thinning again deletes nothing"
    );
}

async fn uncheckpointed_logs_are_those_ahead_of_their_newest_checkpoint(backend: Backend) {
    for id in ["org_a", "org_b", "org_c"] {
        create_organization(&*backend, id).await;
    }
    assert!(backend
        .uncheckpointed_logs()
        .await
        .expect("logs")
        .is_empty());
    for _ in 0..3 {
        append(&*backend, "org_b", "user.signed_in").await;
    }
    for _ in 0..2 {
        append(&*backend, "org_a", "user.signed_in").await;
    }
    backend
        .save_checkpoint(checkpoint("org_a", 2, 100))
        .await
        .expect("save");
    assert_eq!(
        backend.uncheckpointed_logs().await.expect("logs"),
        [UncheckpointedLog {
            organization_id: "org_b".into(),
            tree_size: 3,
            checkpointed_size: 0,
        }]
    );
    append(&*backend, "org_a", "user.signed_in").await;
    assert_eq!(
        backend.uncheckpointed_logs().await.expect("logs"),
        [
            UncheckpointedLog {
                organization_id: "org_a".into(),
                tree_size: 3,
                checkpointed_size: 2,
            },
            UncheckpointedLog {
                organization_id: "org_b".into(),
                tree_size: 3,
                checkpointed_size: 0,
            },
        ]
    );
}

async fn uncheckpointed_logs_agree_with_tree_size_after_everything_was_purged(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append_spaced(&*backend, "org_a", 3).await;
    backend
        .purge_events("org_a", now() + 60_000, 100)
        .await
        .expect("purge");
    assert_eq!(backend.tree_size("org_a").await.expect("size"), 3);
    // The tree has three leaves that no checkpoint covers yet.
    assert_eq!(
        backend.uncheckpointed_logs().await.expect("logs"),
        [UncheckpointedLog {
            organization_id: "org_a".into(),
            tree_size: 3,
            checkpointed_size: 0,
        }]
    );
}

async fn signing_keys_are_registered_once_and_listed_oldest_first(backend: Backend) {
    let key = |id: &str, verifier: &str, at| SigningKeyRecord {
        key_id: id.into(),
        verifier_key: verifier.into(),
        created_at: at,
    };
    assert!(backend.list_signing_keys().await.expect("list").is_empty());
    backend
        .register_signing_key(key("bb", "stele+bb+second", 200))
        .await
        .expect("register");
    backend
        .register_signing_key(key("aa", "stele+aa+first", 100))
        .await
        .expect("register");
    backend
        .register_signing_key(key("aa", "stele+aa+replacement", 300))
        .await
        .expect("registering a known key is a no-op");
    backend
        .register_signing_key(key("ab", "stele+ab+same-time", 200))
        .await
        .expect("register");
    assert_eq!(
        backend.list_signing_keys().await.expect("list"),
        [
            key("aa", "stele+aa+first", 100),
            key("ab", "stele+ab+same-time", 200),
            key("bb", "stele+bb+second", 200),
        ]
    );
}

async fn event_bytes_pages_through_the_canonical_bytes(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let mut canonical = Vec::new();
    for _ in 0..5 {
        let appended = append(&*backend, "org_a", "user.signed_in").await;
        canonical.push(
            stored(&*backend, "org_a", &appended.id)
                .await
                .event
                .canonical,
        );
    }
    append(&*backend, "org_b", "user.signed_in").await;
    let first = backend.event_bytes("org_a", 0, 2).await.expect("bytes");
    assert_eq!(
        first,
        [(1, canonical[0].clone()), (2, canonical[1].clone())]
    );
    let rest = backend.event_bytes("org_a", 2, 10).await.expect("bytes");
    let numbers: Vec<i64> = rest.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(numbers, [3, 4, 5]);
    assert_eq!(rest[2].1, canonical[4]);
    assert!(backend
        .event_bytes("org_a", 5, 10)
        .await
        .expect("bytes")
        .is_empty());
    let other = backend.event_bytes("org_b", 0, 10).await.expect("bytes");
    assert_eq!(other.len(), 1);
}

async fn the_oldest_unsigned_event_is_the_first_after_each_logs_newest_checkpoint(
    backend: Backend,
) {
    let oldest = || async {
        backend
            .oldest_unsigned_event_received_at()
            .await
            .expect("oldest")
    };
    assert_eq!(oldest().await, None, "an empty store has nothing unsigned");
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let first = append(&*backend, "org_a", "user.signed_in").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = append(&*backend, "org_a", "user.signed_in").await;
    assert!(second.received_at > first.received_at);
    assert_eq!(oldest().await, Some(first.received_at));
    // A checkpoint of one event leaves the second as the oldest unsigned one.
    backend
        .save_checkpoint(checkpoint("org_a", 1, now()))
        .await
        .expect("checkpoint");
    assert_eq!(oldest().await, Some(second.received_at));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let other = append(&*backend, "org_b", "user.signed_in").await;
    assert_eq!(
        oldest().await,
        Some(second.received_at),
        "the oldest across organizations"
    );
    backend
        .save_checkpoint(checkpoint("org_a", 2, now()))
        .await
        .expect("checkpoint");
    assert_eq!(oldest().await, Some(other.received_at));
    backend
        .save_checkpoint(checkpoint("org_b", 1, now()))
        .await
        .expect("checkpoint");
    assert_eq!(oldest().await, None, "every log is signed");
}
