//! Dashboard sessions in SQLite.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::OptionalExtension;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sessions WHERE expires_at <= ?1",
                        [session.created_at],
                    )
                    .map_err(database_error)?;
                connection
                    .execute(
                        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            session.token_hash.as_slice(),
                            session.user_id,
                            session.created_at,
                            session.expires_at
                        ],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }

    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<Session>> {
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT s.user_id, u.username, s.created_at, s.expires_at
                         FROM sessions s JOIN users u ON u.id = s.user_id
                         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![token_hash.as_slice(), now], |row| {
                                Ok(Session {
                                    user_id: row.get(0)?,
                                    username: row.get(1)?,
                                    created_at: row.get(2)?,
                                    expires_at: row.get(3)?,
                                })
                            })
                            .optional()
                    })
                    .map_err(database_error)
            })
            .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM sessions WHERE token_hash = ?1",
                        [token_hash.as_slice()],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }
}
