//! C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 signatures, and the
//! checkpoint body (https://c2sp.org/tlog-checkpoint) Stele signs for each organization.
//!
//! A signed note is its text (every line ending in `\n`), a blank line, then one line per
//! signature: `— <key name> <base64(key id || signature)>`. The key id is the first four
//! bytes of `SHA-256(key name || "\n" || 0x01 || public key)`, and a verifier key is
//! written `<name>+<hex key id>+<base64(0x01 || public key)>`. Using the published format
//! means any C2SP tooling (Go's `golang.org/x/mod/sumdb/note`, for one) reads Stele's
//! checkpoints too.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The algorithm byte of an Ed25519 key in the signed-note format.
const ED25519_ALGORITHM: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(&'static str),
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    #[error("the note carries no valid signature by key {name} ({key_id})")]
    NoValidSignature { name: String, key_id: String },
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

pub fn key_id(name: &str, public_key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_ALGORITHM]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Signs notes under a key name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_key_name(&name)?;
        Ok(Self { name, key })
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signed note of `text` (which must end in a newline).
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key_id(&self.name, &self.key.verifying_key()));
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        )
    }
}

/// A public key that checks signed notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_key_name(&name)?;
        Ok(Self { name, key })
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(encoded: &str) -> Result<Self, NoteError> {
        let mut parts = encoded.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadVerifierKey(
                "expected <name>+<key id>+<public key>",
            ));
        };
        let key = BASE64
            .decode(key)
            .map_err(|_| NoteError::BadVerifierKey("the public key is not base64"))?;
        let [ED25519_ALGORITHM, rest @ ..] = key.as_slice() else {
            return Err(NoteError::BadVerifierKey("not an Ed25519 key"));
        };
        let bytes: [u8; 32] = rest
            .try_into()
            .map_err(|_| NoteError::BadVerifierKey("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::BadVerifierKey("not a valid Ed25519 point"))?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id_hex() != id.to_ascii_lowercase() {
            return Err(NoteError::BadVerifierKey(
                "the key id does not match the name and key",
            ));
        }
        Ok(verifier)
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key)
    }

    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id())
    }

    /// The `<name>+<hex key id>+<base64 key>` form, for humans and tools.
    pub fn encoded(&self) -> String {
        let mut key = vec![ED25519_ALGORITHM];
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, self.key_id_hex(), BASE64.encode(key))
    }

    /// Returns the note's text when one of its signature lines is this key's and valid.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, signatures) = split_note(note)?;
        let id = self.key_id();
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(NoteError::Malformed(
                    "a signature line must start with '— '",
                ));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(
                    "a signature line is '— <name> <signature>'",
                ));
            };
            let Ok(blob) = BASE64.decode(blob) else {
                return Err(NoteError::Malformed("a signature is not base64"));
            };
            if name != self.name || blob.len() != 68 || blob[..4] != id {
                continue;
            }
            let signature = Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::Malformed("bad signature length"))?;
            if self.key.verify(text.as_bytes(), &signature).is_ok() {
                return Ok(text);
            }
        }
        Err(NoteError::NoValidSignature {
            name: self.name.clone(),
            key_id: self.key_id_hex(),
        })
    }
}

/// Splits a note into its text (with final newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    let Some(at) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed(
            "no blank line between text and signatures",
        ));
    };
    let (text, signatures) = (&note[..at + 1], &note[at + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature lines must end with a newline",
        ));
    }
    Ok((text, signatures))
}

/// The key ids (hex) named by a note's signature lines, so a reader can pick the key.
pub fn signature_key_ids(note: &str) -> Vec<String> {
    let Ok((_, signatures)) = split_note(note) else {
        return Vec::new();
    };
    signatures
        .lines()
        .filter_map(|line| line.strip_prefix(SIGNATURE_PREFIX))
        .filter_map(|rest| rest.split_once(' '))
        .filter_map(|(_, blob)| BASE64.decode(blob).ok())
        .filter(|blob| blob.len() == 68)
        .map(|blob| hex::encode(&blob[..4]))
        .collect()
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains(['+', ' ', '\n']) || name.chars().any(char::is_control) {
        return Err(NoteError::BadVerifierKey(
            "a key name is non-empty, without '+', spaces or control characters",
        ));
    }
    Ok(())
}

/// The text of a C2SP checkpoint: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Hash,
}

impl CheckpointBody {
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root_hash)
        )
    }

    /// Parses checkpoint text (extension lines after the root hash are allowed, as C2SP says).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(NoteError::BadCheckpoint("missing origin line"))?;
        let tree_size = lines
            .next()
            .and_then(|l| {
                (!l.starts_with('+') && !l.starts_with('0') || l == "0")
                    .then(|| l.parse::<u64>().ok())
                    .flatten()
            })
            .ok_or(NoteError::BadCheckpoint(
                "tree size is not a decimal number",
            ))?;
        let root_hash = lines
            .next()
            .and_then(|l| BASE64.decode(l).ok())
            .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
            .ok_or(NoteError::BadCheckpoint(
                "root hash is not 32 bytes of base64",
            ))?;
        Ok(Self {
            origin: origin.to_string(),
            tree_size,
            root_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new("stele.example", SigningKey::from_bytes(&[seed; 32])).expect("name")
    }

    #[test]
    fn signed_checkpoints_round_trip_and_reject_forgeries() {
        let body = CheckpointBody {
            origin: "stele.example/org_1".into(),
            tree_size: 42,
            root_hash: [7u8; 32],
        };
        let note = signer(1).sign(&body.text());
        let verifier = NoteVerifier::parse(&signer(1).verifier().encoded()).expect("parses");
        let text = verifier.open(&note).expect("valid");
        assert_eq!(CheckpointBody::parse(text).expect("parses"), body);
        assert_eq!(
            signature_key_ids(&note),
            vec![signer(1).verifier().key_id_hex()]
        );

        // Another key, an edited size, or a re-signed body under another key all fail.
        assert!(signer(2).verifier().open(&note).is_err());
        let forged = note.replace("\n42\n", "\n43\n");
        assert!(verifier.open(&forged).is_err());
        let resigned = signer(2).sign(&body.text());
        assert!(verifier.open(&resigned).is_err());
    }

    #[test]
    fn verifier_keys_must_be_consistent() {
        let encoded = signer(1).verifier().encoded();
        let (name, rest) = encoded.split_once('+').expect("plus");
        assert!(NoteVerifier::parse(&format!("other+{rest}")).is_err());
        assert!(NoteVerifier::parse(name).is_err());
        assert!(NoteVerifier::parse(&encoded.replace('+', "+0")).is_err());
    }

    #[test]
    fn checkpoint_text_is_strict() {
        assert!(CheckpointBody::parse("origin\n012\nAAAA\n").is_err());
        assert!(CheckpointBody::parse("origin\n12\nnot base64\n").is_err());
        assert!(CheckpointBody::parse("\n12\n").is_err());
    }
}
