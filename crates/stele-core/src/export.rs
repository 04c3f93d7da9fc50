//! Export file formats: how a stored event becomes a CSV row or a JSON line.
//!
//! JSONL lines are the stored canonical bytes themselves, so an exported file can be
//! checked against the hash chain without any re-encoding. CSV flattens the same event
//! into one row per event; nested values (metadata, targets) are JSON in their column.
//! After Stele's own columns come WorkOS's per-target columns (`target_id_N`,
//! `target_type_N`, `target_name_N`, `target_metadata_N`), so parsers written for WorkOS
//! files keep every target.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
    /// JSONL with a signed checkpoint, each event's inclusion proof and a signed manifest
    /// (see `proven_jsonl`); written by the server, which holds the tree and the key.
    ProvenJsonl,
}

impl ExportFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(ExportFormat::Csv),
            "jsonl" => Some(ExportFormat::Jsonl),
            "proven_jsonl" => Some(ExportFormat::ProvenJsonl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::ProvenJsonl => "proven_jsonl",
        }
    }

    pub fn file_extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl | ExportFormat::ProvenJsonl => "jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl | ExportFormat::ProvenJsonl => "application/x-ndjson",
        }
    }
}

/// CSV columns, in order. Documented in the README; append new columns at the end only.
pub const CSV_COLUMNS: [&str; 15] = [
    "id",
    "organization_id",
    "sequence",
    "version",
    "action",
    "occurred_at",
    "received_at",
    "actor_id",
    "actor_type",
    "actor_name",
    "actor_metadata",
    "targets",
    "context_location",
    "context_user_agent",
    "metadata",
];

/// How many WorkOS per-target column groups a CSV export has. The header is written before
/// any event is read (exports stream), so the count is fixed rather than the export's
/// largest target list. An event with more targets fills every group, and its full list is
/// always in the `targets` column; an event with fewer leaves the rest empty.
pub const CSV_TARGET_GROUPS: usize = 10;

/// The fields of one per-target column group, in order (`target_id_1`, `target_type_1`...).
const TARGET_GROUP_FIELDS: [&str; 4] = ["id", "type", "name", "metadata"];

