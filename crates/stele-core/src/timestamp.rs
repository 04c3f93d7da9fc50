//! Timestamps on the wire: lenient RFC 3339 in, `YYYY-MM-DDTHH:MM:SS.mmmZ` out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch: how Stele keeps every instant internally.
pub type UnixMillis = i64;

/// Parses any RFC 3339 date-time with an offset and 0 to 9 fractional digits
/// (the forms the SDKs send: JS `toISOString`, Go `RFC3339Nano`, PHP `date("c")`, .NET).
///
/// The `time` crate also reads a leap second (`23:59:60`, as `23:59:59.999999999`) and any
/// number of fractional digits; both are refused, since neither instant could be stored as
/// written.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    // The parse succeeded, so `text` is `YYYY-MM-DDTHH:MM:SS` then an optional fraction.
    let rest = text.get(17..)?;
    if rest.starts_with("60") {
        return None;
    }
    let fraction_digits = rest
        .strip_prefix(|c: char| c.is_ascii_digit())
        .and_then(|rest| rest.strip_prefix(|c: char| c.is_ascii_digit()))
        .and_then(|rest| rest.strip_prefix('.'))
        .map_or(0, |fraction| {
            fraction.bytes().take_while(u8::is_ascii_digit).count()
        });
    (fraction_digits <= 9).then_some(at)
}

/// The earliest instant Stele accepts, 0001-01-01T00:00:00.000Z, and the latest,
/// 9999-12-31T23:59:59.999Z: the years RFC 3339 can write in UTC. An offset can carry a
/// local time just inside the range outside it (`9999-12-31T23:59:59-23:59` is in year
/// 10000 in UTC), so the range is checked on the UTC instant.
pub const EARLIEST_MILLIS: UnixMillis = -62_135_596_800_000;
pub const LATEST_MILLIS: UnixMillis = 253_402_300_799_999;

/// Why a date-time was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstantError {
    NotRfc3339,
    OutOfRange,
}

impl InstantError {
    /// The message for a client, naming `field`.
    pub fn message(self, field: &str) -> String {
        match self {
            InstantError::NotRfc3339 => format!(
                "{field} must be an RFC 3339 date-time with a UTC offset and 0 to 9 fractional digits (not a leap second), e.g. 2022-09-08T19:46:03.435Z."
            ),
            InstantError::OutOfRange => format!(
                "{field} must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z once converted to UTC."
            ),
        }
    }
}

/// Parses an RFC 3339 date-time (as [`parse_rfc3339`]) into milliseconds, refusing instants
/// outside [`EARLIEST_MILLIS`]..=[`LATEST_MILLIS`], which could not be written back as
/// RFC 3339 in UTC.
pub fn parse_instant(text: &str) -> Result<UnixMillis, InstantError> {
    let at = parse_rfc3339(text).ok_or(InstantError::NotRfc3339)?;
    let millis = to_unix_millis(at);
    if (EARLIEST_MILLIS..=LATEST_MILLIS).contains(&millis) {
        Ok(millis)
    } else {
        Err(InstantError::OutOfRange)
    }
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
    fn leap_seconds_and_more_than_nine_fractional_digits_are_refused() {
        // Both parse with the `time` crate, but neither could be stored as written.
        assert!(parse_rfc3339("2016-12-31T23:59:60Z").is_none());
        assert!(parse_rfc3339("2016-12-31T23:59:60.5+00:00").is_none());
        assert!(parse_rfc3339("2022-09-08T19:46:03.1234567891Z").is_none());
        assert!(parse_rfc3339("2022-09-08T19:46:03.123456789Z").is_some());
        assert!(parse_rfc3339("2022-09-08T19:46:06Z").is_some());
    }

    #[test]
    fn instants_outside_years_1_to_9999_in_utc_are_refused() {
        for text in ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"] {
            assert_eq!(parse_instant(text), Err(InstantError::OutOfRange), "{text}");
        }
        assert_eq!(parse_instant("soon"), Err(InstantError::NotRfc3339));
        let earliest = parse_instant("0001-01-01T00:00:00Z").expect("in range");
        let latest = parse_instant("9999-12-31T23:59:59.999999Z").expect("in range");
        assert_eq!((earliest, latest), (EARLIEST_MILLIS, LATEST_MILLIS));
        assert_eq!(format_millis(earliest), "0001-01-01T00:00:00.000Z");
        assert_eq!(format_millis(latest), "9999-12-31T23:59:59.999Z");
        assert!(InstantError::OutOfRange
            .message("event.occurred_at")
            .starts_with("event.occurred_at must fall between"));
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
