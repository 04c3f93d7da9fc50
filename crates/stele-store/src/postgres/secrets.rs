//! Deployment-wide secrets in PostgreSQL.

use super::PostgresStore;
use crate::prelude::*;
use async_trait::async_trait;

#[async_trait]
impl SecretStore for PostgresStore {
    async fn shared_secret(&self, name: &str, generate: Vec<u8>) -> StoreResult<Vec<u8>> {
        // Two replicas asking at once both insert-or-ignore, then read the one that won.
        self.execute(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &generate],
        )
        .await?;
        self.query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await?
            .map(|row| row.get(0))
            .ok_or_else(|| {
                StoreError::Internal(format!("setting {name} vanished after being stored"))
            })
    }

    async fn find_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await?
            .map(|row| row.get(0)))
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<()> {
        self.execute("DELETE FROM settings WHERE name = $1", &[&name])
            .await?;
        Ok(())
    }
}
