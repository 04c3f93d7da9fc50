//! The form an action name must take: WorkOS-style `group.verb` names such as
//! `user.signed_in`, so names stay readable in URLs, filters, exports and SIEMs.

/// The rule in words, as API errors and documentation state it.
pub const ACTION_NAME_RULE: &str = "action names are two or more dot-separated segments of \
     lowercase letters, digits, '_' and '-' (like user.signed_in), at most 128 characters";

/// Longest accepted action name, in bytes (every allowed character is one byte).
pub const MAX_ACTION_NAME_LEN: usize = 128;

/// Whether `name` has the allowed form (see [`ACTION_NAME_RULE`]).
pub fn is_valid_action_name(name: &str) -> bool {
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    };
    name.len() <= MAX_ACTION_NAME_LEN
        && name.split('.').count() >= 2
        && name.split('.').all(segment_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_verb_names_are_accepted() {
        for name in [
            "user.signed_in",
            "document.shared",
            "user.signed_in.rs42",
            "sso-connection.updated",
            "v2.api_key.created",
            "a.b",
        ] {
            assert!(is_valid_action_name(name), "{name}");
        }
        assert!(is_valid_action_name(&format!("a.{}", "b".repeat(126))));
    }

    #[test]
    fn other_names_are_refused() {
        for name in [
            "",
            "signed_in",
            "bad action",
            "bad.action name",
            "a/b",
            "a.b/c",
            "<script>",
            "user.<script>",
            "User.SignedIn",
            "user..signed_in",
            ".user",
            "user.",
            "user.signé",
            "user.signed\nin",
        ] {
            assert!(!is_valid_action_name(name), "{name:?}");
        }
        assert!(!is_valid_action_name(&format!("a.{}", "b".repeat(127))));
    }
}
