//! The timeline step of `/pyroscope/render` (Pyroscope's `CalcPointInterval`): about 1500 points
//! over the range, rounded to a "nice" interval, never below 15 s. Grafana's Pyroscope panels
//! expect exactly these steps, so the table is Pyroscope's.

/// Points a timeline aims for.
const RESOLUTION: i64 = 1500;
/// The smallest step, in ms.
const MIN_STEP_MS: i64 = 15_000;

/// (largest raw interval, nice interval) in ms, ascending: a raw interval up to the first column
/// becomes the second. Larger raw intervals than the last row become a year.
const NICE: &[(i64, i64)] = &[
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (172_800_000, 86_400_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
];
/// 30 days, for raw intervals below six weeks past the table.
const MONTH_MS: i64 = 2_592_000_000;
/// Where the month step ends (exclusive).
const MONTH_LIMIT_MS: i64 = 3_628_800_000;
const YEAR_MS: i64 = 31_536_000_000;

/// The step in seconds for a range in ms.
pub fn point_interval_secs(from_ms: i64, until_ms: i64) -> f64 {
    // Pyroscope divides the range in nanoseconds with integer division; i128 keeps that exact
    // for any pair of i64 ms timestamps.
    let range_ns = i128::from(until_ms.saturating_sub(from_ms)) * 1_000_000;
    let raw_ns = range_ns / i128::from(RESOLUTION);
    if raw_ns < i128::from(MIN_STEP_MS) * 1_000_000 {
        return MIN_STEP_MS as f64 / 1000.0;
    }
    round_interval_ns(raw_ns) as f64 / 1000.0
}

/// The nice interval (ms) for a raw interval (ns).
fn round_interval_ns(raw_ns: i128) -> i64 {
    for &(limit_ms, nice_ms) in NICE {
        if raw_ns <= i128::from(limit_ms) * 1_000_000 {
            return nice_ms;
        }
    }
    if raw_ns < i128::from(MONTH_LIMIT_MS) * 1_000_000 { MONTH_MS } else { YEAR_MS }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn pyroscope_steps() {
        let t0 = 1_681_779_723_000; // 2023-04-18T01:02:03Z, Pyroscope's test date
        // (range ms, step s): Pyroscope's own table plus the boundaries of the nice rounding.
        let cases: &[(i64, f64)] = &[
            (1_000, 15.0),
            (HOUR, 15.0),
            (6 * HOUR, 15.0),                // 14.4 s raw: the 15 s minimum
            (7 * HOUR, 15.0),                // 16.8 s raw -> 15 s
            (8 * HOUR, 20.0),                // 19.2 s raw -> 20 s
            (12 * HOUR, 30.0),               // 28.8 s raw -> 30 s
            (DAY, 60.0),                     // 57.6 s raw -> 1 m
            (7 * DAY, 300.0),                // Pyroscope: 7 days -> 300
            (30 * DAY, 1800.0),              // 30 days -> 1800
            (6 * 30 * DAY, 10_800.0),        // ~6 months -> 3 h
            (12 * 30 * DAY, 21_600.0),       // ~1 year -> 6 h
            (2 * 12 * 30 * DAY, 43_200.0),   // ~2 years -> 12 h
            (5 * 12 * 30 * DAY, 86_400.0),   // ~5 years -> 24 h
            (20 * 12 * 30 * DAY, 86_400.0),  // raw 3.2 d: still 24 h
            (60 * 12 * 30 * DAY, 604_800.0), // raw 14.4 d -> 1 w
            (120 * 12 * 30 * DAY, 2_592_000.0),
            (200 * 12 * 30 * DAY, 31_536_000.0),
        ];
        for &(range, want) in cases {
            assert_eq!(point_interval_secs(t0, t0 + range), want, "range {range} ms");
        }
    }

    #[test]
    fn degenerate_ranges_take_the_minimum() {
        assert_eq!(point_interval_secs(5, 5), 15.0);
        assert_eq!(point_interval_secs(10, 5), 15.0);
        assert_eq!(point_interval_secs(i64::MIN, i64::MAX), 31_536_000.0);
    }
}
