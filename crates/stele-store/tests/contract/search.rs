//! Searching one organization's events: every filter, and paging in both directions.

use serde_json::json;
use stele_core::model::*;
use stele_core::pagination::{Cursor, SortOrder};

use crate::support::*;

contract_tests!(
    each_filter_selects_its_events_and_filters_combine,
    the_occurred_range_is_inclusive_and_up_to_sequence_caps_the_search,
    searches_page_by_sequence_in_both_directions,
    searches_page_by_occurred_at_in_both_directions,
);

/// Six events of `org_a` (sequences 1..=6) with distinct actors, targets and times, and
/// one of `org_b` that no search of `org_a` may return.
async fn seed(backend: &Backend) {
    create_organization(&**backend, "org_a").await;
    create_organization(&**backend, "org_b").await;
    let events = [
        // 1
        json!({"action": "doc.created", "occurred_at": "2024-01-01T00:00:00.000Z",
               "actor": {"id": "user_1", "type": "user", "name": "Alice"},
               "targets": [{"id": "doc_1", "type": "document"}]}),
        // 2
        json!({"action": "doc.edited", "occurred_at": "2024-01-02T00:00:00.000Z",
               "actor": {"id": "user_2", "type": "user", "name": "Bob"},
               "targets": [{"id": "doc_1", "type": "document"}, {"id": "team_1", "type": "team"}]}),
        // 3
        json!({"action": "doc.edited", "occurred_at": "2024-01-03T00:00:00.000Z",
               "actor": {"id": "user_1", "type": "user", "name": "Alice"},
               "targets": [{"id": "doc_2", "type": "document"}]}),
        // 4
        json!({"action": "team.joined", "occurred_at": "2024-01-04T00:00:00.000Z",
               "actor": {"id": "bot_1", "type": "bot"},
               "targets": [{"id": "team_1", "type": "team"}]}),
        // 5
        json!({"action": "doc.deleted", "occurred_at": "2024-01-05T00:00:00.000Z",
               "actor": {"id": "user_2", "type": "user", "name": "Bob"},
               "targets": []}),
        // 6
        json!({"action": "doc.edited", "occurred_at": "2024-01-06T00:00:00.000Z",
               "actor": {"id": "user_3", "type": "user", "name": "Carol"},
               "targets": [{"id": "doc_1", "type": "document"}]}),
    ];
    for event in events {
        let action = event["action"].as_str().expect("action").to_owned();
        append_event(&**backend, new_event("org_a", event_json(&action, event))).await;
    }
    append_event(
        &**backend,
        new_event(
            "org_b",
            event_json(
                "doc.edited",
                json!({"actor": {"id": "user_1", "type": "user", "name": "Alice"},
                       "targets": [{"id": "doc_1", "type": "document"}]}),
            ),
        ),
    )
    .await;
}

fn millis(rfc3339: &str) -> i64 {
    stele_core::timestamp::parse_rfc3339(rfc3339)
        .map(stele_core::timestamp::to_unix_millis)
        .expect("a timestamp")
}

async fn matching(backend: &Backend, query: EventQuery) -> Vec<i64> {
    let found = search_all(&**backend, query).await;
    assert!(
        found
            .iter()
            .all(|event| event.organization_id.as_str() == "org_a"),
        "only org_a's events"
    );
    sequences(&found)
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

async fn each_filter_selects_its_events_and_filters_combine(backend: Backend) {
    seed(&backend).await;
    let q = || query("org_a");
    assert_eq!(matching(&backend, q()).await, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actions: strings(&["doc.edited"]),
                ..q()
            }
        )
        .await,
        [2, 3, 6]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actions: strings(&["doc.created", "doc.deleted"]),
                ..q()
            }
        )
        .await,
        [1, 5]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actor_ids: strings(&["user_1"]),
                ..q()
            }
        )
        .await,
        [1, 3]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actor_ids: strings(&["user_1", "bot_1"]),
                ..q()
            }
        )
        .await,
        [1, 3, 4]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actor_names: strings(&["Bob"]),
                ..q()
            }
        )
        .await,
        [2, 5]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actor_names: strings(&["Carol", "Alice"]),
                ..q()
            }
        )
        .await,
        [1, 3, 6]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                target_types: strings(&["team"]),
                ..q()
            }
        )
        .await,
        [2, 4]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                target_types: strings(&["document", "team"]),
                ..q()
            }
        )
        .await,
        [1, 2, 3, 4, 6],
        "an event matching several types appears once"
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                target_ids: strings(&["doc_1"]),
                ..q()
            }
        )
        .await,
        [1, 2, 6]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                target_ids: strings(&["doc_2", "team_1"]),
                ..q()
            }
        )
        .await,
        [2, 3, 4]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                target_ids: strings(&["doc_9"]),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new()
    );
    // Fields combine with AND.
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actions: strings(&["doc.edited"]),
                actor_ids: strings(&["user_1", "user_3"]),
                ..q()
            }
        )
        .await,
        [3, 6]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actions: strings(&["doc.edited"]),
                target_ids: strings(&["doc_1"]),
                target_types: strings(&["team"]),
                ..q()
            }
        )
        .await,
        [2]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                actor_names: strings(&["Bob"]),
                occurred_from: Some(millis("2024-01-03T00:00:00Z")),
                ..q()
            }
        )
        .await,
        [5]
    );
    assert_eq!(
        sequences(&search_all(&*backend, query("org_b")).await),
        [1],
        "org_b sees only its own event"
    );
}

