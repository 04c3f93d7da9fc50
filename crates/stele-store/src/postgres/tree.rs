//! PostgreSQL side of the Merkle trees: leaf hashes from stored bytes (or kept hashes of
//! purged events), stored subtree nodes, checkpoints and signing keys. Writes that two replicas may race on
//! (nodes, checkpoints, keys) are insert-or-ignore, so the first one stored stays in force.

use super::database_error;
use super::execute_in;
use super::query_in;
use super::read_snapshot;
use super::PostgresStore;
use crate::prelude::*;
use crate::shared::encoding::hash_from;
use crate::shared::tree::{kept_leaf_hashes, purged_blocks, LeafAssembly};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::collections::HashSet;
use stele_core::merkle::Hash;
use stele_core::merkle::STORED_LEVEL_STRIDE;
use stele_core::model::Checkpoint;
use stele_core::model::SigningKeyRecord;
use stele_core::model::UncheckpointedLog;
use stele_core::timestamp::UnixMillis;
use tokio_postgres::Row;

pub(super) async fn tree_size(
    client: &impl GenericClient,
    organization_id: &str,
) -> StoreResult<u64> {
    // The head holds the newest committed sequence, purged events included; a deleted
    // organization's size was recorded when its head went.
    let rows = query_in(
        client,
        "SELECT COALESCE(
             (SELECT sequence FROM chain_heads WHERE organization_id = $1),
             (SELECT tree_size FROM deleted_organizations WHERE id = $1),
             0)",
        &[&organization_id],
    )
    .await?;
    Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
}

pub(super) async fn leaf_hashes(
    client: &impl GenericClient,
    organization_id: &str,
    start: u64,
    end: u64,
) -> StoreResult<Vec<Hash>> {
    let mut leaves = LeafAssembly::new(start, end);
    for row in query_in(
        client,
        "SELECT sequence, canonical FROM events
         WHERE organization_id = $1 AND sequence > $2 AND sequence <= $3",
        &[&organization_id, &(start as i64), &(end as i64)],
    )
    .await?
    {
        leaves.stored(row.get(0), row.get(1));
    }
    if leaves.has_gaps() {
        for (index, hash) in tree_nodes(client, organization_id, 0, start, end).await? {
            leaves.kept(index, hash);
        }
    }
    leaves.finish(organization_id)
}

pub(super) async fn tree_nodes(
    client: &impl GenericClient,
    organization_id: &str,
    level: u8,
    start: u64,
    end: u64,
) -> StoreResult<Vec<(u64, Hash)>> {
    query_in(
        client,
        "SELECT node_index, hash FROM merkle_nodes
         WHERE organization_id = $1 AND level = $2 AND node_index >= $3 AND node_index < $4
         ORDER BY node_index",
        &[
            &organization_id,
            &i32::from(level),
            &(start as i64),
            &(end as i64),
        ],
    )
    .await?
    .into_iter()
    .map(|row| {
        Ok((
            row.get::<_, i64>(0) as u64,
            hash_from(row.get(1), organization_id, None, "a tree node")?,
        ))
    })
    .collect()
}

pub(super) async fn tree_node_count(
    client: &impl GenericClient,
    organization_id: &str,
    level: u8,
) -> StoreResult<u64> {
    let rows = query_in(
        client,
        "SELECT COALESCE(MAX(node_index) + 1, 0) FROM merkle_nodes
         WHERE organization_id = $1 AND level = $2",
        &[&organization_id, &i32::from(level)],
    )
    .await?;
    Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
}

pub(super) async fn store_tree_nodes(
    client: &impl GenericClient,
    organization_id: &str,
    level: u8,
    nodes: &[(u64, Hash)],
) -> StoreResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let indexes: Vec<i64> = nodes.iter().map(|(index, _)| *index as i64).collect();
    let hashes: Vec<&[u8]> = nodes.iter().map(|(_, hash)| hash.as_slice()).collect();
    execute_in(
        client,
        "INSERT INTO merkle_nodes (organization_id, level, node_index, hash)
         SELECT $1, $2, node_index, hash FROM UNNEST($3::int8[], $4::bytea[]) AS u(node_index, hash)
         ON CONFLICT DO NOTHING",
        &[&organization_id, &i32::from(level), &indexes, &hashes],
    )
    .await?;
    Ok(())
}

