//! Encodings of stored values that both backends share, so a row means the same thing
//! whichever database holds it.

use stele_core::model::{EventQuery, ExportFormat};
use stele_core::schema::SchemaDefinition;

use crate::{StoreError, StoreResult};

/// JSON text of a value kept in a text column (organization metadata, domains, filters).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Database(error.to_string()))
}

/// A stored schema version's definition, or [`StoreError::Corrupt`] naming it.
pub(crate) fn parse_definition(
    action: &str,
    version: i64,
    text: &str,
) -> StoreResult<SchemaDefinition> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("schema {action} v{version}: {error}")))
}

/// A stored export's format, or [`StoreError::Corrupt`] naming the export: an unknown name
/// means the row was written by something else, and guessing a format would serve the
/// wrong file.
pub(crate) fn parse_export_format(export_id: &str, name: &str) -> StoreResult<ExportFormat> {
    ExportFormat::parse(name).ok_or_else(|| {
        StoreError::Corrupt(format!("export {export_id} has unknown format {name:?}"))
    })
}

/// What the `filters` column of `exports` holds: the query and where the organization's
/// retained chain started when the export was created.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredExportFilters {
    #[serde(flatten)]
    pub(crate) query: EventQuery,
    pub(crate) retained_from: i64,
}
