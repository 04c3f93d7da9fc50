//! First start, API keys, dashboard users and sessions.

use stele_core::model::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    initialize_stores_the_first_key_and_user_only_once,
    concurrent_initializers_store_exactly_one_key_and_user,
    api_keys_are_created_found_listed_and_revoked,
    api_key_scopes_and_organizations_are_kept,
    the_activity_log_organization_exists_but_is_never_listed,
    users_are_found_by_username_and_usernames_are_unique,
    sessions_expire_and_expired_ones_are_swept_by_the_next_sign_in,
    resetting_a_password_replaces_the_hash_and_ends_that_users_sessions,
);

async fn initialize_stores_the_first_key_and_user_only_once(backend: Backend) {
    assert!(backend.is_uninitialized().await.expect("read"));
    let first = backend
        .initialize(
            api_key("key_1", "bootstrap", 1, 10),
            user("user_1", "admin"),
        )
        .await
        .expect("initialize");
    assert!(first, "an empty database is initialized");
    assert!(!backend.is_uninitialized().await.expect("read"));

    let second = backend
        .initialize(api_key("key_2", "again", 2, 20), user("user_2", "other"))
        .await
        .expect("initialize again");
    assert!(!second, "an initialized database is left as it is");
    let keys = backend.list_api_keys().await.expect("list");
    let ids: Vec<&str> = keys.iter().map(|key| key.id.as_str()).collect();
    assert_eq!(ids, ["key_1"]);
    assert_eq!(backend.find_api_key([2; 32]).await.expect("find"), None);
    let admin = backend
        .find_user_by_username("admin")
        .await
        .expect("find")
        .expect("the first user is stored");
    assert_eq!(admin.id.as_str(), "user_1");
    assert_eq!(
        backend.find_user_by_username("other").await.expect("find"),
        None
    );
}

async fn concurrent_initializers_store_exactly_one_key_and_user(backend: Backend) {
    let peers = backend.peers(8).await;
    let outcomes = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                let key = api_key(&format!("key_{index}"), "bootstrap", index as u8, 10);
                let user = user(&format!("user_{index}"), &format!("admin{index}"));
                store.initialize(key, user).await.expect("initialize")
            }),
    )
    .await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, stored)| stored.then_some(index))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one initializer stored: {outcomes:?}"
    );
    let winner = winners[0];

    let keys = backend.list_api_keys().await.expect("list");
    let ids: Vec<String> = keys.iter().map(|key| key.id.to_string()).collect();
    assert_eq!(ids, [format!("key_{winner}")]);
    for index in 0..8 {
        let found = backend
            .find_user_by_username(&format!("admin{index}"))
            .await
            .expect("find");
        assert_eq!(found.is_some(), index == winner, "user admin{index}");
    }
}

async fn api_keys_are_created_found_listed_and_revoked(backend: Backend) {
    for (id, name, secret) in [
        ("key_b", "ci", 2),
        ("key_a", "deploy", 1),
        ("key_c", "ops", 3),
    ] {
        let created = backend
            .create_api_key(api_key(id, name, secret, 100 + i64::from(secret)))
            .await
            .expect("create");
        assert_eq!(
            created,
            ApiKey {
                id: id.into(),
                name: name.into(),
                created_at: 100 + i64::from(secret),
                revoked_at: None,
                grants: stele_core::access::KeyGrants::admin(),
            }
        );
    }
    let listed = backend.list_api_keys().await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|key| key.id.as_str()).collect();
    assert_eq!(ids, ["key_a", "key_b", "key_c"], "listed by id");

    let found = backend
        .find_api_key([2; 32])
        .await
        .expect("find")
        .expect("the key with that secret hash");
    assert_eq!((found.id.as_str(), found.name.as_str()), ("key_b", "ci"));
    assert_eq!(found.revoked_at, None);
    assert_eq!(backend.find_api_key([9; 32]).await.expect("find"), None);

    assert!(backend.revoke_api_key("key_b", 500).await.expect("revoke"));
    assert!(
        !backend.revoke_api_key("key_b", 600).await.expect("revoke"),
        "a revoked key is not revoked again"
    );
    assert!(!backend.revoke_api_key("key_z", 600).await.expect("revoke"));
    let revoked = backend
        .find_api_key([2; 32])
        .await
        .expect("find")
        .expect("a revoked key is still found");
    assert_eq!(revoked.revoked_at, Some(500), "the first revocation stands");
    let listed = backend.list_api_keys().await.expect("list");
    let revocations: Vec<Option<i64>> = listed.iter().map(|key| key.revoked_at).collect();
    assert_eq!(revocations, [None, Some(500), None]);
}

async fn users_are_found_by_username_and_usernames_are_unique(backend: Backend) {
    assert!(backend.is_uninitialized().await.expect("read"));
    backend
        .create_user(user("user_1", "alice"))
        .await
        .expect("create");
    assert!(
        !backend.is_uninitialized().await.expect("read"),
        "a database with a user (and no key) is not uninitialized"
    );
    let found = backend
        .find_user_by_username("alice")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(
        found,
        User {
            id: "user_1".into(),
            username: "alice".into(),
            password_hash: "$argon2id$v=19$alice".into(),
            created_at: 1_000,
        }
    );
    assert_eq!(
        backend.find_user_by_username("bob").await.expect("find"),
        None
    );
    let taken = backend.create_user(user("user_2", "alice")).await;
    assert!(matches!(taken, Err(StoreError::UsernameTaken)), "{taken:?}");
    let still = backend
        .find_user_by_username("alice")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(still.id.as_str(), "user_1", "the first user keeps the name");
}

