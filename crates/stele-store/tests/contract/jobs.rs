//! Background jobs shared by processes, and deployment-wide secrets.

use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    a_job_runs_once_per_interval_however_many_processes_ask,
    a_shared_secret_is_created_once_and_stays_the_same,
    a_secret_can_be_read_without_creating_it_and_deleted,
);

async fn a_secret_can_be_read_without_creating_it_and_deleted(backend: Backend) {
    assert_eq!(backend.find_secret("link").await.expect("find"), None);
    assert_eq!(
        backend.find_secret("link").await.expect("find"),
        None,
        "finding creates nothing"
    );
    backend
        .shared_secret("link", vec![1, 2])
        .await
        .expect("secret");
    let other = backend.reopen().await;
    assert_eq!(
        other.find_secret("link").await.expect("find"),
        Some(vec![1, 2])
    );
    other.delete_secret("link").await.expect("delete");
    other
        .delete_secret("link")
        .await
        .expect("deleting twice is fine");
    assert_eq!(backend.find_secret("link").await.expect("find"), None);
}

/// Whether `store` may run `job` at `at`, with an interval of a second.
async fn claim(store: &dyn Store, job: &str, at: i64) -> bool {
    store.claim_job_run(job, at, 1_000).await.expect("claim")
}

async fn a_job_runs_once_per_interval_however_many_processes_ask(backend: Backend) {
    let other = backend.reopen().await;
    match backend.kind {
        // Opened by one process only: every ask runs the job.
        Kind::Sqlite => {
            assert!(claim(&*backend, "retention", 10_000).await);
            assert!(claim(&*backend, "retention", 10_001).await);
            assert!(claim(&*other, "retention", 10_002).await);
        }
        Kind::Postgres => {
            assert!(
                claim(&*backend, "retention", 10_000).await,
                "the first ask runs it"
            );
            assert!(
                !claim(&*other, "retention", 10_500).await,
                "another process within the interval does not"
            );
            assert!(
                !claim(&*backend, "retention", 10_999).await,
                "nor the same one"
            );
            assert!(
                claim(&*other, "checkpoints", 10_500).await,
                "jobs are claimed separately"
            );
            assert!(
                claim(&*other, "retention", 11_000).await,
                "once the interval has passed it runs again"
            );
            assert!(!claim(&*backend, "retention", 11_000).await);

            // Many processes asking at the same moment: one runs the job.
            let peers = backend.peers(8).await;
            let claims = race(peers.into_iter().map(|store| async move {
                store
                    .claim_job_run("thinning", 50_000, 1_000)
                    .await
                    .expect("claim")
            }))
            .await;
            assert_eq!(
                claims.iter().filter(|claimed| **claimed).count(),
                1,
                "{claims:?}"
            );
        }
    }
}

async fn a_shared_secret_is_created_once_and_stays_the_same(backend: Backend) {
    let first = backend
        .shared_secret("export_signing", vec![1, 2, 3])
        .await
        .expect("secret");
    assert_eq!(first, [1, 2, 3], "created from the first generated value");
    let again = backend
        .shared_secret("export_signing", vec![9, 9, 9])
        .await
        .expect("secret");
    assert_eq!(again, [1, 2, 3], "later values are ignored");
    let other = backend
        .shared_secret("session_signing", vec![4, 5])
        .await
        .expect("secret");
    assert_eq!(other, [4, 5], "each name has its own secret");

    let reopened = backend.reopen().await;
    assert_eq!(
        reopened
            .shared_secret("export_signing", vec![7])
            .await
            .expect("secret"),
        [1, 2, 3],
        "another process sees the same secret"
    );

    // Processes racing to create one secret all end up with the same one.
    let peers = backend.peers(8).await;
    let secrets = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                store
                    .shared_secret("raced", vec![index as u8; 4])
                    .await
                    .expect("secret")
            }),
    )
    .await;
    assert!(
        secrets.windows(2).all(|pair| pair[0] == pair[1]),
        "{secrets:?}"
    );
    assert_eq!(
        backend
            .shared_secret("raced", vec![0xff])
            .await
            .expect("secret"),
        secrets[0]
    );
}
