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

/// Most values one filter of a search or export may hold (`actions`, `actor_ids`, ...):
/// each value is a bound parameter of one statement, and both databases cap those.
pub const MAX_FILTER_VALUES: usize = 1_000;

/// Refuses, under `field`, a filter with more than [`MAX_FILTER_VALUES`] values.
pub fn check_value_count(field: &str, values: &[String], errors: &mut Vec<FieldError>) {
    if values.len() > MAX_FILTER_VALUES {
        errors.push(FieldError::invalid(
            field,
            format!(
                "{field} has {} values; at most {MAX_FILTER_VALUES} are accepted.",
                values.len()
            ),
        ));
    }
}
