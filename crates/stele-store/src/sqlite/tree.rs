//! SQLite side of the Merkle trees: leaf hashes from stored bytes (or kept hashes of
//! purged events), stored subtree nodes, checkpoints and signing keys.

use super::database_error;
use super::SqliteStore;
use crate::prelude::*;
use crate::shared::encoding::hash_from;
use crate::shared::tree::{kept_leaf_hashes, purged_blocks, LeafAssembly};
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use rusqlite::Row;
use std::collections::HashSet;
use stele_core::merkle::Hash;
use stele_core::merkle::STORED_LEVEL_STRIDE;
use stele_core::model::Checkpoint;
use stele_core::model::SigningKeyRecord;
use stele_core::model::UncheckpointedLog;
use stele_core::timestamp::UnixMillis;

pub(super) fn tree_size(connection: &Connection, organization_id: &str) -> StoreResult<u64> {
    // The newest stored event, or, when retention purged them all, the anchor the next
    // append continues from.
    let size: i64 = connection
        .prepare_cached(
            "SELECT COALESCE(
                 (SELECT MAX(sequence) FROM events WHERE organization_id = ?1),
                 (SELECT first_sequence - 1 FROM chain_anchors WHERE organization_id = ?1),
                 0)",
        )
        .and_then(|mut statement| statement.query_row([organization_id], |row| row.get(0)))
        .map_err(database_error)?;
    Ok(size as u64)
}

pub(super) fn leaf_hashes(
    connection: &Connection,
    organization_id: &str,
    start: u64,
    end: u64,
) -> StoreResult<Vec<Hash>> {
    let mut leaves = LeafAssembly::new(start, end);
    let mut events = connection
        .prepare_cached(
            "SELECT sequence, canonical FROM events
             WHERE organization_id = ?1 AND sequence > ?2 AND sequence <= ?3",
        )
        .map_err(database_error)?;
    let mut rows = events
        .query(params![organization_id, start as i64, end as i64])
        .map_err(database_error)?;
    while let Some(row) = rows.next().map_err(database_error)? {
        let sequence: i64 = row.get(0).map_err(database_error)?;
        let bytes = row
            .get_ref(1)
            .and_then(|value| Ok(value.as_bytes()?))
            .map_err(database_error)?;
        leaves.stored(sequence, bytes);
    }
    if leaves.has_gaps() {
        for (index, hash) in tree_nodes(connection, organization_id, 0, start, end)? {
            leaves.kept(index, hash);
        }
    }
    leaves.finish(organization_id)
}

pub(super) fn tree_nodes(
    connection: &Connection,
    organization_id: &str,
    level: u8,
    start: u64,
    end: u64,
) -> StoreResult<Vec<(u64, Hash)>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT node_index, hash FROM merkle_nodes
             WHERE organization_id = ?1 AND level = ?2 AND node_index >= ?3 AND node_index < ?4
             ORDER BY node_index",
        )
        .map_err(database_error)?;
    let rows: Vec<(i64, Vec<u8>)> = statement
        .query_map(
            params![organization_id, level, start as i64, end as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    rows.into_iter()
        .map(|(index, hash)| {
            Ok((
                index as u64,
                hash_from(&hash, organization_id, None, "a tree node")?,
            ))
        })
        .collect()
}

pub(super) fn tree_node_count(
    connection: &Connection,
    organization_id: &str,
    level: u8,
) -> StoreResult<u64> {
    let next: i64 = connection
        .prepare_cached(
            "SELECT COALESCE(MAX(node_index) + 1, 0) FROM merkle_nodes
             WHERE organization_id = ?1 AND level = ?2",
        )
        .and_then(|mut statement| {
            statement.query_row(params![organization_id, level], |row| row.get(0))
        })
        .map_err(database_error)?;
    Ok(next as u64)
}

pub(super) fn store_tree_nodes(
    connection: &Connection,
    organization_id: &str,
    level: u8,
    nodes: &[(u64, Hash)],
) -> StoreResult<()> {
    let mut insert = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO merkle_nodes (organization_id, level, node_index, hash)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(database_error)?;
    for (index, hash) in nodes {
        insert
            .execute(params![
                organization_id,
                level,
                *index as i64,
                hash.as_slice()
            ])
            .map_err(database_error)?;
    }
    Ok(())
}

/// Called by a purge before it deletes `purged` (sequence, bytes): keeps the leaf hash of
/// every purged event whose 256-leaf block has no level-8 node yet, since nothing else
/// could reproduce it once the bytes are gone.
pub(super) fn keep_purged_leaf_hashes(
    connection: &Connection,
    organization_id: &str,
    purged: &[(i64, &[u8])],
) -> StoreResult<()> {
    let mut has_block_node = connection
        .prepare_cached(
            "SELECT 1 FROM merkle_nodes WHERE organization_id = ?1 AND level = ?2 AND node_index = ?3",
        )
        .map_err(database_error)?;
    let mut covered = HashSet::new();
    for block in purged_blocks(purged) {
        let stored = has_block_node
            .query_row(params![organization_id, STORED_LEVEL_STRIDE, block], |_| {
                Ok(())
            })
            .optional()
            .map_err(database_error)?;
        if stored.is_some() {
            covered.insert(block);
        }
    }
    let kept = kept_leaf_hashes(purged, &covered);
    store_tree_nodes(connection, organization_id, 0, &kept)
}

pub(super) const CHECKPOINT_COLUMNS: &str =
    "organization_id, tree_size, root_hash, note, key_id, created_at";

pub(super) fn checkpoint_from_row(row: &Row<'_>) -> rusqlite::Result<(Checkpoint, Vec<u8>)> {
    Ok((
        Checkpoint {
            organization_id: row.get(0)?,
            tree_size: row.get::<_, i64>(1)? as u64,
            root_hash: [0; 32],
            note: row.get(3)?,
            key_id: row.get(4)?,
            created_at: row.get(5)?,
        },
        row.get(2)?,
    ))
}

pub(super) fn finish_checkpoint(
    (mut checkpoint, root): (Checkpoint, Vec<u8>),
) -> StoreResult<Checkpoint> {
    checkpoint.root_hash = hash_from(
        &root,
        &checkpoint.organization_id,
        None,
        "a checkpoint root",
    )?;
    Ok(checkpoint)
}

pub(super) fn query_checkpoints(
    connection: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<Checkpoint>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE {condition}"
        ))
        .map_err(database_error)?;
    let rows: Vec<(Checkpoint, Vec<u8>)> = statement
        .query_map(params, checkpoint_from_row)
        .and_then(Iterator::collect)
        .map_err(database_error)?;
    rows.into_iter().map(finish_checkpoint).collect()
}