async fn sessions_expire_and_expired_ones_are_swept_by_the_next_sign_in(backend: Backend) {
    backend
        .create_user(user("user_1", "admin"))
        .await
        .expect("user");
    let session = |token: u8, created_at, expires_at| NewSession {
        token_hash: [token; 32],
        user_id: "user_1".into(),
        created_at,
        expires_at,
    };
    backend
        .create_session(session(1, 0, 100))
        .await
        .expect("first");
    backend
        .create_session(session(2, 10, 200))
        .await
        .expect("second");
    backend
        .create_session(session(3, 20, 1_000))
        .await
        .expect("third");

    let found = backend
        .find_session([1; 32], 50)
        .await
        .expect("find")
        .expect("a live session");
    assert_eq!(
        found,
        Session {
            user_id: "user_1".into(),
            username: "admin".into(),
            created_at: 0,
            expires_at: 100,
        }
    );
    assert_eq!(
        backend.find_session([1; 32], 100).await.expect("find"),
        None,
        "a session is over at its expiry"
    );
    assert_eq!(backend.find_session([7; 32], 50).await.expect("find"), None);

    // Signing in at 200 sweeps every session expired by then (1, and 2 exactly at its
    // expiry): asked about an earlier time, they are gone.
    backend
        .create_session(session(4, 200, 900))
        .await
        .expect("fourth");
    assert_eq!(backend.find_session([1; 32], 50).await.expect("find"), None);
    assert_eq!(backend.find_session([2; 32], 50).await.expect("find"), None);
    assert!(
        backend
            .find_session([3; 32], 50)
            .await
            .expect("find")
            .is_some(),
        "an unexpired session survives the sweep"
    );
    assert!(backend
        .find_session([4; 32], 300)
        .await
        .expect("find")
        .is_some());

    backend.delete_session([3; 32]).await.expect("delete");
    assert_eq!(backend.find_session([3; 32], 50).await.expect("find"), None);
    backend
        .delete_session([8; 32])
        .await
        .expect("deleting an unknown session is not an error");
}

async fn resetting_a_password_replaces_the_hash_and_ends_that_users_sessions(backend: Backend) {
    for (id, name) in [("user_1", "alice"), ("user_2", "bob")] {
        backend.create_user(user(id, name)).await.expect("user");
    }
    for (token, user_id) in [(1, "user_1"), (2, "user_2")] {
        backend
            .create_session(NewSession {
                token_hash: [token; 32],
                user_id: user_id.into(),
                created_at: 0,
                expires_at: 1_000,
            })
            .await
            .expect("session");
    }
    assert!(backend
        .reset_user_password("alice", "$argon2id$v=19$new".into())
        .await
        .expect("reset"));
    let alice = backend
        .find_user_by_username("alice")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(alice.password_hash, "$argon2id$v=19$new");
    assert_eq!(
        backend.find_session([1; 32], 10).await.expect("find"),
        None,
        "alice's sessions end"
    );
    assert!(
        backend
            .find_session([2; 32], 10)
            .await
            .expect("find")
            .is_some(),
        "bob stays signed in"
    );
    assert!(!backend
        .reset_user_password("carol", "$argon2id$v=19$x".into())
        .await
        .expect("reset"));
}

async fn api_key_scopes_and_organizations_are_kept(backend: Backend) {
    let grants = stele_core::access::KeyGrants {
        scopes: vec![
            stele_core::access::Scope::EventsWrite,
            stele_core::access::Scope::EventsRead,
        ],
        organizations: vec!["org_a".into(), "org_b".into()],
    };
    let mut key = api_key("key_scoped", "ingest", 7, 100);
    key.grants = grants.clone();
    backend.create_api_key(key).await.expect("create");
    let found = backend
        .find_api_key([7; 32])
        .await
        .expect("find")
        .expect("the key");
    assert_eq!(found.grants, grants);
    let listed = backend.list_api_keys().await.expect("list");
    assert_eq!(listed[0].grants, grants);
}

async fn the_activity_log_organization_exists_but_is_never_listed(backend: Backend) {
    use stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID;
    let stored = backend
        .get_organization(ACTIVITY_LOG_ORGANIZATION_ID)
        .await
        .expect("read");
    assert!(stored.is_some(), "the migration creates the activity log");
    let listed = backend
        .list_organizations(
            OrganizationFilter::default(),
            stele_core::pagination::PageRequest {
                limit: 100,
                order: stele_core::pagination::SortOrder::Asc,
                cursor: None,
            },
        )
        .await
        .expect("list");
    assert!(listed
        .data
        .iter()
        .all(|organization| organization.id.as_str() != ACTIVITY_LOG_ORGANIZATION_ID));
    // Its log takes appends like any other (the server is the only writer).
    let appended = append(
        backend.store.as_ref(),
        ACTIVITY_LOG_ORGANIZATION_ID,
        "api_key.created",
    )
    .await;
    assert_eq!(appended.sequence, 1);
    verify(backend.store.as_ref(), Some(ACTIVITY_LOG_ORGANIZATION_ID)).await;
}
