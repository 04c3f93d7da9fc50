//! Event filters shared by search (query string), exports (JSON body) and the dashboard
//! events viewer (form fields).

use stele_core::timestamp::{parse_instant, UnixMillis};
use stele_core::FieldError;

/// Parses an optional RFC 3339 bound, reporting a bad one under `field`.
pub fn parse_bound(
    field: &str,
    value: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<UnixMillis> {
    let text = value?;
    match parse_instant(text) {
        Ok(millis) => Some(millis),
        Err(error) => {
            errors.push(FieldError::invalid(field, error.message(field)));
            None
        }
    }
}

/// All values of a repeated query parameter, given as `name=a&name=b` or `name[]=a`.
pub fn repeated(pairs: &[(String, String)], name: &str) -> Vec<String> {
    let bracketed = format!("{name}[]");
    pairs
        .iter()
        .filter(|(key, _)| *key == name || *key == bracketed)
        .map(|(_, value)| value.clone())
        .filter(|value| !value.is_empty())
        .collect()
}
