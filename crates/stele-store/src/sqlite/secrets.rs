//! Deployment-wide secrets in SQLite.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::params;

#[async_trait]
impl SecretStore for SqliteStore {
    async fn shared_secret(&self, name: &str, generate: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
                        params![name, generate],
                    )
                    .map_err(database_error)?;
                connection
                    .query_row(
                        "SELECT value FROM settings WHERE name = ?1",
                        [&name],
                        |row| row.get(0),
                    )
                    .map_err(database_error)
            })
            .await
    }
}
