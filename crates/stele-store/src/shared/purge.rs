//! What a retention purge removes and records, decided once for both backends.

use stele_core::model::PurgeOutcome;
use stele_core::timestamp::UnixMillis;

use crate::shared::encoding::stored_targets;
use crate::StoreResult;

/// One of the oldest events of an organization, as a purge reads it.
pub(crate) struct PrefixRow {
    pub(crate) sequence: i64,
    pub(crate) received_at: UnixMillis,
    pub(crate) canonical: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

/// The events a purge removes: the oldest in sequence order, up to the first one received
/// at or after the cutoff, so a purge only ever removes a prefix of the chain.
pub(crate) struct PurgePlan {
    expired: Vec<PrefixRow>,
    more: bool,
}

impl PurgePlan {
    /// `prefix` is up to `batch` of the organization's oldest events; `None` when none
    /// of them has expired.
    pub(crate) fn new(mut prefix: Vec<PrefixRow>, cutoff: UnixMillis, batch: u32) -> Option<Self> {
        let expired = prefix
            .iter()
            .take_while(|row| row.received_at < cutoff)
            .count();
        if expired == 0 {
            return None;
        }
        prefix.truncate(expired);
        Some(Self {
            more: expired == batch as usize,
            expired: prefix,
        })
    }

    /// `(sequence, bytes)` of every purged event, for keeping leaf hashes.
    pub(crate) fn leaves(&self) -> Vec<(i64, &[u8])> {
        self.expired
            .iter()
            .map(|row| (row.sequence, row.canonical.as_slice()))
            .collect()
    }

    /// The last purged sequence; the retained chain starts after it.
    pub(crate) fn last_sequence(&self) -> i64 {
        self.expired.last().map_or(0, |row| row.sequence)
    }

    /// The last purged event's hash, from which the retained chain continues.
    pub(crate) fn anchor_hash(&self) -> &[u8] {
        self.expired.last().map_or(&[], |row| row.hash.as_slice())
    }

    /// `(target id, sequence)` of every target row of the purged events, read from their
    /// stored bytes (target rows are keyed by target id).
    pub(crate) fn targets(&self, organization_id: &str) -> StoreResult<Vec<(String, i64)>> {
        let mut targets = Vec::new();
        for row in &self.expired {
            let stored = stored_targets(&row.canonical, organization_id, row.sequence)?;
            targets.extend(stored.into_iter().map(|target| (target.id, row.sequence)));
        }
        Ok(targets)
    }

    pub(crate) fn outcome(&self, purged: u64) -> PurgeOutcome {
        PurgeOutcome {
            purged,
            more: self.more,
        }
    }
}