pub(super) fn save_checkpoint(
    connection: &Connection,
    checkpoint: &Checkpoint,
) -> StoreResult<Checkpoint> {
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO checkpoints (organization_id, tree_size, root_hash, note, key_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                checkpoint.organization_id,
                checkpoint.tree_size as i64,
                checkpoint.root_hash.as_slice(),
                checkpoint.note,
                checkpoint.key_id,
                checkpoint.created_at
            ])
        })
        .map_err(database_error)?;
    query_checkpoints(
        connection,
        "organization_id = ?1 AND tree_size = ?2",
        params![checkpoint.organization_id, checkpoint.tree_size as i64],
    )?
    .pop()
    .ok_or_else(|| StoreError::Internal("a saved checkpoint could not be read back".into()))
}

pub(super) fn uncheckpointed_logs(connection: &Connection) -> StoreResult<Vec<UncheckpointedLog>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT id, size, done FROM (
                 SELECT o.id AS id,
                        COALESCE((SELECT MAX(sequence) FROM events WHERE organization_id = o.id),
                                 (SELECT first_sequence - 1 FROM chain_anchors WHERE organization_id = o.id),
                                 0) AS size,
                        COALESCE((SELECT MAX(tree_size) FROM checkpoints WHERE organization_id = o.id), 0) AS done
                 FROM organizations o)
             WHERE size > done ORDER BY id",
        )
        .map_err(database_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok(UncheckpointedLog {
                organization_id: row.get(0)?,
                tree_size: row.get::<_, i64>(1)? as u64,
                checkpointed_size: row.get::<_, i64>(2)? as u64,
            })
        })
        .and_then(Iterator::collect)
        .map_err(database_error);
    rows
}

/// Only events after each log's newest checkpoint are read (the primary key's range), so
/// the cost follows what is still unsigned, not the size of the log.
pub(super) fn oldest_unsigned_event_received_at(
    connection: &Connection,
) -> StoreResult<Option<UnixMillis>> {
    connection
        .prepare_cached(
            "SELECT MIN(e.received_at)
             FROM (SELECT o.id AS organization_id,
                          COALESCE((SELECT MAX(tree_size) FROM checkpoints c
                                    WHERE c.organization_id = o.id), 0) AS done
                   FROM organizations o) AS logs
             JOIN events e ON e.organization_id = logs.organization_id
                          AND e.sequence > logs.done",
        )
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(database_error)
}

pub(super) fn register_signing_key(
    connection: &Connection,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    connection
        .execute(
            "INSERT OR IGNORE INTO signing_keys (key_id, verifier_key, created_at) VALUES (?1, ?2, ?3)",
            params![key.key_id, key.verifier_key, key.created_at],
        )
        .map_err(database_error)?;
    Ok(())
}

