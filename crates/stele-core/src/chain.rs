//! The per-organization hash chain.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical_bytes(n))`, with 32 zero bytes before the
//! first event. Each link commits to the exact bytes stored, so altering, removing,
//! reordering or inserting any stored event breaks every later link.

use sha2::{Digest, Sha256};

pub type ChainHash = [u8; 32];

/// The hash that precedes an organization's first event.
pub const GENESIS: ChainHash = [0u8; 32];

pub fn link(previous: &ChainHash, canonical_bytes: &[u8]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes);
    hasher.finalize().into()
}

/// One stored link, as read back for verification.
pub struct StoredLink<'a> {
    pub sequence: i64,
    pub canonical_bytes: &'a [u8],
    pub hash: &'a [u8],
}

/// Why a chain failed verification, naming the first bad sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("sequence {found} found where {expected} was expected (an event was removed, inserted or reordered)")]
    Gap { expected: i64, found: i64 },
    #[error("event {sequence}: stored hash does not match its bytes and predecessor (the event or an earlier one was altered)")]
    HashMismatch { sequence: i64 },
}

/// Incremental verifier: feed links in sequence order, starting from `start_sequence` whose
/// predecessor hash is `anchor` (GENESIS and 1 for a complete log).
pub struct ChainVerifier {
    expected_sequence: i64,
    previous: ChainHash,
}

impl ChainVerifier {
    pub fn new(start_sequence: i64, anchor: ChainHash) -> Self {
        Self {
            expected_sequence: start_sequence,
            previous: anchor,
        }
    }

    pub fn from_genesis() -> Self {
        Self::new(1, GENESIS)
    }

    pub fn push(&mut self, stored: &StoredLink<'_>) -> Result<(), ChainBreak> {
        if stored.sequence != self.expected_sequence {
            return Err(ChainBreak::Gap {
                expected: self.expected_sequence,
                found: stored.sequence,
            });
        }
        let recomputed = link(&self.previous, stored.canonical_bytes);
        if recomputed.as_slice() != stored.hash {
            return Err(ChainBreak::HashMismatch {
                sequence: stored.sequence,
            });
        }
        self.previous = recomputed;
        self.expected_sequence += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(bodies: &[&[u8]]) -> Vec<(i64, Vec<u8>, ChainHash)> {
        let mut previous = GENESIS;
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                previous = link(&previous, body);
                (i as i64 + 1, body.to_vec(), previous)
            })
            .collect()
    }

    fn verify(links: &[(i64, Vec<u8>, ChainHash)]) -> Result<(), ChainBreak> {
        let mut verifier = ChainVerifier::from_genesis();
        for (sequence, body, hash) in links {
            verifier.push(&StoredLink {
                sequence: *sequence,
                canonical_bytes: body,
                hash,
            })?;
        }
        Ok(())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&build(&[b"a", b"b", b"c"])), Ok(()));
    }

    #[test]
    fn altered_body_is_named() {
        let mut links = build(&[b"a", b"b", b"c"]);
        links[1].1 = b"B".to_vec();
        assert_eq!(
            verify(&links),
            Err(ChainBreak::HashMismatch { sequence: 2 })
        );
    }

    #[test]
    fn removed_event_is_a_gap() {
        let mut links = build(&[b"a", b"b", b"c"]);
        links.remove(1);
        assert_eq!(
            verify(&links),
            Err(ChainBreak::Gap {
                expected: 2,
                found: 3
            })
        );
    }
}
