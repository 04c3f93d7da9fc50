//! API keys and dashboard users in SQLite.

use super::database_error;
use super::is_unique_violation;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::OptionalExtension;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// An API key from `id, name, created_at, revoked_at, scopes, organization_ids`.
fn api_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes: String = row.get(4)?;
    let organizations: String = row.get(5)?;
    let grants =
        stele_core::access::KeyGrants::from_stored(&scopes, &organizations).map_err(|detail| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, detail.into())
        })?;
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
        revoked_at: row.get(3)?,
        grants,
    })
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn is_uninitialized(&self) -> StoreResult<bool> {
        self.readers
            .read(|connection| {
                connection
                    .query_row(
                        "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                        [],
                        |row| row.get(0),
                    )
                    .map_err(database_error)
            })
            .await
    }

    async fn initialize(&self, key: NewApiKey, user: NewUser) -> StoreResult<bool> {
        let (scopes, organizations) = key.grants.stored();
        self.writer
            .write(move |connection| {
                let empty: bool = connection
                    .query_row(
                        "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                        [],
                        |row| row.get(0),
                    )
                    .map_err(database_error)?;
                if !empty {
                    return Ok(false);
                }
                connection
                    .execute(
                        "INSERT INTO api_keys (id, name, secret_hash, created_at, scopes, organization_ids) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![key.id, key.name, key.secret_hash.as_slice(), key.created_at, scopes, organizations],
                    )
                    .map_err(database_error)?;
                connection
                    .execute(
                        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![user.id, user.username, user.password_hash, user.created_at],
                    )
                    .map_err(database_error)?;
                Ok(true)
            })
            .await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let (scopes, organizations) = key.grants.stored();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO api_keys (id, name, secret_hash, created_at, scopes, organization_ids) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![key.id, key.name, key.secret_hash.as_slice(), key.created_at, scopes, organizations],
                    )
                    .map_err(database_error)?;
                Ok(ApiKey { id: key.id, name: key.name, created_at: key.created_at, revoked_at: None, grants: key.grants })
            })
            .await
    }

    async fn find_api_key(&self, secret_hash: [u8; 32]) -> StoreResult<Option<ApiKey>> {
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached("SELECT id, name, created_at, revoked_at, scopes, organization_ids FROM api_keys WHERE secret_hash = ?1")
                    .and_then(|mut statement| {
                        statement
                            .query_row([secret_hash.as_slice()], |row| {
                                api_key_from_row(row)
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare("SELECT id, name, created_at, revoked_at, scopes, organization_ids FROM api_keys ORDER BY id")
                    .map_err(database_error)?;
                let keys = statement
                    .query_map([], |row| {
                        api_key_from_row(row)
                    })
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                keys
            })
            .await
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                        params![id, at],
                    )
                    .map(|changed| changed == 1)
                    .map_err(database_error)
            })
            .await
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![user.id, user.username, user.password_hash, user.created_at],
                    )
                    .map(|_| ())
                    .map_err(|error| {
                        if is_unique_violation(&error, "users.username") {
                            StoreError::UsernameTaken
                        } else {
                            database_error(error)
                        }
                    })
            })
            .await
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let username = username.to_owned();
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT id, username, password_hash, created_at FROM users WHERE username = ?1",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row([username], |row| {
                                Ok(User {
                                    id: row.get(0)?,
                                    username: row.get(1)?,
                                    password_hash: row.get(2)?,
                                    created_at: row.get(3)?,
                                })
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn reset_user_password(
        &self,
        username: &str,
        password_hash: String,
    ) -> StoreResult<bool> {
        let username = username.to_owned();
        self.writer
            .write(move |connection| {
                let updated = connection
                    .execute(
                        "UPDATE users SET password_hash = ?1 WHERE username = ?2",
                        params![password_hash, username],
                    )
                    .map_err(database_error)?;
                connection
                    .execute(
                        "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = ?1)",
                        [&username],
                    )
                    .map_err(database_error)?;
                Ok(updated > 0)
            })
            .await
    }
}
