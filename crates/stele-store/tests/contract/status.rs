//! What the store reports about its connections and write queue, for monitoring.

use crate::support::*;

contract_tests!(pool_status_reports_idle_connections_and_an_empty_queue_at_rest);

async fn pool_status_reports_idle_connections_and_an_empty_queue_at_rest(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    append(&*backend, "org_a", "user.signed_in").await;
    backend.get_organization("org_a").await.expect("a read");
    let status = backend.pool_status();
    assert_eq!(status.in_use_connections, 0, "{status:?}");
    assert!(
        status.idle_connections >= 1,
        "the read's connection is kept: {status:?}"
    );
    assert_eq!(status.waiting_requests, 0, "{status:?}");
    assert_eq!(status.queued_writes, 0, "{status:?}");
    match backend.kind {
        Kind::Postgres => assert!(
            status
                .max_connections
                .is_some_and(|max| max >= status.idle_connections),
            "{status:?}"
        ),
        Kind::Sqlite => assert_eq!(status.max_connections, None, "{status:?}"),
    }
}
