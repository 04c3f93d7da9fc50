//! Tamper evidence: each organization's events form an RFC 9162 Merkle tree; a signed
//! checkpoint commits to its size and root, and inclusion and consistency proofs tie single
//! events and older checkpoints to it. Anyone holding the public key can check them offline.
//!
//! Storage keeps the hash of every complete subtree at levels 8, 16, 24, … (see
//! `stele_core::merkle::STORED_LEVEL_STRIDE`), written by [`ensure_tree_nodes`] before a
//! checkpoint is signed. Any subtree a proof needs is then at most 256 stored hashes or
//! leaves away, and proofs survive retention, which purges bodies but keeps these hashes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use futures_util::future::BoxFuture;
use rand::RngCore;
use sha2::{Digest, Sha256};
use stele_core::merkle::{
    consistency_proof_ranges, inclusion_proof_ranges, leaf_hash, perfect_root, Hash, LeafRange,
    Subtree, STORED_LEVEL_STRIDE,
};
use stele_core::model::{Checkpoint, SigningKeyRecord, UncheckpointedLog};
use stele_core::note::{split_note, CheckpointBody, NoteSigner, NoteVerifier};
use stele_core::proven_jsonl::manifest_text;
use stele_core::timestamp::now_millis;
use stele_store::{Store, StoreResult};

use crate::private_file::{create_private_file, read_private_file};
use crate::services::ServiceError;

/// The deployment's checkpoint signer: its key (from a PEM file) and the origin prefix
/// that names this deployment in every checkpoint.
pub struct CheckpointSigner {
    signer: NoteSigner,
    origin_prefix: String,
}

impl CheckpointSigner {
    /// Loads the PKCS#8 PEM Ed25519 key at `key_file`, generating it (mode 0600) when the
    /// file does not exist. `origin_prefix` names the deployment; it is also the key name.
    pub fn load_or_generate(key_file: &Path, origin_prefix: &str) -> anyhow::Result<Self> {
        let key = match read_key_file(key_file)? {
            Some(key) => key,
            None => generate_key_file(key_file)?,
        };
        let signer = NoteSigner::new(origin_prefix, key)
            .map_err(|error| anyhow::anyhow!("--log-origin: {error}"))?;
        Ok(Self {
            signer,
            origin_prefix: origin_prefix.to_owned(),
        })
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The checkpoint origin of one organization's log: `<deployment>/<organization id>`.
    pub fn origin(&self, organization_id: &str) -> String {
        format!("{}/{organization_id}", self.origin_prefix)
    }

    pub fn sign(&self, text: &str) -> String {
        self.signer.sign(text)
    }
}

/// The PKCS#8 PEM Ed25519 key at `path`, or `None` when there is no such file.
fn read_key_file(path: &Path) -> anyhow::Result<Option<SigningKey>> {
    let Some(pem) =
        read_private_file(path).with_context(|| format!("reading {}", path.display()))?
    else {
        return Ok(None);
    };
    SigningKey::from_pkcs8_pem(&pem).map(Some).map_err(|error| {
        anyhow::anyhow!(
            "{} is not a PKCS#8 PEM Ed25519 private key: {error}",
            path.display()
        )
    })
}

fn generate_key_file(path: &Path) -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|error| anyhow::anyhow!("encoding the signing key: {error}"))?;
    let created = create_private_file(path, pem.as_bytes())
        .with_context(|| format!("creating the signing key file {}", path.display()))?;
    if !created {
        // Another replica, started at the same time, generated the key first.
        return read_key_file(path)?.with_context(|| {
            format!(
                "{} exists but cannot be read (a dangling symbolic link?)",
                path.display()
            )
        });
    }
    tracing::info!(path = %path.display(), "generated a new checkpoint signing key");
    Ok(key)
}

/// Where the signing key lives when `--signing-key-file` is not given: beside the SQLite
/// file, or under `./stele-data` for a server database.
pub fn default_key_file(database_path: Option<&Path>) -> PathBuf {
    database_path
        .and_then(Path::parent)
        .map(|dir| dir.join("signing-key.pem"))
        .unwrap_or_else(|| PathBuf::from("./stele-data/signing-key.pem"))
}

