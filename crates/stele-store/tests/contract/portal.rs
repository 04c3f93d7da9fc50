//! Admin Portal links and sessions: a link works once and only until it expires, a
//! session is pinned to the link's organization, and revocation ends one admin's access
//! in one organization and nothing else.

use stele_core::model::*;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    a_link_redeems_once_into_a_session_of_its_organization,
    an_expired_link_is_not_redeemed_and_an_expired_session_is_not_found,
    racing_redemptions_of_one_link_start_one_session,
    revoking_ends_one_admins_links_and_sessions_in_one_organization_only,
    an_ended_session_is_not_found,
    a_link_for_an_unknown_organization_is_refused,
    deleting_an_organization_ends_its_links_and_sessions,
);

const MINUTE: i64 = 60_000;

fn link(secret: u8, organization_id: &str, user: Option<&str>, at: i64) -> NewPortalLink {
    NewPortalLink {
        token_hash: [secret; 32],
        organization_id: organization_id.into(),
        intent: PortalIntent::AuditLogs,
        external_user_id: user.map(str::to_owned),
        return_url: Some("https://app.example.com/settings".into()),
        created_at: at,
        expires_at: at + 5 * MINUTE,
    }
}

fn session(secret: u8, at: i64) -> NewPortalSession {
    NewPortalSession {
        token_hash: [secret; 32],
        created_at: at,
        expires_at: at + 60 * MINUTE,
    }
}

async fn a_link_redeems_once_into_a_session_of_its_organization(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    let mut new_link = link(1, "org_a", Some("admin_1"), at);
    new_link.intent = PortalIntent::LogStreams;
    backend
        .create_portal_link(new_link)
        .await
        .expect("create link");
    let started = backend
        .redeem_portal_link([1; 32], session(101, at + 1))
        .await
        .expect("redeem")
        .expect("a live link is redeemed");
    assert_eq!(started.organization_id, "org_a");
    assert_eq!(started.intent, PortalIntent::LogStreams);
    assert_eq!(started.external_user_id.as_deref(), Some("admin_1"));
    assert_eq!(
        started.return_url.as_deref(),
        Some("https://app.example.com/settings")
    );
    assert_eq!(started.created_at, at + 1);
    assert_eq!(started.expires_at, at + 1 + 60 * MINUTE);
    let found = backend
        .find_portal_session([101; 32], at + 2)
        .await
        .expect("find");
    assert_eq!(found, Some(started));
    assert_eq!(
        backend
            .redeem_portal_link([1; 32], session(102, at + 3))
            .await
            .expect("redeem again"),
        None,
        "a link works once"
    );
    assert_eq!(
        backend
            .find_portal_session([102; 32], at + 4)
            .await
            .expect("find"),
        None,
        "a refused redemption starts no session"
    );
    assert_eq!(
        backend
            .find_portal_session([1; 32], at + 4)
            .await
            .expect("find"),
        None,
        "the link's secret is not a session token"
    );
}

async fn an_expired_link_is_not_redeemed_and_an_expired_session_is_not_found(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    backend
        .create_portal_link(link(1, "org_a", None, at))
        .await
        .expect("create link");
    assert_eq!(
        backend
            .redeem_portal_link([1; 32], session(101, at + 5 * MINUTE))
            .await
            .expect("redeem"),
        None,
        "a link is dead from its expiry on"
    );
    backend
        .create_portal_link(link(2, "org_a", None, at))
        .await
        .expect("create link");
    let started = backend
        .redeem_portal_link([2; 32], session(102, at + 5 * MINUTE - 1))
        .await
        .expect("redeem")
        .expect("redeemed in its last millisecond");
    assert!(backend
        .find_portal_session([102; 32], started.expires_at - 1)
        .await
        .expect("find")
        .is_some());
    assert_eq!(
        backend
            .find_portal_session([102; 32], started.expires_at)
            .await
            .expect("find"),
        None
    );
}

