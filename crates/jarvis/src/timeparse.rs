//! Times a caller gives as the bounds of a range (`since`, `until` of the history, stats and
//! check-history routes, and the CLI options that fill them): RFC 3339 with a zone, or a plain
//! date (docs/api.md, Times and durations).
//!
//! A plain date is a whole UTC day: as `since` it starts at that day's 00:00 UTC, as `until` it
//! ends at the next day's 00:00 UTC (`until` is exclusive), so `since=2026-12-06&until=2026-12-06`
//! is that one day. A time without a zone (`2026-12-06T10:00`) is refused: which zone was meant
//! would be a guess. One function for the API and the CLI, so that both accept the same text.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Which end of a range a time bounds: a plain date means the start of its day for `Since`,
/// the end of it for `Until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The range starts here (inclusive).
    Since,
    /// The range ends here (exclusive).
    Until,
}

/// What a refused bound says it expected, after the value (`"tomorrow" is not …`).
pub const EXPECTED: &str =
    "an RFC 3339 time with a zone (2026-12-06T09:00:00Z, 2026-12-06T10:00:00+01:00) or a date \
     (2026-12-06, a whole UTC day)";

/// Parses `raw` (trimmed) as the `bound` end of a range, in UTC; the error says what is
/// accepted.
pub fn parse_bound(raw: &str, bound: Bound) -> Result<DateTime<Utc>, String> {
    let text = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match bound {
            Bound::Since => Some(day),
            Bound::Until => day.checked_add_signed(TimeDelta::days(1)),
        };
        if let Some(midnight) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(midnight.and_utc());
        }
    }
    Err(format!("{raw:?} is not {EXPECTED}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rfc3339_times_are_taken_as_given_in_utc() {
        for bound in [Bound::Since, Bound::Until] {
            assert_eq!(
                parse_bound("2026-12-06T10:00:00+01:00", bound),
                Ok(at("2026-12-06T09:00:00Z"))
            );
            assert_eq!(
                parse_bound(" 2026-12-06T09:00:00.5Z ", bound),
                Ok(at("2026-12-06T09:00:00.5Z"))
            );
        }
    }

    #[test]
    fn a_date_is_a_whole_utc_day() {
        assert_eq!(
            parse_bound("2026-12-06", Bound::Since),
            Ok(at("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            parse_bound("2026-12-06", Bound::Until),
            Ok(at("2026-12-07T00:00:00Z"))
        );
        assert_eq!(
            parse_bound("2026-12-31", Bound::Until),
            Ok(at("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn other_text_is_refused_saying_what_is_accepted() {
        for bad in [
            "tomorrow",
            "2026-12-06T10:00",
            "2026-13-01",
            "06/12/2026",
            "",
        ] {
            let err = parse_bound(bad, Bound::Since).unwrap_err();
            assert_eq!(err, format!("{bad:?} is not {EXPECTED}"));
        }
    }
}