/// Reads subtree hashes of one organization's tree of `size` leaves, from stored nodes
/// where they exist and from leaves otherwise, remembering what it computed. Reading
/// proofs for consecutive leaves (an export) touches each stored node once.
pub struct TreeReader {
    store: Arc<dyn Store>,
    organization_id: String,
    size: u64,
    known: HashMap<Subtree, Hash>,
    /// Cached leaf hashes by 256-leaf block (at most two; see `block_leaves`).
    blocks: Vec<(u64, Vec<Hash>)>,
}

const BLOCK: u64 = 1 << STORED_LEVEL_STRIDE;

impl TreeReader {
    pub fn new(store: Arc<dyn Store>, organization_id: &str, size: u64) -> Self {
        Self {
            store,
            organization_id: organization_id.to_owned(),
            size,
            known: HashMap::new(),
            blocks: Vec::with_capacity(2),
        }
    }

    pub async fn range(&mut self, range: LeafRange) -> StoreResult<Hash> {
        let mut hashes = Vec::new();
        for subtree in range.subtrees() {
            hashes.push(self.subtree(subtree).await?);
        }
        Ok(stele_core::merkle::fold_subtrees(&hashes))
    }

    pub async fn ranges(&mut self, ranges: &[LeafRange]) -> StoreResult<Vec<Hash>> {
        let mut hashes = Vec::with_capacity(ranges.len());
        for range in ranges {
            hashes.push(self.range(*range).await?);
        }
        Ok(hashes)
    }

    fn subtree(&mut self, subtree: Subtree) -> BoxFuture<'_, StoreResult<Hash>> {
        Box::pin(async move {
            if let Some(hash) = self.known.get(&subtree) {
                return Ok(*hash);
            }
            let hash = if subtree.level < STORED_LEVEL_STRIDE {
                let leaves = self.block_leaves(subtree.start() / BLOCK).await?;
                let offset = (subtree.start() % BLOCK) as usize;
                let width = 1usize << subtree.level;
                perfect_root(&leaves[offset..offset + width])
            } else {
                self.stored_or_computed(subtree).await?
            };
            self.known.insert(subtree, hash);
            Ok(hash)
        })
    }

    /// Leaf hashes of one 256-leaf block. Two blocks stay cached: the one being walked and
    /// the tree's last, partial block, which every proof near the right edge touches;
    /// without it, consecutive proofs would reread both blocks for each leaf.
    async fn block_leaves(&mut self, block: u64) -> StoreResult<&[Hash]> {
        let position = match self.blocks.iter().position(|(known, _)| *known == block) {
            Some(position) => position,
            None => {
                let start = block * BLOCK;
                let end = (start + BLOCK).min(self.size);
                let leaves = self
                    .store
                    .leaf_hashes(&self.organization_id, start, end)
                    .await?;
                if self.blocks.len() >= 2 {
                    let last_block = self.size.saturating_sub(1) / BLOCK;
                    let evict = self
                        .blocks
                        .iter()
                        .position(|(known, _)| *known != last_block)
                        .unwrap_or(0);
                    let (evicted, _) = self.blocks.swap_remove(evict);
                    // Lower subtrees are cheap to recompute; forget them with their block.
                    self.known.retain(|subtree, _| {
                        subtree.level >= STORED_LEVEL_STRIDE || subtree.start() / BLOCK != evicted
                    });
                }
                self.blocks.push((block, leaves));
                self.blocks.len() - 1
            }
        };
        Ok(self.blocks[position].1.as_slice())
    }

    /// A subtree at level >= 8: its stored node, or the root of its children at the stored
    /// level below (stored, or computed the same way).
    async fn stored_or_computed(&mut self, subtree: Subtree) -> StoreResult<Hash> {
        let stored_level = subtree.stored_level();
        let child_level = if stored_level == subtree.level {
            if let Some((_, hash)) = self
                .store
                .tree_nodes(
                    &self.organization_id,
                    subtree.level,
                    subtree.index,
                    subtree.index + 1,
                )
                .await?
                .pop()
            {
                return Ok(hash);
            }
            subtree.level - STORED_LEVEL_STRIDE
        } else {
            stored_level
        };
        let span = subtree.level - child_level;
        let first = subtree.index << span;
        let count = 1u64 << span;
        let mut children: Vec<Option<Hash>> = vec![None; count as usize];
        if child_level > 0 {
            for (index, hash) in self
                .store
                .tree_nodes(&self.organization_id, child_level, first, first + count)
                .await?
            {
                children[(index - first) as usize] = Some(hash);
            }
        } else {
            let leaves = self
                .store
                .leaf_hashes(&self.organization_id, first, first + count)
                .await?;
            for (slot, hash) in children.iter_mut().zip(leaves) {
                *slot = Some(hash);
            }
        }
        let mut resolved = Vec::with_capacity(children.len());
        for (offset, child) in children.into_iter().enumerate() {
            resolved.push(match child {
                Some(hash) => hash,
                None => {
                    self.subtree(Subtree {
                        level: child_level,
                        index: first + offset as u64,
                    })
                    .await?
                }
            });
        }
        Ok(perfect_root(&resolved))
    }
}