async fn the_occurred_range_is_inclusive_and_up_to_sequence_caps_the_search(backend: Backend) {
    seed(&backend).await;
    let q = || query("org_a");
    let (jan2, jan4) = (
        millis("2024-01-02T00:00:00Z"),
        millis("2024-01-04T00:00:00Z"),
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                occurred_from: Some(jan2),
                occurred_to: Some(jan4),
                ..q()
            }
        )
        .await,
        [2, 3, 4],
        "both bounds are inclusive"
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                occurred_from: Some(jan2 + 1),
                occurred_to: Some(jan4 - 1),
                ..q()
            }
        )
        .await,
        [3]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                occurred_from: Some(jan4),
                ..q()
            }
        )
        .await,
        [4, 5, 6]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                occurred_to: Some(jan2),
                ..q()
            }
        )
        .await,
        [1, 2]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                up_to_sequence: Some(4),
                ..q()
            }
        )
        .await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                up_to_sequence: Some(4),
                actions: strings(&["doc.edited"]),
                ..q()
            }
        )
        .await,
        [2, 3]
    );
    assert_eq!(
        matching(
            &backend,
            EventQuery {
                up_to_sequence: Some(0),
                ..q()
            }
        )
        .await,
        Vec::<i64>::new()
    );
}

async fn searches_page_by_sequence_in_both_directions(backend: Backend) {
    seed(&backend).await;
    let search = |request, query: EventQuery| async {
        backend.search_events(query, request).await.expect("search")
    };
    let all = || query("org_a");

    let newest = search(page(4, SortOrder::Desc, None), all()).await;
    assert_eq!(page_sequences(&newest), [6, 5, 4, 3]);
    assert_eq!(
        (newest.before.as_deref(), newest.after.as_deref()),
        (None, Some("3"))
    );
    let older = search(page(4, SortOrder::Desc, Some(Cursor::After(3))), all()).await;
    assert_eq!(page_sequences(&older), [2, 1]);
    assert_eq!(
        (older.before.as_deref(), older.after.as_deref()),
        (Some("2"), None)
    );
    let back = search(page(4, SortOrder::Desc, Some(Cursor::Before(2))), all()).await;
    assert_eq!(page_sequences(&back), [6, 5, 4, 3]);
    assert_eq!(
        (back.before.as_deref(), back.after.as_deref()),
        (None, Some("3"))
    );
    let middle = search(page(2, SortOrder::Desc, Some(Cursor::Before(2))), all()).await;
    assert_eq!(page_sequences(&middle), [4, 3]);
    assert_eq!(middle.before.as_deref(), Some("4"), "newer events remain");

    let oldest = search(page(4, SortOrder::Asc, None), all()).await;
    assert_eq!(page_sequences(&oldest), [1, 2, 3, 4]);
    assert_eq!(oldest.after.as_deref(), Some("4"));
    let newer = search(page(4, SortOrder::Asc, Some(Cursor::After(4))), all()).await;
    assert_eq!((page_sequences(&newer), newer.after), (vec![5, 6], None));
    let earlier = search(page(2, SortOrder::Asc, Some(Cursor::Before(5))), all()).await;
    assert_eq!(page_sequences(&earlier), [3, 4]);
    assert_eq!(earlier.before.as_deref(), Some("3"));

    // Filtered pages skip non-matching sequences and carry their cursors.
    let edited = || EventQuery {
        actions: strings(&["doc.edited"]),
        ..all()
    };
    let first = search(page(2, SortOrder::Desc, None), edited()).await;
    assert_eq!(page_sequences(&first), [6, 3]);
    assert_eq!(first.after.as_deref(), Some("3"));
    let second = search(page(2, SortOrder::Desc, Some(Cursor::After(3))), edited()).await;
    assert_eq!((page_sequences(&second), second.after), (vec![2], None));

    // An exact fit has no next page.
    let exact = search(page(6, SortOrder::Asc, None), all()).await;
    assert_eq!((exact.data.len(), exact.after), (6, None));
    let empty = search(page(5, SortOrder::Desc, None), query("org_missing")).await;
    assert!(empty.data.is_empty());
    assert_eq!((empty.before, empty.after), (None, None));
}

