//! Who may do what: API key scopes, organization restrictions, the reserved organization
//! that holds Stele's own activity log, and the minimum strength of operator secrets.

use serde::{Deserialize, Serialize};

/// The organization id under which Stele keeps its own activity log (every operator
/// action, chained, checkpointed and provable like a customer's log). It is never listed
/// as a customer organization, cannot be created, updated, deleted or written to through
/// the API, and only unrestricted `admin` keys can read it.
pub const ACTIVITY_LOG_ORGANIZATION_ID: &str = "org_00000000000000000000000000";

/// Whether `id` is the reserved activity-log organization.
pub fn is_activity_log(id: &str) -> bool {
    id == ACTIVITY_LOG_ORGANIZATION_ID
}

/// What an API key may do. `Admin` includes every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "schemas:write")]
    SchemasWrite,
    #[serde(rename = "organizations:write")]
    OrganizationsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::SchemasWrite,
        Scope::OrganizationsWrite,
        Scope::Admin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::SchemasWrite => "schemas:write",
            Scope::OrganizationsWrite => "organizations:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// The accepted spellings, for error messages.
    pub fn names() -> String {
        Scope::ALL
            .iter()
            .map(|scope| format!("'{}'", scope.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's grants: its scopes and, when not empty, the only organizations it may touch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyGrants {
    pub scopes: Vec<Scope>,
    /// Empty: every organization.
    pub organizations: Vec<String>,
}

impl KeyGrants {
    /// What keys had before scopes existed, and what a key gets when none are named.
    pub fn admin() -> Self {
        Self {
            scopes: vec![Scope::Admin],
            organizations: Vec::new(),
        }
    }

    /// Whether the key holds `scope` (directly or through `admin`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// Whether the key holds any of `scopes`.
    pub fn has_any(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|scope| self.has(*scope))
    }

    pub fn is_restricted(&self) -> bool {
        !self.organizations.is_empty()
    }

    /// Whether the key may act on `organization_id`. The activity log is open only to
    /// unrestricted `admin` keys.
    pub fn allows_organization(&self, organization_id: &str) -> bool {
        if is_activity_log(organization_id) {
            return self.has(Scope::Admin) && !self.is_restricted();
        }
        !self.is_restricted() || self.organizations.iter().any(|id| id == organization_id)
    }

    /// The scopes as shown (`events:write`, `events:read`).
    pub fn scope_names(&self) -> Vec<&'static str> {
        self.scopes.iter().map(|scope| scope.as_str()).collect()
    }

    /// The stored forms: scopes and organization ids, each space-separated.
    pub fn stored(&self) -> (String, String) {
        (self.scope_names().join(" "), self.organizations.join(" "))
    }

    /// Reads the stored forms back; an unknown scope name is an error (damaged row).
    pub fn from_stored(scopes: &str, organizations: &str) -> Result<Self, String> {
        let scopes = scopes
            .split_whitespace()
            .map(|name| Scope::parse(name).ok_or_else(|| format!("unknown scope '{name}'")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            scopes,
            organizations: organizations
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// Checks a requested set of scopes and organizations; returns them sorted and without
/// duplicates, `admin` alone when no scope is named.
pub fn grants_from_names(scopes: &[String], organizations: &[String]) -> Result<KeyGrants, String> {
    let mut parsed = Vec::new();
    for name in scopes {
        let scope = Scope::parse(name.trim()).ok_or_else(|| {
            format!(
                "Unknown scope '{}': use one of {}.",
                name.trim(),
                Scope::names()
            )
        })?;
        parsed.push(scope);
    }
    if parsed.is_empty() {
        parsed.push(Scope::Admin);
    }
    parsed.sort();
    parsed.dedup();
    let mut organizations: Vec<String> = organizations
        .iter()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    for id in &organizations {
        // Any spelling: organizations created before ids had to be canonical keep theirs.
        if !crate::ids::IdKind::Organization.names_a_ulid(id) || is_activity_log(id) {
            return Err(format!(
                "'{id}' is not an organization id a key can be restricted to (org_ followed by a 26-character ULID)."
            ));
        }
    }
    organizations.sort();
    organizations.dedup();
    Ok(KeyGrants {
        scopes: parsed,
        organizations,
    })
}

/// The shortest API key secret Stele accepts from configuration (`STELE_API_KEY`).
pub const MIN_API_KEY_LENGTH: usize = 32;
/// The fewest distinct characters such a secret must use.
pub const MIN_API_KEY_DISTINCT: usize = 10;
/// The shortest dashboard password Stele accepts.
pub const MIN_PASSWORD_LENGTH: usize = 12;
/// The fewest distinct characters a password must use.
pub const MIN_PASSWORD_DISTINCT: usize = 5;

fn distinct_characters(text: &str) -> usize {
    let mut seen: Vec<char> = text.chars().collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Refuses an operator-chosen API key secret that is too weak to stand in for a generated
/// one: at least 32 characters, of which at least 10 distinct, no whitespace.
pub fn check_api_key_strength(secret: &str) -> Result<(), String> {
    let length = secret.chars().count();
    if length < MIN_API_KEY_LENGTH
        || distinct_characters(secret) < MIN_API_KEY_DISTINCT
        || secret.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "The API key is too weak: use at least {MIN_API_KEY_LENGTH} characters with at least \
             {MIN_API_KEY_DISTINCT} different ones and no spaces (for example the output of \
             `openssl rand -hex 32`); it has {length}."
        ));
    }
    Ok(())
}

/// Refuses a dashboard password shorter than 12 characters or made of fewer than 5
/// different characters.
pub fn check_password_strength(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH || distinct_characters(password) < MIN_PASSWORD_DISTINCT {
        return Err(format!(
            "The password is too weak: use at least {MIN_PASSWORD_LENGTH} characters with at \
             least {MIN_PASSWORD_DISTINCT} different ones; it has {length}."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_every_scope_and_others_only_their_own() {
        let admin = KeyGrants::admin();
        assert!(Scope::ALL.iter().all(|scope| admin.has(*scope)));
        let ingest = grants_from_names(&["events:write".into()], &[]).expect("valid");
        assert!(ingest.has(Scope::EventsWrite));
        assert!(!ingest.has(Scope::EventsRead));
        assert!(!ingest.has(Scope::Admin));
    }

    #[test]
    fn no_scope_named_means_admin_and_unknown_scopes_are_refused() {
        assert_eq!(
            grants_from_names(&[], &[]).expect("valid"),
            KeyGrants::admin()
        );
        let error = grants_from_names(&["events:delete".into()], &[]).expect_err("unknown scope");
        assert!(error.contains("events:delete") && error.contains("events:write"));
    }

    #[test]
    fn restricted_keys_reach_only_their_organizations_and_never_the_activity_log() {
        let org = "org_01HZY3J4Q5R6S7T8V9W0X1Y2Z3".to_owned();
        let grants =
            grants_from_names(&["admin".into()], std::slice::from_ref(&org)).expect("valid");
        assert!(grants.allows_organization(&org));
        assert!(!grants.allows_organization("org_01HZY3J4Q5R6S7T8V9W0X1Y2Z4"));
        assert!(!grants.allows_organization(ACTIVITY_LOG_ORGANIZATION_ID));
        assert!(KeyGrants::admin().allows_organization(ACTIVITY_LOG_ORGANIZATION_ID));
        let reader = grants_from_names(&["events:read".into()], &[]).expect("valid");
        assert!(!reader.allows_organization(ACTIVITY_LOG_ORGANIZATION_ID));
        assert!(grants_from_names(&[], &[ACTIVITY_LOG_ORGANIZATION_ID.into()]).is_err());
        assert!(grants_from_names(&[], &["acme".into()]).is_err());
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(check_api_key_strength("a").is_err());
        assert!(check_api_key_strength(&"ab".repeat(20)).is_err());
        assert!(check_api_key_strength("sk_test_0123456789abcdefghijklmnopqrstuv").is_ok());
        assert!(check_password_strength("short").is_err());
        assert!(check_password_strength("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_password_strength("correct horse battery").is_ok());
    }
}