pub(super) fn list_signing_keys(connection: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT key_id, verifier_key, created_at FROM signing_keys ORDER BY created_at, key_id",
        )
        .map_err(database_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok(SigningKeyRecord {
                key_id: row.get(0)?,
                verifier_key: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(database_error);
    rows
}

pub(super) fn event_bytes(
    connection: &Connection,
    organization_id: &str,
    after_sequence: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, Vec<u8>)>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT sequence, canonical FROM events
             WHERE organization_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
        )
        .map_err(database_error)?;
    let rows = statement
        .query_map(params![organization_id, after_sequence, limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .and_then(Iterator::collect)
        .map_err(database_error);
    rows
}

pub(super) fn thin_checkpoints(
    connection: &Connection,
    older_than: i64,
    keep_one_per_ms: i64,
) -> StoreResult<u64> {
    let deleted = connection
        .execute(
            "DELETE FROM checkpoints WHERE created_at < ?1
               AND (organization_id, tree_size) NOT IN (
                   SELECT organization_id, MAX(tree_size) FROM checkpoints
                   WHERE created_at < ?1
                   GROUP BY organization_id, created_at / ?2)",
            params![older_than, keep_one_per_ms.max(1)],
        )
        .map_err(database_error)?;
    Ok(deleted as u64)
}

#[async_trait]
impl TreeStore for SqliteStore {
    async fn tree_size(&self, organization_id: &str) -> StoreResult<u64> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| tree_size(connection, &organization_id))
            .await
    }

    async fn leaf_hashes(
        &self,
        organization_id: &str,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Hash>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                // One read transaction: a purge between the two queries inside must not
                // hide a leaf from both.
                connection.execute_batch("BEGIN").map_err(database_error)?;
                let hashes = leaf_hashes(connection, &organization_id, start, end);
                let _ = connection.execute_batch("COMMIT");
                hashes
            })
            .await
    }

    async fn tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| tree_nodes(connection, &organization_id, level, start, end))
            .await
    }

    async fn tree_node_count(&self, organization_id: &str, level: u8) -> StoreResult<u64> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| tree_node_count(connection, &organization_id, level))
            .await
    }

    async fn store_tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        nodes: Vec<(u64, Hash)>,
    ) -> StoreResult<()> {
        let organization_id = organization_id.to_owned();
        self.writer
            .write(move |connection| store_tree_nodes(connection, &organization_id, level, &nodes))
            .await
    }

    async fn save_checkpoint(&self, checkpoint: Checkpoint) -> StoreResult<Checkpoint> {
        self.writer
            .write(move |connection| save_checkpoint(connection, &checkpoint))
            .await
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> StoreResult<Option<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                Ok(query_checkpoints(
                    connection,
                    "organization_id = ?1 ORDER BY tree_size DESC LIMIT 1",
                    [organization_id],
                )?
                .pop())
            })
            .await
    }

    async fn checkpoint_covering(
        &self,
        organization_id: &str,
        min_size: u64,
    ) -> StoreResult<Option<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                Ok(query_checkpoints(
                    connection,
                    "organization_id = ?1 AND tree_size >= ?2 ORDER BY tree_size LIMIT 1",
                    params![organization_id, min_size as i64],
                )?
                .pop())
            })
            .await
    }

    async fn list_checkpoints(
        &self,
        organization_id: &str,
        after_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<Checkpoint>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                query_checkpoints(
                    connection,
                    "organization_id = ?1 AND tree_size > ?2 ORDER BY tree_size LIMIT ?3",
                    params![organization_id, after_size as i64, limit],
                )
            })
            .await
    }

    async fn thin_checkpoints(
        &self,
        older_than: UnixMillis,
        keep_one_per_ms: i64,
    ) -> StoreResult<u64> {
        self.writer
            .write(move |connection| thin_checkpoints(connection, older_than, keep_one_per_ms))
            .await
    }

    async fn uncheckpointed_logs(&self) -> StoreResult<Vec<UncheckpointedLog>> {
        self.readers.read(uncheckpointed_logs).await
    }

    async fn oldest_unsigned_event_received_at(&self) -> StoreResult<Option<UnixMillis>> {
        self.readers.read(oldest_unsigned_event_received_at).await
    }

    async fn register_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
        self.writer
            .write(move |connection| register_signing_key(connection, &key))
            .await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.readers.read(list_signing_keys).await
    }

    async fn event_bytes(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let organization_id = organization_id.to_owned();
        self.readers
            .read(move |connection| {
                event_bytes(connection, &organization_id, after_sequence, limit)
            })
            .await
    }

    async fn organization_ids(&self) -> StoreResult<Vec<String>> {
        self.readers
            .read(|connection| {
                let mut statement = connection
                    .prepare_cached("SELECT id FROM organizations ORDER BY id")
                    .map_err(database_error)?;
                let ids = statement
                    .query_map([], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(database_error);
                ids
            })
            .await
    }
}
