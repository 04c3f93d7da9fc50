//! The schema-version write decision, once for both backends: a submission equal to the
//! latest version creates nothing; anything else creates version latest+1.

use stele_core::model::SchemaVersion;
use stele_core::schema::SchemaDefinition;

use super::encoding::parse_definition;
use crate::{StoreError, StoreResult};

/// The definition's canonical bytes as the text stored in `schema_versions.definition`.
pub(crate) fn canonical_definition(definition: &SchemaDefinition) -> StoreResult<String> {
    let bytes = definition
        .to_canonical_bytes()
        .map_err(|error| StoreError::Internal(format!("canonicalizing a schema: {error}")))?;
    String::from_utf8(bytes)
        .map_err(|error| StoreError::Internal(format!("canonical schema is not UTF-8: {error}")))
}

pub(crate) enum SchemaWrite {
    /// The submission equals the latest version, which stays in force.
    Unchanged(SchemaVersion),
    /// Create this version number.
    Create(i64),
}

/// Decides, given the action's latest version (read under the lock or on the writer that
/// makes this one decision), what a submission of `canonical` does.
pub(crate) fn decide_schema_write(
    latest: Option<SchemaVersion>,
    canonical: &str,
) -> StoreResult<SchemaWrite> {
    Ok(match latest {
        Some(latest) if canonical_definition(&latest.definition)? == canonical => {
            SchemaWrite::Unchanged(latest)
        }
        latest => SchemaWrite::Create(latest.map_or(1, |latest| latest.version + 1)),
    })
}

/// A schema version from its columns.
pub(crate) fn schema_version(
    action: &str,
    version: i64,
    definition: &str,
    created_by: String,
    created_at: i64,
) -> StoreResult<SchemaVersion> {
    Ok(SchemaVersion {
        action: action.to_owned(),
        version,
        definition: parse_definition(action, version, definition)?,
        created_by,
        created_at,
    })
}
