//! First start: an empty database gets an API key and the dashboard user `admin`, whose
//! secrets are printed once (or taken from STELE_API_KEY / STELE_ADMIN_PASSWORD).

use std::sync::Arc;

use stele_core::access::{check_api_key_strength, check_password_strength, KeyGrants};
use stele_core::model::NewUser;
use stele_core::model::UserId;
use stele_core::timestamp::now_millis;
use stele_store::Store;

use crate::services::api_keys::{new_key, ApiKeyService};
use crate::services::users::{generate_password, hash_password};
use crate::services::ServiceError;

pub const ADMIN_USERNAME: &str = "admin";

/// Secrets created on first start, for the caller to show once.
pub struct FirstStartSecrets {
    pub api_key: Option<String>,
    pub admin_password: Option<String>,
}

/// First-start initialisation of the database.
#[derive(Clone)]
pub struct BootstrapService {
    store: Arc<dyn Store>,
    api_keys: ApiKeyService,
}

impl BootstrapService {
    pub fn new(store: Arc<dyn Store>, api_keys: ApiKeyService) -> Self {
        Self { store, api_keys }
    }

    /// Initialises an empty database. A configured `STELE_API_KEY` is also registered on later
    /// starts if it is not known yet, so scripted setups can rely on it.
    pub async fn ensure_initialized(
        &self,
        configured_api_key: Option<&str>,
        configured_admin_password: Option<&str>,
    ) -> Result<FirstStartSecrets, ServiceError> {
        // Operator-chosen secrets stand in for generated ones, so they must be as hard to
        // guess (docs/access-control.md gives the rule).
        if let Some(secret) = configured_api_key {
            check_api_key_strength(secret)
                .map_err(|message| weak_secret("STELE_API_KEY", message))?;
        }
        if let Some(password) = configured_admin_password {
            check_password_strength(password)
                .map_err(|message| weak_secret("STELE_ADMIN_PASSWORD", message))?;
        }
        let mut secrets = FirstStartSecrets {
            api_key: None,
            admin_password: None,
        };
        if self.store.is_uninitialized().await? {
            let (key, secret) = new_key(
                "default",
                configured_api_key.map(str::to_owned),
                KeyGrants::admin(),
            );
            let password = configured_admin_password
                .map(str::to_owned)
                .unwrap_or_else(generate_password);
            let admin = NewUser {
                id: UserId::generate(),
                username: ADMIN_USERNAME.to_owned(),
                password_hash: hash_password(&password)?,
                created_at: now_millis(),
            };
            // Another replica starting on the same empty database may win; then its secrets
            // are the ones shown (by it), and this one only registers a configured key.
            if self.store.initialize(key, admin).await? {
                if configured_api_key.is_none() {
                    secrets.api_key = Some(secret);
                }
                if configured_admin_password.is_none() {
                    secrets.admin_password = Some(password);
                }
                return Ok(secrets);
            }
        }
        if let Some(secret) = configured_api_key {
            if !self.api_keys.secret_is_known(secret).await? {
                let created = self
                    .api_keys
                    .create("STELE_API_KEY", Some(secret.to_owned()), KeyGrants::admin())
                    .await;
                // A replica starting at the same moment may have registered it first.
                if let Err(error) = created {
                    if !self.api_keys.secret_is_known(secret).await? {
                        return Err(error);
                    }
                }
            }
        }
        Ok(secrets)
    }
}

/// A configured secret refused for its strength; the message names the variable.
fn weak_secret(variable: &str, message: String) -> ServiceError {
    ServiceError::Rejected {
        code: crate::error_code::ErrorCode::ValidationFailed,
        message: format!("{variable}: {message}"),
    }
}
