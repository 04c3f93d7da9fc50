//! Merkle-tree bookkeeping both backends share: assembling a range of leaf hashes from
//! stored bytes and kept hashes, and deciding which purged leaves must be kept.

use std::collections::{BTreeSet, HashSet};

use stele_core::merkle::{leaf_hash, Hash, STORED_LEVEL_STRIDE};

use crate::{StoreError, StoreResult};

/// Leaf hashes of leaves `[start, end)` (leaf `i` is sequence `i + 1`), filled from the
/// events still stored, then from the level-0 hashes kept for purged ones.
pub(crate) struct LeafAssembly {
    start: u64,
    found: Vec<Option<Hash>>,
}

impl LeafAssembly {
    pub(crate) fn new(start: u64, end: u64) -> Self {
        Self {
            start,
            found: vec![None; end.saturating_sub(start) as usize],
        }
    }

    /// A stored event's bytes.
    pub(crate) fn stored(&mut self, sequence: i64, canonical: &[u8]) {
        if let Some(slot) = (sequence as u64)
            .checked_sub(1 + self.start)
            .and_then(|offset| self.found.get_mut(offset as usize))
        {
            *slot = Some(leaf_hash(canonical));
        }
    }

    /// Whether some leaf is still unknown (so kept hashes must be read).
    pub(crate) fn has_gaps(&self) -> bool {
        self.found.iter().any(Option::is_none)
    }

    /// A kept leaf hash (level-0 node `index`); a stored event's bytes take precedence.
    pub(crate) fn kept(&mut self, index: u64, hash: Hash) {
        if let Some(slot) = index
            .checked_sub(self.start)
            .and_then(|offset| self.found.get_mut(offset as usize))
        {
            slot.get_or_insert(hash);
        }
    }

    /// Every leaf hash, or [`StoreError::Corrupt`] naming the first leaf neither stored
    /// nor kept.
    pub(crate) fn finish(self, organization_id: &str) -> StoreResult<Vec<Hash>> {
        let start = self.start;
        self.found
            .into_iter()
            .enumerate()
            .map(|(offset, hash)| {
                hash.ok_or_else(|| {
                    StoreError::corrupt(
                        Some(organization_id),
                        Some((start + offset as u64 + 1) as i64),
                        "the event is neither stored nor kept as a hash",
                    )
                })
            })
            .collect()
    }
}

/// The level-8 block (256 leaves) each purged `(sequence, bytes)` belongs to, distinct
/// and ascending.
pub(crate) fn purged_blocks(purged: &[(i64, &[u8])]) -> Vec<i64> {
    purged
        .iter()
        .map(|(sequence, _)| block_of(*sequence))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The leaf hashes a purge must keep: those of purged events whose block has no stored
/// level-8 node (`covered`), since nothing else could reproduce them once the bytes are gone.
pub(crate) fn kept_leaf_hashes(
    purged: &[(i64, &[u8])],
    covered: &HashSet<i64>,
) -> Vec<(u64, Hash)> {
    purged
        .iter()
        .filter(|(sequence, _)| !covered.contains(&block_of(*sequence)))
        .map(|(sequence, bytes)| (*sequence as u64 - 1, leaf_hash(bytes)))
        .collect()
}

fn block_of(sequence: i64) -> i64 {
    ((sequence as u64 - 1) >> STORED_LEVEL_STRIDE) as i64
}