async fn searches_page_by_occurred_at_in_both_directions(backend: Backend) {
    seed(&backend).await;
    // Two late arrivals whose occurred_at ties with events 2 and 4.
    for (occurred_at, actor) in [
        ("2024-01-02T00:00:00.000Z", "user_2"),
        ("2024-01-04T00:00:00.000Z", "user_1"),
    ] {
        append_event(
            &*backend,
            new_event(
                "org_a",
                event_json(
                    "doc.edited",
                    json!({"occurred_at": occurred_at, "actor": {"id": actor, "type": "user"}}),
                ),
            ),
        )
        .await;
    }
    let walk = |limit: u32, order: SortOrder, query: EventQuery| {
        let backend = &backend;
        async move {
            let mut found = Vec::new();
            let mut cursor: Option<OccurredAtKey> = None;
            loop {
                let request = page(limit, order, cursor.map(Cursor::After));
                let result = backend
                    .search_events_by_occurred_at(query.clone(), request)
                    .await
                    .expect("search");
                found.extend(page_sequences(&result));
                match result.after {
                    Some(after) => cursor = Some(after.parse().expect("a cursor")),
                    None => return found,
                }
            }
        }
    };
    // Ties on occurred_at are broken by sequence.
    assert_eq!(
        walk(3, SortOrder::Desc, query("org_a")).await,
        [6, 5, 8, 4, 3, 7, 2, 1]
    );
    assert_eq!(
        walk(3, SortOrder::Asc, query("org_a")).await,
        [1, 2, 7, 3, 4, 8, 5, 6]
    );
    let range = || EventQuery {
        occurred_from: Some(millis("2024-01-02T00:00:00Z")),
        occurred_to: Some(millis("2024-01-04T00:00:00Z")),
        ..query("org_a")
    };
    assert_eq!(walk(2, SortOrder::Desc, range()).await, [8, 4, 3, 7, 2]);
    let by_actor = || EventQuery {
        actor_ids: strings(&["user_2"]),
        ..range()
    };
    assert_eq!(walk(1, SortOrder::Asc, by_actor()).await, [2, 7]);

    // The cursors name occurred_at and sequence; `before` leads back.
    let first = backend
        .search_events_by_occurred_at(range(), page(2, SortOrder::Desc, None))
        .await
        .expect("search");
    let tie = format!("{}_4", millis("2024-01-04T00:00:00Z"));
    assert_eq!(
        (first.before.as_deref(), first.after.as_deref()),
        (None, Some(tie.as_str()))
    );
    let second = backend
        .search_events_by_occurred_at(
            range(),
            page(
                2,
                SortOrder::Desc,
                Some(Cursor::After(tie.parse().expect("key"))),
            ),
        )
        .await
        .expect("search");
    assert_eq!(page_sequences(&second), [3, 7]);
    let back = backend
        .search_events_by_occurred_at(
            range(),
            page(
                2,
                SortOrder::Desc,
                Some(Cursor::Before(
                    second.before.expect("before").parse().expect("key"),
                )),
            ),
        )
        .await
        .expect("search");
    assert_eq!((page_sequences(&back), back.before), (vec![8, 4], None));
}
