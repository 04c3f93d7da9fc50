//! Public identifiers: a resource prefix followed by a 26-character ULID, as WorkOS uses.

use std::sync::Mutex;

use ulid::{Generator, Ulid};

/// One process-wide monotonic generator: ids made in the same millisecond still sort in
/// creation order, so id-ordered lists are exactly chronological.
static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

/// The kinds of identifiers Stele hands out; the prefix tells a reader what an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Organization,
    OrganizationDomain,
    Event,
    Export,
    ApiKey,
    User,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Organization => "org_",
            IdKind::OrganizationDomain => "org_domain_",
            IdKind::Event => "audit_log_event_",
            IdKind::Export => "audit_log_export_",
            IdKind::ApiKey => "key_",
            IdKind::User => "user_",
        }
    }

    /// A fresh id, later than every id this process made before.
    pub fn generate(self) -> String {
        let ulid = match GENERATOR.lock() {
            Ok(mut generator) => generator.generate().unwrap_or_else(|_| Ulid::new()),
            // A poisoned lock only means another thread panicked mid-call; the generator
            // state is a plain value and still usable, but fall back to be safe.
            Err(_) => Ulid::new(),
        };
        format!("{}{ulid}", self.prefix())
    }

    /// Whether `candidate` is well-formed for this kind (prefix + valid ULID).
    pub fn matches(self, candidate: &str) -> bool {
        candidate
            .strip_prefix(self.prefix())
            .is_some_and(|rest| rest.len() == 26 && Ulid::from_string(rest).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_prefix_and_ulid() {
        let id = IdKind::Organization.generate();
        assert!(id.starts_with("org_"));
        assert_eq!(id.len(), 4 + 26);
        assert!(IdKind::Organization.matches(&id));
        assert!(!IdKind::Event.matches(&id));
        assert!(!IdKind::Organization.matches("org_123"));
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| IdKind::Event.generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
