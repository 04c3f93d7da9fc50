//! RFC 9162 (Certificate Transparency v2) Merkle trees over an organization's events.
//!
//! Leaf `i` is the event with sequence `i + 1`; its hash is `SHA-256(0x00 || bytes)` over the
//! exact stored canonical bytes, and an interior node is `SHA-256(0x01 || left || right)`.
//!
//! Everything here is expressed in *perfect subtrees*: the aligned, power-of-two ranges of
//! leaves that [`Subtree`] names. Every hash a root, an inclusion proof or a consistency
//! proof needs is the hash of a range `[start, end)` whose RFC split points fall on such
//! subtrees, so the store only ever has to produce perfect subtree hashes, and it can keep
//! them (see [`STORED_LEVEL_STRIDE`]) once the leaves themselves are purged.
//!
//! Proof construction is two-phase so the caller can do I/O in between: ask which subtrees a
//! proof needs ([`inclusion_proof_ranges`], [`consistency_proof_ranges`]), resolve each
//! range to a hash with [`range_hash`], and the list of hashes is the proof.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The store keeps the hash of every complete perfect subtree whose level is a multiple of
/// this stride (levels 8, 16, 24, …: subtrees of 256, 65,536, … leaves). Any other subtree
/// is at most 256 stored hashes (or leaves) away, which bounds the reads of every proof.
pub const STORED_LEVEL_STRIDE: u8 = 8;

/// The hash of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(bytes);
    hasher.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The aligned subtree of `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    pub level: u8,
    pub index: u64,
}

impl Subtree {
    pub fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    pub fn start(&self) -> u64 {
        self.index << self.level
    }

    pub fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }

    /// The highest stored level at or below this subtree's level (0 means: leaves).
    pub fn stored_level(&self) -> u8 {
        self.level - self.level % STORED_LEVEL_STRIDE
    }
}

/// A range of leaves `[start, end)` whose hash is `MTH(D[start:end])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRange {
    pub start: u64,
    pub end: u64,
}

impl LeafRange {
    pub fn new(start: u64, end: u64) -> Self {
        debug_assert!(start < end, "a Merkle range is never empty");
        Self { start, end }
    }

    /// The perfect subtrees this range splits into, left to right, following RFC 9162's
    /// split at the largest power of two smaller than the size.
    pub fn subtrees(&self) -> Vec<Subtree> {
        let mut out = Vec::new();
        decompose(self.start, self.end, &mut out);
        out
    }
}

