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
    LogStream,
    QuarantinedEvent,
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
            IdKind::LogStream => "log_stream_",
            IdKind::QuarantinedEvent => "quarantine_",
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

    /// Whether `candidate` is well-formed for this kind: the prefix and a ULID in its
    /// canonical form (upper case, at most `7ZZZZZZZZZZZZZZZZZZZZZZZZZ`), as WorkOS and
    /// [`IdKind::generate`] write it. ULIDs ignore case, so accepting other spellings would
    /// let two ids name one ULID.
    pub fn matches(self, candidate: &str) -> bool {
        candidate.strip_prefix(self.prefix()).is_some_and(|rest| {
            rest.len() == 26 && Ulid::from_string(rest).is_ok_and(|ulid| ulid.to_string() == rest)
        })
    }

    /// Whether `candidate` has this kind's prefix and a ULID in any spelling: what ids
    /// stored before [`IdKind::matches`] required the canonical one may look like, so
    /// that rules about existing resources (key restrictions, copies from another Stele)
    /// still accept them. New ids must [`IdKind::matches`].
    pub fn names_a_ulid(self, candidate: &str) -> bool {
        candidate
            .strip_prefix(self.prefix())
            .is_some_and(|rest| rest.len() == 26 && Ulid::from_string(rest).is_ok())
    }
}

/// Declares a newtype id: a `String` that names one kind of resource, so an event id cannot
/// be passed where an organization id is expected. Ids arriving over the wire are kept as
/// sent (WorkOS ids, imported ones included), so construction does not validate the form;
/// `generate` makes a fresh, prefixed ULID.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh id, later than every id of this kind this process made before.
            pub fn generate() -> Self {
                Self($kind.generate())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(value: &String) -> Self {
                Self(value.clone())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                String::column_result(value).map(Self)
            }
        }

        #[cfg(feature = "sql")]
        impl postgres_types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &postgres_types::Type,
                out: &mut postgres_types::private::BytesMut,
            ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.0.to_sql(ty, out)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <String as postgres_types::ToSql>::accepts(ty)
            }

            postgres_types::to_sql_checked!();
        }

        #[cfg(feature = "sql")]
        impl<'a> postgres_types::FromSql<'a> for $name {
            fn from_sql(
                ty: &postgres_types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                String::from_sql(ty, raw).map(Self)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <String as postgres_types::FromSql>::accepts(ty)
            }
        }
    };
}

id_type!(
    /// An organization's id (`org_...`, or the id it was created or imported with).
    OrganizationId,
    IdKind::Organization
);
id_type!(
    /// A stored audit event's id (`audit_log_event_...`).
    EventId,
    IdKind::Event
);
id_type!(
    /// An export's id (`audit_log_export_...`).
    ExportId,
    IdKind::Export
);
id_type!(
    /// An API key's public id (`key_...`); the secret is never stored.
    ApiKeyId,
    IdKind::ApiKey
);
id_type!(
    /// A dashboard user's id (`user_...`).
    UserId,
    IdKind::User
);

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
    fn only_the_canonical_spelling_of_a_ulid_matches() {
        assert!(IdKind::Organization.matches("org_01EHZNVPK3SFK441A1RGBFSHRT"));
        // The same ULID in lower case, and one past the largest ULID.
        assert!(!IdKind::Organization.matches("org_01ehznvpk3sfk441a1rgbfshrt"));
        assert!(!IdKind::Organization.matches("org_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(IdKind::Organization.matches("org_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        // Existing ids in another spelling still name a ULID.
        assert!(IdKind::Organization.names_a_ulid("org_01ehznvpk3sfk441a1rgbfshrt"));
        assert!(!IdKind::Organization.names_a_ulid("org_123"));
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| IdKind::Event.generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
