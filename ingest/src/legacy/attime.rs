//! The `from`/`until` time syntax of `/ingest` (Graphite's "at-time", as the OG server read it).
//!
//! Clients disagree on units (the Go SDK sends nanoseconds, Java seconds, old agents `now-10s`),
//! so plain numbers are told apart by digit count. Nothing here ever fails: an unreadable value
//! means "now", which is what Pyroscope does too.

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Parses an at-time expression into Unix nanoseconds; `now_nanos` is "now".
///
/// After removing `_`, `,` and spaces: 8 digits forming a valid `YYYYMMDD` (year after 1900)
/// are that date at midnight UTC; other digit strings are Unix time in ms (13 digits),
/// µs (16), ns (19) or seconds (any other length). Anything else is "now" shifted by an
/// optional `+N<unit>`/`-N<unit>` offset; the text before the sign is ignored.
pub fn parse(s: &str, now_nanos: i64) -> i64 {
    let s: String = s.trim().chars().filter(|c| !matches!(c, '_' | ',' | ' ')).collect();

    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() == 8
            && let Some(t) = parse_yyyymmdd(&s)
        {
            return t;
        }
        // Digits only: the only possible failure is overflow, which saturates like Go's Atoi.
        let v: i64 = s.parse().unwrap_or(i64::MAX);
        return match s.len() {
            13 => v.saturating_mul(1_000_000),
            16 => v.saturating_mul(1_000),
            19 => v,
            _ => v.saturating_mul(NANOS_PER_SEC),
        };
    }

    // The reference time before the sign is always "now"; only the offset matters.
    let offset = match s.find('+') {
        Some(i) => &s[i..],
        None => match s.find('-') {
            Some(i) => &s[i..],
            None => "",
        },
    };
    now_nanos.saturating_add(parse_offset(offset))
}

/// `[+-]<digits><unit>` into nanoseconds. Only the first number counts: everything after the
/// digits is the unit, so `-1h30m` is one hour (Pyroscope behaves the same way).
fn parse_offset(offset: &str) -> i64 {
    let (sign, rest) = match offset.as_bytes().first() {
        Some(b'-') => (-1i64, &offset[1..]),
        Some(b'+') => (1, &offset[1..]),
        _ => (1, offset),
    };
    if rest.is_empty() {
        return 0;
    }
    let digits_end = rest.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    let (num, unit) = rest.split_at(digits_end);
    let num: i64 = if num.is_empty() { 0 } else { num.parse().unwrap_or(i64::MAX) };
    num.saturating_mul(sign).saturating_mul(unit_seconds(unit)).saturating_mul(NANOS_PER_SEC)
}

/// Seconds per unit, matched by prefix in this order (so `mon` is a month, `m`/`min` a minute,
/// `M` a month); an unknown unit counts as zero.
fn unit_seconds(unit: &str) -> i64 {
    if unit.starts_with('s') {
        1
    } else if unit.starts_with("mon") || unit.starts_with('M') {
        30 * SECS_PER_DAY
    } else if unit.starts_with('m') {
        60
    } else if unit.starts_with('h') {
        3_600
    } else if unit.starts_with('d') {
        SECS_PER_DAY
    } else if unit.starts_with('w') {
        7 * SECS_PER_DAY
    } else if unit.starts_with('y') {
        365 * SECS_PER_DAY
    } else {
        0
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A valid calendar date `YYYYMMDD` after the year 1900, as Unix nanoseconds at 00:00 UTC.
fn parse_yyyymmdd(s: &str) -> Option<i64> {
    let year: i64 = s.get(0..4)?.parse().ok()?;
    let month: i64 = s.get(4..6)?.parse().ok()?;
    let day: i64 = s.get(6..8)?.parse().ok()?;
    if year <= 1900 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    days_from_civil(year, month, day).checked_mul(SECS_PER_DAY)?.checked_mul(NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_376_160_151_116_487;
    const S: i64 = NANOS_PER_SEC;

    #[test]
    fn unit_by_digit_count() {
        assert_eq!(parse("1795376129", NOW), 1_795_376_129 * S);
        assert_eq!(parse("1795376129123", NOW), 1_795_376_129_123_000_000);
        assert_eq!(parse("1795376129123456", NOW), 1_795_376_129_123_456_000);
        assert_eq!(parse("1795376129123456789", NOW), 1_795_376_129_123_456_789);
        // 12 and 14 digits are not special: seconds.
        assert_eq!(parse("000001795376", NOW), 1_795_376 * S);
        assert_eq!(parse("1", NOW), S);
        assert_eq!(parse("0", NOW), 0);
    }

    #[test]
    fn separators_are_removed_first() {
        assert_eq!(parse(" 1_795,376 129 ", NOW), 1_795_376_129 * S);
    }

    #[test]
    fn yyyymmdd() {
        // 2024-02-29 is 19782 days after the epoch (independently: 54 years incl. 13 leap days
        // from 1970 to 2024 = 54*365+13 = 19723, plus 31 (Jan) + 28 days into Feb = 19782).
        assert_eq!(parse("20240229", NOW), 19_782 * SECS_PER_DAY * S);
        assert_eq!(parse("19700101", NOW), 0);
        assert_eq!(parse("20000301", NOW), 951_868_800 * S);
        // Not a valid date: falls back to Unix seconds.
        assert_eq!(parse("20230229", NOW), 20_230_229 * S);
        assert_eq!(parse("20231301", NOW), 20_231_301 * S);
        assert_eq!(parse("18991231", NOW), 18_991_231 * S);
    }

    #[test]
    fn now_and_offsets() {
        assert_eq!(parse("now", NOW), NOW);
        assert_eq!(parse("", NOW), NOW);
        assert_eq!(parse("now-1h", NOW), NOW - 3_600 * S);
        assert_eq!(parse("now+10s", NOW), NOW + 10 * S);
        assert_eq!(parse("now-5m", NOW), NOW - 300 * S);
        assert_eq!(parse("now-5min", NOW), NOW - 300 * S);
        assert_eq!(parse("now-2M", NOW), NOW - 60 * SECS_PER_DAY * S);
        assert_eq!(parse("now-2mon", NOW), NOW - 60 * SECS_PER_DAY * S);
        assert_eq!(parse("now-1d", NOW), NOW - SECS_PER_DAY * S);
        assert_eq!(parse("now-1w", NOW), NOW - 7 * SECS_PER_DAY * S);
        assert_eq!(parse("now-1y", NOW), NOW - 365 * SECS_PER_DAY * S);
        assert_eq!(parse("-1h", NOW), NOW - 3_600 * S);
        // Only the first number counts.
        assert_eq!(parse("now-1h30m", NOW), NOW - 3_600 * S);
    }

    #[test]
    fn garbage_is_now() {
        assert_eq!(parse("yesterday", NOW), NOW);
        assert_eq!(parse("now-", NOW), NOW);
        assert_eq!(parse("now-5", NOW), NOW);
        assert_eq!(parse("now-1x", NOW), NOW);
        assert_eq!(parse("now-h", NOW), NOW);
        assert_eq!(parse("2024-01-01", NOW), NOW);
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(parse("99999999999999999999999", NOW), i64::MAX);
        assert_eq!(parse("now+99999999999999999999y", NOW), i64::MAX);
        assert!(parse("now-99999999999999999999y", NOW) < 0);
    }
}
