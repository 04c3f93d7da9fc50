//! Dashboard users: creating them (first start and `stele users create`), checking
//! their passwords and resetting a lost one (`stele users set-password`). Passwords are
//! stored only as argon2id PHC strings.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use rand::RngCore;
use stele_core::model::UserId;
use stele_core::model::{NewUser, User};
use stele_core::timestamp::now_millis;
use stele_core::FieldError;
use stele_store::{Store, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error_code::ErrorCode;
use crate::services::ServiceError;

pub const MIN_PASSWORD_CHARS: usize = stele_core::access::MIN_PASSWORD_LENGTH;

/// How many password checks may run at once. Each argon2id check holds 19 MiB and a core
/// for a moment; without a bound, a flood of sign-in attempts with new usernames (each
/// passes the per-username throttle) would take memory and CPU from the API. Attempts
/// beyond it are refused at once (429) instead of queueing.
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// The right to run one password check, held until the hash has finished (even when the
/// request that asked for it has gone away).
pub struct PasswordCheckPermit {
    _held: OwnedSemaphorePermit,
}

/// A random 24-character password for a user created without one.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// argon2id with the crate's default (OWASP-recommended) cost and a random salt.
pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| ServiceError::Internal(format!("cannot encode salt: {error}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ServiceError::Internal(format!("cannot hash password: {error}")))
}

/// Whether `password` matches the PHC string `hash`. A malformed stored hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash to verify against when the username does not exist, so that an unknown user
/// costs the same time as a wrong password and usernames cannot be probed by timing.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

/// Dashboard users and their passwords.
#[derive(Clone)]
pub struct UserService {
    store: Arc<dyn Store>,
    password_checks: Arc<Semaphore>,
}

impl UserService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            password_checks: Arc::new(Semaphore::new(MAX_CONCURRENT_PASSWORD_CHECKS)),
        }
    }

    /// A permit for one password check, or `None` while
    /// [`MAX_CONCURRENT_PASSWORD_CHECKS`] are running.
    pub fn reserve_password_check(&self) -> Option<PasswordCheckPermit> {
        Arc::clone(&self.password_checks)
            .try_acquire_owned()
            .ok()
            .map(|held| PasswordCheckPermit { _held: held })
    }

    /// The user if `username` exists and `password` is theirs. Runs the (deliberately slow)
    /// hash on the blocking pool, holding `permit` until it finishes.
    pub async fn check_credentials(
        &self,
        permit: PasswordCheckPermit,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, ServiceError> {
        let user = self.store.find_user_by_username(username).await?;
        let hash = user.as_ref().map_or_else(
            || decoy_hash().to_owned(),
            |user| user.password_hash.clone(),
        );
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&password, &hash)
        })
        .await
        .map_err(|error| ServiceError::Internal(format!("password check failed: {error}")))?;
        Ok(user.filter(|_| matches))
    }

    /// Creates a dashboard user. Without a password one is generated; it is returned so the
    /// caller can show it once.
    pub async fn create(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<(User, Option<String>), ServiceError> {
        check_username(username)?;
        if let Some(password) = password {
            check_password_length(password)?;
        }
        let (password, generated) = match password {
            Some(given) => (given.to_owned(), None),
            None => {
                let generated = generate_password();
                (generated.clone(), Some(generated))
            }
        };
        let user = User {
            id: UserId::generate(),
            username: username.to_owned(),
            password_hash: hash_password(&password)?,
            created_at: now_millis(),
        };
        self.store
            .create_user(NewUser {
                id: user.id.clone(),
                username: user.username.clone(),
                password_hash: user.password_hash.clone(),
                created_at: user.created_at,
            })
            .await
            .map_err(|error| match error {
                StoreError::UsernameTaken => ServiceError::Rejected {
                    code: ErrorCode::UsernameTaken,
                    message: format!("A user named '{username}' already exists."),
                },
                other => ServiceError::Store(other),
            })?;
        Ok((user, generated))
    }

    /// Sets a new password for `username` (a lost one cannot be recovered) and ends every
    /// session that user has, so whoever held the old password is signed out.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), ServiceError> {
        check_password_length(password)?;
        let hash = hash_password(password)?;
        if self.store.reset_user_password(username, hash).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                kind: "Dashboard user",
                id: username.to_owned(),
            })
        }
    }
}

fn check_password_length(password: &str) -> Result<(), ServiceError> {
    stele_core::access::check_password_strength(password)
        .map_err(|message| ServiceError::invalid_field("password", message))
}

fn check_username(username: &str) -> Result<(), ServiceError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if username.is_empty() || username.len() > 64 || !username.chars().all(allowed) {
        return Err(ServiceError::InvalidRequest(vec![FieldError::invalid(
            "username",
            "username must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-' or '@'.",
        )]));
    }
    Ok(())
}
