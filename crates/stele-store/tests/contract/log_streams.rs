//! Log streams: configuration rows, the durable cursor, backoff, the delivery lease that
//! one process holds at a time, and the events a stream reads (with purged gaps).

use serde_json::json;
use stele_core::chain::{link, GENESIS};
use stele_core::log_stream::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    streams_are_created_listed_read_and_deleted_per_organization,
    a_stream_for_an_unknown_organization_is_refused,
    pausing_resuming_and_rewinding_change_state_and_cursor,
    pausing_a_stream_ends_the_lease_of_a_delivery_in_progress,
    only_streams_with_undelivered_events_are_leased_and_one_owner_at_a_time,
    a_delivery_advances_the_cursor_only_under_the_lease_from_the_expected_cursor,
    a_failure_records_the_reason_backs_off_and_releases_the_lease,
    stream_events_follow_the_cursor_with_their_chain_hashes,
    events_purged_before_delivery_are_reported_as_a_gap,
    deleting_an_organization_deletes_its_streams,
    positions_give_each_streams_lag_and_totals_by_type_and_state,
);

fn stream(id: &str, organization_id: &str, at: i64) -> LogStream {
    LogStream {
        id: id.to_owned(),
        organization_id: organization_id.into(),
        stream_type: LogStreamType::GenericHttps,
        state: LogStreamState::Active,
        settings: json!({"endpoint": "https://siem.example.com/in"}),
        sealed_secrets: Some(vec![1, 2, 3]),
        delivered_sequence: 0,
        delivered_events: 0,
        failures: 0,
        last_synced_at: None,
        last_error: None,
        next_attempt_at: 0,
        created_at: at,
        updated_at: at,
    }
}

async fn streams_are_created_listed_read_and_deleted_per_organization(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let first = backend
        .create_log_stream(stream("log_stream_1", "org_a", 1_000))
        .await
        .expect("create");
    backend
        .create_log_stream(stream("log_stream_2", "org_a", 2_000))
        .await
        .expect("create");
    backend
        .create_log_stream(stream("log_stream_3", "org_b", 1_500))
        .await
        .expect("create");
    let listed = backend.list_log_streams("org_a").await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["log_stream_1", "log_stream_2"],
        "oldest first, one organization only"
    );
    assert_eq!(listed[0], first, "read back exactly as stored");
    assert_eq!(
        backend
            .get_log_stream("org_b", "log_stream_1")
            .await
            .expect("get"),
        None,
        "another organization's stream is not found"
    );
    assert!(!backend
        .delete_log_stream("org_b", "log_stream_1")
        .await
        .expect("delete"));
    assert!(backend
        .delete_log_stream("org_a", "log_stream_1")
        .await
        .expect("delete"));
    assert!(!backend
        .delete_log_stream("org_a", "log_stream_1")
        .await
        .expect("delete again"));
    assert_eq!(
        backend.list_log_streams("org_a").await.expect("list").len(),
        1
    );
}

async fn a_stream_for_an_unknown_organization_is_refused(backend: Backend) {
    let refused = backend
        .create_log_stream(stream("log_stream_1", "org_missing", 1))
        .await;
    assert!(
        matches!(refused, Err(StoreError::OrganizationNotFound)),
        "{refused:?}"
    );
    assert!(backend
        .list_log_streams("org_missing")
        .await
        .expect("list")
        .is_empty());
}

async fn pausing_resuming_and_rewinding_change_state_and_cursor(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append_spaced(&*backend, "org_a", 3).await;
    backend
        .create_log_stream(stream("log_stream_1", "org_a", 1))
        .await
        .expect("create");
    let paused = backend
        .set_log_stream_state("org_a", "log_stream_1", LogStreamState::Inactive, 5)
        .await
        .expect("pause")
        .expect("found");
    assert_eq!(paused.state, LogStreamState::Inactive);
    assert_eq!(paused.updated_at, 5);
    assert!(
        backend
            .lease_log_streams("w1", 10, 100, 10)
            .await
            .expect("lease")
            .is_empty(),
        "a paused stream is not delivered"
    );
    backend
        .set_log_stream_state("org_a", "log_stream_1", LogStreamState::Active, 6)
        .await
        .expect("resume");
    let rewound = backend
        .rewind_log_stream("org_a", "log_stream_1", 2, 7)
        .await
        .expect("rewind")
        .expect("found");
    assert_eq!(rewound.delivered_sequence, 2);
    assert_eq!(
        backend
            .rewind_log_stream("org_a", "log_stream_missing", 2, 7)
            .await
            .expect("rewind"),
        None
    );
    assert_eq!(
        backend
            .set_log_stream_state("org_b", "log_stream_1", LogStreamState::Active, 7)
            .await
            .expect("resume"),
        None,
        "pinned to its organization"
    );
}

