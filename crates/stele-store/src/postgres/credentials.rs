//! API keys and dashboard users in PostgreSQL.

use super::database_error;
use super::execute_in;
use super::is_unique_violation;
use super::query_in;
use super::PostgresStore;
use crate::prelude::*;
use async_trait::async_trait;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// The advisory lock key held while initialising an empty database ("stele in").
pub(super) const INITIALIZE_LOCK: i64 = 0x7374_656c_6520_696e;

/// An API key from `id, name, created_at, revoked_at, scopes, organization_ids`.
fn api_key_from_row(row: &tokio_postgres::Row) -> StoreResult<ApiKey> {
    let scopes: String = row.get(4);
    let organizations: String = row.get(5);
    let grants = stele_core::access::KeyGrants::from_stored(&scopes, &organizations)
        .map_err(|detail| StoreError::corrupt(None, None, format!("API key scopes: {detail}")))?;
    Ok(ApiKey {
        id: row.get(0),
        name: row.get(1),
        created_at: row.get(2),
        revoked_at: row.get(3),
        grants,
    })
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn is_uninitialized(&self) -> StoreResult<bool> {
        let rows = self
            .query(
                "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                &[],
            )
            .await?;
        Ok(rows.first().is_some_and(|row| row.get(0)))
    }

    async fn initialize(&self, key: NewApiKey, user: NewUser) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // Replicas starting together on an empty database queue here; the first stores
        // its key and user, the others then see a database that is no longer empty.
        execute_in(
            &transaction,
            "SELECT pg_advisory_xact_lock($1)",
            &[&INITIALIZE_LOCK],
        )
        .await?;
        let empty: bool = query_in(
            &transaction,
            "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
            &[],
        )
        .await?
        .first()
        .is_some_and(|row| row.get(0));
        if !empty {
            return Ok(false);
        }
        let (scopes, organizations) = key.grants.stored();
        execute_in(
            &transaction,
            "INSERT INTO api_keys (id, name, secret_hash, created_at, scopes, organization_ids) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &key.id,
                &key.name,
                &key.secret_hash.as_slice(),
                &key.created_at,
                &scopes,
                &organizations,
            ],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[
                &user.id,
                &user.username,
                &user.password_hash,
                &user.created_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(true)
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let (scopes, organizations) = key.grants.stored();
        self.execute(
            "INSERT INTO api_keys (id, name, secret_hash, created_at, scopes, organization_ids) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &key.id,
                &key.name,
                &key.secret_hash.as_slice(),
                &key.created_at,
                &scopes,
                &organizations,
            ],
        )
        .await?;
        Ok(ApiKey {
            id: key.id,
            name: key.name,
            created_at: key.created_at,
            revoked_at: None,
            grants: key.grants,
        })
    }

    async fn find_api_key(&self, secret_hash: [u8; 32]) -> StoreResult<Option<ApiKey>> {
        let row = self
            .query_opt(
                "SELECT id, name, created_at, revoked_at, scopes, organization_ids FROM api_keys WHERE secret_hash = $1",
                &[&secret_hash.as_slice()],
            )
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = self
            .query(
                "SELECT id, name, created_at, revoked_at, scopes, organization_ids FROM api_keys ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> StoreResult<bool> {
        let changed = self
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .await
            .map_err(database_error)?;
        match client
            .execute(
                &statement,
                &[
                    &user.id,
                    &user.username,
                    &user.password_hash,
                    &user.created_at,
                ],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error, "users_username_key") => {
                Err(StoreError::UsernameTaken)
            }
            Err(error) => Err(database_error(error)),
        }
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = self
            .query_opt(
                "SELECT id, username, password_hash, created_at FROM users WHERE username = $1",
                &[&username],
            )
            .await?;
        Ok(row.map(|row| User {
            id: row.get(0),
            username: row.get(1),
            password_hash: row.get(2),
            created_at: row.get(3),
        }))
    }

    async fn reset_user_password(
        &self,
        username: &str,
        password_hash: String,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        let updated = execute_in(
            &transaction,
            "UPDATE users SET password_hash = $1 WHERE username = $2",
            &[&password_hash, &username],
        )
        .await?;
        execute_in(
            &transaction,
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            &[&username],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(updated > 0)
    }
}