/// Called by a purge before it deletes `purged` (sequence, bytes): keeps the leaf hash of
/// every purged event whose 256-leaf block has no level-8 node yet, since nothing else
/// could reproduce it once the bytes are gone.
pub(super) async fn keep_purged_leaf_hashes(
    client: &impl GenericClient,
    organization_id: &str,
    purged: &[(i64, &[u8])],
) -> StoreResult<()> {
    let blocks = purged_blocks(purged);
    let covered: HashSet<i64> = query_in(
        client,
        "SELECT node_index FROM merkle_nodes
         WHERE organization_id = $1 AND level = $2 AND node_index = ANY($3)",
        &[&organization_id, &i32::from(STORED_LEVEL_STRIDE), &blocks],
    )
    .await?
    .iter()
    .map(|row| row.get(0))
    .collect();
    let kept = kept_leaf_hashes(purged, &covered);
    store_tree_nodes(client, organization_id, 0, &kept).await
}

pub(super) const CHECKPOINT_COLUMNS: &str =
    "organization_id, tree_size, root_hash, note, key_id, created_at";

pub(super) fn checkpoint_from_row(row: &Row) -> StoreResult<Checkpoint> {
    let organization_id: String = row.get(0);
    Ok(Checkpoint {
        root_hash: hash_from(row.get(2), &organization_id, None, "a checkpoint root")?,
        tree_size: row.get::<_, i64>(1) as u64,
        note: row.get(3),
        key_id: row.get(4),
        created_at: row.get(5),
        organization_id: organization_id.into(),
    })
}

pub(super) async fn query_checkpoints(
    client: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<Vec<Checkpoint>> {
    query_in(
        client,
        &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE {condition}"),
        params,
    )
    .await?
    .iter()
    .map(checkpoint_from_row)
    .collect()
}

pub(super) async fn save_checkpoint(
    client: &impl GenericClient,
    checkpoint: &Checkpoint,
) -> StoreResult<Checkpoint> {
    execute_in(
        client,
        "INSERT INTO checkpoints (organization_id, tree_size, root_hash, note, key_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        &[
            &checkpoint.organization_id,
            &(checkpoint.tree_size as i64),
            &checkpoint.root_hash.as_slice(),
            &checkpoint.note,
            &checkpoint.key_id,
            &checkpoint.created_at,
        ],
    )
    .await?;
    query_checkpoints(
        client,
        "organization_id = $1 AND tree_size = $2",
        &[&checkpoint.organization_id, &(checkpoint.tree_size as i64)],
    )
    .await?
    .pop()
    .ok_or_else(|| StoreError::Internal("a saved checkpoint could not be read back".into()))
}

pub(super) async fn uncheckpointed_logs(
    client: &impl GenericClient,
) -> StoreResult<Vec<UncheckpointedLog>> {
    Ok(query_in(
        client,
        "SELECT organization_id, size, done FROM (
             SELECT h.organization_id, h.sequence AS size,
                    COALESCE((SELECT MAX(tree_size) FROM checkpoints c
                              WHERE c.organization_id = h.organization_id), 0) AS done
             FROM chain_heads h) AS logs
         WHERE size > done ORDER BY organization_id",
        &[],
    )
    .await?
    .iter()
    .map(|row| UncheckpointedLog {
        organization_id: row.get(0),
        tree_size: row.get::<_, i64>(1) as u64,
        checkpointed_size: row.get::<_, i64>(2) as u64,
    })
    .collect())
}

