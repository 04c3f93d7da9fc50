//! Dashboard sign-in: sessions stored in the database (so they survive restarts), the
//! CSRF token tied to each session, and slowing down repeated failed sign-ins.
//!
//! The browser holds a random 256-bit token; the database holds only its SHA-256, like API
//! keys. The CSRF token is derived from the session token, so it needs no storage and
//! changes with every sign-in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use stele_core::model::{NewSession, Session};
use stele_core::timestamp::now_millis;
use stele_store::Store;

use crate::services::api_keys::hash_secret;
use crate::services::users::UserService;
use crate::services::ServiceError;

/// Failed attempts for one username that are answered without a lockout.
const FREE_FAILURES: u32 = 3;
/// The longest a username is locked after repeated failures.
const MAX_LOCKOUT: Duration = Duration::from_secs(60);
/// Every failed attempt is answered this late, so guessing is slow even within the free tries.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failure records untouched for this long are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);

pub enum LoginError {
    InvalidCredentials,
    /// Too many recent failures for this username; try again after this many seconds.
    Throttled {
        retry_after_secs: u64,
    },
    Service(ServiceError),
}

impl From<ServiceError> for LoginError {
    fn from(error: ServiceError) -> Self {
        LoginError::Service(error)
    }
}

impl From<stele_store::StoreError> for LoginError {
    fn from(error: stele_store::StoreError) -> Self {
        LoginError::Service(error.into())
    }
}

struct Failures {
    count: u32,
    last: Instant,
}

/// Consecutive failed sign-ins per source address and username, kept in memory: a restart forgets them, which
/// only ever makes the server more lenient, never locks anyone out for longer.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
    /// Usernames with a sign-in being checked right now: one at a time per username, so
    /// attempts sent in parallel cannot all slip in before the first failure is counted.
    in_flight: Mutex<std::collections::HashSet<String>>,
}

/// An admitted sign-in attempt; dropping it lets the next attempt for the username in.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    username: String,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.throttle.in_flight.lock() {
            in_flight.remove(&self.username);
        }
    }
}

impl LoginThrottle {
    fn lockout(count: u32) -> Duration {
        if count < FREE_FAILURES {
            return Duration::ZERO;
        }
        // Starts well above FAILURE_DELAY, so the lock is still on when the answer arrives.
        let exponent = (count - FREE_FAILURES).min(6);
        Duration::from_secs(5 << exponent).min(MAX_LOCKOUT)
    }

    /// How long `key` (source and username) must still wait before its next attempt.
    fn wait(&self, key: &str) -> Duration {
        let Ok(failures) = self.failures.lock() else {
            return Duration::ZERO;
        };
        failures.get(key).map_or(Duration::ZERO, |entry| {
            Self::lockout(entry.count).saturating_sub(entry.last.elapsed())
        })
    }

    /// Admits an attempt for `username` from the source `lockout_key` names, or says how
    /// long to wait: while that source is locked out for the username, or (one second)
    /// while another attempt for the username is being checked.
    fn admit(&self, lockout_key: &str, username: &str) -> Result<Attempt<'_>, Duration> {
        let wait = self.wait(lockout_key);
        if !wait.is_zero() {
            return Err(wait);
        }
        let Ok(mut in_flight) = self.in_flight.lock() else {
            return Err(Duration::from_secs(1));
        };
        if !in_flight.insert(username.to_owned()) {
            return Err(Duration::from_secs(1));
        }
        Ok(Attempt {
            throttle: self,
            username: username.to_owned(),
        })
    }

    fn record_failure(&self, username: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 10_000 {
                failures.retain(|_, entry| entry.last.elapsed() < FAILURE_MEMORY);
            }
            let entry = failures.entry(username.to_owned()).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            if entry.last.elapsed() > FAILURE_MEMORY {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = Instant::now();
        }
    }

    fn record_success(&self, username: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(username);
        }
    }
}

/// A fresh random token: what the session cookie carries.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token for forms shown within the session that `session_token` names.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"stele dashboard csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Compares two secrets in time that does not depend on where they first differ.
pub fn secrets_match(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Dashboard sessions: signing in (throttled per username), finding and ending them.
#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn Store>,
    users: UserService,
    login_throttle: Arc<LoginThrottle>,
    session_ttl_hours: u64,
}

