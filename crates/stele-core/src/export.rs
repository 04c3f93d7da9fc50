//! Export file formats: how a stored event becomes a CSV row or a JSON line.
//!
//! JSONL lines are the stored canonical bytes themselves, so an exported file can be
//! checked against the hash chain without any re-encoding. CSV flattens the same event
//! into one row per event; nested values (metadata, targets) are JSON in their column.
//! After Stele's own columns come WorkOS's per-target columns (`target_id_N`,
//! `target_type_N`, `target_name_N`, `target_metadata_N`), so parsers written for WorkOS
//! files keep every target.

use std::borrow::Cow;

use serde_json::value::RawValue;
#[cfg(test)]
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
        ExportFormat::Csv => write_csv_row(canonical, out)?,
    }
    Ok(())
}

/// The fields of a stored event that CSV rows carry, borrowed from its bytes. Nested
/// values (metadata, the targets list) are the stored JSON text, which is what their
/// columns hold; strings are unescaped only when they contain escapes.
#[derive(serde::Deserialize)]
struct CsvEvent<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    organization_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sequence: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    action: Option<&'a RawValue>,
    #[serde(borrow, default)]
    occurred_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    actor: Option<CsvEntity<'a>>,
    #[serde(borrow, default)]
    targets: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<CsvContext<'a>>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
struct CsvEntity<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct CsvContext<'a> {
    #[serde(borrow, default)]
    location: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_agent: Option<&'a RawValue>,
}

