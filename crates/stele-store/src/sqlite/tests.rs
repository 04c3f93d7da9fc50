//! Store-level tests of the SQLite backend.

use serde_json::Map;

use super::*;
use serde_json::json;
use stele_core::event::parse_create_event;
use stele_core::model::*;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("stele.db"), true).expect("open");
    (dir, store)
}

#[tokio::test]
async fn sessions_expire_and_expired_ones_are_swept_on_the_next_sign_in() {
    let (_dir, store) = open();
    store
        .create_user(NewUser {
            id: "user_1".into(),
            username: "admin".into(),
            password_hash: "x".into(),
            created_at: 0,
        })
        .await
        .expect("user");
    let session = |token: u8, created_at, expires_at| NewSession {
        token_hash: [token; 32],
        user_id: "user_1".into(),
        created_at,
        expires_at,
    };
    store
        .create_session(session(1, 0, 100))
        .await
        .expect("first");
    let found = store.find_session([1; 32], 50).await.expect("read");
    assert_eq!(found.map(|s| s.username), Some("admin".to_owned()));
    assert_eq!(store.find_session([1; 32], 100).await.expect("read"), None);
    assert_eq!(store.find_session([2; 32], 50).await.expect("read"), None);

    store
        .create_session(session(2, 200, 300))
        .await
        .expect("second");
    let remaining: i64 = store
        .readers
        .read(|c| {
            c.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
                .map_err(database_error)
        })
        .await
        .expect("count");
    assert_eq!(remaining, 1, "the expired session was deleted");
    store.delete_session([2; 32]).await.expect("delete");
    assert_eq!(store.find_session([2; 32], 250).await.expect("read"), None);
}

#[tokio::test]
async fn recent_events_of_an_action_are_newest_first_and_limited() {
    let (_dir, store) = open();
    let organization = Organization {
        id: "org_1".into(),
        name: "Acme".into(),
        external_id: None,
        metadata: Map::new(),
        domains: Vec::new(),
        retention_period_in_days: None,
        created_at: 0,
        updated_at: 0,
    };
    store
        .create_organization(organization, None)
        .await
        .expect("organization");
    for (index, action) in ["a", "b", "a", "a"].iter().enumerate() {
        let request = parse_create_event(&json!({
            "organization_id": "org_1",
            "event": {
                "action": action, "occurred_at": "2022-09-08T19:46:03.435Z",
                "actor": {"id": "u", "type": "user"}, "targets": [],
                "context": {"location": "1.2.3.4"}
            }
        }))
        .expect("valid");
        store
            .append_event(
                NewEvent {
                    id: format!("audit_log_event_{index}").into(),
                    organization_id: "org_1".into(),
                    event: request.event,
                },
                None,
            )
            .await
            .expect("append");
    }
    let recent = store.recent_events_of_action("a", 2).await.expect("read");
    let ids: Vec<&str> = recent.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(ids, ["audit_log_event_3", "audit_log_event_2"]);
    let record: serde_json::Value =
        serde_json::from_slice(&recent[0].canonical).expect("canonical JSON");
    assert_eq!(record["action"], "a");
    assert_eq!(recent[0].sequence, 4);
}
