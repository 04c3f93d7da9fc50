//! The deployment's stream secrets key: seals the secret settings of log streams (tokens,
//! API keys, HMAC secrets) before they reach the database, with XChaCha20-Poly1305 and
//! the stream id as associated data, so a sealed value cannot be moved to another stream.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The first byte of every sealed value: the format (XChaCha20-Poly1305, 24-byte nonce).
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// A 32-byte key, read from a file or an environment variable; never printed.
pub struct StreamSecretsKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for StreamSecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSecretsKey(..)")
    }
}

impl StreamSecretsKey {
    /// A key from its text form: 32 bytes in base64 (what `openssl rand -base64 32`
    /// prints) or in hex (64 digits), surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|error| error.to_string())?
        } else {
            BASE64
                .decode(text)
                .map_err(|_| "the stream secrets key is neither base64 nor hex".to_owned())?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "the stream secrets key must be 32 bytes, not {} (generate one with `openssl rand -base64 32`)",
                bytes.len()
            )
        })?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// A key from a file holding its text form.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!(
                "cannot read the stream secrets key file {}: {error}",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Seals `plaintext` for stream `stream_id`.
    pub fn seal(&self, stream_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: stream_id.as_bytes(),
                },
            )
            .map_err(|_| "sealing the stream secrets failed".to_owned())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `stream_id`; an error when it was sealed with another key
    /// or for another stream, or was altered.
    pub fn open(&self, stream_id: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT {
            return Err("the stored stream secrets are not in a known format".into());
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: stream_id.as_bytes(),
                },
            )
            .map_err(|_| {
                "the stream secrets cannot be opened with the configured stream secrets key (was the key changed?)".into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_stream() {
        let key = StreamSecretsKey::parse(&BASE64.encode([7u8; 32])).expect("key");
        let sealed = key
            .seal("log_stream_1", b"{\"token\":\"t\"}")
            .expect("seal");
        assert!(
            !sealed.windows(13).any(|w| w == b"{\"token\":\"t\"}"),
            "the plaintext is not in the sealed value"
        );
        assert_eq!(
            key.open("log_stream_1", &sealed).expect("open"),
            b"{\"token\":\"t\"}"
        );
        assert!(
            key.open("log_stream_2", &sealed).is_err(),
            "bound to its stream"
        );
        let other = StreamSecretsKey::parse(&hex::encode([8u8; 32])).expect("hex key");
        assert!(
            other.open("log_stream_1", &sealed).is_err(),
            "bound to its key"
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(key.open("log_stream_1", &altered).is_err());
        assert!(StreamSecretsKey::parse("c2hvcnQ=").is_err(), "too short");
    }
}
