//! Dashboard sessions in PostgreSQL.

use super::database_error;
use super::execute_in;
use super::PostgresStore;
use crate::prelude::*;
use async_trait::async_trait;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        execute_in(
            &transaction,
            "DELETE FROM sessions WHERE expires_at <= $1",
            &[&session.created_at],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[
                &session.token_hash.as_slice(),
                &session.user_id,
                &session.created_at,
                &session.expires_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)
    }

    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<Session>> {
        let row = self
            .query_opt(
                "SELECT s.user_id, u.username, s.created_at, s.expires_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash.as_slice(), &now],
            )
            .await?;
        Ok(row.map(|row| Session {
            user_id: row.get(0),
            username: row.get(1),
            created_at: row.get(2),
            expires_at: row.get(3),
        }))
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token_hash.as_slice()],
        )
        .await
        .map(|_| ())
    }
}