/// Stores the hash of every complete subtree at the stored levels for a tree of `size`
/// leaves (level 8 from leaves, each higher stored level from the one below), so roots and
/// proofs read at most a few hundred hashes. Idempotent and safe to run concurrently: every
/// process computes the same hashes.
async fn ensure_tree_nodes(
    store: &dyn Store,
    organization_id: &str,
    size: u64,
) -> Result<(), ServiceError> {
    /// Nodes computed per store round trip.
    const CHUNK: u64 = 64;
    let mut level = STORED_LEVEL_STRIDE;
    while level < 64 && size >> level > 0 {
        let complete = size >> level;
        let mut next = store.tree_node_count(organization_id, level).await?;
        while next < complete {
            let end = (next + CHUNK).min(complete);
            let children_start = next << STORED_LEVEL_STRIDE;
            let children_end = end << STORED_LEVEL_STRIDE;
            let children: Vec<Hash> = if level == STORED_LEVEL_STRIDE {
                store
                    .leaf_hashes(organization_id, children_start, children_end)
                    .await?
            } else {
                let nodes = store
                    .tree_nodes(
                        organization_id,
                        level - STORED_LEVEL_STRIDE,
                        children_start,
                        children_end,
                    )
                    .await?;
                if nodes.len() as u64 != children_end - children_start {
                    return Err(ServiceError::Corrupt {
                        record: format!(
                            "tree nodes of {organization_id} at level {}",
                            level - STORED_LEVEL_STRIDE
                        ),
                        detail: "some are missing".into(),
                    });
                }
                nodes.into_iter().map(|(_, hash)| hash).collect()
            };
            let nodes: Vec<(u64, Hash)> = children
                .chunks_exact(BLOCK as usize)
                .enumerate()
                .map(|(offset, chunk)| (next + offset as u64, perfect_root(chunk)))
                .collect();
            store
                .store_tree_nodes(organization_id, level, nodes)
                .await?;
            next = end;
        }
        level += STORED_LEVEL_STRIDE;
    }
    Ok(())
}

/// Checkpoints and proofs of every organization's tree, signed by this deployment's key.
#[derive(Clone)]
pub struct TransparencyService {
    store: Arc<dyn Store>,
    signer: Arc<CheckpointSigner>,
}

impl TransparencyService {
    pub fn new(store: Arc<dyn Store>, signer: Arc<CheckpointSigner>) -> Self {
        Self { store, signer }
    }

    pub fn signer(&self) -> &CheckpointSigner {
        &self.signer
    }

