//! Proven JSONL: an export that carries its own proof, checkable offline with only the
//! deployment's public key (`stele verify-export`). Documented in the README.
//!
//! ```text
//! {"checkpoint":"<C2SP signed checkpoint note>"}
//! {"leaf_index":N,"event":<stored event bytes>,"inclusion_proof":["<base64>",…]}   (one per event)
//! {"manifest":"<signed note: origin, label, tree size, event count, SHA-256 of the lines above>"}
//! ```
//!
//! Inclusion proofs tie each event to the signed root; the signed manifest commits to the
//! exact bytes and order of every line before it, so dropping, adding, editing or
//! reordering any line fails even for a filtered export, where leaf indices have gaps.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::merkle::{leaf_hash, verify_inclusion, Hash};
use crate::note::{signature_key_ids, CheckpointBody, NoteVerifier};

pub const MANIFEST_KIND: &str = "stele export manifest";

/// The text of a manifest note.
pub fn manifest_text(
    origin: &str,
    label: &str,
    tree_size: u64,
    events: u64,
    digest: &Hash,
) -> String {
    format!(
        "{origin}\n{MANIFEST_KIND}\n{label}\ntree_size {tree_size}\nevents {events}\nsha256 {}\n",
        BASE64.encode(digest)
    )
}

/// What a valid file proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedExport {
    pub origin: String,
    pub tree_size: u64,
    pub events: u64,
    pub label: String,
    pub key_id: String,
}

/// The first problem found, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ExportProblem {
    pub line: usize,
    pub reason: String,
}

fn problem(line: usize, reason: impl Into<String>) -> ExportProblem {
    ExportProblem {
        line,
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine<'a> {
    leaf_index: u64,
    #[serde(borrow)]
    event: &'a RawValue,
    inclusion_proof: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    manifest: String,
}

/// Opens a signed note with whichever trusted key signed it.
fn open_note<'n>(
    note: &'n str,
    keys: &[NoteVerifier],
    line: usize,
    what: &str,
) -> Result<(&'n str, String), ExportProblem> {
    let named = signature_key_ids(note);
    for key in keys {
        if named.contains(&key.key_id_hex()) {
            if let Ok(text) = key.open(note) {
                return Ok((text, key.key_id_hex()));
            }
        }
    }
    Err(problem(
        line,
        format!(
            "the {what} signature is not valid under any given public key (signed by key id {})",
            if named.is_empty() {
                "none".to_string()
            } else {
                named.join(", ")
            }
        ),
    ))
}

fn decode_hash(text: &str) -> Option<Hash> {
    BASE64.decode(text).ok()?.try_into().ok()
}

/// Checks a proven JSONL file (its full text) against trusted public keys.
pub fn verify(text: &str, keys: &[NoteVerifier]) -> Result<VerifiedExport, ExportProblem> {
    verify_reader(text.as_bytes(), keys)
}