async fn pausing_a_stream_ends_the_lease_of_a_delivery_in_progress(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append(&*backend, "org_a", "user.signed_in").await;
    backend
        .create_log_stream(stream("log_stream_1", "org_a", 1))
        .await
        .expect("create");
    let leased = backend
        .lease_log_streams("w1", 10, 100, 10)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);
    assert!(backend
        .renew_log_stream_lease("log_stream_1", "w1", 200)
        .await
        .expect("renew"));
    backend
        .set_log_stream_state("org_a", "log_stream_1", LogStreamState::Inactive, 20)
        .await
        .expect("pause");
    assert!(
        !backend
            .renew_log_stream_lease("log_stream_1", "w1", 300)
            .await
            .expect("renew"),
        "a paused stream's delivery stops at its next batch"
    );
    backend
        .release_log_stream_lease("log_stream_1", "w1")
        .await
        .expect("release");
    backend
        .set_log_stream_state("org_a", "log_stream_1", LogStreamState::Active, 30)
        .await
        .expect("resume");
    assert_eq!(
        backend
            .lease_log_streams("w2", 40, 140, 10)
            .await
            .expect("lease")
            .len(),
        1,
        "resumed, another process leases it at once"
    );
}

async fn only_streams_with_undelivered_events_are_leased_and_one_owner_at_a_time(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    backend
        .create_log_stream(stream("log_stream_a", "org_a", 1))
        .await
        .expect("create");
    backend
        .create_log_stream(stream("log_stream_b", "org_b", 1))
        .await
        .expect("create");
    assert!(
        backend
            .lease_log_streams("w1", 10, 100, 10)
            .await
            .expect("lease")
            .is_empty(),
        "nothing to deliver yet"
    );
    append(&*backend, "org_a", "user.signed_in").await;
    let leased = backend
        .lease_log_streams("w1", 10, 100, 10)
        .await
        .expect("lease");
    assert_eq!(
        leased.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["log_stream_a"]
    );
    let other = backend.reopen().await;
    assert!(
        other
            .lease_log_streams("w2", 50, 150, 10)
            .await
            .expect("lease")
            .is_empty(),
        "held by w1 until 100"
    );
    assert!(backend
        .renew_log_stream_lease("log_stream_a", "w1", 200)
        .await
        .expect("renew"));
    assert!(!other
        .renew_log_stream_lease("log_stream_a", "w2", 300)
        .await
        .expect("renew"));
    assert!(
        other
            .lease_log_streams("w2", 150, 250, 10)
            .await
            .expect("lease")
            .is_empty(),
        "the renewed lease holds until 200"
    );
    let taken = other
        .lease_log_streams("w2", 200, 300, 10)
        .await
        .expect("lease");
    assert_eq!(taken.len(), 1, "an expired lease is taken over");
    assert!(!backend
        .renew_log_stream_lease("log_stream_a", "w1", 400)
        .await
        .expect("renew"));
    other
        .release_log_stream_lease("log_stream_a", "w2")
        .await
        .expect("release");
    assert_eq!(
        backend
            .lease_log_streams("w1", 210, 300, 10)
            .await
            .expect("lease")
            .len(),
        1,
        "a released lease is free at once"
    );

    if backend.kind == Kind::Postgres {
        // Many processes leasing at the same moment: each stream goes to one of them.
        for index in 0..6 {
            let id = format!("org_race_{index}");
            create_organization(&*backend, &id).await;
            append(&*backend, &id, "user.signed_in").await;
            backend
                .create_log_stream(stream(&format!("log_stream_race_{index}"), &id, 1))
                .await
                .expect("create");
        }
        let peers = backend.peers(6).await;
        let leased = race(
            peers
                .into_iter()
                .enumerate()
                .map(|(index, store)| async move {
                    store
                        .lease_log_streams(&format!("peer{index}"), 1_000, 2_000, 100)
                        .await
                        .expect("lease")
                        .into_iter()
                        .map(|s| s.id)
                        .collect::<Vec<_>>()
                }),
        )
        .await;
        let mut all: Vec<String> = leased.into_iter().flatten().collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "no stream leased twice");
        assert_eq!(count, 7, "every due stream leased: {all:?}");
    }
}