    /// Records this process's public key, so checkpoints it signs stay verifiable after
    /// the key is rotated; returns whether the key was new (a first start or a rotation).
    pub async fn register_signing_key(&self) -> Result<bool, ServiceError> {
        let verifier = self.signer.verifier();
        let key_id = verifier.key_id_hex();
        let known = self
            .store
            .list_signing_keys()
            .await?
            .iter()
            .any(|record| record.key_id == key_id);
        self.store
            .register_signing_key(SigningKeyRecord {
                key_id,
                verifier_key: verifier.encoded(),
                created_at: now_millis(),
            })
            .await?;
        Ok(!known)
    }

    /// The id (hex) of the key this process signs checkpoints with.
    pub fn signing_key_id(&self) -> String {
        self.signer.verifier().key_id_hex()
    }

    /// Every key that has signed checkpoints here, the current one included.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, ServiceError> {
        Ok(self.store.list_signing_keys().await?)
    }

    pub async fn tree_size(&self, organization_id: &str) -> Result<u64, ServiceError> {
        Ok(self.store.tree_size(organization_id).await?)
    }

    pub async fn latest_checkpoint(
        &self,
        organization_id: &str,
    ) -> Result<Option<Checkpoint>, ServiceError> {
        Ok(self.store.latest_checkpoint(organization_id).await?)
    }

    /// The smallest checkpoint of at least `size` leaves, if one is signed.
    pub async fn checkpoint_covering(
        &self,
        organization_id: &str,
        size: u64,
    ) -> Result<Option<Checkpoint>, ServiceError> {
        Ok(self
            .store
            .checkpoint_covering(organization_id, size)
            .await?)
    }

    /// Stores the subtree hashes of the first `size` leaves (see [`ensure_tree_nodes`]).
    pub async fn ensure_tree_nodes(
        &self,
        organization_id: &str,
        size: u64,
    ) -> Result<(), ServiceError> {
        ensure_tree_nodes(self.store.as_ref(), organization_id, size).await
    }

    /// Logs that have grown past their newest checkpoint.
    pub async fn uncheckpointed_logs(&self) -> Result<Vec<UncheckpointedLog>, ServiceError> {
        Ok(self.store.uncheckpointed_logs().await?)
    }

    /// A reader of the organization's tree of `size` leaves.
    pub fn tree_reader(&self, organization_id: &str, size: u64) -> TreeReader {
        TreeReader::new(Arc::clone(&self.store), organization_id, size)
    }

    /// Signs and stores a checkpoint of the organization's current tree, unless the newest
    /// checkpoint already covers it. `None` when the organization has no events yet.
    pub async fn checkpoint_now(
        &self,
        organization_id: &str,
    ) -> Result<Option<Checkpoint>, ServiceError> {
        let store = self.store.as_ref();
        let size = store.tree_size(organization_id).await?;
        if size == 0 {
            return Ok(None);
        }
        if let Some(latest) = store.latest_checkpoint(organization_id).await? {
            if latest.tree_size >= size {
                return Ok(Some(latest));
            }
        }
        ensure_tree_nodes(store, organization_id, size).await?;
        let root_hash = TreeReader::new(Arc::clone(&self.store), organization_id, size)
            .range(LeafRange::new(0, size))
            .await?;
        let body = CheckpointBody {
            origin: self.signer.origin(organization_id),
            tree_size: size,
            root_hash,
        };
        let checkpoint = Checkpoint {
            organization_id: organization_id.to_owned().into(),
            tree_size: size,
            root_hash,
            note: self.signer.sign(&body.text()),
            key_id: self.signer.verifier().key_id_hex(),
            created_at: now_millis(),
        };
        Ok(Some(store.save_checkpoint(checkpoint).await?))
    }

    /// Bounds the checkpoints table: a busy log gets a checkpoint every few seconds, about
    /// 17,000 a day. After a day only the newest of each hour is kept. Nothing a proof needs
    /// is lost (proofs are computed from tree hashes, against any size); parties who rely on
    /// a particular checkpoint keep their own copy of it, as with any transparency log.
    pub async fn thin_old_checkpoints(&self) -> Result<u64, ServiceError> {
        Ok(self
            .store
            .thin_checkpoints(
                now_millis() - KEEP_ALL_CHECKPOINTS_MS,
                KEEP_ONE_CHECKPOINT_PER_MS,
            )
            .await?)
    }

    /// The checkpoint a proof is made against: the one of exactly `tree_size` leaves when
    /// asked for, otherwise the newest one, signed now if it does not cover `leaf`.
    pub async fn checkpoint_for(
        &self,
        organization_id: &str,
        tree_size: Option<u64>,
        leaf: Option<u64>,
    ) -> Result<Checkpoint, ServiceError> {
        let store = self.store.as_ref();
        if let Some(size) = tree_size {
            return store
                .checkpoint_covering(organization_id, size)
                .await?
                .filter(|checkpoint| checkpoint.tree_size == size)
                .ok_or_else(|| ServiceError::NotFound {
                    kind: "Checkpoint",
                    id: format!("{organization_id} at tree size {size}"),
                });
        }
        let latest = store.latest_checkpoint(organization_id).await?;
        match latest {
            Some(checkpoint) if leaf.is_none_or(|leaf| leaf < checkpoint.tree_size) => {
                Ok(checkpoint)
            }
            _ => {
                self.checkpoint_now(organization_id)
                    .await?
                    .ok_or_else(|| ServiceError::NotFound {
                        kind: "Checkpoint",
                        id: organization_id.to_owned(),
                    })
            }
        }
    }

    /// An inclusion proof: the hashes that lead from `leaf_index` to the root of `tree_size`.
    pub async fn inclusion_proof(
        &self,
        organization_id: &str,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, ServiceError> {
        Ok(
            TreeReader::new(Arc::clone(&self.store), organization_id, tree_size)
                .ranges(&inclusion_proof_ranges(leaf_index, tree_size))
                .await?,
        )
    }

    /// A consistency proof from the tree of `old_size` leaves to that of `new_size`.
    pub async fn consistency_proof(
        &self,
        organization_id: &str,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, ServiceError> {
        ensure_tree_nodes(self.store.as_ref(), organization_id, new_size).await?;
        Ok(
            TreeReader::new(Arc::clone(&self.store), organization_id, new_size)
                .ranges(&consistency_proof_ranges(old_size, new_size))
                .await?,
        )
    }

    /// A single event's proof bundle: the proven JSONL of just that event.
    pub async fn proof_bundle(
        &self,
        organization_id: &str,
        event_id: &str,
    ) -> Result<Vec<u8>, ServiceError> {
        let event = self
            .store
            .get_event(organization_id, event_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                kind: "Audit log event",
                id: event_id.to_owned(),
            })?
            .event;
        let leaf = event.sequence as u64 - 1;
        let checkpoint = self
            .checkpoint_for(organization_id, None, Some(leaf))
            .await?;
        let proof = self
            .inclusion_proof(organization_id, leaf, checkpoint.tree_size)
            .await?;
        let mut out = Vec::new();
        let mut writer =
            ProvenJsonlWriter::start(checkpoint, format!("event {event_id}"), &mut out);
        writer.event(leaf, &event.canonical, &proof, &mut out);
        writer.finish(&self.signer, &mut out);
        Ok(out)
    }
}

