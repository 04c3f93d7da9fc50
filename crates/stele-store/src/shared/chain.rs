//! The end-to-end chain check, walked once for both backends: each backend streams
//! `(organization, sequence, bytes, hash)` rows in `(organization, sequence)` order inside
//! one snapshot, and [`ChainWalk`] re-checks them in bounded memory.

use std::collections::HashMap;

use stele_core::chain::{ChainHash, ChainVerifier, StoredLink};
use stele_core::model::VerifyReport;

use super::encoding::hash_from;
use crate::StoreResult;

/// How often (in events) the walk reports progress.
const PROGRESS_EVERY: u64 = 10_000;

/// Where each organization's retained chain starts after a purge: its first retained
/// sequence and the hash of the event before it, from `chain_anchors` rows
/// `(organization, first_sequence, previous_hash)`.
pub(crate) fn chain_anchors(
    rows: impl IntoIterator<Item = (String, i64, Vec<u8>)>,
) -> StoreResult<HashMap<String, (i64, ChainHash)>> {
    rows.into_iter()
        .map(|(organization, first_sequence, hash)| {
            let hash = hash_from(
                &hash,
                &organization,
                Some(first_sequence - 1),
                "the chain anchor's hash",
            )?;
            Ok((organization, (first_sequence, hash)))
        })
        .collect()
}

pub(crate) struct ChainWalk<'p> {
    anchors: HashMap<String, (i64, ChainHash)>,
    current: Option<(String, ChainVerifier)>,
    report: VerifyReport,
    progress: &'p mut (dyn FnMut(u64) + Send),
}

impl<'p> ChainWalk<'p> {
    pub(crate) fn new(
        anchors: HashMap<String, (i64, ChainHash)>,
        progress: &'p mut (dyn FnMut(u64) + Send),
    ) -> Self {
        Self {
            anchors,
            current: None,
            report: VerifyReport {
                organizations: 0,
                events: 0,
                first_break: None,
            },
            progress,
        }
    }

    /// Checks the next stored event; `false` once the chain is broken (the walk stops at
    /// the first break).
    pub(crate) fn push(
        &mut self,
        organization: &str,
        sequence: i64,
        canonical: &[u8],
        hash: &[u8],
    ) -> bool {
        if self
            .current
            .as_ref()
            .is_none_or(|(id, _)| id != organization)
        {
            self.report.organizations += 1;
            let verifier = match self.anchors.get(organization) {
                Some((first_sequence, previous_hash)) => {
                    ChainVerifier::new(*first_sequence, *previous_hash)
                }
                None => ChainVerifier::from_genesis(),
            };
            self.current = Some((organization.to_owned(), verifier));
        }
        if let Some((_, verifier)) = self.current.as_mut() {
            if let Err(chain_break) = verifier.push(&StoredLink {
                sequence,
                canonical_bytes: canonical,
                hash,
            }) {
                self.report.first_break = Some((organization.into(), chain_break));
                return false;
            }
        }
        self.report.events += 1;
        if self.report.events.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.report.events);
        }
        true
    }

    pub(crate) fn finish(self) -> VerifyReport {
        if self.report.first_break.is_none() {
            (self.progress)(self.report.events);
        }
        self.report
    }
}