/// The full CSV header: [`CSV_COLUMNS`] then the per-target groups 1 to
/// [`CSV_TARGET_GROUPS`].
pub fn csv_header() -> Vec<String> {
    let mut header: Vec<String> = CSV_COLUMNS.iter().map(|&name| name.to_owned()).collect();
    for group in 1..=CSV_TARGET_GROUPS {
        for field in TARGET_GROUP_FIELDS {
            header.push(format!("target_{field}_{group}"));
        }
    }
    header
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("stored event is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("proven JSONL needs the Merkle tree and signing key; the server writes it")]
    NeedsProofs,
}

/// Appends the header line of `format` (CSV only; JSONL has none).
pub fn write_header(format: ExportFormat, out: &mut Vec<u8>) -> Result<(), ExportError> {
    if format == ExportFormat::Csv {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(csv_header())?;
        writer.flush().map_err(csv::Error::from)?;
    }
    Ok(())
}

/// Appends one stored event (its canonical bytes) in `format`.
pub fn write_event(
    format: ExportFormat,
    canonical: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ExportError> {
    match format {
        ExportFormat::ProvenJsonl => return Err(ExportError::NeedsProofs),
        ExportFormat::Jsonl => {
            out.extend_from_slice(canonical);
            out.push(b'\n');
        }
        ExportFormat::Csv => {
            let event: Value = serde_json::from_slice(canonical)?;
            let text = |value: &Value| match value {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let mut row: Vec<String> = vec![
                text(&event["id"]),
                text(&event["organization_id"]),
                text(&event["sequence"]),
                text(&event["version"]),
                text(&event["action"]),
                text(&event["occurred_at"]),
                text(&event["received_at"]),
                text(&event["actor"]["id"]),
                text(&event["actor"]["type"]),
                text(&event["actor"]["name"]),
                text(&event["actor"]["metadata"]),
                text(&event["targets"]),
                text(&event["context"]["location"]),
                text(&event["context"]["user_agent"]),
                text(&event["metadata"]),
            ];
            let targets = event["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for group in 0..CSV_TARGET_GROUPS {
                let target = targets.get(group).unwrap_or(&Value::Null);
                for field in TARGET_GROUP_FIELDS {
                    row.push(text(&target[field]));
                }
            }
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(&row)?;
            writer.flush().map_err(csv::Error::from)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &[u8] = br#"{"action":"user.signed_in","actor":{"id":"u1","metadata":{"role":"admin"},"type":"user"},"context":{"location":"1.2.3.4"},"id":"audit_log_event_1","occurred_at":"2022-09-08T19:46:03.435Z","organization_id":"org_1","received_at":"2022-09-08T19:46:04.000Z","sequence":3,"targets":[{"id":"t,1","type":"team"}],"version":2}"#;

    #[test]
    fn csv_rows_flatten_and_quote() {
        let mut out = Vec::new();
        write_header(ExportFormat::Csv, &mut out).expect("header");
        write_event(ExportFormat::Csv, EVENT, &mut out).expect("row");
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let headers = reader.headers().expect("headers").clone();
        assert_eq!(
            headers.len(),
            CSV_COLUMNS.len() + 4 * CSV_TARGET_GROUPS,
            "Stele's columns then the per-target groups"
        );
        assert_eq!(&headers[CSV_COLUMNS.len()], "target_id_1");
        assert_eq!(&headers[CSV_COLUMNS.len() + 3], "target_metadata_1");
        assert_eq!(
            &headers[headers.len() - 1],
            format!("target_metadata_{CSV_TARGET_GROUPS}")
        );
        let row = reader.records().next().expect("row").expect("valid");
        assert_eq!(&row[0], "audit_log_event_1");
        assert_eq!(&row[2], "3");
        assert_eq!(&row[9], "", "absent actor name is empty");
        assert_eq!(&row[10], r#"{"role":"admin"}"#);
        assert_eq!(&row[11], r#"[{"id":"t,1","type":"team"}]"#);
        assert_eq!(&row[13], "");
        let first = CSV_COLUMNS.len();
        assert_eq!(&row[first], "t,1");
        assert_eq!(&row[first + 1], "team");
        assert_eq!(&row[first + 2], "", "absent target name is empty");
        assert_eq!(&row[first + 3], "");
        assert_eq!(&row[first + 4], "", "no second target");
    }

    #[test]
    fn csv_target_groups_stop_at_the_fixed_maximum_and_keep_the_full_list() {
        let targets: Vec<Value> = (1..=CSV_TARGET_GROUPS + 2)
            .map(|i| serde_json::json!({"id": format!("t{i}"), "type": "team", "name": format!("n{i}"), "metadata": {"i": i}}))
            .collect();
        let event = serde_json::json!({"id": "audit_log_event_2", "targets": targets});
        let mut out = Vec::new();
        write_header(ExportFormat::Csv, &mut out).expect("header");
        write_event(ExportFormat::Csv, event.to_string().as_bytes(), &mut out).expect("row");
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let row = reader.records().next().expect("row").expect("valid");
        assert_eq!(row.len(), CSV_COLUMNS.len() + 4 * CSV_TARGET_GROUPS);
        let last = CSV_COLUMNS.len() + 4 * (CSV_TARGET_GROUPS - 1);
        assert_eq!(&row[last], format!("t{CSV_TARGET_GROUPS}"));
        assert_eq!(&row[last + 2], format!("n{CSV_TARGET_GROUPS}"));
        assert_eq!(&row[last + 3], format!(r#"{{"i":{CSV_TARGET_GROUPS}}}"#));
        let all: Vec<Value> = serde_json::from_str(&row[11]).expect("targets column");
        assert_eq!(
            all.len(),
            CSV_TARGET_GROUPS + 2,
            "the targets column keeps them all"
        );
    }

    #[test]
    fn jsonl_lines_are_the_stored_bytes() {
        let mut out = Vec::new();
        write_event(ExportFormat::Jsonl, EVENT, &mut out).expect("line");
        assert_eq!(&out[..out.len() - 1], EVENT);
        assert_eq!(out.last(), Some(&b'\n'));
    }
}