/// Checkpoints younger than this are all kept.
pub const KEEP_ALL_CHECKPOINTS_MS: i64 = 24 * 60 * 60 * 1000;
/// Older checkpoints are thinned to the newest one of each such period.
pub const KEEP_ONE_CHECKPOINT_PER_MS: i64 = 60 * 60 * 1000;

pub fn encode_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|hash| BASE64.encode(hash)).collect()
}

/// `["…","…"]` for base64 strings, whose alphabet needs no JSON escaping: the same bytes
/// `serde_json` writes, without a fallible call in the middle of hashed output.
fn json_string_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
    format!("[{}]", quoted.join(","))
}

/// Writes proven JSONL, the format `stele verify-export` checks (see the README): a
/// checkpoint line, one line per event with its inclusion proof, and a signed manifest
/// that commits to every line before it, so an edited, dropped, added or reordered line
/// fails verification.
pub struct ProvenJsonlWriter {
    checkpoint: Checkpoint,
    digest: Sha256,
    events: u64,
    label: String,
}

impl ProvenJsonlWriter {
    /// Starts a file proven against `checkpoint`; `label` names it in the manifest (the
    /// export id, or `event <id>` for a single event's bundle).
    pub fn start(checkpoint: Checkpoint, label: String, out: &mut Vec<u8>) -> Self {
        let mut writer = Self {
            checkpoint,
            digest: Sha256::new(),
            events: 0,
            label,
        };
        let line = serde_json::json!({ "checkpoint": writer.checkpoint.note });
        writer.line(line.to_string().as_bytes(), out);
        writer
    }

