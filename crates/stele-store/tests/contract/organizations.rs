//! Organizations: create, read, list, update, delete.

use serde_json::json;
use stele_core::model::*;
use stele_core::pagination::{Cursor, SortOrder};
use stele_core::timestamp::UnixMillis;
use stele_store::prelude::*;

use crate::support::*;

contract_tests!(
    an_organization_is_read_back_by_id_and_by_external_id,
    external_ids_are_unique,
    creating_an_existing_id_is_refused_and_changes_nothing,
    a_deleted_organizations_id_is_never_reused,
    lists_filter_by_name_case_insensitively_and_by_domain,
    lists_page_by_id_in_both_directions,
    update_replaces_the_organization_and_refuses_unknown_ids_and_taken_external_ids,
    delete_purges_events_and_keeps_what_verification_needs,
    update_stores_and_clears_the_stripe_customer_id,
    only_an_unused_organization_is_discarded_and_its_id_stays_free,
    organization_ids_are_sorted_bytewise,
);

fn ids(organizations: &[Organization]) -> Vec<String> {
    organizations.iter().map(|o| o.id.to_string()).collect()
}

async fn an_organization_is_read_back_by_id_and_by_external_id(backend: Backend) {
    let mut acme = organization("org_acme", "Acme");
    acme.external_id = Some("ext-acme".into());
    acme.metadata = json!({"tier": "gold", "region": "eu"})
        .as_object()
        .cloned()
        .expect("object");
    acme.domains = vec![
        domain("org_domain_1", "acme.com"),
        domain("org_domain_2", "acme.io"),
    ];
    acme.created_at = 111;
    acme.updated_at = 222;
    let created = done(
        backend
            .create_organization(acme.clone(), None)
            .await
            .expect("create"),
    );
    assert_eq!(created, acme);
    assert_eq!(
        backend.get_organization("org_acme").await.expect("get"),
        Some(acme.clone())
    );
    assert_eq!(
        backend
            .get_organization_by_external_id("ext-acme")
            .await
            .expect("get"),
        Some(acme)
    );
    assert_eq!(
        backend.get_organization("org_none").await.expect("get"),
        None
    );
    assert_eq!(
        backend
            .get_organization_by_external_id("ext-none")
            .await
            .expect("get"),
        None
    );
}

async fn external_ids_are_unique(backend: Backend) {
    let mut first = organization("org_1", "First");
    first.external_id = Some("shared".into());
    backend
        .create_organization(first, None)
        .await
        .expect("create");
    let mut second = organization("org_2", "Second");
    second.external_id = Some("shared".into());
    let taken = backend.create_organization(second, None).await;
    match taken {
        Err(StoreError::ExternalIdTaken { existing }) => assert_eq!(existing.as_str(), "org_1"),
        other => panic!("expected ExternalIdTaken, got {other:?}"),
    }
    assert_eq!(backend.get_organization("org_2").await.expect("get"), None);

    // Organizations without an external id do not collide.
    create_organization(&*backend, "org_3").await;
    create_organization(&*backend, "org_4").await;
    assert_eq!(
        customer_organization_ids(backend.store.as_ref())
            .await
            .len(),
        3,
        "org_1, org_3 and org_4"
    );
}

