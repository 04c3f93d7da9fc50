//! Shared counters: rate-limit windows and the sign-in throttle.

use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    a_window_grants_at_most_its_limit_however_many_processes_take,
    a_new_window_starts_empty_and_forgets_the_old_one,
    a_sign_in_is_checked_once_at_a_time_and_blocked_until_its_lockout_ends,
    sign_in_failures_are_counted_across_processes_and_forgotten_after_a_while,
);

async fn take(store: &dyn Store, subject: &str, window: i64, want: u32, limit: u32) -> u32 {
    store
        .take_from_window(subject, window, want, limit)
        .await
        .expect("take")
}

async fn a_window_grants_at_most_its_limit_however_many_processes_take(backend: Backend) {
    assert_eq!(take(&*backend, "api_key:a", 60_000, 4, 10).await, 4);
    assert_eq!(take(&*backend, "api_key:a", 60_000, 4, 10).await, 4);
    assert_eq!(
        take(&*backend, "api_key:a", 60_000, 4, 10).await,
        2,
        "only what is left of the limit"
    );
    assert_eq!(take(&*backend, "api_key:a", 60_000, 1, 10).await, 0);
    assert_eq!(
        take(&*backend, "api_key:b", 60_000, 3, 10).await,
        3,
        "subjects count separately"
    );
    // A lowered limit grants nothing more and never a negative amount.
    assert_eq!(take(&*backend, "api_key:a", 60_000, 5, 6).await, 0);

    // Many processes taking from one window at once never hand out more than the limit.
    let peers = backend.peers(8).await;
    let grants = race(peers.into_iter().map(|store| async move {
        let mut total = 0;
        for _ in 0..10 {
            total += store
                .take_from_window("api_key:raced", 120_000, 3, 100)
                .await
                .expect("take");
        }
        total
    }))
    .await;
    assert_eq!(grants.iter().sum::<u32>(), 100, "{grants:?}");
    let reopened = backend.reopen().await;
    assert_eq!(
        take(&*reopened, "api_key:raced", 120_000, 1, 100).await,
        0,
        "another process sees the window used up"
    );
}

async fn a_new_window_starts_empty_and_forgets_the_old_one(backend: Backend) {
    assert_eq!(take(&*backend, "api_key:a", 60_000, 5, 5).await, 5);
    assert_eq!(take(&*backend, "api_key:a", 60_000, 1, 5).await, 0);
    assert_eq!(take(&*backend, "api_key:a", 120_000, 2, 5).await, 2);
    // The earlier window's row was deleted when the later one was first taken from.
    assert_eq!(
        take(&*backend, "api_key:a", 60_000, 5, 5).await,
        5,
        "a forgotten window starts over"
    );
}

async fn a_sign_in_is_checked_once_at_a_time_and_blocked_until_its_lockout_ends(backend: Backend) {
    let other = backend.reopen().await;
    assert_eq!(
        backend
            .begin_sign_in("admin", 1_000, 31_000)
            .await
            .expect("begin"),
        None,
        "the first attempt starts"
    );
    assert_eq!(
        other
            .begin_sign_in("admin", 2_000, 32_000)
            .await
            .expect("begin"),
        Some(31_000),
        "a parallel attempt, from any process, waits for the first"
    );
    assert_eq!(
        other
            .begin_sign_in("someone", 2_000, 32_000)
            .await
            .expect("begin"),
        None,
        "usernames are independent"
    );
    backend.block_sign_in("admin", 40_000).await.expect("block");
    assert_eq!(
        other
            .begin_sign_in("admin", 39_999, 60_000)
            .await
            .expect("begin"),
        Some(40_000)
    );
    assert_eq!(
        other
            .begin_sign_in("admin", 40_000, 60_000)
            .await
            .expect("begin"),
        None,
        "the block ends on time"
    );
    backend.clear_sign_in("admin").await.expect("clear");
    assert_eq!(
        backend
            .begin_sign_in("admin", 40_001, 70_000)
            .await
            .expect("begin"),
        None,
        "clearing ends the hold at once"
    );

    // Attempts racing from many processes: exactly one starts.
    let peers = backend.peers(8).await;
    let started = race(peers.into_iter().map(|store| async move {
        store
            .begin_sign_in("raced", 100_000, 130_000)
            .await
            .expect("begin")
            .is_none()
    }))
    .await;
    assert_eq!(started.iter().filter(|started| **started).count(), 1);
}

async fn sign_in_failures_are_counted_across_processes_and_forgotten_after_a_while(
    backend: Backend,
) {
    let other = backend.reopen().await;
    let fail = |store: std::sync::Arc<dyn Store>, at: i64| async move {
        store
            .record_sign_in_failure("admin", at, at - 900_000)
            .await
            .expect("failure")
    };
    let this: std::sync::Arc<dyn Store> = backend.store.clone();
    assert_eq!(fail(this.clone(), 1_000_000).await, 1);
    assert_eq!(fail(other.clone(), 1_001_000).await, 2);
    assert_eq!(fail(this.clone(), 1_002_000).await, 3);
    assert_eq!(
        fail(other.clone(), 1_002_000 + 900_001).await,
        1,
        "failures older than the memory start the count over"
    );
    backend.clear_sign_in("admin").await.expect("clear");
    assert_eq!(
        fail(this.clone(), 3_000_000).await,
        1,
        "a success clears it"
    );

    // Rows of other usernames that are stale and unblocked are deleted by a later failure.
    backend
        .record_sign_in_failure("stale", 10, 0)
        .await
        .expect("failure");
    backend
        .record_sign_in_failure("admin", 5_000_000, 4_000_000)
        .await
        .expect("failure");
    assert_eq!(
        backend
            .begin_sign_in("stale", 5_000_001, 5_000_002)
            .await
            .expect("begin"),
        None
    );
    assert_eq!(
        backend
            .record_sign_in_failure("stale", 5_000_003, 4_000_000)
            .await
            .expect("failure"),
        1,
        "the stale username's old failure was forgotten"
    );
}
