//! Idempotency-Key rules: which requests count as "the same", and for how long.

use sha2::{Digest, Sha256};

use crate::timestamp::UnixMillis;

/// A stored response is replayed for this long after the first request (24 hours).
pub const REPLAY_WINDOW_MS: UnixMillis = 24 * 60 * 60 * 1000;

/// Longest accepted `Idempotency-Key` header value.
pub const MAX_KEY_LENGTH: usize = 255;

/// Identifies a request for replay purposes: same method, same path and query, same bytes.
pub fn request_fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Length prefixes keep ("a", "bc") and ("ab", "c") apart.
    for part in [method.as_bytes(), path_and_query.as_bytes(), body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_separates_method_path_and_body() {
        let base = request_fingerprint("POST", "/organizations", b"{}");
        assert_eq!(base, request_fingerprint("POST", "/organizations", b"{}"));
        assert_ne!(base, request_fingerprint("POST", "/organizations", b"{ }"));
        assert_ne!(
            base,
            request_fingerprint("POST", "/audit_logs/events", b"{}")
        );
        assert_ne!(
            request_fingerprint("POST", "/a", b"b"),
            request_fingerprint("POST", "/ab", b"")
        );
    }
}