fn decompose(start: u64, end: u64, out: &mut Vec<Subtree>) {
    let size = end - start;
    if size.is_power_of_two() && start.is_multiple_of(size) {
        out.push(Subtree {
            level: size.trailing_zeros() as u8,
            index: start / size,
        });
        return;
    }
    let split = largest_power_of_two_below(size);
    decompose(start, start + split, out);
    decompose(start + split, end, out);
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` from the hashes of its [`LeafRange::subtrees`], in that order. RFC
/// 9162 splits off the largest power of two on the left each time, so the range hash is a
/// right fold of the decomposition.
pub fn fold_subtrees(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// The hash of a range, given a way to obtain each perfect subtree's hash.
pub fn range_hash<E>(
    range: LeafRange,
    mut subtree_hash: impl FnMut(Subtree) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let hashes = range
        .subtrees()
        .into_iter()
        .map(&mut subtree_hash)
        .collect::<Result<Vec<_>, E>>()?;
    Ok(fold_subtrees(&hashes))
}

/// The root of a perfect subtree computed from the `2^k` hashes of its aligned children
/// one or more levels below (leaves, or stored nodes), left to right.
pub fn perfect_root(children: &[Hash]) -> Hash {
    debug_assert!(children.len().is_power_of_two());
    let mut level: Vec<Hash> = children.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// The ranges whose hashes form the inclusion proof of leaf `index` in a tree of `size`
/// leaves, in proof order (closest to the leaf first), per RFC 9162 §2.1.3.1.
pub fn inclusion_proof_ranges(index: u64, size: u64) -> Vec<LeafRange> {
    assert!(index < size, "leaf {index} is outside a tree of {size}");
    let mut ranges = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    // Walk down from the root, remembering each sibling; reversed at the end.
    while end - start > 1 {
        let split = largest_power_of_two_below(end - start);
        if m < split {
            ranges.push(LeafRange::new(start + split, end));
            end = start + split;
        } else {
            ranges.push(LeafRange::new(start, start + split));
            start += split;
            m -= split;
        }
    }
    ranges.reverse();
    ranges
}

/// The ranges whose hashes form the consistency proof from a tree of `old_size` leaves to
/// one of `new_size`, in proof order, per RFC 9162 §2.1.4.1. Empty when the sizes are equal.
pub fn consistency_proof_ranges(old_size: u64, new_size: u64) -> Vec<LeafRange> {
    assert!(
        0 < old_size && old_size <= new_size,
        "a consistency proof needs 0 < old size <= new size"
    );
    let mut ranges = Vec::new();
    let (mut start, mut end, mut m) = (0u64, new_size, old_size);
    let mut complete_old_root_known = true;
    loop {
        if m == end - start {
            if !complete_old_root_known {
                ranges.push(LeafRange::new(start, end));
            }
            break;
        }
        let split = largest_power_of_two_below(end - start);
        if m <= split {
            ranges.push(LeafRange::new(start + split, end));
            end = start + split;
        } else {
            ranges.push(LeafRange::new(start, start + split));
            start += split;
            m -= split;
            complete_old_root_known = false;
        }
    }
    ranges.reverse();
    ranges
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {found} hashes where {expected} were expected")]
    WrongLength { expected: usize, found: usize },
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("tree sizes {old} and {new} cannot be compared (need 0 < old <= new)")]
    BadSizes { old: u64, new: u64 },
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_ranges(index, size).len();
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    Ok(r)
}

pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if &root_from_inclusion_proof(index, size, leaf, proof)? == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `new_size` with `new_root` extends the one of `old_size` with
/// `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let expected = consistency_proof_ranges(old_size, new_size).len();
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // When the old tree is a perfect subtree its root is not in the proof: prepend it.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a growing tree: the perfect subtrees that make up `[0, size)`, largest
/// first. Appending a leaf merges equal-sized subtrees, so memory is `O(log size)` however
/// long the log; [`Frontier::root`] is the root of the tree so far.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(Subtree, Hash)>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from known subtree hashes covering `[0, size)` exactly, in decomposition
    /// order (what retention leaves behind when it purges a prefix of the log).
    pub fn from_subtrees(size: u64, nodes: Vec<(Subtree, Hash)>) -> Self {
        debug_assert_eq!(
            nodes.iter().map(|(s, _)| s.end() - s.start()).sum::<u64>(),
            size
        );
        Self { size, nodes }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the next leaf; calls `completed` for each perfect subtree of level >= 1 that
    /// this leaf completes (so a caller can compare or store it).
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(Subtree, &Hash)) {
        let mut subtree = Subtree::leaf(self.size);
        let mut hash = leaf;
        while let Some((top, top_hash)) = self.nodes.last() {
            if top.level != subtree.level {
                break;
            }
            hash = node_hash(top_hash, &hash);
            subtree = Subtree {
                level: subtree.level + 1,
                index: top.index / 2,
            };
            self.nodes.pop();
            completed(subtree, &hash);
        }
        self.nodes.push((subtree, hash));
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.nodes.iter().map(|(_, h)| *h).collect();
        fold_subtrees(&hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("event {i}").into_bytes()).collect()
    }

    /// Every perfect subtree hash straight from the leaves (what the store provides).
    fn subtree_from(data: &[Vec<u8>], subtree: Subtree) -> Hash {
        let hashes: Vec<Hash> = data[subtree.start() as usize..subtree.end() as usize]
            .iter()
            .map(|bytes| leaf_hash(bytes))
            .collect();
        perfect_root(&hashes)
    }

    fn resolve(data: &[Vec<u8>], ranges: &[LeafRange]) -> Vec<Hash> {
        ranges
            .iter()
            .map(|r| range_hash::<()>(*r, |s| Ok(subtree_from(data, s))).expect("infallible"))
            .collect()
    }

    fn oracle(data: &[Vec<u8>]) -> MemoryBackedTree<sha2::Sha256, Vec<u8>> {
        let mut tree = MemoryBackedTree::new();
        for leaf in data {
            tree.push(leaf.clone());
        }
        tree
    }

    fn root_of(data: &[Vec<u8>]) -> Hash {
        if data.is_empty() {
            return empty_root();
        }
        resolve(data, &[LeafRange::new(0, data.len() as u64)])[0]
    }

    #[test]
    fn rfc_shapes_of_small_trees() {
        let data = leaves(7);
        let h: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let expected = node_hash(
            &node_hash(&node_hash(&h[0], &h[1]), &node_hash(&h[2], &h[3])),
            &node_hash(&node_hash(&h[4], &h[5]), &h[6]),
        );
        assert_eq!(root_of(&data), expected);
        assert_eq!(root_of(&[]), empty_root());
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn consistency_to_the_same_size_is_empty_and_checks_equality() {
        let data = leaves(5);
        let root = root_of(&data);
        assert!(consistency_proof_ranges(5, 5).is_empty());
        assert!(verify_consistency(5, 5, &root, &root, &[]).is_ok());
        assert_eq!(
            verify_consistency(5, 5, &root, &empty_root(), &[]),
            Err(ProofError::RootMismatch)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn roots_match_the_oracle(n in 1u64..300) {
            let data = leaves(n);
            let expected: Hash = oracle(&data).root().as_bytes().as_slice().try_into().expect("32 bytes");
            prop_assert_eq!(root_of(&data), expected);
            let mut frontier = Frontier::new();
            for d in &data {
                frontier.push(leaf_hash(d), |_, _| {});
            }
            prop_assert_eq!(frontier.root(), expected);
        }

        #[test]
        fn inclusion_proofs_match_the_oracle(n in 1u64..300, pick in any::<prop::sample::Index>()) {
            let data = leaves(n);
            let index = pick.index(n as usize) as u64;
            let proof = resolve(&data, &inclusion_proof_ranges(index, n));
            let tree = oracle(&data);
            let expected = tree.prove_inclusion(index as usize);
            let ours: Vec<u8> = proof.iter().flatten().copied().collect();
            prop_assert_eq!(ours.as_slice(), expected.as_bytes());
            let root = root_of(&data);
            prop_assert!(verify_inclusion(index, n, &leaf_hash(&data[index as usize]), &proof, &root).is_ok());
            // A different leaf, or the right leaf at another index, does not verify.
            prop_assert!(verify_inclusion(index, n, &leaf_hash(b"forged"), &proof, &root).is_err());
            if n > 1 {
                let other = (index + 1) % n;
                prop_assert!(verify_inclusion(other, n, &leaf_hash(&data[index as usize]), &proof, &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_match_the_oracle(n in 2u64..300, pick in any::<prop::sample::Index>()) {
            let data = leaves(n);
            let old = 1 + pick.index((n - 1) as usize) as u64;
            let proof = resolve(&data, &consistency_proof_ranges(old, n));
            let tree = oracle(&data);
            let expected = tree.prove_consistency((n - old) as usize);
            let ours: Vec<u8> = proof.iter().flatten().copied().collect();
            prop_assert_eq!(ours.as_slice(), expected.as_bytes());
            let old_root = root_of(&data[..old as usize]);
            let new_root = root_of(&data);
            prop_assert!(verify_consistency(old, n, &old_root, &new_root, &proof).is_ok());
            prop_assert!(verify_consistency(old, n, &new_root, &new_root, &proof).is_err());
            let mut edited = data.clone();
            edited[(old - 1) as usize] = b"edited".to_vec();
            prop_assert!(verify_consistency(old, n, &root_of(&edited[..old as usize]), &new_root, &proof).is_err());
        }

        #[test]
        fn frontier_reports_every_completed_subtree(n in 1u64..600) {
            let data = leaves(n);
            let mut frontier = Frontier::new();
            for d in &data {
                frontier.push(leaf_hash(d), |subtree, hash| {
                    assert_eq!(*hash, subtree_from(&data, subtree));
                });
            }
            // Resuming from a decomposition gives the same roots as replaying every leaf.
            let cut = n / 2;
            if cut > 0 {
                let nodes = LeafRange::new(0, cut).subtrees().into_iter().map(|s| (s, subtree_from(&data, s))).collect();
                let mut resumed = Frontier::from_subtrees(cut, nodes);
                for d in &data[cut as usize..] {
                    resumed.push(leaf_hash(d), |_, _| {});
                }
                prop_assert_eq!(resumed.root(), frontier.root());
            }
        }
    }
}
