//! Crash safety: every acknowledged event survives `kill -9` of the server process.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{event, read, seed_v1, stele_binary, stored_events, TestDatabase, API_KEY};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn spawn_server(database_url: &str, key_file: &std::path::Path, port: u16) -> Child {
    Command::new(stele_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("STELE_DATABASE_URL", database_url)
        .env("STELE_SIGNING_KEY_FILE", key_file)
        .env("STELE_API_KEY", API_KEY)
        .env("STELE_ADMIN_PASSWORD", "durability-admin-password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stele")
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stele did not become healthy at {base}");
}

/// The ids of every page of a search, following `list_metadata.after`.
async fn search_every_page(
    client: &reqwest::Client,
    base: &str,
    query: &str,
) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    let mut after = String::new();
    loop {
        let (status, body) = read(
            client
                .get(format!("{base}/audit_logs/events?{query}&limit=100{after}"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for event in body["data"].as_array().expect("data") {
            ids.insert(event["id"].as_str().expect("id").to_owned());
        }
        match body["list_metadata"]["after"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_dash_nine() {
    survives_kill_dash_nine("").await;
}

/// SQLite's `synchronous=normal` gives up power-loss durability, never process-crash
/// durability. (It is a SQLite option: on PostgreSQL this runs the same test as above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_dash_nine_with_normal_sync() {
    survives_kill_dash_nine("?synchronous=normal").await;
}

async fn survives_kill_dash_nine(sqlite_url_options: &str) {
    let database = TestDatabase::create();
    let database_url = if database.is_postgres() {
        database.url().to_owned()
    } else {
        format!("{}{sqlite_url_options}", database.url())
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = spawn_server(&database_url, &database.signing_key_file(), port);
    wait_until_healthy(&client, &base).await;

    let (status, organization) = read(
        client
            .post(format!("{base}/organizations"))
            .bearer_auth(API_KEY)
            .json(&json!({"name": "Crash"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let organization = organization["id"].as_str().expect("id").to_owned();
    let response = client
        .post(format!("{base}/audit_logs/actions/user.signed_in/schemas"))
        .bearer_auth(API_KEY)
        .json(&seed_v1())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);

    // 32 writers send events until the server dies; every 200 they saw is an acknowledgement.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..32)
        .map(|writer| {
            let (client, base, organization, acknowledged) = (
                client.clone(),
                base.clone(),
                organization.clone(),
                Arc::clone(&acknowledged),
            );
            tokio::spawn(async move {
                for index in 0.. {
                    let body = event(
                        &organization,
                        "user.signed_in",
                        None,
                        json!([{"id": format!("w{writer}-{index}"), "type": "team"}]),
                    );
                    let Ok(response) = client
                        .post(format!("{base}/audit_logs/events"))
                        .bearer_auth(API_KEY)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != StatusCode::OK {
                        return;
                    }
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    if let (Some(id), Ok(mut acknowledged)) =
                        (body["id"].as_str(), acknowledged.lock())
                    {
                        acknowledged.push(id.to_owned());
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().map(|a| a.len()).unwrap_or(0) < 500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 500,
        "only {} events acknowledged before the deadline",
        acknowledged.len()
    );

    // Restart on the same file: everything acknowledged is there, in a gap-free chain.
    let mut restarted = spawn_server(&database_url, &database.signing_key_file(), port);
    wait_until_healthy(&client, &base).await;
    let rows = stored_events(&database, &organization);
    let stored: std::collections::HashSet<&str> =
        rows.iter().map(|(_, id, _)| id.as_str()).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let sequences: Vec<i64> = rows.iter().map(|(sequence, _, _)| *sequence).collect();
    assert_eq!(sequences, (1..=rows.len() as i64).collect::<Vec<_>>());

    // Search finds every acknowledged event after the restart, whether or not the search
    // indexes held it when the server died, and by the target index too.
    let searched =
        search_every_page(&client, &base, &format!("organization_id={organization}")).await;
    assert_eq!(searched.len(), rows.len());
    let by_target = search_every_page(
        &client,
        &base,
        &format!("organization_id={organization}&target_types=team"),
    )
    .await;
    assert!(acknowledged.iter().all(|id| by_target.contains(id)));

    // The restarted server keeps appending to the same chain.
    let (status, _) = read(
        client
            .post(format!("{base}/audit_logs/events"))
            .bearer_auth(API_KEY)
            .json(&event(
                &organization,
                "user.signed_in",
                None,
                json!([{"id": "after", "type": "team"}]),
            ))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    restarted.kill().expect("stop");
    restarted.wait().expect("reaped");

    let verify = Command::new(stele_binary())
        .args(["verify", "--database-url", &database_url])
        .output()
        .expect("verify");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "verify failed: {stdout}");
    // Besides the organization's events, the activity log's (its creation, the signing key).
    let activity = database
        .query_one(&format!(
            "SELECT COUNT(*) FROM events WHERE organization_id = '{}'",
            stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
        ))
        .integer() as usize;
    assert!(
        activity >= 1,
        "the organization's creation is in the activity log"
    );
    assert!(
        stdout.contains(&format!("OK: {} events", rows.len() + 1 + activity)),
        "{stdout}"
    );
}

/// Every item a batch response acknowledged survives `kill -9`, and no batch is half
/// stored: each one's items are all there or none are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_kill_dash_nine() {
    let database = TestDatabase::create();
    let database_url = database.url().to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = spawn_server(&database_url, &database.signing_key_file(), port);
    wait_until_healthy(&client, &base).await;
    let (status, organization) = read(
        client
            .post(format!("{base}/organizations"))
            .bearer_auth(API_KEY)
            .json(&json!({"name": "Crash batches"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let organization = organization["id"].as_str().expect("id").to_owned();
    let response = client
        .post(format!("{base}/audit_logs/actions/user.signed_in/schemas"))
        .bearer_auth(API_KEY)
        .json(&seed_v1())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);

    // 8 writers send batches of 50 (one item of each refused) until the server dies.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (client, base, organization, acknowledged) = (
                client.clone(),
                base.clone(),
                organization.clone(),
                Arc::clone(&acknowledged),
            );
            tokio::spawn(async move {
                for round in 0.. {
                    let items: Vec<serde_json::Value> = (0..50)
                        .map(|index| {
                            let kind = if index == 7 { "undeclared" } else { "team" };
                            event(
                                &organization,
                                "user.signed_in",
                                None,
                                json!([{"id": format!("w{writer}-{round}-{index}"), "type": kind}]),
                            )
                        })
                        .collect();
                    let Ok(response) = client
                        .post(format!("{base}/audit_logs/events/batch"))
                        .bearer_auth(API_KEY)
                        .json(&json!({ "events": items }))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != StatusCode::OK {
                        return;
                    }
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    let ids: Vec<String> = body["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|item| item["id"].as_str().map(str::to_owned))
                        .collect();
                    assert_eq!(ids.len(), 49, "{body}");
                    if let Ok(mut acknowledged) = acknowledged.lock() {
                        acknowledged.extend(ids);
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().map(|a| a.len()).unwrap_or(0) < 2000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");
    for writer in writers {
        writer.await.expect("writer saw only whole batches");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 2000,
        "only {} events acknowledged before the deadline",
        acknowledged.len()
    );

    let mut restarted = spawn_server(&database_url, &database.signing_key_file(), port);
    wait_until_healthy(&client, &base).await;
    let rows = stored_events(&database, &organization);
    let stored: std::collections::HashSet<&str> =
        rows.iter().map(|(_, id, _)| id.as_str()).collect();
    let lost = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .count();
    assert_eq!(lost, 0, "{lost} acknowledged batch items lost");
    // Whole batches only: 49 accepted items each.
    assert_eq!(rows.len() % 49, 0, "{} stored", rows.len());
    let sequences: Vec<i64> = rows.iter().map(|(sequence, _, _)| *sequence).collect();
    assert_eq!(sequences, (1..=rows.len() as i64).collect::<Vec<_>>());
    let by_target = search_every_page(
        &client,
        &base,
        &format!("organization_id={organization}&target_types=team"),
    )
    .await;
    assert_eq!(
        by_target.len(),
        rows.len(),
        "search finds every stored item"
    );
    restarted.kill().expect("stop");
    restarted.wait().expect("reaped");
    let verify = Command::new(stele_binary())
        .args(["verify", "--database-url", &database_url])
        .output()
        .expect("verify");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "verify failed: {stdout}");
    // Besides the organization's events, the activity log's (its creation, the signing key).
    let activity = database
        .query_one(&format!(
            "SELECT COUNT(*) FROM events WHERE organization_id = '{}'",
            stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
        ))
        .integer() as usize;
    assert!(
        stdout.contains(&format!("OK: {} events", rows.len() + activity)),
        "{stdout}"
    );
}
