//! Admin Portal links and portal sessions in PostgreSQL.

use super::database_error;
use super::PostgresStore;
use super::{execute_in, query_in};
use crate::prelude::*;
use crate::shared::encoding::portal_intent;
use async_trait::async_trait;
use stele_core::model::*;
use stele_core::timestamp::UnixMillis;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// The columns a portal session is read from, in [`session_from_row`]'s order.
const SESSION_COLUMNS: &str =
    "organization_id, intent, external_user_id, return_url, created_at, expires_at";

fn session_from_row(row: &Row) -> StoreResult<PortalSession> {
    Ok(PortalSession {
        organization_id: row.get(0),
        intent: portal_intent(row.get(1))?,
        external_user_id: row.get(2),
        return_url: row.get(3),
        created_at: row.get(4),
        expires_at: row.get(5),
    })
}

#[async_trait]
impl PortalStore for PostgresStore {
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        for table in ["portal_links", "portal_sessions"] {
            execute_in(
                &transaction,
                &format!("DELETE FROM {table} WHERE expires_at <= $1"),
                &[&link.created_at],
            )
            .await?;
        }
        let statement = transaction
            .prepare_cached(
                "INSERT INTO portal_links (token_hash, organization_id, intent, external_user_id, return_url, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(database_error)?;
        transaction
            .execute(
                &statement,
                &[
                    &link.token_hash.as_slice(),
                    &link.organization_id,
                    &link.intent.as_str(),
                    &link.external_user_id,
                    &link.return_url,
                    &link.created_at,
                    &link.expires_at,
                ],
            )
            .await
            .map_err(|error| {
                if error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::OrganizationNotFound
                } else {
                    database_error(error)
                }
            })?;
        transaction.commit().await.map_err(database_error)
    }

    async fn redeem_portal_link(
        &self,
        link_hash: [u8; 32],
        session: NewPortalSession,
    ) -> StoreResult<Option<PortalSession>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The row lock taken by DELETE makes a racing redemption wait, then find nothing.
        let rows = query_in(
            &transaction,
            &format!(
                "DELETE FROM portal_links WHERE token_hash = $1 AND expires_at > $2
                 RETURNING {SESSION_COLUMNS}"
            ),
            &[&link_hash.as_slice(), &session.created_at],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut started = session_from_row(row)?;
        started.created_at = session.created_at;
        started.expires_at = session.expires_at;
        execute_in(
            &transaction,
            "INSERT INTO portal_sessions (token_hash, organization_id, intent, external_user_id, return_url, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &session.token_hash.as_slice(),
                &started.organization_id,
                &started.intent.as_str(),
                &started.external_user_id,
                &started.return_url,
                &started.created_at,
                &started.expires_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Some(started))
    }

    async fn find_portal_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<PortalSession>> {
        self.query_opt(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM portal_sessions
                 WHERE token_hash = $1 AND expires_at > $2"
            ),
            &[&token_hash.as_slice(), &now],
        )
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn end_portal_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM portal_sessions WHERE token_hash = $1",
            &[&token_hash.as_slice()],
        )
        .await
        .map(|_| ())
    }

    async fn revoke_portal_access(
        &self,
        organization_id: &str,
        external_user_id: &str,
    ) -> StoreResult<PortalRevocation> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        let mut revoked = [0u64; 2];
        for (count, table) in revoked.iter_mut().zip(["portal_links", "portal_sessions"]) {
            *count = execute_in(
                &transaction,
                &format!(
                    "DELETE FROM {table} WHERE organization_id = $1 AND external_user_id = $2"
                ),
                &[&organization_id, &external_user_id],
            )
            .await?;
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(PortalRevocation {
            links: revoked[0],
            sessions: revoked[1],
        })
    }
}
