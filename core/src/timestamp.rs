//! Timestamps on the wire: integer epoch milliseconds or RFC 3339 text in,
//! ISO 8601 UTC with milliseconds out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, macros::format_description};

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// How far in the future an event timestamp may lie (24 hours).
pub const MAX_FUTURE_MS: i64 = 24 * HOUR_MS;

/// Formats epoch milliseconds as `2026-11-26T15:59:33.232Z`.
///
/// Out-of-range inputs are clamped to the representable years (1970..9999).
pub fn format_iso(ms: i64) -> String {
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(0, MAX_MS);
    let nanos = i128::from(ms) * 1_000_000;
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

/// Parses an RFC 3339 / ISO 8601 date-time with an offset into epoch milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The start of the hour containing `ms` (the bucket of hourly statistics).
pub fn hour_start(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(1_795_708_773_232), "2026-11-26T15:59:33.232Z");
        assert_eq!(format_iso(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339("2026-11-26T15:59:33.232Z"),
            Some(1_795_708_773_232)
        );
        assert_eq!(
            parse_rfc3339("2026-11-26T16:59:33.232+01:00"),
            Some(1_795_708_773_232)
        );
        assert_eq!(parse_rfc3339("2026-11-26"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn hour_buckets() {
        assert_eq!(hour_start(HOUR_MS + 5), HOUR_MS);
        assert_eq!(hour_start(-1), -HOUR_MS);
    }
}
