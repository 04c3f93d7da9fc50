//! What an export stores and how its completeness is judged, once for both backends.

use stele_core::model::{EventQuery, Export, ExportFormat};

use super::encoding::json_text;
use crate::{StoreError, StoreResult};

/// What the `filters` column of `exports` holds: the query and where the organization's
/// retained chain started when the export was created.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredExportFilters {
    #[serde(flatten)]
    query: EventQuery,
    retained_from: i64,
}

/// The `filters` column for a new export, given where the retained chain starts now.
pub(crate) fn export_filters(export: &Export, retained_from: i64) -> StoreResult<String> {
    json_text(&StoredExportFilters {
        query: export.query.clone(),
        retained_from,
    })
}

/// The export as created: its snapshot ends at `head`, the newest committed sequence.
pub(crate) fn snapshot(export: Export, head: i64) -> Export {
    let mut query = export.query;
    query.up_to_sequence = Some(head);
    Export { query, ..export }
}

/// An `exports` row.
pub(crate) struct StoredExport {
    pub(crate) organization_id: String,
    pub(crate) filters: String,
    pub(crate) format: String,
    pub(crate) up_to_sequence: i64,
    pub(crate) created_at: i64,
}

/// A stored export. It is complete while retention has purged none of the events its
/// snapshot covers, the sequences from where the retained chain started at creation up to
/// `up_to_sequence` (`retained_now` is where the retained chain starts now).
pub(crate) fn stored_export(id: &str, row: StoredExport, retained_now: i64) -> StoreResult<Export> {
    let organization = Some(row.organization_id.as_str());
    let stored: StoredExportFilters = serde_json::from_str(&row.filters).map_err(|error| {
        StoreError::corrupt(organization, None, format!("export {id} filters: {error}"))
    })?;
    // An unknown name means the row was written by something else, and guessing a format
    // would serve the wrong file.
    let format = ExportFormat::parse(&row.format).ok_or_else(|| {
        StoreError::corrupt(
            organization,
            None,
            format!("export {id} has unknown format {:?}", row.format),
        )
    })?;
    let mut query = stored.query;
    query.organization_id = row.organization_id.into();
    query.up_to_sequence = Some(row.up_to_sequence);
    Ok(Export {
        id: id.into(),
        query,
        format,
        created_at: row.created_at,
        complete: retained_now <= stored.retained_from || row.up_to_sequence < stored.retained_from,
    })
}