impl SessionService {
    pub fn new(store: Arc<dyn Store>, users: UserService, session_ttl_hours: u64) -> Self {
        Self {
            store,
            users,
            login_throttle: Arc::default(),
            session_ttl_hours,
        }
    }

    /// Signs a user in; returns the new session token for the cookie. Lockouts count
    /// failures per source address and username, so failures from one address never lock
    /// the account for everyone else.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source_address: Option<&str>,
    ) -> Result<(String, Session), LoginError> {
        let username_key = username.to_lowercase();
        let throttle_key = format!("{}\n{username_key}", source_address.unwrap_or("unknown"));
        let attempt = self
            .login_throttle
            .admit(&throttle_key, &username_key)
            .map_err(|wait| LoginError::Throttled {
                retry_after_secs: wait.as_secs().max(1),
            })?;
        // Cheap refusals come first: the per-username throttle above, then the bound on
        // password checks running at once, before any lookup or hash.
        let permit = self
            .users
            .reserve_password_check()
            .ok_or(LoginError::Throttled {
                retry_after_secs: 1,
            })?;
        let Some(user) = self
            .users
            .check_credentials(permit, username, password)
            .await?
        else {
            self.login_throttle.record_failure(&throttle_key);
            // The attempt stays admitted through the delay, so a username gets at most one
            // guess per second however many requests arrive at once.
            tokio::time::sleep(FAILURE_DELAY).await;
            drop(attempt);
            return Err(LoginError::InvalidCredentials);
        };
        self.login_throttle.record_success(&throttle_key);
        drop(attempt);
        let token = generate_token();
        let created_at = now_millis();
        let ttl_millis = i64::try_from(self.session_ttl_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let expires_at = created_at.saturating_add(ttl_millis);
        self.store
            .create_session(NewSession {
                token_hash: hash_secret(&token),
                user_id: user.id.clone(),
                created_at,
                expires_at,
            })
            .await?;
        Ok((
            token,
            Session {
                user_id: user.id,
                username: user.username,
                created_at,
                expires_at,
            },
        ))
    }

    /// The live session a cookie token names, if any.
    pub async fn find(&self, token: &str) -> Result<Option<Session>, ServiceError> {
        Ok(self
            .store
            .find_session(hash_secret(token), now_millis())
            .await?)
    }

    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_session(hash_secret(token)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_attempt_per_username_is_checked_at_a_time() {
        let throttle = LoginThrottle::default();
        let first = throttle
            .admit("a\nadmin", "admin")
            .expect("first attempt admitted");
        assert!(
            throttle.admit("b\nadmin", "admin").is_err(),
            "a parallel attempt waits, from any source"
        );
        assert!(
            throttle.admit("a\nsomeone-else", "someone-else").is_ok(),
            "other usernames are independent"
        );
        drop(first);
        assert!(throttle.admit("a\nadmin", "admin").is_ok());
    }

    #[test]
    fn a_lockout_holds_only_for_the_source_that_failed() {
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES + 3 {
            throttle.record_failure("10.0.0.1\nadmin");
        }
        assert!(throttle.admit("10.0.0.1\nadmin", "admin").is_err());
        assert!(
            throttle.admit("10.0.0.2\nadmin", "admin").is_ok(),
            "another source still gets its attempt"
        );
    }

    #[test]
    fn lockout_starts_after_the_free_failures_and_is_capped() {
        assert_eq!(LoginThrottle::lockout(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(
            LoginThrottle::lockout(FREE_FAILURES),
            Duration::from_secs(5)
        );
        assert_eq!(
            LoginThrottle::lockout(FREE_FAILURES + 2),
            Duration::from_secs(20)
        );
        assert_eq!(LoginThrottle::lockout(FREE_FAILURES + 40), MAX_LOCKOUT);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let (a, b) = (csrf_token("one"), csrf_token("two"));
        assert_ne!(a, b);
        assert!(secrets_match(&a, &csrf_token("one")));
        assert!(!secrets_match(&a, &b));
        assert!(!secrets_match(&a, ""));
    }
}
