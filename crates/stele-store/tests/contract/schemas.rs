//! Actions and their schema versions.

use serde_json::json;
use stele_core::model::*;
use stele_core::pagination::{Cursor, SortOrder};
use stele_core::schema::SchemaDefinition;

use crate::support::*;

contract_tests!(
    versions_increment_and_a_definition_equal_to_the_latest_is_not_a_new_version,
    concurrent_identical_submissions_create_one_version,
    versions_list_in_pages_and_an_unknown_action_has_none,
    actions_list_with_their_latest_version_in_pages,
);

fn team() -> SchemaDefinition {
    definition(json!({"targets": [{"type": "team"}]}))
}

fn team_and_user() -> SchemaDefinition {
    definition(json!({
        "targets": [{"type": "team"}, {"type": "user"}],
        "metadata": {"type": "object", "properties": {"plan": {"type": "string"}}}
    }))
}

async fn create(
    backend: &Backend,
    action: &str,
    definition: SchemaDefinition,
    by: &str,
    at: i64,
) -> (SchemaVersion, bool) {
    done(
        backend
            .create_schema_version(action, definition, by, at, None)
            .await
            .expect("create schema version"),
    )
}

async fn versions_increment_and_a_definition_equal_to_the_latest_is_not_a_new_version(
    backend: Backend,
) {
    let (first, new) = create(&backend, "user.signed_in", team(), "key ci", 100).await;
    assert!(new);
    assert_eq!(
        first,
        SchemaVersion {
            action: "user.signed_in".into(),
            version: 1,
            definition: team(),
            created_by: "key ci".into(),
            created_at: 100,
        }
    );
    let (second, new) = create(&backend, "user.signed_in", team_and_user(), "admin", 200).await;
    assert_eq!((second.version, new), (2, true));

    // The same definition with its keys in another order is the same version: the latest
    // is returned as stored, not a new one.
    let reordered = definition(json!({
        "metadata": {"properties": {"plan": {"type": "string"}}, "type": "object"},
        "targets": [{"type": "team"}, {"type": "user"}]
    }));
    let (again, new) = create(&backend, "user.signed_in", reordered, "someone", 300).await;
    assert!(!new);
    assert_eq!(
        again, second,
        "the existing version, with who created it and when"
    );

    // Equal to an older version but not the latest: a new version.
    let (third, new) = create(&backend, "user.signed_in", team(), "admin", 400).await;
    assert_eq!((third.version, new), (3, true));

    assert_eq!(
        backend
            .schema_version_numbers("user.signed_in")
            .await
            .expect("numbers"),
        [1, 2, 3]
    );
    assert_eq!(
        backend
            .get_schema_version("user.signed_in", 2)
            .await
            .expect("get"),
        Some(second)
    );
    assert_eq!(
        backend
            .get_schema_version("user.signed_in", 4)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        backend
            .get_schema_version("user.signed_out", 1)
            .await
            .expect("get"),
        None
    );
    assert!(backend
        .schema_version_numbers("user.signed_out")
        .await
        .expect("numbers")
        .is_empty());

    // Another action numbers its versions on its own.
    let (other, _) = create(&backend, "user.signed_out", team_and_user(), "admin", 500).await;
    assert_eq!(other.version, 1);
}

async fn concurrent_identical_submissions_create_one_version(backend: Backend) {
    let peers = backend.peers(8).await;
    let outcomes = race(
        peers
            .into_iter()
            .enumerate()
            .map(|(index, store)| async move {
                store
                    .create_schema_version(
                        "user.signed_in",
                        team(),
                        &format!("key {index}"),
                        100,
                        None,
                    )
                    .await
                    .expect("create")
            }),
    )
    .await;
    let mut created = Vec::new();
    for outcome in outcomes {
        let (version, new) = done(outcome);
        assert_eq!(version.version, 1);
        if new {
            created.push(version.created_by.clone());
        }
    }
    assert_eq!(
        created.len(),
        1,
        "one submission created version 1: {created:?}"
    );
    assert_eq!(
        backend
            .schema_version_numbers("user.signed_in")
            .await
            .expect("numbers"),
        [1]
    );
    let stored = backend
        .get_schema_version("user.signed_in", 1)
        .await
        .expect("get")
        .expect("version 1");
    assert_eq!(
        stored.created_by, created[0],
        "the creator's version is stored"
    );
}