pub(super) async fn register_signing_key(
    client: &impl GenericClient,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    execute_in(
        client,
        "INSERT INTO signing_keys (key_id, verifier_key, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[&key.key_id, &key.verifier_key, &key.created_at],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_signing_keys(
    client: &impl GenericClient,
) -> StoreResult<Vec<SigningKeyRecord>> {
    Ok(query_in(
        client,
        "SELECT key_id, verifier_key, created_at FROM signing_keys
         ORDER BY created_at, key_id COLLATE \"C\"",
        &[],
    )
    .await?
    .iter()
    .map(|row| SigningKeyRecord {
        key_id: row.get(0),
        verifier_key: row.get(1),
        created_at: row.get(2),
    })
    .collect())
}

pub(super) async fn event_bytes(
    client: &impl GenericClient,
    organization_id: &str,
    after_sequence: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, Vec<u8>)>> {
    Ok(query_in(
        client,
        "SELECT sequence, canonical FROM events
         WHERE organization_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        &[&organization_id, &after_sequence, &i64::from(limit)],
    )
    .await?
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect())
}

pub(super) async fn thin_checkpoints(
    client: &impl GenericClient,
    older_than: i64,
    keep_one_per_ms: i64,
) -> StoreResult<u64> {
    execute_in(
        client,
        "DELETE FROM checkpoints WHERE created_at < $1
           AND (organization_id, tree_size) NOT IN (
               SELECT organization_id, MAX(tree_size) FROM checkpoints
               WHERE created_at < $1
               GROUP BY organization_id, created_at / $2)",
        &[&older_than, &keep_one_per_ms.max(1)],
    )
    .await
}

#[async_trait]
impl TreeStore for PostgresStore {
    async fn tree_size(&self, organization_id: &str) -> StoreResult<u64> {
        tree_size(&self.client().await?, organization_id).await
    }

    async fn leaf_hashes(
        &self,
        organization_id: &str,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Hash>> {
        let mut client = self.client().await?;
        // One snapshot: a purge committing between the two reads inside must not hide a
        // leaf from both.
        let transaction = read_snapshot(&mut client).await?;
        let hashes = leaf_hashes(&transaction, organization_id, start, end).await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(hashes)
    }

    async fn tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        tree_nodes(&self.client().await?, organization_id, level, start, end).await
    }

    async fn tree_node_count(&self, organization_id: &str, level: u8) -> StoreResult<u64> {
        tree_node_count(&self.client().await?, organization_id, level).await
    }

    async fn store_tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        nodes: Vec<(u64, Hash)>,
    ) -> StoreResult<()> {
        store_tree_nodes(&self.client().await?, organization_id, level, &nodes).await
    }

    async fn save_checkpoint(&self, checkpoint: Checkpoint) -> StoreResult<Checkpoint> {
        save_checkpoint(&self.client().await?, &checkpoint).await
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> StoreResult<Option<Checkpoint>> {
        Ok(query_checkpoints(
            &self.client().await?,
            "organization_id = $1 ORDER BY tree_size DESC LIMIT 1",
            &[&organization_id],
        )
        .await?
        .pop())
    }

    async fn checkpoint_covering(
        &self,
        organization_id: &str,
        min_size: u64,
    ) -> StoreResult<Option<Checkpoint>> {
        Ok(query_checkpoints(
            &self.client().await?,
            "organization_id = $1 AND tree_size >= $2 ORDER BY tree_size LIMIT 1",
            &[&organization_id, &(min_size as i64)],
        )
        .await?
        .pop())
    }

    async fn list_checkpoints(
        &self,
        organization_id: &str,
        after_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<Checkpoint>> {
        query_checkpoints(
            &self.client().await?,
            "organization_id = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
            &[&organization_id, &(after_size as i64), &i64::from(limit)],
        )
        .await
    }

    async fn thin_checkpoints(
        &self,
        older_than: UnixMillis,
        keep_one_per_ms: i64,
    ) -> StoreResult<u64> {
        thin_checkpoints(&self.client().await?, older_than, keep_one_per_ms).await
    }

    async fn uncheckpointed_logs(&self) -> StoreResult<Vec<UncheckpointedLog>> {
        uncheckpointed_logs(&self.client().await?).await
    }

    /// Only events after each log's newest checkpoint are read (the primary key's range),
    /// so the cost follows what is still unsigned, not the size of the log.
    async fn oldest_unsigned_event_received_at(&self) -> StoreResult<Option<UnixMillis>> {
        Ok(self
            .query_opt(
                "SELECT MIN(e.received_at)
             FROM (SELECT o.id AS organization_id,
                          COALESCE((SELECT MAX(tree_size) FROM checkpoints c
                                    WHERE c.organization_id = o.id), 0) AS done
                   FROM organizations o) AS logs
             JOIN events e ON e.organization_id = logs.organization_id
                          AND e.sequence > logs.done",
                &[],
            )
            .await?
            .and_then(|row| row.get::<_, Option<i64>>(0)))
    }

    async fn register_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
        register_signing_key(&self.client().await?, &key).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        list_signing_keys(&self.client().await?).await
    }

    async fn event_bytes(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        event_bytes(
            &self.client().await?,
            organization_id,
            after_sequence,
            limit,
        )
        .await
    }

    async fn organization_ids(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .query("SELECT id FROM organizations ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }
}
