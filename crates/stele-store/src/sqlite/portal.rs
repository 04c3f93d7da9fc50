//! Admin Portal links and portal sessions in SQLite.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::encoding::portal_intent;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::OptionalExtension;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;

/// The columns a portal session is read from, in [`session_from_row`]'s order.
const SESSION_COLUMNS: &str =
    "organization_id, intent, external_user_id, return_url, created_at, expires_at";

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(PortalSession, String)> {
    let intent: String = row.get(1)?;
    Ok((
        PortalSession {
            organization_id: row.get(0)?,
            // Checked by the caller, which can return a store error.
            intent: PortalIntent::AuditLogs,
            external_user_id: row.get(2)?,
            return_url: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
        },
        intent,
    ))
}

fn with_intent(found: Option<(PortalSession, String)>) -> StoreResult<Option<PortalSession>> {
    found
        .map(|(mut session, intent)| {
            session.intent = portal_intent(&intent)?;
            Ok(session)
        })
        .transpose()
}

#[async_trait]
impl PortalStore for SqliteStore {
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                for table in ["portal_links", "portal_sessions"] {
                    connection
                        .execute(
                            &format!("DELETE FROM {table} WHERE expires_at <= ?1"),
                            [link.created_at],
                        )
                        .map_err(database_error)?;
                }
                connection
                    .execute(
                        "INSERT INTO portal_links (token_hash, organization_id, intent, external_user_id, return_url, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            link.token_hash.as_slice(),
                            link.organization_id,
                            link.intent.as_str(),
                            link.external_user_id,
                            link.return_url,
                            link.created_at,
                            link.expires_at
                        ],
                    )
                    .map(|_| ())
                    .map_err(|error| match error.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => {
                            StoreError::OrganizationNotFound
                        }
                        _ => database_error(error),
                    })
            })
            .await
    }

    async fn redeem_portal_link(
        &self,
        link_hash: [u8; 32],
        session: NewPortalSession,
    ) -> StoreResult<Option<PortalSession>> {
        self.writer
            .write(move |connection| {
                let redeemed = connection
                    .query_row(
                        &format!(
                            "DELETE FROM portal_links WHERE token_hash = ?1 AND expires_at > ?2
                             RETURNING {SESSION_COLUMNS}"
                        ),
                        params![link_hash.as_slice(), session.created_at],
                        session_from_row,
                    )
                    .optional()
                    .map_err(database_error)?;
                let Some(mut started) = with_intent(redeemed)? else {
                    return Ok(None);
                };
                started.created_at = session.created_at;
                started.expires_at = session.expires_at;
                connection
                    .execute(
                        "INSERT INTO portal_sessions (token_hash, organization_id, intent, external_user_id, return_url, created_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            session.token_hash.as_slice(),
                            started.organization_id,
                            started.intent.as_str(),
                            started.external_user_id,
                            started.return_url,
                            started.created_at,
                            started.expires_at
                        ],
                    )
                    .map_err(database_error)?;
                Ok(Some(started))
            })
            .await
    }

    async fn find_portal_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<PortalSession>> {
        self.readers
            .read(move |connection| {
                let found = connection
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLUMNS} FROM portal_sessions
                         WHERE token_hash = ?1 AND expires_at > ?2"
                    ))
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![token_hash.as_slice(), now], session_from_row)
                            .optional()
                    })
                    .map_err(database_error)?;
                with_intent(found)
            })
            .await
    }

    async fn end_portal_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "DELETE FROM portal_sessions WHERE token_hash = ?1",
                        [token_hash.as_slice()],
                    )
                    .map(|_| ())
                    .map_err(database_error)
            })
            .await
    }

    async fn revoke_portal_access(
        &self,
        organization_id: &str,
        external_user_id: &str,
    ) -> StoreResult<PortalRevocation> {
        let (organization_id, external_user_id) =
            (organization_id.to_owned(), external_user_id.to_owned());
        self.writer
            .write(move |connection| {
                let mut revoked = [0u64; 2];
                for (count, table) in revoked.iter_mut().zip(["portal_links", "portal_sessions"]) {
                    *count = connection
                        .execute(
                            &format!(
                                "DELETE FROM {table} WHERE organization_id = ?1 AND external_user_id = ?2"
                            ),
                            params![organization_id, external_user_id],
                        )
                        .map_err(database_error)? as u64;
                }
                Ok(PortalRevocation {
                    links: revoked[0],
                    sessions: revoked[1],
                })
            })
            .await
    }
}
