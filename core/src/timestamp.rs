//! Timestamps on the wire: integer epoch milliseconds or RFC 3339 text in,
//! ISO 8601 UTC with milliseconds out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, macros::format_description};

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// How far in the future an event timestamp may lie (24 hours).
pub const MAX_FUTURE_MS: i64 = 24 * HOUR_MS;

/// How far back an event is charted in the hour of its own timestamp (7
/// days): an older event still counts, but in the hour it arrived. Pages
/// queue events across visits and send them late (a visitor offline for
/// days), so a week covers real delays, while a client sending timestamps
/// back to 1970 cannot make one stored hourly row per event: a variant has
/// at most one row per hour of its life plus 7 days back and 1 day ahead.
pub const MAX_BACKDATE_MS: i64 = 7 * 24 * HOUR_MS;

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

/// The hour an event is charted in, for an event stamped `event_ms` that
/// arrives at `now_ms`: its own hour, unless it is more than
/// [`MAX_BACKDATE_MS`] old, then the arrival hour.
pub fn chart_hour(event_ms: i64, now_ms: i64) -> i64 {
    if event_ms < now_ms.saturating_sub(MAX_BACKDATE_MS) {
        hour_start(now_ms)
    } else {
        hour_start(event_ms)
    }
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

    #[test]
    fn late_events_chart_in_their_hour_and_ancient_ones_at_arrival() {
        let now = 1_000 * HOUR_MS + 1_234;
        assert_eq!(chart_hour(now - 5 * HOUR_MS, now), 995 * HOUR_MS);
        assert_eq!(chart_hour(now - MAX_BACKDATE_MS, now), 832 * HOUR_MS);
        assert_eq!(chart_hour(now - MAX_BACKDATE_MS - 1, now), 1_000 * HOUR_MS);
        assert_eq!(chart_hour(0, now), 1_000 * HOUR_MS);
        assert_eq!(chart_hour(i64::MIN, now), 1_000 * HOUR_MS);
        assert_eq!(chart_hour(now + 2 * HOUR_MS, now), 1_002 * HOUR_MS);
    }
}