async fn lists_filter_by_name_case_insensitively_and_by_domain(backend: Backend) {
    for (id, name, domains) in [
        ("org_1", "Acme Corp", vec!["acme.com"]),
        ("org_2", "ACME labs", vec!["acme.io", "labs.dev"]),
        ("org_3", "Globex", vec!["globex.com"]),
        ("org_4", "100% Real_Name", vec![]),
        ("org_5", "Initech", vec![]),
        ("org_6", "Ärzte Zentrum ÉCOLE", vec![]),
    ] {
        let mut organization = organization(id, name);
        organization.domains = domains
            .iter()
            .enumerate()
            .map(|(index, name)| domain(&format!("org_domain_{id}_{index}"), name))
            .collect();
        backend
            .create_organization(organization, None)
            .await
            .expect("create");
    }
    let list_within = |name_contains: Option<&str>, domains: &[&str], only: &[&str]| {
        let filter = OrganizationFilter {
            name_contains: name_contains.map(Into::into),
            domains: domains.iter().map(|d| (*d).into()).collect(),
            ids: only.iter().map(|id| (*id).into()).collect(),
        };
        let store = std::sync::Arc::clone(&backend.store);
        async move {
            let page = store
                .list_organizations(filter, page(100, SortOrder::Asc, None))
                .await
                .expect("list");
            ids(&page.data)
        }
    };
    let list =
        |name_contains: Option<&str>, domains: &[&str]| list_within(name_contains, domains, &[]);
    assert_eq!(list(None, &[]).await.len(), 6);
    // An organization-restricted key's list: only its organizations, other filters still apply.
    assert_eq!(
        list_within(None, &[], &["org_3", "org_1"]).await,
        ["org_1", "org_3"]
    );
    assert_eq!(
        list_within(Some("acme"), &[], &["org_2", "org_3"]).await,
        ["org_2"]
    );
    assert_eq!(list(Some("acme"), &[]).await, ["org_1", "org_2"]);
    assert_eq!(list(Some("CORP"), &[]).await, ["org_1"]);
    // Case-insensitive beyond ASCII, alike on both backends.
    assert_eq!(list(Some("ärzte"), &[]).await, ["org_6"]);
    assert_eq!(list(Some("ÄRZTE ZENTRUM"), &[]).await, ["org_6"]);
    assert_eq!(list(Some("école"), &[]).await, ["org_6"]);
    // LIKE wildcards in the filter are plain characters.
    assert_eq!(list(Some("%"), &[]).await, ["org_4"]);
    assert_eq!(list(Some("_"), &[]).await, ["org_4"]);
    assert_eq!(list(Some("cm_"), &[]).await, Vec::<String>::new());
    assert_eq!(list(Some("a%b"), &[]).await, Vec::<String>::new());
    assert_eq!(list(None, &["labs.dev"]).await, ["org_2"]);
    assert_eq!(
        list(None, &["acme.com", "globex.com"]).await,
        ["org_1", "org_3"]
    );
    assert_eq!(list(None, &["nobody.org"]).await, Vec::<String>::new());
    assert_eq!(
        list(Some("acme"), &["acme.io", "globex.com"]).await,
        ["org_2"],
        "name and domain filters combine"
    );
}

async fn lists_page_by_id_in_both_directions(backend: Backend) {
    for index in 1..=5 {
        create_organization(&*backend, &format!("org_{index}")).await;
    }
    let list = |request| async {
        backend
            .list_organizations(OrganizationFilter::default(), request)
            .await
            .expect("list")
    };
    let first = list(page(2, SortOrder::Desc, None)).await;
    assert_eq!(ids(&first.data), ["org_5", "org_4"]);
    assert_eq!(
        (first.before, first.after.as_deref()),
        (None, Some("org_4"))
    );
    let second = list(page(
        2,
        SortOrder::Desc,
        Some(Cursor::After("org_4".into())),
    ))
    .await;
    assert_eq!(ids(&second.data), ["org_3", "org_2"]);
    assert_eq!(
        (second.before.as_deref(), second.after.as_deref()),
        (Some("org_3"), Some("org_2"))
    );
    let last = list(page(
        2,
        SortOrder::Desc,
        Some(Cursor::After("org_2".into())),
    ))
    .await;
    assert_eq!(
        (ids(&last.data), last.after),
        (vec!["org_1".to_owned()], None)
    );
    let back = list(page(
        2,
        SortOrder::Desc,
        Some(Cursor::Before("org_3".into())),
    ))
    .await;
    assert_eq!(
        (ids(&back.data), back.before),
        (vec!["org_5".to_owned(), "org_4".to_owned()], None)
    );

    let ascending = list(page(3, SortOrder::Asc, None)).await;
    assert_eq!(ids(&ascending.data), ["org_1", "org_2", "org_3"]);
    let rest = list(page(3, SortOrder::Asc, Some(Cursor::After("org_3".into())))).await;
    assert_eq!(
        (ids(&rest.data), rest.after),
        (vec!["org_4".to_owned(), "org_5".to_owned()], None)
    );
    let before = list(page(
        3,
        SortOrder::Asc,
        Some(Cursor::Before("org_4".into())),
    ))
    .await;
    assert_eq!(ids(&before.data), ["org_1", "org_2", "org_3"]);
    assert_eq!(before.before, None, "nothing precedes org_1");
}

