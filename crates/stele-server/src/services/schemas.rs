//! Actions and their immutable schema versions, with a cache of compiled validators.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use stele_core::pagination::{Page, PageRequest};
use stele_core::schema::{parse_schema_definition, CompiledSchema};
use stele_core::timestamp::now_millis;
use stele_store::{ActionSummary, SchemaVersion, Store, StoreError};

use crate::services::ServiceError;
use crate::state::AppState;

/// Compiled validators per (action, version). Versions never change once created, so an
/// entry never goes stale and the cache needs no invalidation, even across replicas.
#[derive(Default)]
pub struct ValidatorCache {
    compiled: RwLock<HashMap<(String, i64), Arc<CompiledSchema>>>,
}

impl ValidatorCache {
    /// The compiled version, loading it on first use; `None` when it does not exist.
    pub async fn get(
        &self,
        store: &dyn Store,
        action: &str,
        version: i64,
    ) -> Result<Option<Arc<CompiledSchema>>, StoreError> {
        let key = (action.to_owned(), version);
        if let Some(found) = self
            .compiled
            .read()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
        {
            return Ok(Some(found));
        }
        let Some(stored) = store.get_schema_version(action, version).await? else {
            return Ok(None);
        };
        let compiled =
            CompiledSchema::compile(action, version, &stored.definition).map_err(|problem| {
                StoreError::Corrupt(format!("schema {action} v{version}: {problem}"))
            })?;
        let compiled = Arc::new(compiled);
        if let Ok(mut cache) = self.compiled.write() {
            cache.insert(key, Arc::clone(&compiled));
        }
        Ok(Some(compiled))
    }
}

/// Checks an action name from the URL: non-empty, printable, reasonably short.
fn check_action_name(action: &str) -> Result<(), ServiceError> {
    if action.is_empty() || action.len() > 128 || action.chars().any(char::is_control) {
        return Err(ServiceError::invalid_field(
            "action",
            "action must be 1 to 128 printable characters.",
        ));
    }
    Ok(())
}

/// Creates the next version of `action` from a request body, or returns the latest
/// version unchanged when the definition is identical. The flag says whether it is new.
pub async fn create_version(
    state: &AppState,
    action: &str,
    body: &Value,
    created_by: &str,
) -> Result<(SchemaVersion, bool), ServiceError> {
    check_action_name(action)?;
    let definition = parse_schema_definition(body).map_err(ServiceError::InvalidRequest)?;
    Ok(state
        .store
        .create_schema_version(action, definition, created_by, now_millis())
        .await?)
}

pub async fn list_versions(
    state: &AppState,
    action: &str,
    page: PageRequest<i64>,
) -> Result<Page<SchemaVersion>, ServiceError> {
    state
        .store
        .list_schema_versions(action, page)
        .await?
        .ok_or_else(|| ServiceError::ActionNotFound(action.to_owned()))
}

pub async fn list_actions(
    state: &AppState,
    page: PageRequest<i64>,
) -> Result<Page<ActionSummary>, ServiceError> {
    Ok(state.store.list_actions(page).await?)
}