async fn racing_redemptions_of_one_link_start_one_session(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    backend
        .create_portal_link(link(1, "org_a", None, at))
        .await
        .expect("create link");
    let peers = backend.peers(8).await;
    let attempts = peers.into_iter().enumerate().map(|(index, store)| {
        tokio::spawn(async move {
            store
                .redeem_portal_link([1; 32], session(100 + index as u8, at + 1))
                .await
                .expect("redeem")
        })
    });
    let mut started = 0;
    for attempt in attempts {
        if attempt.await.expect("task").is_some() {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

async fn revoking_ends_one_admins_links_and_sessions_in_one_organization_only(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    create_organization(&*backend, "org_b").await;
    let at = now();
    for (secret, organization, user) in [
        (1, "org_a", Some("admin_1")),
        (2, "org_a", Some("admin_1")),
        (3, "org_a", Some("admin_2")),
        (4, "org_b", Some("admin_1")),
        (5, "org_a", None),
    ] {
        backend
            .create_portal_link(link(secret, organization, user, at))
            .await
            .expect("create link");
    }
    for secret in [1, 3, 4, 5] {
        backend
            .redeem_portal_link([secret; 32], session(100 + secret, at + 1))
            .await
            .expect("redeem")
            .expect("redeemed");
    }
    let revoked = backend
        .revoke_portal_access("org_a", "admin_1")
        .await
        .expect("revoke");
    assert_eq!(
        revoked,
        PortalRevocation {
            links: 1,
            sessions: 1
        }
    );
    assert_eq!(
        backend
            .find_portal_session([101; 32], at + 2)
            .await
            .expect("find"),
        None,
        "the revoked admin's session ended"
    );
    assert_eq!(
        backend
            .redeem_portal_link([2; 32], session(102, at + 2))
            .await
            .expect("redeem"),
        None,
        "the revoked admin's unopened link is dead"
    );
    for secret in [103, 104, 105] {
        assert!(
            backend
                .find_portal_session([secret; 32], at + 2)
                .await
                .expect("find")
                .is_some(),
            "session {secret} of another admin or organization lives on"
        );
    }
    assert_eq!(
        backend
            .revoke_portal_access("org_a", "admin_1")
            .await
            .expect("revoke again"),
        PortalRevocation::default()
    );
}

async fn an_ended_session_is_not_found(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    backend
        .create_portal_link(link(1, "org_a", None, at))
        .await
        .expect("create link");
    backend
        .redeem_portal_link([1; 32], session(101, at))
        .await
        .expect("redeem")
        .expect("redeemed");
    backend.end_portal_session([101; 32]).await.expect("end");
    assert_eq!(
        backend
            .find_portal_session([101; 32], at + 1)
            .await
            .expect("find"),
        None
    );
}

async fn a_link_for_an_unknown_organization_is_refused(backend: Backend) {
    let refused = backend
        .create_portal_link(link(1, "org_none", None, now()))
        .await;
    assert!(
        matches!(refused, Err(StoreError::OrganizationNotFound)),
        "{refused:?}"
    );
}

async fn deleting_an_organization_ends_its_links_and_sessions(backend: Backend) {
    create_organization(&*backend, "org_a").await;
    let at = now();
    for secret in [1, 2] {
        backend
            .create_portal_link(link(secret, "org_a", None, at))
            .await
            .expect("create link");
    }
    backend
        .redeem_portal_link([1; 32], session(101, at))
        .await
        .expect("redeem")
        .expect("redeemed");
    backend
        .delete_organization("org_a", 0)
        .await
        .expect("delete organization");
    assert_eq!(
        backend
            .find_portal_session([101; 32], at + 1)
            .await
            .expect("find"),
        None
    );
    // A deleted organization's id is never reused, so an unopened link of it can only
    // be refused.
    assert_eq!(
        backend
            .redeem_portal_link([2; 32], session(102, at + 1))
            .await
            .expect("redeem"),
        None,
        "a link of the deleted organization opens nothing"
    );
}
