//! WorkOS's limits on metadata objects (`metadata`, `actor.metadata`, `targets[].metadata`).

use serde_json::{Map, Value};

use crate::schema::SchemaViolation;

pub const MAX_KEYS: usize = 50;
pub const MAX_KEY_LENGTH: usize = 40;
pub const MAX_STRING_VALUE_CHARS: usize = 500;

fn key_is_allowed(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LENGTH
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks one metadata object; `pointer` is its JSON pointer from the event root
/// (`/actor/metadata`). Every violation is reported, not just the first.
pub fn check_limits(
    pointer: &str,
    metadata: &Map<String, Value>,
    violations: &mut Vec<SchemaViolation>,
) {
    if metadata.len() > MAX_KEYS {
        violations.push(SchemaViolation::new(
            pointer,
            format!(
                "metadata has {} keys; at most {MAX_KEYS} are allowed",
                metadata.len()
            ),
        ));
    }
    for (key, value) in metadata {
        let path = format!("{pointer}/{}", crate::schema::escape_pointer_token(key));
        if !key_is_allowed(key) {
            violations.push(SchemaViolation::new(
                &path,
                format!(
                    "metadata key '{key}' must be 1 to {MAX_KEY_LENGTH} characters of A-Z, a-z, 0-9, '_' or '-'"
                ),
            ));
        }
        match value {
            Value::String(text) if text.chars().count() > MAX_STRING_VALUE_CHARS => {
                violations.push(SchemaViolation::new(
                    &path,
                    format!(
                        "metadata string values may be at most {MAX_STRING_VALUE_CHARS} characters"
                    ),
                ));
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            _ => violations.push(SchemaViolation::new(
                &path,
                "metadata values must be a string, a number or a boolean",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn violations_of(value: Value) -> Vec<SchemaViolation> {
        let mut found = Vec::new();
        check_limits("/metadata", value.as_object().expect("object"), &mut found);
        found
    }

    #[test]
    fn accepts_scalars_within_limits() {
        assert!(
            violations_of(json!({"role": "admin", "count": 3, "ok": true, "a-b_c": "x"}))
                .is_empty()
        );
    }

    #[test]
    fn rejects_bad_keys_nested_values_and_long_strings() {
        let found = violations_of(
            json!({"bad key": 1, "nested": {"a": 1}, "long": "x".repeat(501), "n": null}),
        );
        let paths: Vec<_> = found.iter().map(|v| v.instance_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/bad key",
                "/metadata/long",
                "/metadata/n",
                "/metadata/nested"
            ]
        );
    }

    #[test]
    fn rejects_more_than_fifty_keys() {
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
        let found = violations_of(Value::Object(many));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].instance_path, "/metadata");
    }
}