async fn versions_list_in_pages_and_an_unknown_action_has_none(backend: Backend) {
    for version in 1..=5 {
        let definition = definition(json!({"targets": [{"type": format!("type{version}")}]}));
        create(&backend, "doc.edited", definition, "admin", version * 10).await;
    }
    let list = |request| async {
        backend
            .list_schema_versions("doc.edited", request)
            .await
            .expect("list")
            .expect("the action exists")
    };
    let numbers = |page: &stele_core::pagination::Page<SchemaVersion>| -> Vec<i64> {
        page.data.iter().map(|version| version.version).collect()
    };
    let newest = list(page(2, SortOrder::Desc, None)).await;
    assert_eq!(numbers(&newest), [5, 4]);
    assert_eq!(newest.after.as_deref(), Some("4"));
    assert_eq!(newest.data[0].created_at, 50);
    assert_eq!(
        newest.data[0].definition,
        definition(json!({"targets": [{"type": "type5"}]}))
    );
    let next = list(page(2, SortOrder::Desc, Some(Cursor::After(4)))).await;
    assert_eq!(numbers(&next), [3, 2]);
    let last = list(page(2, SortOrder::Desc, Some(Cursor::After(2)))).await;
    assert_eq!((numbers(&last), last.after), (vec![1], None));
    let back = list(page(2, SortOrder::Desc, Some(Cursor::Before(3)))).await;
    assert_eq!((numbers(&back), back.before), (vec![5, 4], None));
    let oldest = list(page(3, SortOrder::Asc, None)).await;
    assert_eq!(numbers(&oldest), [1, 2, 3]);
    let rest = list(page(3, SortOrder::Asc, Some(Cursor::After(3)))).await;
    assert_eq!((numbers(&rest), rest.after), (vec![4, 5], None));

    assert_eq!(
        backend
            .list_schema_versions("doc.deleted", page(10, SortOrder::Desc, None))
            .await
            .expect("list"),
        None
    );
}

async fn actions_list_with_their_latest_version_in_pages(backend: Backend) {
    create(&backend, "a.first", team(), "admin", 100).await;
    create(&backend, "b.second", team(), "admin", 200).await;
    create(&backend, "c.third", team(), "admin", 300).await;
    // A new version of the first action moves its latest and its updated_at, not its place.
    create(&backend, "a.first", team_and_user(), "ops", 400).await;
    // A resubmission of the latest changes nothing.
    create(&backend, "b.second", team(), "ops", 500).await;

    let all = backend
        .list_actions(page(10, SortOrder::Asc, None))
        .await
        .expect("list");
    let names: Vec<&str> = all.data.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["a.first", "b.second", "c.third"],
        "in creation order"
    );
    let positions: Vec<i64> = all.data.iter().map(|a| a.position).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions ascend: {positions:?}"
    );
    let first = &all.data[0];
    assert_eq!(
        (first.latest.version, first.latest.created_by.as_str()),
        (2, "ops")
    );
    assert_eq!(first.latest.definition, team_and_user());
    assert_eq!((first.created_at, first.updated_at), (100, 400));
    let second = &all.data[1];
    assert_eq!(second.latest.version, 1);
    assert_eq!((second.created_at, second.updated_at), (200, 200));

    let newest = backend
        .list_actions(page(2, SortOrder::Desc, None))
        .await
        .expect("list");
    let names: Vec<&str> = newest.data.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["c.third", "b.second"]);
    assert_eq!(newest.after, Some(positions[1].to_string()));
    let rest = backend
        .list_actions(page(2, SortOrder::Desc, Some(Cursor::After(positions[1]))))
        .await
        .expect("list");
    let names: Vec<&str> = rest.data.iter().map(|a| a.name.as_str()).collect();
    assert_eq!((names, rest.after), (vec!["a.first"], None));
    let back = backend
        .list_actions(page(2, SortOrder::Desc, Some(Cursor::Before(positions[0]))))
        .await
        .expect("list");
    let names: Vec<&str> = back.data.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["c.third", "b.second"]);
}
