//! Dashboard sign-in: sessions stored in the database (so they survive restarts), the
//! CSRF token tied to each session, and slowing down repeated failed sign-ins (counted in
//! the database, so every replica sharing it applies one throttle).
//!
//! The browser holds a random 256-bit token; the database holds only its SHA-256, like API
//! keys. The CSRF token is derived from the session token, so it needs no storage and
//! changes with every sign-in.

use std::sync::Arc;
use std::time::Duration;

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
/// How long a username stays blocked while one attempt for it is being checked (the check
/// ends the block sooner; this bounds it if the process dies mid-check).
const CHECK_HOLD: Duration = Duration::from_secs(30);

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

/// How long one failed sign-in of a username blocks the next attempt for it, given its
/// consecutive failures: [`FAILURE_DELAY`] within the free tries, then a lockout doubling
/// from 5 seconds up to [`MAX_LOCKOUT`].
fn lockout(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return FAILURE_DELAY;
    }
    // Starts well above FAILURE_DELAY, so the lock is still on when the answer arrives.
    let exponent = (failures - FREE_FAILURES).min(6);
    Duration::from_secs(5 << exponent).min(MAX_LOCKOUT)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
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
    session_ttl_hours: u64,
}

impl SessionService {
    pub fn new(store: Arc<dyn Store>, users: UserService, session_ttl_hours: u64) -> Self {
        Self {
            store,
            users,
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
        // The throttle is per source address and username: one source's failures never
        // lock the account out for the others (the owner signing in from elsewhere).
        let throttle_key = format!(
            "{}\n{}",
            source_address.unwrap_or("unknown"),
            username.to_lowercase()
        );
        // Cheap refusals come first: the bound on password checks running at once (in
        // memory, so a flood of attempts writes nothing), then the shared throttle, before
        // any lookup or hash.
        let permit = self
            .users
            .reserve_password_check()
            .ok_or(LoginError::Throttled {
                retry_after_secs: 1,
            })?;
        let now = now_millis();
        // One attempt per username at a time across every process sharing the database, so
        // attempts sent in parallel (or to several replicas) cannot all slip in before the
        // first failure is counted; and none while a lockout is on.
        if let Some(until) = self
            .store
            .begin_sign_in(&throttle_key, now, now + millis(CHECK_HOLD))
            .await?
        {
            let wait_ms = u64::try_from(until - now).unwrap_or(0);
            return Err(LoginError::Throttled {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            });
        }
        let checked = self
            .users
            .check_credentials(permit, username, password)
            .await;
        let user = match checked {
            Ok(Some(user)) => user,
            Ok(None) => {
                let failed_at = now_millis();
                let failures = self
                    .store
                    .record_sign_in_failure(
                        &throttle_key,
                        failed_at,
                        failed_at - millis(FAILURE_MEMORY),
                    )
                    .await?;
                self.store
                    .block_sign_in(&throttle_key, failed_at + millis(lockout(failures)))
                    .await?;
                // Every failure is answered late, so guessing is slow even within the free tries.
                tokio::time::sleep(FAILURE_DELAY).await;
                return Err(LoginError::InvalidCredentials);
            }
            Err(error) => {
                // The check did not happen: end this attempt's hold.
                let _ = self.store.block_sign_in(&throttle_key, now_millis()).await;
                return Err(error.into());
            }
        };
        self.store.clear_sign_in(&throttle_key).await?;
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
    fn lockout_starts_after_the_free_failures_and_is_capped() {
        assert_eq!(lockout(FREE_FAILURES - 1), FAILURE_DELAY);
        assert_eq!(lockout(FREE_FAILURES), Duration::from_secs(5));
        assert_eq!(lockout(FREE_FAILURES + 2), Duration::from_secs(20));
        assert_eq!(lockout(FREE_FAILURES + 40), MAX_LOCKOUT);
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
