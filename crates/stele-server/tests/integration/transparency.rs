//! Tamper evidence end to end: signed checkpoints, inclusion and consistency proofs from
//! the API checked with an independent verifier path (core functions plus the public key
//! from the API), proven JSONL exports checked offline, tamper detection by `stele verify`,
//! key rotation, and proofs that survive retention.

use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stele_core::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use stele_core::note::{CheckpointBody, NoteVerifier};

use crate::support::{event, execute_sql, read, seed_v1, stele_binary, stored_events, TestServer};

/// Appends `count` events to `organization`, 16 at a time.
async fn fill(server: &TestServer, organization: &str, count: usize) {
    futures_util::stream::iter(0..count)
        .map(|index| async move {
            let (status, body) = server
                .create_event(&event(
                    organization,
                    "user.signed_in",
                    None,
                    json!([{"id": format!("team_{index}"), "type": "team"}]),
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

async fn setup(count: usize) -> (TestServer, String) {
    let server = TestServer::start().await;
    let organization = server.create_organization("Proven").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    fill(&server, &organization, count).await;
    (server, organization)
}

async fn get_json(server: &TestServer, path: &str) -> (StatusCode, Value) {
    read(server.get(path).send().await.expect("request")).await
}

async fn checkpoint_now(server: &TestServer, organization: &str) -> Value {
    let (status, body) = read(
        server
            .post(
                &format!("/organizations/{organization}/audit_logs/checkpoints"),
                &json!({}),
            )
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn current_key(server: &TestServer) -> NoteVerifier {
    let (status, keys) = get_json(server, "/audit_logs/signing_keys").await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let current = keys["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|key| key["current"] == json!(true))
        .expect("a current key");
    NoteVerifier::parse(current["verifier_key"].as_str().expect("verifier key")).expect("parses")
}

fn hash(text: &Value) -> Hash {
    BASE64
        .decode(text.as_str().expect("base64 string"))
        .expect("base64")
        .try_into()
        .expect("32 bytes")
}

fn hashes(list: &Value) -> Vec<Hash> {
    list.as_array().expect("array").iter().map(hash).collect()
}

/// Opens a checkpoint's signed note with `key` and returns its size and root.
fn open_checkpoint(key: &NoteVerifier, checkpoint: &Value) -> CheckpointBody {
    let text = key
        .open(checkpoint["note"].as_str().expect("note"))
        .expect("signature verifies");
    let body = CheckpointBody::parse(text).expect("checkpoint text");
    assert_eq!(json!(body.tree_size), checkpoint["tree_size"]);
    assert_eq!(hash(&checkpoint["root_hash"]), body.root_hash);
    body
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_with_only_the_public_key() {
    let (server, organization) = setup(5).await;
    let key = current_key(&server).await;
    let small = open_checkpoint(&key, &checkpoint_now(&server, &organization).await);
    assert_eq!(small.tree_size, 5);
    assert_eq!(small.origin, format!("stele/{organization}"));

    // Past 256 leaves the stored level-8 nodes take part in every proof.
    fill(&server, &organization, 295).await;
    let large_checkpoint = checkpoint_now(&server, &organization).await;
    let large = open_checkpoint(&key, &large_checkpoint);
    assert_eq!(large.tree_size, 300);
    let (status, latest) = get_json(
        &server,
        &format!("/organizations/{organization}/audit_logs/checkpoint"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["note"], large_checkpoint["note"]);

    let events = stored_events(&server.database, &organization);
    for sequence in [1usize, 5, 256, 257, 300] {
        let (_, id, bytes) = &events[sequence - 1];
        let (status, proof) = get_json(
            &server,
            &format!("/organizations/{organization}/audit_logs/events/{id}/inclusion_proof"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{proof}");
        assert_eq!(proof["leaf_index"], json!(sequence - 1));
        assert_eq!(hash(&proof["leaf_hash"]), leaf_hash(bytes));
        let against = open_checkpoint(&key, &proof["checkpoint"]);
        verify_inclusion(
            (sequence - 1) as u64,
            against.tree_size,
            &leaf_hash(bytes),
            &hashes(&proof["hashes"]),
            &against.root_hash,
        )
        .expect("inclusion proof verifies");
        // The same event against the older, smaller checkpoint, when it is inside it.
        let (status, old) = get_json(
            &server,
            &format!(
                "/organizations/{organization}/audit_logs/events/{id}/inclusion_proof?tree_size=5"
            ),
        )
        .await;
        if sequence <= 5 {
            assert_eq!(status, StatusCode::OK, "{old}");
            verify_inclusion(
                (sequence - 1) as u64,
                5,
                &leaf_hash(bytes),
                &hashes(&old["hashes"]),
                &small.root_hash,
            )
            .expect("proof against the older checkpoint");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{old}");
            assert_eq!(old["code"], "event_not_in_checkpoint");
        }
    }

    let (status, consistency) = get_json(
        &server,
        &format!("/organizations/{organization}/audit_logs/consistency_proof?first=5&second=300"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    verify_consistency(
        5,
        300,
        &small.root_hash,
        &large.root_hash,
        &hashes(&consistency["hashes"]),
    )
    .expect("the log only grew");
    assert!(verify_consistency(
        5,
        300,
        &large.root_hash,
        &large.root_hash,
        &hashes(&consistency["hashes"])
    )
    .is_err());

    // Bad requests get specific errors.
    for (query, field) in [
        ("first=0", "first"),
        ("first=x", "first"),
        ("second=3", "first"),
        ("first=5&second=301", "second"),
    ] {
        let (status, body) = get_json(
            &server,
            &format!("/organizations/{organization}/audit_logs/consistency_proof?{query}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
    let (status, _) = get_json(
        &server,
        &format!("/organizations/{organization}/audit_logs/checkpoint?tree_size=7"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_json(
        &server,
        "/organizations/org_01EHWNCE74X7JSDV0X3SZ3KJNY/audit_logs/checkpoint",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The routes are in the OpenAPI document.
    let document: Value = server
        .get("/openapi.json")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    for path in [
        "/audit_logs/signing_keys",
        "/organizations/{id}/audit_logs/checkpoint",
        "/organizations/{id}/audit_logs/events/{event_id}/inclusion_proof",
        "/organizations/{id}/audit_logs/consistency_proof",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn the_background_job_signs_new_events_shortly() {
    let server = TestServer::start_with(&["--checkpoint-interval-secs", "1"]).await;
    let organization = server.create_organization("Watched").await;
    server.create_schema("user.signed_in", &seed_v1()).await;
    fill(&server, &organization, 3).await;
    let path = format!("/organizations/{organization}/audit_logs/checkpoint");
    for _ in 0..50 {
        let (status, body) = get_json(&server, &path).await;
        if status == StatusCode::OK && body["tree_size"] == json!(3) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no checkpoint of the 3 events within 5 seconds");
}

fn verify_export(file: &std::path::Path, key: &str) -> (bool, String) {
    let output = Command::new(stele_binary())
        .args([
            "verify-export",
            file.to_str().expect("path"),
            "--public-key",
            key,
        ])
        .output()
        .expect("run stele verify-export");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

async fn download_proven_export(
    server: &TestServer,
    organization: &str,
    actions: Option<&[&str]>,
) -> String {
    let mut body = json!({
        "organization_id": organization,
        "range_start": "2000-01-01T00:00:00Z",
        "range_end": "2100-01-01T00:00:00Z",
        "format": "jsonl",
        "include_proofs": true
    });
    if let Some(actions) = actions {
        body["actions"] = json!(actions);
    }
    let (status, export) = read(
        server
            .post("/audit_logs/exports", &body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    let url = export["url"].as_str().expect("url");
    let response = server.client.get(url).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("text")
}

#[tokio::test]
async fn proven_exports_verify_offline_and_every_single_line_edit_fails() {
    let (server, organization) = setup(6).await;
    let key = current_key(&server).await;
    let text = download_proven_export(&server, &organization, None).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "checkpoint, 6 events, manifest:\n{text}");
    // Two downloads of one export are the same file.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &text).expect("write");
    let (ok, output) = verify_export(&file, &key.encoded());
    assert!(ok, "{output}");
    assert!(output.contains("OK: 6 events"), "{output}");

    // A wrong key is rejected.
    let stranger = NoteVerifier::new(
        "stele",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key(),
    )
    .expect("key");
    let (ok, output) = verify_export(&file, &stranger.encoded());
    assert!(!ok && output.contains("INVALID"), "{output}");

    // Every single-line edit: change one byte, drop the line, duplicate it, swap it with
    // the next one, and insert a line of another valid event before it.
    let reject = |edited: Vec<String>, what: String| {
        let candidate = edited.join("\n") + "\n";
        assert!(
            stele_core::proven_jsonl::verify(&candidate, std::slice::from_ref(&key)).is_err(),
            "{what} was accepted"
        );
    };
    let owned: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
    for index in 0..owned.len() {
        let mut edited = owned.clone();
        let line = &edited[index];
        // Flip one character inside the line's content (a letter or digit).
        let positions: Vec<usize> = line
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphanumeric())
            .map(|(i, _)| i)
            .collect();
        let at = positions[positions.len() / 2];
        let replacement = if &line[at..at + 1] == "1" { "2" } else { "1" };
        edited[index] = format!("{}{}{}", &line[..at], replacement, &line[at + 1..]);
        reject(edited, format!("byte edit of line {}", index + 1));

        let mut dropped = owned.clone();
        dropped.remove(index);
        reject(dropped, format!("dropping line {}", index + 1));

        let mut doubled = owned.clone();
        doubled.insert(index, owned[index].clone());
        reject(doubled, format!("duplicating line {}", index + 1));

        if index + 1 < owned.len() {
            let mut swapped = owned.clone();
            swapped.swap(index, index + 1);
            reject(
                swapped,
                format!("swapping lines {} and {}", index + 1, index + 2),
            );
        }
        let mut whitespace = owned.clone();
        whitespace[index] = format!("{} ", owned[index]);
        reject(whitespace, format!("trailing space on line {}", index + 1));
    }
    // An event line taken from another valid export of the same log.
    fill(&server, &organization, 1).await;
    let newer = download_proven_export(&server, &organization, None).await;
    let foreign = newer.lines().nth(7).expect("the 7th event").to_string();
    let mut added = owned.clone();
    added.insert(7, foreign);
    reject(added, "an added event line".into());
    let (ok, output) = {
        let mut truncated = owned.clone();
        truncated.pop();
        std::fs::write(&file, truncated.join("\n") + "\n").expect("write");
        verify_export(&file, &key.encoded())
    };
    assert!(!ok && output.contains("INVALID"), "{output}");
}

#[tokio::test]
async fn filtered_exports_and_proof_bundles_verify() {
    let (server, organization) = setup(4).await;
    server.create_schema("user.signed_out", &seed_v1()).await;
    let (status, _) = server
        .create_event(&event(
            &organization,
            "user.signed_out",
            None,
            json!([{"id": "t", "type": "team"}]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = current_key(&server).await;
    let text = download_proven_export(&server, &organization, Some(&["user.signed_out"])).await;
    let verified =
        stele_core::proven_jsonl::verify(&text, std::slice::from_ref(&key)).expect("valid");
    assert_eq!(verified.events, 1);
    assert_eq!(
        text.lines()
            .nth(1)
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .map(|l| l["leaf_index"].clone()),
        Some(json!(4))
    );

    let events = stored_events(&server.database, &organization);
    let (_, id, _) = &events[1];
    let response = server
        .get(&format!(
            "/organizations/{organization}/audit_logs/events/{id}/proof_bundle"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let bundle = response.text().await.expect("text");
    let verified = stele_core::proven_jsonl::verify(&bundle, std::slice::from_ref(&key))
        .expect("bundle verifies");
    assert_eq!(verified.events, 1);
    assert_eq!(verified.label, format!("event {id}"));
}

fn verify_with(server: &TestServer, extra: &[&str]) -> (bool, String) {
    let output = Command::new(stele_binary())
        .args(["verify", "--database-url", server.database.url()])
        .args(extra)
        .output()
        .expect("run stele verify");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Runs `stele verify` and asserts that it fails with output naming every one of `expected`.
fn assert_verify_fails(server: &TestServer, extra: &[&str], expected: &[&str]) {
    let (ok, output) = verify_with(server, extra);
    assert!(!ok, "{output}");
    for text in expected {
        assert!(output.contains(text), "expected {text:?} in: {output}");
    }
}

/// Rewrites the chain hashes of `organization` from `from_sequence` on, as an attacker with
/// database access would after editing an event, so only the signed tree can tell.
fn relink_chain(server: &TestServer, organization: &str) {
    let mut previous = stele_core::chain::GENESIS;
    for (sequence, _, bytes) in stored_events(&server.database, organization) {
        previous = stele_core::chain::link(&previous, &bytes);
        server.database.execute(&format!(
            "UPDATE events SET hash = {} WHERE organization_id = '{organization}' AND sequence = {sequence}",
            server.database.bytes_literal(&previous)
        ));
    }
}

#[tokio::test]
async fn verify_catches_what_a_relinked_chain_hides() {
    let (server, organization) = setup(6).await;
    checkpoint_now(&server, &organization).await;
    let (ok, output) = verify_with(&server, &[]);
    assert!(ok, "{output}");

    // Edited event, chain recomputed: the signed root no longer matches.
    let edited = server.database.dialect(
        "CAST(replace(CAST(canonical AS TEXT), 'team_', 'team-') AS BLOB)",
        "convert_to(replace(convert_from(canonical, 'UTF8'), 'team_', 'team-'), 'UTF8')",
    );
    execute_sql(
        &server.database,
        &format!(
            "UPDATE events SET canonical = {edited}
             WHERE organization_id = '{organization}' AND sequence = 4"
        ),
    );
    relink_chain(&server, &organization);
    assert_verify_fails(
        &server,
        &[],
        &[&organization, "signed checkpoint of tree size 6"],
    );
}

#[tokio::test]
async fn verify_catches_an_event_inserted_in_the_middle_under_a_relinked_chain() {
    let (server, organization) = setup(6).await;
    checkpoint_now(&server, &organization).await;
    // Make room after sequence 3 (in two steps, so no two rows share a sequence), insert a
    // copy of event 3 as sequence 4 under a new id, and recompute the chain over it.
    execute_sql(
        &server.database,
        &format!("UPDATE events SET sequence = sequence + 1000 WHERE organization_id = '{organization}' AND sequence > 3"),
    );
    execute_sql(
        &server.database,
        &format!("UPDATE events SET sequence = sequence - 999 WHERE organization_id = '{organization}' AND sequence > 1000"),
    );
    execute_sql(
        &server.database,
        &format!(
            "INSERT INTO events (organization_id, sequence, id, action, version, actor_id, actor_name,
                                 occurred_at, received_at, canonical, hash)
             SELECT organization_id, 4, 'audit_log_event_forged', action, version, actor_id, actor_name,
                    occurred_at, received_at, canonical, hash
             FROM events WHERE organization_id = '{organization}' AND sequence = 3"
        ),
    );
    relink_chain(&server, &organization);
    assert_verify_fails(
        &server,
        &[],
        &[&organization, "signed checkpoint of tree size 6"],
    );
}

#[tokio::test]
async fn verify_catches_a_cut_tail_and_forged_checkpoints() {
    let (server, organization) = setup(5).await;
    checkpoint_now(&server, &organization).await;
    execute_sql(
        &server.database,
        &format!("DELETE FROM events WHERE organization_id = '{organization}' AND sequence = 5"),
    );
    assert_verify_fails(&server, &[], &["events 5..=5 were removed"]);

    let (server, organization) = setup(5).await;
    checkpoint_now(&server, &organization).await;
    // A checkpoint whose note was re-signed by another key, as a forger would.
    let forger =
        stele_core::note::NoteSigner::new("stele", ed25519_dalek::SigningKey::from_bytes(&[3; 32]))
            .expect("signer");
    let body = CheckpointBody {
        origin: format!("stele/{organization}"),
        tree_size: 5,
        root_hash: [0; 32],
    };
    execute_sql(
        &server.database,
        &format!(
            "UPDATE checkpoints SET note = '{}', root_hash = {} WHERE organization_id = '{organization}'",
            forger.sign(&body.text()),
            server.database.bytes_literal(&[0; 32])
        ),
    );
    let (ok, output) = verify_with(&server, &[]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("checkpoint of tree size 5") && output.contains("forged"),
        "{output}"
    );

    // Untouched data checked against a key that never signed it fails too.
    let (server, organization) = setup(2).await;
    checkpoint_now(&server, &organization).await;
    let stranger = NoteVerifier::new(
        "stele",
        ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key(),
    )
    .expect("key");
    let (ok, output) = verify_with(&server, &["--public-key", &stranger.encoded()]);
    assert!(
        !ok && output.contains("no valid signature by a trusted key"),
        "{output}"
    );
    let key = current_key(&server).await;
    let (ok, output) = verify_with(&server, &["--public-key", &key.encoded()]);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn the_key_file_is_private_and_rotation_keeps_old_checkpoints_verifiable() {
    let (server, organization) = setup(3).await;
    let first = checkpoint_now(&server, &organization).await;
    let key_file = server.database.signing_key_file();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let old_key = current_key(&server).await;
    std::fs::remove_file(&key_file).expect("remove key");
    let server = server.restart().await;
    let new_key = current_key(&server).await;
    assert_ne!(old_key.key_id(), new_key.key_id());
    let (_, keys) = get_json(&server, "/audit_logs/signing_keys").await;
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(2));

    fill(&server, &organization, 2).await;
    let second = checkpoint_now(&server, &organization).await;
    open_checkpoint(&old_key, &first);
    open_checkpoint(&new_key, &second);
    let (ok, output) = verify_with(&server, &[]);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn proofs_survive_retention() {
    let (server, organization) = setup(300).await;
    let key = current_key(&server).await;
    let before = open_checkpoint(&key, &checkpoint_now(&server, &organization).await);
    // Age the oldest 270 events past a one-day retention period, then purge them.
    execute_sql(
        &server.database,
        &format!("UPDATE events SET received_at = 0 WHERE organization_id = '{organization}' AND sequence <= 270"),
    );
    let (status, body) = read(
        server
            .request(
                reqwest::Method::PUT,
                &format!("/organizations/{organization}/audit_logs_retention"),
            )
            .json(&json!({"retention_period_in_days": 1}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let purged = server.state.retention.purge_expired().await.expect("purge");
    assert_eq!(purged, 270);
    assert_eq!(stored_events(&server.database, &organization).len(), 30);

    fill(&server, &organization, 10).await;
    let after = open_checkpoint(&key, &checkpoint_now(&server, &organization).await);
    assert_eq!(after.tree_size, 310);
    let events = stored_events(&server.database, &organization);
    let (sequence, id, bytes) = &events[5];
    let (status, proof) = get_json(
        &server,
        &format!("/organizations/{organization}/audit_logs/events/{id}/inclusion_proof"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    verify_inclusion(
        (*sequence - 1) as u64,
        310,
        &leaf_hash(bytes),
        &hashes(&proof["hashes"]),
        &after.root_hash,
    )
    .expect("a retained event is still proven");
    let (status, consistency) = get_json(
        &server,
        &format!("/organizations/{organization}/audit_logs/consistency_proof?first=300&second=310"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    verify_consistency(
        300,
        310,
        &before.root_hash,
        &after.root_hash,
        &hashes(&consistency["hashes"]),
    )
    .expect("the pre-purge checkpoint is consistent with the new one");
    let (ok, output) = verify_with(&server, &[]);
    assert!(ok, "{output}");
    let text = download_proven_export(&server, &organization, None).await;
    let verified = stele_core::proven_jsonl::verify(&text, std::slice::from_ref(&key))
        .expect("export after purge");
    assert_eq!(verified.events, 40);
}

#[tokio::test]
async fn checkpoints_older_than_a_day_are_thinned_to_one_per_hour() {
    let (server, organization) = setup(1).await;
    let hour = 60 * 60 * 1000;
    let now = stele_core::timestamp::now_millis();
    // Five checkpoints: three in one hour two days ago (at its first, second and third
    // second, so they share the hour whatever the time now), one the hour after, one now.
    let two_days_ago = now - 48 * hour;
    let old_hour = two_days_ago - two_days_ago.rem_euclid(hour);
    let created = [
        old_hour,
        old_hour + 1000,
        old_hour + 2000,
        old_hour + hour,
        now,
    ];
    for (index, at) in created.into_iter().enumerate() {
        if index > 0 {
            fill(&server, &organization, 1).await;
        }
        let checkpoint = checkpoint_now(&server, &organization).await;
        let size = checkpoint["tree_size"].as_u64().expect("size");
        assert_eq!(size, index as u64 + 1);
        execute_sql(
            &server.database,
            &format!("UPDATE checkpoints SET created_at = {at} WHERE organization_id = '{organization}' AND tree_size = {size}"),
        );
    }
    let thinned = server
        .state
        .transparency
        .thin_old_checkpoints()
        .await
        .expect("thin");
    assert_eq!(thinned, 2, "two of the three in one old hour go");
    let sizes: Vec<u64> = server
        .database
        .query(&format!(
            "SELECT tree_size FROM checkpoints WHERE organization_id = '{organization}' ORDER BY tree_size"
        ))
        .iter()
        .map(|row| row[0].integer() as u64)
        .collect();
    assert_eq!(
        sizes,
        vec![3, 4, 5],
        "the newest of the old hour, the next hour, and today's"
    );
    let (ok, output) = verify_with(&server, &[]);
    assert!(ok, "{output}");
}

#[tokio::test]
async fn a_tail_cut_back_to_an_older_checkpoint_is_still_caught() {
    let (server, organization) = setup(3).await;
    checkpoint_now(&server, &organization).await;
    fill(&server, &organization, 2).await;
    checkpoint_now(&server, &organization).await;
    // What remains matches the checkpoint of 3 exactly; only the one of 5 tells.
    execute_sql(
        &server.database,
        &format!("DELETE FROM events WHERE organization_id = '{organization}' AND sequence > 3"),
    );
    assert_verify_fails(&server, &[], &["events 4..=5 were removed"]);
}