    pub fn tree_size(&self) -> u64 {
        self.checkpoint.tree_size
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        self.digest.update(line);
        self.digest.update(b"\n");
        out.extend_from_slice(line);
        out.push(b'\n');
    }

    /// One event: its exact stored bytes, leaf index and inclusion proof.
    pub fn event(&mut self, leaf_index: u64, canonical: &[u8], proof: &[Hash], out: &mut Vec<u8>) {
        let proof = json_string_array(&encode_hashes(proof));
        let mut line = Vec::with_capacity(canonical.len() + proof.len() + 64);
        line.extend_from_slice(format!("{{\"leaf_index\":{leaf_index},\"event\":").as_bytes());
        line.extend_from_slice(canonical);
        line.extend_from_slice(b",\"inclusion_proof\":");
        line.extend_from_slice(proof.as_bytes());
        line.push(b'}');
        self.line(&line, out);
        self.events += 1;
    }

    /// The signed manifest line that ends the file.
    pub fn finish(self, signer: &CheckpointSigner, out: &mut Vec<u8>) {
        // The manifest names the checkpoint's own origin, whatever the origin is today.
        let origin = split_note(&self.checkpoint.note)
            .ok()
            .and_then(|(text, _)| CheckpointBody::parse(text).ok())
            .map(|body| body.origin)
            .unwrap_or_else(|| signer.origin(&self.checkpoint.organization_id));
        let text = manifest_text(
            &origin,
            &self.label,
            self.checkpoint.tree_size,
            self.events,
            &self.digest.finalize().into(),
        );
        let line = serde_json::json!({ "manifest": signer.sign(&text) });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
}

/// Why an organization's tree failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeBreak {
    #[error("sequence {found} found where {expected} was expected (an event was removed, inserted or reordered)")]
    Gap { expected: u64, found: u64 },
    #[error("the log ends at sequence {size} but a checkpoint of tree size {checkpoint} was signed: events {first_missing}..={checkpoint} were removed")]
    Truncated {
        size: u64,
        checkpoint: u64,
        first_missing: u64,
    },
    #[error("checkpoint of tree size {tree_size}: {reason} (forged or altered checkpoint)")]
    BadCheckpoint { tree_size: u64, reason: String },
    #[error("the events do not match the signed checkpoint of tree size {tree_size}: an event in sequences {first}..={tree_size} was altered")]
    RootMismatch { tree_size: u64, first: u64 },
    #[error("stored subtree hash (level {level}, index {index}) does not match sequences {first}..={last}: an event in that range or the hash was altered")]
    NodeMismatch {
        level: u8,
        index: u64,
        first: u64,
        last: u64,
    },
}

/// Verifies stored trees end to end (`stele verify`), against keys the caller trusts.
pub struct TreeVerifier {
    store: Arc<dyn Store>,
}

