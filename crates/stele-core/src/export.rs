//! Export file formats: how a stored event becomes a CSV row or a JSON line.
//!
//! JSONL lines are the stored canonical bytes themselves, so an exported file can be
//! checked against the hash chain without any re-encoding. CSV flattens the same event
//! into one row per event; nested values (metadata, targets) are JSON in their column.

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
        writer.write_record(CSV_COLUMNS)?;
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
            let row: [String; 15] = [
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
        assert_eq!(reader.headers().expect("headers").len(), CSV_COLUMNS.len());
        let row = reader.records().next().expect("row").expect("valid");
        assert_eq!(&row[0], "audit_log_event_1");
        assert_eq!(&row[2], "3");
        assert_eq!(&row[9], "", "absent actor name is empty");
        assert_eq!(&row[10], r#"{"role":"admin"}"#);
        assert_eq!(&row[11], r#"[{"id":"t,1","type":"team"}]"#);
        assert_eq!(&row[13], "");
    }

    #[test]
    fn jsonl_lines_are_the_stored_bytes() {
        let mut out = Vec::new();
        write_event(ExportFormat::Jsonl, EVENT, &mut out).expect("line");
        assert_eq!(&out[..out.len() - 1], EVENT);
        assert_eq!(out.last(), Some(&b'\n'));
    }
}
