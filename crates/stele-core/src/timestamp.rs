//! Timestamps on the wire: lenient RFC 3339 in, `YYYY-MM-DDTHH:MM:SS.mmmZ` out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch: how Stele keeps every instant internally.
pub type UnixMillis = i64;

/// Parses any RFC 3339 date-time with an offset and 0 to 9 fractional digits
/// (the forms the SDKs send: JS `toISOString`, Go `RFC3339Nano`, PHP `date("c")`, .NET).
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

/// Milliseconds since the epoch, truncating sub-millisecond precision.
pub fn to_unix_millis(at: OffsetDateTime) -> UnixMillis {
    (at.unix_timestamp_nanos() / 1_000_000) as UnixMillis
}

pub fn now_millis() -> UnixMillis {
    to_unix_millis(OffsetDateTime::now_utc())
}

/// Formats as RFC 3339 UTC with exactly three fractional digits and `Z`, the only form
/// every SDK parses (Python 3.10's `fromisoformat` rejects other precisions).
pub fn format_millis(millis: UnixMillis) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_sdk_timestamp_form() {
        for text in [
            "2022-09-08T19:46:03.435Z",
            "2022-09-08T19:46:03Z",
            "2022-09-08T19:46:03+00:00",
            "2022-09-08T21:46:03.435123456+02:00",
            "2022-09-08T19:46:03.4351234-00:00",
        ] {
            assert!(parse_rfc3339(text).is_some(), "{text}");
        }
        assert!(parse_rfc3339("2022-09-08").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn formats_with_exactly_three_fraction_digits() {
        let at = parse_rfc3339("2022-09-08T21:46:03.435987+02:00").expect("valid");
        assert_eq!(
            format_millis(to_unix_millis(at)),
            "2022-09-08T19:46:03.435Z"
        );
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
