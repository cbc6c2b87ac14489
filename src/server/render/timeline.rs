//! The `timeline` of a flamebearer answer: one value per step from `from` to `until`, both
//! snapped down to a step boundary, in seconds, zero-filled where the series has no point
//! (SelectSeries leaves empty buckets out; the flamebearer format needs every slot).

use flamedb_proto::types::v1::Point;
use serde::Serialize;

/// Pyroscope's `FlamebearerTimelineV1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// First slot, Unix seconds.
    #[serde(rename = "startTime")]
    pub start_time: i64,
    pub samples: Vec<u64>,
    /// Slot width, seconds.
    #[serde(rename = "durationDelta")]
    pub duration_delta: i64,
    /// Always null: nothing computes watermarks any more, but clients read the key.
    pub watermarks: Option<()>,
}

/// Lays `points` out on the slots of `[from, until)` snapped to `step_secs`.
///
/// A point's timestamp is the right edge of its bucket (the bucket holds `(ts - step, ts]`), so
/// it goes to the slot holding the bucket's last instant. SelectSeries aligns its buckets to
/// the unsnapped `from`, so the first and last buckets can reach past the snapped window; their
/// values go to the first and last slot rather than being dropped, which keeps the timeline's
/// sum equal to the flame graph's total.
pub fn timeline(points: &[Point], from_ms: i64, until_ms: i64, step_secs: i64) -> Timeline {
    let step_ms = step_secs.max(1).saturating_mul(1000);
    let start = from_ms.div_euclid(step_ms).saturating_mul(step_ms);
    let end = until_ms.div_euclid(step_ms).saturating_mul(step_ms);
    let slots = if end > start { usize::try_from((end - start) / step_ms).unwrap_or(0) } else { 0 };
    // A range of years at the smallest step is at most a few million slots; beyond that the
    // request is nonsense and gets an empty timeline rather than a huge allocation.
    let slots = if slots > 10_000_000 { 0 } else { slots };
    let mut samples = vec![0u64; slots];
    if let Some(last) = slots.checked_sub(1) {
        for p in points {
            let slot = p.timestamp.saturating_sub(1).saturating_sub(start).div_euclid(step_ms);
            let slot = usize::try_from(slot.max(0)).unwrap_or(last).min(last);
            // Values are sums of non-negative totals (or their averages); Go truncates to uint.
            samples[slot] = samples[slot].saturating_add(p.value.max(0.0) as u64);
        }
    }
    Timeline { start_time: start.div_euclid(1000), samples, duration_delta: step_secs, watermarks: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(timestamp: i64, value: f64) -> Point {
        Point { timestamp, value, ..Default::default() }
    }

    #[test]
    fn snapped_and_zero_filled() {
        // from 100 s + 7 ms, until 190 s + 5 ms, step 15 s: start 90 s, end 180 s, 6 slots.
        let t = timeline(&[point(120_000, 3.0), point(150_000, 4.0)], 100_007, 190_005, 15);
        assert_eq!(t.start_time, 90);
        assert_eq!(t.duration_delta, 15);
        // (105, 120] -> slot [105, 120) = 1; (135, 150] -> slot [135, 150) = 3.
        assert_eq!(t.samples, vec![0, 3, 0, 4, 0, 0]);
    }

    #[test]
    fn edges_fold_into_the_window() {
        let t = timeline(&[point(90_000, 1.0), point(500_000, 2.0), point(95_000, 5.5)], 100_000, 160_000, 15);
        assert_eq!(t.samples, vec![6, 0, 0, 2]);
        assert_eq!(t.samples.iter().sum::<u64>(), 8);
    }

    #[test]
    fn empty_window() {
        let t = timeline(&[point(100_000, 1.0)], 100_000, 100_500, 15);
        assert_eq!((t.start_time, t.samples.len()), (90, 0));
        let t = timeline(&[], 0, 60_000, 15);
        assert_eq!(t.samples, vec![0; 4]);
    }

    #[test]
    fn json_shape() {
        let t = timeline(&[point(15_000, 2.0)], 0, 30_000, 15);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v, serde_json::json!({"startTime": 0, "samples": [2, 0], "durationDelta": 15, "watermarks": null}));
    }
}