/// Checks a proven JSONL file read line by line, so memory stays flat however large it is.
pub fn verify_reader(
    mut input: impl std::io::BufRead,
    keys: &[NoteVerifier],
) -> Result<VerifiedExport, ExportProblem> {
    let mut raw = String::new();
    let mut line = 0usize;
    let mut next_line = |raw: &mut String, line: &mut usize| -> Result<bool, ExportProblem> {
        raw.clear();
        *line += 1;
        match input.read_line(raw) {
            Ok(0) => Ok(false),
            Ok(_) if !raw.ends_with('\n') => Err(problem(
                *line,
                "the file does not end with a newline (truncated?)",
            )),
            Ok(_) => Ok(true),
            Err(error) => Err(problem(*line, format!("unreadable: {error}"))),
        }
    };

    if !next_line(&mut raw, &mut line)? {
        return Err(problem(1, "the file is empty"));
    }
    let checkpoint: CheckpointLine = serde_json::from_str(&raw)
        .map_err(|error| problem(1, format!("expected the checkpoint line: {error}")))?;
    let (checkpoint_text, key_id) = open_note(&checkpoint.checkpoint, keys, 1, "checkpoint")?;
    let body =
        CheckpointBody::parse(checkpoint_text).map_err(|error| problem(1, error.to_string()))?;
    let key_id = key_id.to_string();

    let mut digest = Sha256::new();
    digest.update(raw.as_bytes());
    let mut previous: Option<u64> = None;
    let mut events = 0u64;
    loop {
        if !next_line(&mut raw, &mut line)? {
            return Err(problem(line, "the file has no manifest line"));
        }
        if raw.starts_with("{\"manifest\"") {
            break;
        }
        digest.update(raw.as_bytes());
        check_event_line(&raw, line, &body, &mut previous)?;
        events += 1;
    }

    let manifest_line = line;
    let manifest: ManifestLine = serde_json::from_str(&raw).map_err(|error| {
        problem(
            manifest_line,
            format!("expected the manifest line: {error}"),
        )
    })?;
    // Nothing commits to the manifest line's own bytes but its note, so accept it only in
    // the one form Stele writes.
    let exact = serde_json::json!({ "manifest": manifest.manifest }).to_string() + "\n";
    if raw != exact {
        return Err(problem(
            manifest_line,
            "the manifest line is not in its canonical form",
        ));
    }
    let (manifest_text_signed, _) = open_note(&manifest.manifest, keys, manifest_line, "manifest")?;
    let label = manifest_text_signed
        .split('\n')
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let expected = manifest_text(
        &body.origin,
        &label,
        body.tree_size,
        events,
        &digest.finalize().into(),
    );
    if manifest_text_signed != expected {
        return Err(problem(
            manifest_line,
            "the manifest does not match the lines above it (a line was added, removed, edited or reordered)",
        ));
    }
    let mut rest = String::new();
    if next_line(&mut rest, &mut line).unwrap_or(true) {
        return Err(problem(line, "nothing may follow the manifest line"));
    }
    Ok(VerifiedExport {
        origin: body.origin,
        tree_size: body.tree_size,
        events,
        label,
        key_id,
    })
}

/// One event line: its proof leads to the signed root, and the event is the one at its
/// leaf index of the checkpoint's organization.
fn check_event_line(
    raw: &str,
    line: usize,
    body: &CheckpointBody,
    previous: &mut Option<u64>,
) -> Result<(), ExportProblem> {
    let event: EventLine<'_> = serde_json::from_str(raw)
        .map_err(|error| problem(line, format!("expected an event line: {error}")))?;
    if previous.is_some_and(|previous| event.leaf_index <= previous) {
        return Err(problem(
            line,
            "leaf indices must increase from line to line",
        ));
    }
    *previous = Some(event.leaf_index);
    let proof: Vec<Hash> = event
        .inclusion_proof
        .iter()
        .map(|hash| decode_hash(hash))
        .collect::<Option<_>>()
        .ok_or_else(|| problem(line, "an inclusion proof hash is not 32 bytes of base64"))?;
    let bytes = event.event.get().as_bytes();
    verify_inclusion(
        event.leaf_index,
        body.tree_size,
        &leaf_hash(bytes),
        &proof,
        &body.root_hash,
    )
    .map_err(|error| {
        problem(
            line,
            format!("the event is not in the signed tree: {error}"),
        )
    })?;
    // The proof binds the bytes to the index; the event must also say it is that one.
    let fields: serde_json::Value = serde_json::from_str(event.event.get())
        .map_err(|error| problem(line, error.to_string()))?;
    if fields["sequence"].as_u64() != Some(event.leaf_index + 1) {
        return Err(problem(
            line,
            "the event's sequence is not its leaf index + 1",
        ));
    }
    match fields["organization_id"].as_str() {
        Some(organization) if body.origin.ends_with(&format!("/{organization}")) => Ok(()),
        _ => Err(problem(
            line,
            "the event belongs to another organization than the checkpoint",
        )),
    }
}
