//! TLS to a real PostgreSQL server: the local cluster as `scripts/postgres-test-tls.sh`
//! configures it (a test CA whose certificate names 127.0.0.1 and localhost, and an
//! unrelated CA). These tests fail, naming the script, when the server has no TLS or the
//! CA files are missing: a skipped TLS test would pass while proving nothing.

use std::path::PathBuf;

use super::tests::admin_url;
use super::*;

/// The directory with `ca.pem` and `other-ca.pem`: `STELE_TEST_POSTGRES_TLS_DIR`, or
/// `stele-test-tls` in the server's data directory, where the script puts them.
async fn tls_dir() -> PathBuf {
    let client = connect(&PostgresOptions::new(with_params(
        &admin_url(),
        "sslmode=disable",
    )))
    .await
    .unwrap_or_else(|error| panic!("PostgreSQL at {}: {error}", admin_url()));
    let ssl: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("SHOW ssl")
        .get(0);
    assert_eq!(
        ssl, "on",
        "the test PostgreSQL server has TLS off; run scripts/postgres-test-tls.sh (test.sh does)"
    );
    let dir = match std::env::var("STELE_TEST_POSTGRES_TLS_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let data: String = client
                .query_one("SHOW data_directory", &[])
                .await
                .expect("SHOW data_directory")
                .get(0);
            PathBuf::from(data).join("stele-test-tls")
        }
    };
    for file in ["ca.pem", "other-ca.pem"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: the test CA is not set up; run scripts/postgres-test-tls.sh \
             (test.sh does) or set STELE_TEST_POSTGRES_TLS_DIR",
            dir.join(file).display()
        );
    }
    dir
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// `url` pointing at `host` for TLS (the name checked against the certificate) while
/// connecting to 127.0.0.1.
fn with_host(url: &str, host: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, address) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, a)| (u, a));
    let port = address.rsplit_once(':').map_or("5432", |(_, port)| port);
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    with_params(
        &format!("{scheme}://{user}{host}:{port}/{path}"),
        "hostaddr=127.0.0.1",
    )
}

/// Whether the connection `url` makes is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, StoreError> {
    let client = connect(&PostgresOptions::new(url)).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(database_error)?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_require_connects_over_tls() {
    tls_dir().await;
    let url = with_params(&admin_url(), "sslmode=require");
    assert!(encrypted(&url).await.expect("require connects"));
}

#[tokio::test]
async fn sslmode_verify_full_with_the_servers_ca_connects_over_tls() {
    let ca = tls_dir().await.join("ca.pem");
    let url = with_params(
        &admin_url(),
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    assert!(encrypted(&url).await.expect("verify-full connects"));
    // `localhost` is in the certificate too.
    let url = with_params(
        &with_host(&admin_url(), "localhost"),
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    assert!(encrypted(&url)
        .await
        .expect("verify-full to localhost connects"));
}

#[tokio::test]
async fn the_store_pool_connects_with_verify_full() {
    let ca = tls_dir().await.join("ca.pem");
    let database = super::tests::ScratchDatabase::create().await;
    let mut options = PostgresOptions::new(with_params(
        &database.url,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ));
    options.pool_size = 2;
    let store = PostgresStore::open(&options, true)
        .await
        .expect("store opens over TLS");
    let rows = store
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("a pooled query");
    assert!(
        rows[0].get::<_, bool>(0),
        "pooled connections are encrypted"
    );
}

#[tokio::test]
async fn verify_full_with_a_wrong_ca_fails_naming_the_certificate() {
    let other = tls_dir().await.join("other-ca.pem");
    let url = with_params(
        &admin_url(),
        &format!("sslmode=verify-full&sslrootcert={}", other.display()),
    );
    let error = encrypted(&url)
        .await
        .expect_err("an unknown issuer is refused");
    let message = error.to_string();
    assert!(
        message.contains("TLS") && message.contains("UnknownIssuer"),
        "the error says why: {message}"
    );
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let ca = tls_dir().await.join("ca.pem");
    let wrong_name = with_host(&admin_url(), "db.invalid");
    let url = with_params(
        &wrong_name,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let message = encrypted(&url)
        .await
        .expect_err("a name the certificate lacks")
        .to_string();
    assert!(
        message.contains("not valid for name \"db.invalid\""),
        "{message}"
    );
    let url = with_params(
        &wrong_name,
        &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    );
    assert!(encrypted(&url).await.expect("verify-ca ignores the name"));
}

#[tokio::test]
async fn disable_connects_in_plain_text_and_prefer_uses_tls_when_offered() {
    tls_dir().await;
    let plain = with_params(&admin_url(), "sslmode=disable");
    assert!(!encrypted(&plain).await.expect("disable connects"));
    let prefer = with_params(&admin_url(), "sslmode=prefer");
    assert!(encrypted(&prefer).await.expect("prefer connects"));
}
