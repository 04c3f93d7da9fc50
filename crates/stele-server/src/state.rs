//! Shared application state handed to every handler and worker.

use std::sync::Arc;

use stele_store::Store;

use crate::config::ServeConfig;
use crate::services::api_keys::ApiKeys;
use crate::services::events::KnownOrganizations;
use crate::services::exports::UrlSigner;
use crate::services::schemas::ValidatorCache;
use crate::services::sessions::LoginThrottle;
use crate::services::transparency::{default_key_file, Transparency};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub api_keys: ApiKeys,
    pub validators: ValidatorCache,
    pub known_organizations: KnownOrganizations,
    pub export_urls: UrlSigner,
    pub login_throttle: LoginThrottle,
    pub transparency: Transparency,
    pub config: ServeConfig,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Fails when the checkpoint signing key cannot be read or created.
    pub fn new(store: Arc<dyn Store>, config: ServeConfig) -> anyhow::Result<Self> {
        let key_file = config
            .signing_key_file
            .clone()
            .unwrap_or_else(|| default_key_file(None));
        let transparency = Transparency::load_or_generate(&key_file, &config.log_origin)?;
        Ok(Self(Arc::new(Inner {
            api_keys: ApiKeys::new(Arc::clone(&store)),
            validators: ValidatorCache::default(),
            known_organizations: KnownOrganizations::default(),
            export_urls: UrlSigner::default(),
            login_throttle: LoginThrottle::default(),
            transparency,
            store,
            config,
        })))
    }
}
