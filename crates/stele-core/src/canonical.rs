//! Canonical JSON bytes (RFC 8785, JSON Canonicalization Scheme).
//!
//! The hash chain is computed over these bytes and the store keeps them verbatim, so a
//! third party can recompute every hash with any off-the-shelf JCS library.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("value cannot be canonicalized: {0}")]
pub struct CanonicalError(String);

/// RFC 8785 encoding of `value`.
pub fn to_canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let bytes =
            to_canonical_bytes(&json!({"b": 1, "a": [true, null, "x"], "c": {"z": 1.5, "y": 10}}))
                .expect("canonical");
        assert_eq!(
            String::from_utf8(bytes).expect("utf8"),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":10,"z":1.5}}"#
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1.0e12f64..1.0e12).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_encoding_is_a_fixed_point(value in arb_json()) {
            let once = to_canonical_bytes(&value).expect("canonical");
            let reparsed: Value = serde_json::from_slice(&once).expect("canonical bytes are JSON");
            let twice = to_canonical_bytes(&reparsed).expect("canonical");
            prop_assert_eq!(once, twice);
        }
    }
}
