//! Connection safety: silent, half-sent and slow clients are disconnected, and connections
//! beyond the limit wait rather than lock new clients out.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); returns what it sent
/// and how long it took to close, or `None` if it stayed open.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&received).into_owned(),
                    started.elapsed(),
                ))
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_read_timeout() {
    let server = TestServer::start_with(&[
        "--http-header-read-timeout-secs",
        "1",
        "--http-idle-timeout-secs",
        "30",
    ])
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: stele\r\n")
        .await
        .expect("write");
    // Trickling header bytes does not keep the connection open past the timeout.
    let started = Instant::now();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    trickle.await;
    let closed = until_closed(&mut stream, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(
        closed.is_some(),
        "the half-sent request is still open after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "closed only after {elapsed:?}"
    );
    // A complete request on a new connection is still served.
    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_and_a_served_one_too() {
    let server = TestServer::start_with(&["--http-idle-timeout-secs", "1"]).await;
    // Never sends anything.
    let mut silent = TcpStream::connect(address(&server)).await.expect("connect");
    let closed = until_closed(&mut silent, Duration::from_secs(5)).await;
    let (_, after) = closed.expect("a silent connection is closed");
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );

    // Kept alive after a response: closed once idle for the timeout, not before.
    let mut kept = TcpStream::connect(address(&server)).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: stele\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 1024];
    let read = kept.read(&mut buffer).await.expect("response");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let (_, after) = until_closed(&mut kept, Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_gets_408() {
    let server = TestServer::start_with(&["--http-body-timeout-secs", "1"]).await;
    let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
    let head = format!(
        "POST /organizations HTTP/1.1\r\nHost: stele\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        crate::support::API_KEY
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let (response, after) = until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("the server answers and closes");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"code\":\"request_timeout\""),
        "{response}"
    );
    assert!(after < Duration::from_secs(5), "answered after {after:?}");
    let organizations = server
        .database
        .query_one(&format!(
            "SELECT COUNT(*) FROM organizations WHERE id <> '{}'",
            stele_core::access::ACTIVITY_LOG_ORGANIZATION_ID
        ))
        .integer();
    assert_eq!(organizations, 0);
}

#[tokio::test]
async fn idle_sockets_beyond_the_connection_limit_delay_a_new_client_only_until_they_time_out() {
    let server =
        TestServer::start_with(&["--max-connections", "4", "--http-idle-timeout-secs", "2"]).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(address(&server)).await.expect("connect"));
    }
    // Give the server a moment to accept all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("{}/healthz", server.base);
    // While four silent sockets hold every slot, a new client is not served...
    let early = tokio::time::timeout(Duration::from_millis(800), client.get(&url).send()).await;
    assert!(
        early.is_err(),
        "a fifth connection was served beyond the limit of four: {early:?}"
    );
    // ...but it is once the silent ones time out.
    let started = Instant::now();
    let served = tokio::time::timeout(Duration::from_secs(10), client.get(&url).send())
        .await
        .expect("the new client is served once the idle sockets time out")
        .expect("request");
    assert_eq!(served.status(), reqwest::StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for mut socket in idle {
        assert!(
            until_closed(&mut socket, Duration::from_secs(3))
                .await
                .is_some(),
            "every idle socket was closed"
        );
    }
}