impl TreeVerifier {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Recomputes one organization's tree from storage: every leaf from the stored bytes,
    /// contiguity of sequences, every stored subtree hash over retained events, and every
    /// checkpoint's signature (against `trusted`) and root. Bounded memory: events are read in
    /// pages and the tree is kept as its right edge. Returns how many events were read.
    pub async fn verify_tree(
        &self,
        organization_id: &str,
        trusted: &[NoteVerifier],
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Result<u64, TreeBreak>, ServiceError> {
        const PAGE: u32 = 2000;
        let store = &self.store;
        // The log is verified up to its size now; events and checkpoints that arrive while
        // this runs are left for the next run (apart from the truncation check at the end).
        let size = store.tree_size(organization_id).await?;
        let first_stored = store
            .event_bytes(organization_id, 0, 1)
            .await?
            .first()
            .map_or(size + 1, |(sequence, _)| *sequence as u64);
        // Retention purged [0, first_stored - 1): start from the hashes it kept.
        let purged = (first_stored - 1).min(size);
        let mut reader = TreeReader::new(Arc::clone(store), organization_id, size);
        let mut nodes = Vec::new();
        if purged > 0 {
            for subtree in LeafRange::new(0, purged).subtrees() {
                nodes.push((
                    subtree,
                    reader
                        .range(LeafRange::new(subtree.start(), subtree.end()))
                        .await?,
                ));
            }
        }
        let mut frontier = stele_core::merkle::Frontier::from_subtrees(purged, nodes);
        let mut pending = PendingCheckpoints::new(organization_id, size);
        let mut verified_up_to = 0u64;
        let mut events = 0u64;
        let mut after = purged as i64;
        loop {
            // Every checkpoint the verified prefix has reached (or that predates the retained
            // events, whose roots come from the kept hashes).
            while let Some(checkpoint) =
                pending.next_within(store.as_ref(), frontier.size()).await?
            {
                let root = if checkpoint.tree_size == frontier.size() {
                    frontier.root()
                } else {
                    reader
                        .range(LeafRange::new(0, checkpoint.tree_size))
                        .await?
                };
                if let Err(tree_break) =
                    check_checkpoint(&checkpoint, organization_id, trusted, &root, verified_up_to)
                {
                    return Ok(Err(tree_break));
                }
                verified_up_to = checkpoint.tree_size;
            }
            if frontier.size() >= size {
                break;
            }
            let page = store.event_bytes(organization_id, after, PAGE).await?;
            if page.is_empty() {
                break;
            }
            let mut completed = Vec::new();
            for (sequence, bytes) in &page {
                let expected = frontier.size() + 1;
                if *sequence as u64 != expected {
                    return Ok(Err(TreeBreak::Gap {
                        expected,
                        found: *sequence as u64,
                    }));
                }
                frontier.push(leaf_hash(bytes), |subtree, hash| {
                    if subtree.level % STORED_LEVEL_STRIDE == 0 {
                        completed.push((subtree, *hash));
                    }
                });
                events += 1;
                after = *sequence;
                // Stop at each checkpoint size (and at the verified size) to compare roots.
                if frontier.size() >= size || pending.front_size() == Some(frontier.size()) {
                    break;
                }
            }
            for (subtree, hash) in completed {
                let stored = store
                    .tree_nodes(
                        organization_id,
                        subtree.level,
                        subtree.index,
                        subtree.index + 1,
                    )
                    .await?;
                if stored.first().is_some_and(|(_, stored)| *stored != hash) {
                    return Ok(Err(TreeBreak::NodeMismatch {
                        level: subtree.level,
                        index: subtree.index,
                        first: subtree.start() + 1,
                        last: subtree.end(),
                    }));
                }
            }
            progress(events);
        }
        // A checkpoint the stored events never reached, or one larger than the log is now,
        // means events were cut from the tail.
        let now = store.tree_size(organization_id).await?.max(frontier.size());
        let unreached = match pending.next_within(store.as_ref(), u64::MAX).await? {
            Some(checkpoint) => Some(checkpoint),
            None => store.list_checkpoints(organization_id, now, 1).await?.pop(),
        };
        if let Some(checkpoint) = unreached {
            let size = frontier.size();
            return Ok(Err(TreeBreak::Truncated {
                size,
                checkpoint: checkpoint.tree_size,
                first_missing: size + 1,
            }));
        }
        Ok(Ok(events))
    }
}

/// An organization's checkpoints up to a size, smallest first, fetched a page at a time.
struct PendingCheckpoints {
    organization_id: String,
    up_to: u64,
    queue: std::collections::VecDeque<Checkpoint>,
    cursor: u64,
    exhausted: bool,
}

impl PendingCheckpoints {
    fn new(organization_id: &str, up_to: u64) -> Self {
        Self {
            organization_id: organization_id.to_owned(),
            up_to,
            queue: std::collections::VecDeque::new(),
            cursor: 0,
            exhausted: false,
        }
    }