async fn update_replaces_the_organization_and_refuses_unknown_ids_and_taken_external_ids(
    backend: Backend,
) {
    let mut other = organization("org_other", "Other");
    other.external_id = Some("ext-other".into());
    backend
        .create_organization(other, None)
        .await
        .expect("create");
    let mut acme = organization("org_acme", "Acme");
    acme.external_id = Some("ext-acme".into());
    backend
        .create_organization(acme.clone(), None)
        .await
        .expect("create");

    let mut renamed = acme.clone();
    renamed.name = "Acme Renamed".into();
    renamed.external_id = Some("ext-new".into());
    renamed.metadata = json!({"k": "v"}).as_object().cloned().expect("object");
    renamed.domains = vec![domain("org_domain_9", "renamed.example")];
    renamed.updated_at = 9_999;
    let updated = backend
        .update_organization(renamed.clone())
        .await
        .expect("update");
    assert_eq!(updated, renamed);
    assert_eq!(
        backend.get_organization("org_acme").await.expect("get"),
        Some(renamed.clone())
    );
    assert_eq!(
        backend
            .get_organization_by_external_id("ext-acme")
            .await
            .expect("get"),
        None,
        "the old external id is released"
    );
    assert_eq!(
        backend
            .get_organization_by_external_id("ext-new")
            .await
            .expect("get")
            .map(|o| o.id.to_string()),
        Some("org_acme".to_owned())
    );

    let missing = backend
        .update_organization(organization("org_missing", "Missing"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::OrganizationNotFound)),
        "{missing:?}"
    );
    assert_eq!(
        backend.get_organization("org_missing").await.expect("get"),
        None
    );

    let mut stealing = renamed.clone();
    stealing.external_id = Some("ext-other".into());
    match backend.update_organization(stealing).await {
        Err(StoreError::ExternalIdTaken { existing }) => {
            assert_eq!(existing.as_str(), "org_other")
        }
        other => panic!("expected ExternalIdTaken, got {other:?}"),
    }
    assert_eq!(
        backend.get_organization("org_acme").await.expect("get"),
        Some(renamed),
        "a refused update changes nothing"
    );
}

async fn delete_purges_events_and_keeps_what_verification_needs(backend: Backend) {
    create_organization(&*backend, "org_empty").await;
    create_organization(&*backend, "org_busy").await;
    create_organization(&*backend, "org_other").await;
    for _ in 0..3 {
        append(&*backend, "org_busy", "user.signed_in").await;
    }
    append(&*backend, "org_other", "user.signed_in").await;
    backend
        .save_checkpoint(checkpoint("org_busy", 2, now()))
        .await
        .expect("checkpoint");

    // As the service deletes: most events in retention's purge steps beforehand (here
    // two of the three), then the deletion, which purges the rest and counts them all.
    let step = backend
        .purge_events("org_busy", UnixMillis::MAX, 2)
        .await
        .expect("a purge step before the deletion");
    assert_eq!(step.purged, 2);
    let deletion = backend
        .delete_organization("org_busy", step.purged)
        .await
        .expect("delete an organization with events");
    assert_eq!(
        deletion,
        OrganizationDeletion {
            purged: 3,
            tree_size: 3
        }
    );
    assert_eq!(
        backend.get_organization("org_busy").await.expect("get"),
        None
    );
    assert!(search_all(&*backend, query("org_busy")).await.is_empty());
    assert_eq!(search_all(&*backend, query("org_other")).await.len(), 1);
    // The tree keeps its size and every leaf hash, and the checkpoint stays.
    assert_eq!(backend.tree_size("org_busy").await.expect("size"), 3);
    assert_eq!(
        backend
            .leaf_hashes("org_busy", 0, 3)
            .await
            .expect("kept leaf hashes")
            .len(),
        3
    );
    assert!(backend
        .latest_checkpoint("org_busy")
        .await
        .expect("checkpoint")
        .is_some());
    let report = backend
        .verify_log(None, Box::new(|_| {}))
        .await
        .expect("verify");
    assert!(report.first_break.is_none(), "{report:?}");
    assert_eq!(report.events, 1);
    assert_eq!(
        backend
            .deleted_organization_ids()
            .await
            .expect("deleted ids"),
        ["org_busy"]
    );
    let appended = backend
        .append_event(
            new_event("org_busy", event_json("user.signed_in", json!({}))),
            None,
        )
        .await;
    assert!(
        matches!(appended, Err(StoreError::OrganizationNotFound)),
        "an append after the deletion: {appended:?}"
    );

    let empty = backend
        .delete_organization("org_empty", 0)
        .await
        .expect("delete");
    assert_eq!(empty, OrganizationDeletion::default());
    let remaining: Vec<String> = customer_organization_ids(backend.store.as_ref()).await;
    assert_eq!(remaining, ["org_other"]);
    assert_eq!(
        backend
            .deleted_organization_ids()
            .await
            .expect("deleted ids"),
        ["org_busy"],
        "an organization that never had events leaves nothing to verify"
    );
    let again = backend.delete_organization("org_empty", 0).await;
    assert!(
        matches!(again, Err(StoreError::OrganizationNotFound)),
        "{again:?}"
    );
}

