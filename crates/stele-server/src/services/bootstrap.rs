//! First start: an empty database gets an API key and the dashboard user `admin`, whose
//! secrets are printed once (or taken from STELE_API_KEY / STELE_ADMIN_PASSWORD).

use stele_core::ids::IdKind;
use stele_core::timestamp::now_millis;
use stele_store::{NewUser, StoreError};

use crate::services::api_keys::{hash_secret, ApiKeys};
use crate::services::users::{generate_password, hash_password};
use crate::state::AppState;

pub const ADMIN_USERNAME: &str = "admin";

/// Secrets created on first start, for the caller to show once.
pub struct FirstStartSecrets {
    pub api_key: Option<String>,
    pub admin_password: Option<String>,
}

/// Initialises an empty database. A configured `STELE_API_KEY` is also registered on later
/// starts if it is not known yet, so scripted setups can rely on it.
pub async fn ensure_initialized(
    state: &AppState,
    configured_api_key: Option<&str>,
    configured_admin_password: Option<&str>,
) -> Result<FirstStartSecrets, StoreError> {
    let mut secrets = FirstStartSecrets {
        api_key: None,
        admin_password: None,
    };
    let api_keys: &ApiKeys = &state.api_keys;
    if state.store.is_uninitialized().await? {
        let (_, secret) = api_keys
            .create("default", configured_api_key.map(str::to_owned))
            .await?;
        if configured_api_key.is_none() {
            secrets.api_key = Some(secret);
        }
        let password = configured_admin_password
            .map(str::to_owned)
            .unwrap_or_else(generate_password);
        state
            .store
            .create_user(NewUser {
                id: IdKind::User.generate(),
                username: ADMIN_USERNAME.to_owned(),
                password_hash: hash_password(&password)?,
                created_at: now_millis(),
            })
            .await?;
        if configured_admin_password.is_none() {
            secrets.admin_password = Some(password);
        }
    } else if let Some(secret) = configured_api_key {
        if state
            .store
            .find_api_key(hash_secret(secret))
            .await?
            .is_none()
        {
            api_keys
                .create("STELE_API_KEY", Some(secret.to_owned()))
                .await?;
        }
    }
    Ok(secrets)
}