async fn a_delivery_advances_the_cursor_only_under_the_lease_from_the_expected_cursor(
    backend: Backend,
) {
    create_organization(&*backend, "org_a").await;
    append_spaced(&*backend, "org_a", 4).await;
    backend
        .create_log_stream(stream("log_stream_a", "org_a", 1))
        .await
        .expect("create");
    backend
        .lease_log_streams("w1", 10, 100, 10)
        .await
        .expect("lease");
    let delivery = |owner: &str, expected: i64, to: i64| StreamDelivery {
        stream_id: "log_stream_a".into(),
        lease_owner: owner.into(),
        expected_sequence: expected,
        delivered_sequence: to,
        delivered_events: to - expected,
        at: 50,
        lease_until: 150,
    };
    assert!(!backend
        .record_log_stream_delivery(delivery("w2", 0, 2))
        .await
        .expect("record"));
    assert!(backend
        .record_log_stream_delivery(delivery("w1", 0, 2))
        .await
        .expect("record"));
    // A replay moved the cursor meanwhile: the batch that started elsewhere is not recorded.
    backend
        .rewind_log_stream("org_a", "log_stream_a", 0, 60)
        .await
        .expect("rewind");
    assert!(!backend
        .record_log_stream_delivery(delivery("w1", 2, 4))
        .await
        .expect("record"));
    assert!(backend
        .record_log_stream_delivery(delivery("w1", 0, 4))
        .await
        .expect("record"));
    let stored = backend
        .get_log_stream("org_a", "log_stream_a")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.delivered_sequence, 4);
    assert_eq!(stored.delivered_events, 6);
    assert_eq!(stored.last_synced_at, Some(50));
    assert!(
        backend
            .lease_log_streams("w1", 60, 100, 10)
            .await
            .expect("lease")
            .is_empty(),
        "caught up: nothing to lease"
    );
}

async fn a_failure_records_the_reason_backs_off_and_releases_the_lease(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append(&*backend, "org_a", "user.signed_in").await;
    backend
        .create_log_stream(stream("log_stream_a", "org_a", 1))
        .await
        .expect("create");
    backend
        .lease_log_streams("w1", 10, 100, 10)
        .await
        .expect("lease");
    let failure = StreamFailure {
        stream_id: "log_stream_a".into(),
        lease_owner: "w1".into(),
        state: LogStreamState::Invalid,
        error: "the destination refused the credentials (HTTP 401)".into(),
        next_attempt_at: 500,
    };
    assert!(backend
        .record_log_stream_failure(failure.clone())
        .await
        .expect("record"));
    assert!(
        !backend
            .record_log_stream_failure(failure)
            .await
            .expect("record"),
        "the lease was released"
    );
    let stored = backend
        .get_log_stream("org_a", "log_stream_a")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.state, LogStreamState::Invalid);
    assert_eq!(stored.failures, 1);
    assert_eq!(stored.next_attempt_at, 500);
    assert!(stored
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("401")));
    let other = backend.reopen().await;
    assert!(other
        .lease_log_streams("w2", 499, 600, 10)
        .await
        .expect("lease")
        .is_empty());
    assert_eq!(
        other
            .lease_log_streams("w2", 500, 600, 10)
            .await
            .expect("lease")
            .len(),
        1,
        "due again after the backoff, on any process"
    );
}

