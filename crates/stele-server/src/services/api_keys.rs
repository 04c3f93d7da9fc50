//! API keys: minting secrets, and authenticating requests with a short-lived cache.
//!
//! Only a SHA-256 of each secret is stored. Secrets are 256 random bits, so a fast hash is
//! enough (no password-style stretching), and it lets the hash be the lookup key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use stele_core::access::KeyGrants;
use stele_core::model::ApiKeyId;
use stele_core::model::{ApiKey, NewApiKey};
use stele_core::timestamp::now_millis;
use stele_store::Store;

use crate::services::ServiceError;

/// How long a successful lookup is trusted before the database is asked again. This bounds
/// how long a revoked key keeps working on a process that did not revoke it.
const CACHE_TTL: Duration = Duration::from_secs(5);
const CACHE_CAPACITY: usize = 10_000;
/// The longest API key name.
pub const MAX_NAME_LENGTH: usize = 200;

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new random secret: `sk_` followed by 43 URL-safe characters.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A key ready to store, with the given secret (or a generated one), and that secret.
pub fn new_key(name: &str, secret: Option<String>, grants: KeyGrants) -> (NewApiKey, String) {
    let secret = secret.unwrap_or_else(generate_secret);
    let key = NewApiKey {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        secret_hash: hash_secret(&secret),
        created_at: now_millis(),
        grants,
    };
    (key, secret)
}

/// Recently authenticated keys by secret hash, with when each was looked up.
type KeyCache = Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>;

/// Keys in force for one process: one cache shared by every clone.
#[derive(Clone)]
pub struct ApiKeyService {
    store: Arc<dyn Store>,
    cache: Arc<KeyCache>,
}

impl ApiKeyService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<ApiKey>, ServiceError> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Whether a key with this secret exists, revoked or not.
    pub async fn secret_is_known(&self, secret: &str) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .find_api_key(hash_secret(secret))
            .await?
            .is_some())
    }

    /// Creates a key with the given secret (or a generated one) and grants; returns the
    /// key and secret. Organizations a key is restricted to must exist.
    pub async fn create(
        &self,
        name: &str,
        secret: Option<String>,
        grants: KeyGrants,
    ) -> Result<(ApiKey, String), ServiceError> {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_LENGTH {
            return Err(ServiceError::invalid_field(
                "name",
                format!("An API key name is 1 to {MAX_NAME_LENGTH} characters."),
            ));
        }
        for id in &grants.organizations {
            if self.store.get_organization(id).await?.is_none() {
                return Err(ServiceError::OrganizationNotFound(id.clone()));
            }
        }
        let (new, secret) = new_key(name, secret, grants);
        let key = self.store.create_api_key(new).await?;
        Ok((key, secret))
    }

    /// The active key for `secret`, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, ServiceError> {
        let hash = hash_secret(secret);
        if let Some((key, at)) = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&hash).cloned())
        {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(key));
            }
        }
        let found = self
            .store
            .find_api_key(hash)
            .await?
            .filter(|key| key.revoked_at.is_none());
        if let Ok(mut cache) = self.cache.lock() {
            match &found {
                Some(key) => {
                    if cache.len() >= CACHE_CAPACITY {
                        cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                    }
                    cache.insert(hash, (key.clone(), Instant::now()));
                }
                None => {
                    cache.remove(&hash);
                }
            }
        }
        Ok(found)
    }

    pub async fn revoke(&self, id: &str) -> Result<bool, ServiceError> {
        let revoked = self.store.revoke_api_key(id, now_millis()).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (key, _)| key.id != id);
        }
        Ok(revoked)
    }
}