async fn update_stores_and_clears_the_stripe_customer_id(backend: Backend) {
    let mut acme = organization("org_acme", "Acme");
    acme.stripe_customer_id = Some("cus_123".into());
    done(
        backend
            .create_organization(acme.clone(), None)
            .await
            .expect("create"),
    );
    assert_eq!(
        backend
            .get_organization("org_acme")
            .await
            .expect("get")
            .and_then(|organization| organization.stripe_customer_id),
        Some("cus_123".to_owned())
    );
    acme.stripe_customer_id = None;
    backend.update_organization(acme).await.expect("update");
    assert_eq!(
        backend
            .get_organization("org_acme")
            .await
            .expect("get")
            .and_then(|organization| organization.stripe_customer_id),
        None
    );
}

async fn organization_ids_are_sorted_bytewise(backend: Backend) {
    for id in ["org_b", "org_a", "org_C", "org_10", "org_9"] {
        create_organization(&*backend, id).await;
    }
    let listed: Vec<String> = backend
        .organization_ids()
        .await
        .expect("ids")
        .iter()
        .map(|id| id.to_string())
        .collect();
    // The activity log is one of the logs (so `stele verify` walks it too).
    assert_eq!(
        listed,
        [
            "org_00000000000000000000000000",
            "org_10",
            "org_9",
            "org_C",
            "org_a",
            "org_b"
        ]
    );
    let page = backend
        .list_organizations(
            OrganizationFilter::default(),
            page(10, SortOrder::Asc, None),
        )
        .await
        .expect("list");
    // The same order, without the activity log (never listed as an organization).
    assert_eq!(ids(&page.data), listed[1..], "lists use the same order");
}

async fn creating_an_existing_id_is_refused_and_changes_nothing(backend: Backend) {
    let acme = create_organization(&*backend, "org_acme").await;
    let mut again = organization("org_acme", "Another name");
    again.external_id = Some("ext-other".into());
    let key = idempotency_record("organizations", "key-1", "{}", now());
    match backend.create_organization(again, Some(key)).await {
        Err(StoreError::OrganizationIdTaken) => {}
        other => panic!("expected OrganizationIdTaken, got {other:?}"),
    }
    assert_eq!(
        backend.get_organization("org_acme").await.expect("get"),
        Some(acme)
    );
    assert_eq!(
        backend
            .get_organization_by_external_id("ext-other")
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        backend
            .find_idempotency_record("organizations", "key-1", now())
            .await
            .expect("find"),
        None,
        "a refused create keeps no idempotency record"
    );
}

/// A deleted organization's id is never given to another: its log would otherwise start
/// under the deleted tenant's signed history (or, for one without events, under its id in
/// the operators' records).
async fn a_deleted_organizations_id_is_never_reused(backend: Backend) {
    create_organization(&*backend, "org_gone").await;
    append(&*backend, "org_gone", "user.signed_in").await;
    backend
        .save_checkpoint(checkpoint("org_gone", 1, now()))
        .await
        .expect("checkpoint");
    create_organization(&*backend, "org_never_used").await;
    for id in ["org_gone", "org_never_used"] {
        backend.delete_organization(id, 0).await.expect("delete");
        match backend
            .create_organization(organization(id, "Newcomer"), None)
            .await
        {
            Err(StoreError::OrganizationIdTaken) => {}
            other => panic!("{id}: expected OrganizationIdTaken, got {other:?}"),
        }
        assert_eq!(backend.get_organization(id).await.expect("get"), None);
    }
    // An id that never had an organization is free as before.
    create_organization(&*backend, "org_fresh").await;
}

async fn only_an_unused_organization_is_discarded_and_its_id_stays_free(backend: Backend) {
    create_organization(&*backend, "org_unused").await;
    create_organization(&*backend, "org_used").await;
    append(&*backend, "org_used", "user.signed_in").await;
    assert!(backend
        .discard_unused_organization("org_unused")
        .await
        .expect("discard"));
    assert_eq!(
        backend.get_organization("org_unused").await.expect("get"),
        None
    );
    assert!(
        !backend
            .discard_unused_organization("org_used")
            .await
            .expect("discard"),
        "an organization with an event stays"
    );
    assert!(backend
        .get_organization("org_used")
        .await
        .expect("get")
        .is_some());
    assert!(!backend
        .discard_unused_organization("org_never")
        .await
        .expect("discard"));
    // Nothing was ever recorded under the discarded id: it can be created again.
    create_organization(&*backend, "org_unused").await;
}