async fn stream_events_follow_the_cursor_with_their_chain_hashes(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let appended = append_spaced(&*backend, "org_a", 5).await;
    let all = backend
        .log_stream_events("org_a", 0, 100)
        .await
        .expect("read");
    assert_eq!(all.previous_hash, GENESIS);
    assert_eq!(all.gap, None);
    assert_eq!(
        all.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let mut previous = GENESIS;
    for (event, appended) in all.events.iter().zip(&appended) {
        let stored = stored(&*backend, "org_a", appended.id.as_str()).await;
        assert_eq!(event.canonical, stored.event.canonical, "the stored bytes");
        assert_eq!(event.hash, link(&previous, &event.canonical));
        previous = event.hash;
    }
    let after = backend
        .log_stream_events("org_a", 2, 2)
        .await
        .expect("read");
    assert_eq!(after.previous_hash, all.events[1].hash);
    assert_eq!(
        after.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(backend
        .log_stream_events("org_a", 5, 10)
        .await
        .expect("read")
        .events
        .is_empty());
}

async fn events_purged_before_delivery_are_reported_as_a_gap(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let appended = append_spaced(&*backend, "org_a", 5).await;
    backend
        .create_log_stream(stream("log_stream_a", "org_a", 1))
        .await
        .expect("create");
    let before = backend
        .log_stream_events("org_a", 0, 100)
        .await
        .expect("read");
    // Events 1 to 3 purged before the stream delivered any.
    let outcome = backend
        .purge_events("org_a", appended[2].received_at + 1, 100)
        .await
        .expect("purge");
    assert_eq!(outcome.purged, 3);
    let read = backend
        .log_stream_events("org_a", 0, 100)
        .await
        .expect("read");
    assert_eq!(
        read.gap,
        Some(PurgedGap {
            first_sequence: 1,
            last_sequence: 3
        })
    );
    assert_eq!(read.previous_hash, before.events[2].hash);
    assert_eq!(
        read.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [4, 5]
    );
    // Everything purged: the stream is still due, to report the gap.
    backend
        .purge_events("org_a", appended[4].received_at + 1, 100)
        .await
        .expect("purge");
    let leased = backend
        .lease_log_streams("w1", now(), now() + 1_000, 10)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);
    let read = backend
        .log_stream_events("org_a", 0, 100)
        .await
        .expect("read");
    assert_eq!(read.covers_up_to(), Some(5));
    assert!(read.events.is_empty());
    assert_eq!(read.previous_hash, before.events[4].hash);
}

async fn deleting_an_organization_deletes_its_streams(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    backend
        .create_log_stream(stream("log_stream_a", "org_a", 1))
        .await
        .expect("create");
    backend
        .delete_organization("org_a", 0)
        .await
        .expect("delete");
    assert!(backend
        .list_log_streams("org_a")
        .await
        .expect("list")
        .is_empty());
}

async fn positions_give_each_streams_lag_and_totals_by_type_and_state(backend: Backend) {
    let empty = backend.log_stream_positions(10).await.expect("positions");
    assert_eq!(empty, StreamPositions::default(), "no streams, no rows");
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    create_organization(&*backend, "org_c").await;
    append_spaced(&*backend, "org_a", 5).await;
    let purged_later = append_spaced(&*backend, "org_b", 2).await;
    for (id, organization) in [
        ("log_stream_a1", "org_a"),
        ("log_stream_a2", "org_a"),
        ("log_stream_b1", "org_b"),
        ("log_stream_c1", "org_c"),
    ] {
        backend
            .create_log_stream(stream(id, organization, 1))
            .await
            .expect("create");
    }
    let mut in_bucket = stream("log_stream_c2", "org_c", 1);
    in_bucket.stream_type = LogStreamType::S3;
    backend.create_log_stream(in_bucket).await.expect("create");
    backend
        .rewind_log_stream("org_a", "log_stream_a2", 5, 2)
        .await
        .expect("caught up");
    backend
        .set_log_stream_state("org_b", "log_stream_b1", LogStreamState::Inactive, 2)
        .await
        .expect("pause");
    // Retention purges org_b's events: the stream still has them to account for (a gap).
    backend
        .purge_events("org_b", purged_later[1].received_at + 1, 100)
        .await
        .expect("purge");

    let position = |id: &str, organization: &str, kind, state, delivered, newest| StreamPosition {
        id: id.into(),
        organization_id: organization.into(),
        stream_type: kind,
        state,
        delivered_sequence: delivered,
        newest_sequence: newest,
    };
    let generic = LogStreamType::GenericHttps;
    let (active, inactive) = (LogStreamState::Active, LogStreamState::Inactive);
    let all = backend.log_stream_positions(10).await.expect("positions");
    assert_eq!(
        all.streams,
        [
            position("log_stream_a1", "org_a", generic, active, 0, 5),
            position("log_stream_b1", "org_b", generic, inactive, 0, 2),
            // Caught up: ties by id.
            position("log_stream_a2", "org_a", generic, active, 5, 5),
            position("log_stream_c1", "org_c", generic, active, 0, 0),
            position("log_stream_c2", "org_c", LogStreamType::S3, active, 0, 0),
        ],
        "most lagging first"
    );
    assert_eq!(
        all.streams
            .iter()
            .map(StreamPosition::lag)
            .collect::<Vec<_>>(),
        [5, 2, 0, 0, 0]
    );
    let mut totals = all.totals.clone();
    totals.sort_by_key(|t| (t.stream_type.as_str(), t.state.as_str()));
    let total = |stream_type, state, streams, max_lag| StreamTotals {
        stream_type,
        state,
        streams,
        max_lag,
    };
    assert_eq!(
        totals,
        [
            total(generic, active, 3, 5),
            total(generic, inactive, 1, 2),
            total(LogStreamType::S3, active, 1, 0),
        ]
    );
    let top = backend.log_stream_positions(2).await.expect("positions");
    assert_eq!(
        top.streams
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["log_stream_a1", "log_stream_b1"],
        "the limit keeps the most lagging"
    );
    assert_eq!(top.totals.len(), 3, "totals still cover every stream");

    // Delivered: the lag falls to zero.
    backend
        .lease_log_streams("w1", now(), now() + 1_000, 10)
        .await
        .expect("lease");
    assert!(backend
        .record_log_stream_delivery(StreamDelivery {
            stream_id: "log_stream_a1".into(),
            lease_owner: "w1".into(),
            expected_sequence: 0,
            delivered_sequence: 5,
            delivered_events: 5,
            at: now(),
            lease_until: now() + 1_000,
        })
        .await
        .expect("delivered"));
    let after = backend.log_stream_positions(1).await.expect("positions");
    assert_eq!(after.streams[0].id, "log_stream_b1");
    assert!(after
        .totals
        .iter()
        .any(|t| t.stream_type == generic && t.state == active && t.max_lag == 0));
}
