//! Deployment-wide secrets in SQLite.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

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

    async fn find_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.readers
            .read(move |connection| {
                connection
                    .query_row(
                        "SELECT value FROM settings WHERE name = ?1",
                        [&name],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(database_error)
            })
            .await
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute("DELETE FROM settings WHERE name = ?1", [&name])
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }
}