    async fn refill(&mut self, store: &dyn Store) -> StoreResult<()> {
        if self.queue.is_empty() && !self.exhausted {
            let page = store
                .list_checkpoints(&self.organization_id, self.cursor, 500)
                .await?;
            match page.last() {
                None => self.exhausted = true,
                Some(last) => self.cursor = last.tree_size,
            }
            for checkpoint in page {
                if checkpoint.tree_size > self.up_to {
                    self.exhausted = true;
                    break;
                }
                self.queue.push_back(checkpoint);
            }
        }
        Ok(())
    }

    /// The next checkpoint of at most `limit` leaves, if any.
    async fn next_within(
        &mut self,
        store: &dyn Store,
        limit: u64,
    ) -> StoreResult<Option<Checkpoint>> {
        self.refill(store).await?;
        if self.queue.front().is_some_and(|c| c.tree_size <= limit) {
            return Ok(self.queue.pop_front());
        }
        Ok(None)
    }

    fn front_size(&self) -> Option<u64> {
        self.queue.front().map(|checkpoint| checkpoint.tree_size)
    }
}

fn check_checkpoint(
    checkpoint: &Checkpoint,
    organization_id: &str,
    trusted: &[NoteVerifier],
    recomputed_root: &Hash,
    verified_up_to: u64,
) -> Result<(), TreeBreak> {
    let bad = |reason: String| TreeBreak::BadCheckpoint {
        tree_size: checkpoint.tree_size,
        reason,
    };
    let signed_by = stele_core::note::signature_key_ids(&checkpoint.note);
    let text = trusted
        .iter()
        .filter(|key| signed_by.contains(&key.key_id_hex()))
        .find_map(|key| key.open(&checkpoint.note).ok())
        .ok_or_else(|| {
            bad(format!(
                "no valid signature by a trusted key (signed by {})",
                signed_by.join(", ")
            ))
        })?;
    let body = CheckpointBody::parse(text).map_err(|error| bad(error.to_string()))?;
    if body.tree_size != checkpoint.tree_size || body.root_hash != checkpoint.root_hash {
        return Err(bad(
            "the signed note and the stored size or root differ".into()
        ));
    }
    if !body.origin.ends_with(&format!("/{organization_id}")) {
        return Err(bad(format!("it is signed for origin {}", body.origin)));
    }
    if &body.root_hash != recomputed_root {
        return Err(TreeBreak::RootMismatch {
            tree_size: checkpoint.tree_size,
            first: verified_up_to + 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_loses_the_race_to_generate_the_key_uses_the_winners() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("signing-key.pem");
        let winner = CheckpointSigner::load_or_generate(&path, "stele").expect("generate");
        // The loser found no file, then generated a key of its own after the winner wrote
        // one: it must come back with the winner's key and leave the file as it was.
        let written = std::fs::read(&path).expect("read the key file");
        let loser = generate_key_file(&path).expect("generate after losing");
        assert_eq!(
            NoteSigner::new("stele", loser)
                .expect("signer")
                .verifier()
                .encoded(),
            winner.verifier().encoded()
        );
        assert_eq!(std::fs::read(&path).expect("read again"), written);
    }
}