/// Whether a spreadsheet would take a cell starting with `text` for a formula (OWASP's
/// list for CSV injection): `=`, `+`, `-`, `@`, tab or carriage return.
fn starts_a_formula(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// Appends one CSV field: quoted (quotes doubled) when it holds a delimiter, a quote or a
/// line break, as the `csv` crate's default writer does; and prefixed with `'` when it
/// would start a formula, so that an actor named `=HYPERLINK(…)` stays text when the
/// customer's admin opens the file in a spreadsheet. (JSONL exports keep every byte as
/// stored.)
fn push_field(out: &mut Vec<u8>, first: bool, text: &str) {
    if !first {
        out.push(b',');
    }
    let quoted = text
        .bytes()
        .any(|byte| matches!(byte, b',' | b'"' | b'\n' | b'\r'));
    if quoted {
        out.push(b'"');
    }
    if starts_a_formula(text) {
        out.push(b'\'');
    }
    if quoted {
        for byte in text.bytes() {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// A column's text from a raw JSON value: a string's contents, nothing for null or
/// absent, and any other value as its stored JSON text.
fn raw_text(value: Option<&RawValue>) -> Result<Cow<'_, str>, ExportError> {
    let Some(value) = value else {
        return Ok(Cow::Borrowed(""));
    };
    let json = value.get();
    match json.as_bytes().first() {
        Some(b'"') => Ok(serde_json::from_str::<Cow<'_, str>>(json)?),
        Some(b'n') if json == "null" => Ok(Cow::Borrowed("")),
        _ => Ok(Cow::Borrowed(json)),
    }
}

/// Appends the CSV row of one stored event, reading only the fields the row needs from
/// its bytes (no intermediate JSON tree), in [`CSV_COLUMNS`] order then the per-target
/// groups.
fn write_csv_row(canonical: &[u8], out: &mut Vec<u8>) -> Result<(), ExportError> {
    let event: CsvEvent<'_> = serde_json::from_slice(canonical)?;
    let actor = event.actor.unwrap_or_default();
    let (location, user_agent) = match &event.context {
        Some(context) => (context.location, context.user_agent),
        None => (None, None),
    };
    let fields: [Cow<'_, str>; 15] = [
        raw_text(event.id)?,
        raw_text(event.organization_id)?,
        raw_text(event.sequence)?,
        raw_text(event.version)?,
        raw_text(event.action)?,
        raw_text(event.occurred_at)?,
        raw_text(event.received_at)?,
        raw_text(actor.id)?,
        raw_text(actor.kind)?,
        raw_text(actor.name)?,
        raw_text(actor.metadata)?,
        raw_text(event.targets)?,
        raw_text(location)?,
        raw_text(user_agent)?,
        raw_text(event.metadata)?,
    ];
    for (index, field) in fields.iter().enumerate() {
        push_field(out, index == 0, field);
    }
    let targets: Vec<CsvEntity<'_>> = match event.targets {
        Some(raw) if raw.get().starts_with('[') => serde_json::from_str(raw.get())?,
        _ => Vec::new(),
    };
    for group in 0..CSV_TARGET_GROUPS {
        match targets.get(group) {
            Some(target) => {
                for value in [target.id, target.kind, target.name, target.metadata] {
                    push_field(out, false, &raw_text(value)?);
                }
            }
            None => out.extend_from_slice(b",,,,"),
        }
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row as the first implementation wrote it (a JSON tree and the `csv` crate): the
    /// oracle the streaming writer must match.
    fn tree_row(canonical: &[u8]) -> Vec<u8> {
        let event: Value = serde_json::from_slice(canonical).expect("json");
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
        // The formula guard is the one rule the `csv` crate has no part in (tested on its
        // own in `csv_cells_that_would_start_a_formula_stay_text`).
        let row: Vec<String> = row
            .into_iter()
            .map(|cell| {
                if starts_a_formula(&cell) {
                    format!("'{cell}")
                } else {
                    cell
                }
            })
            .collect();
        let mut out = Vec::new();
        let mut writer = csv::Writer::from_writer(&mut out);
        writer.write_record(&row).expect("row");
        writer.flush().expect("flush");
        drop(writer);
        out
    }

    #[test]
    fn csv_rows_match_the_json_tree_writer_byte_for_byte() {
        let many: Vec<Value> = (0..12)
            .map(|i| serde_json::json!({"id": format!("t{i}"), "metadata": {"n": i, "q": "a\"b"}, "name": "x,y", "type": "doc"}))
            .collect();
        let events = [
            serde_json::json!({"action": "user.signed_in", "actor": {"id": "u1", "type": "user"}, "context": {"location": "1.2.3.4"},
                               "id": "audit_log_event_1", "occurred_at": "2022-09-08T19:46:03.435Z", "organization_id": "org_1",
                               "received_at": "2022-09-08T19:46:04.000Z", "sequence": 3, "targets": [], "version": 2}),
            serde_json::json!({"action": "a,b", "actor": {"id": "u\"1", "metadata": {"role": "ad\nmin", "n": 1.5, "ok": true},
                               "name": "Zoë \u{1F600}", "type": "user"},
                               "context": {"location": "line\r\nbreak", "user_agent": "Mozilla/5.0 (X11; \"q\")"},
                               "id": "audit_log_event_2", "imported": true, "metadata": {"k": "tab\there", "z": -3},
                               "occurred_at": "2022-09-08T19:46:03.435Z", "organization_id": "org_1",
                               "received_at": "2022-09-08T19:46:04.000Z", "sequence": 12345678901u64, "targets": many, "version": 1}),
        ];
        for event in events {
            let canonical = crate::canonical::to_canonical_bytes(&event).expect("canonical");
            let mut out = Vec::new();
            write_event(ExportFormat::Csv, &canonical, &mut out).expect("row");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&tree_row(&canonical))
            );
        }
    }

    const EVENT: &[u8] = br#"{"action":"user.signed_in","actor":{"id":"u1","metadata":{"role":"admin"},"type":"user"},"context":{"location":"1.2.3.4"},"id":"audit_log_event_1","occurred_at":"2022-09-08T19:46:03.435Z","organization_id":"org_1","received_at":"2022-09-08T19:46:04.000Z","sequence":3,"targets":[{"id":"t,1","type":"team"}],"version":2}"#;

    #[test]
    fn csv_cells_that_would_start_a_formula_stay_text() {
        let canonical = br#"{"action":"user.signed_in","actor":{"id":"-2+3","name":"=HYPERLINK(\"https://evil.example\",\"x\")","type":"user"},"context":{"location":"1.2.3.4","user_agent":"@SUM(A1)"},"id":"audit_log_event_1","occurred_at":"2024-01-01T00:00:00.000Z","organization_id":"org_1","received_at":"2024-01-01T00:00:00.000Z","sequence":1,"targets":[{"id":"+1","type":"team"}],"version":1}"#;
        let mut out = Vec::new();
        write_event(ExportFormat::Csv, canonical, &mut out).expect("row");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        let row = reader.records().next().expect("row").expect("valid");
        assert_eq!(&row[7], "'-2+3");
        assert_eq!(
            &row[9], r#"'=HYPERLINK("https://evil.example","x")"#,
            "quoted and guarded"
        );
        assert_eq!(&row[13], "'@SUM(A1)");
        assert_eq!(&row[CSV_COLUMNS.len()], "'+1");
        // Everything else is as stored.
        assert_eq!(&row[0], "audit_log_event_1");
        assert_eq!(&row[5], "2024-01-01T00:00:00.000Z");
        assert_eq!(&row[12], "1.2.3.4");
    }

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
