//! Query limits with Pyroscope's defaults, and the time-range rules every select applies.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{QueryError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QueryLimits {
    /// Queries ending before `now - max_query_lookback` return nothing; earlier starts are clamped.
    #[serde(with = "humantime_serde")]
    pub max_query_lookback: Duration,
    /// Longer ranges are refused (0 = unlimited).
    #[serde(with = "humantime_serde")]
    pub max_query_length: Duration,
    pub max_flamegraph_nodes_default: i64,
    /// 0 = unlimited.
    pub max_flamegraph_nodes_max: i64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_query_lookback: Duration::from_secs(7 * 24 * 3600),
            max_query_length: Duration::from_secs(24 * 3600),
            max_flamegraph_nodes_default: 8192,
            max_flamegraph_nodes_max: 1_048_576,
        }
    }
}

/// A validated time range in milliseconds, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl TimeRange {
    /// The range in nanoseconds: every instant whose millisecond lies in `[start, end]`.
    pub fn nanos(&self) -> (i64, i64) {
        (self.start_ms.saturating_mul(1_000_000), self.end_ms.saturating_mul(1_000_000).saturating_add(999_999))
    }
}

impl QueryLimits {
    /// Pyroscope's (v2) range rules for every query, label queries included: both ends required, start not after end, the lookback
    /// clamps the start (`None`: the whole range is older than the lookback, answer empty), and the
    /// length limit.
    pub fn check_range(&self, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<Option<TimeRange>> {
        if start_ms == 0 || end_ms == 0 {
            return Err(QueryError::invalid("missing time range in the query"));
        }
        if start_ms > end_ms {
            return Err(QueryError::invalid("query start time is after end time"));
        }
        let mut start = start_ms;
        let lookback = self.max_query_lookback.as_millis() as i64;
        if lookback > 0 {
            let oldest = now_ms - lookback;
            if end_ms < oldest {
                return Ok(None);
            }
            start = start.max(oldest);
        }
        let max_len = self.max_query_length.as_millis() as i64;
        if max_len > 0 && end_ms - start > max_len {
            return Err(QueryError::invalid(format!(
                "the query time range exceeds the limit (max_query_length, actual: {}, limit: {})",
                humantime::format_duration(Duration::from_millis((end_ms - start) as u64)),
                humantime::format_duration(self.max_query_length)
            )));
        }
        Ok(Some(TimeRange { start_ms: start, end_ms }))
    }

    /// The node limit of a flame graph: unset or 0 -> the default; above the maximum or negative
    /// -> 400.
    pub fn max_nodes(&self, requested: Option<i64>) -> Result<usize> {
        let max = self.max_flamegraph_nodes_max;
        let n = match requested {
            None | Some(0) => self.max_flamegraph_nodes_default,
            Some(n) if n < 0 => {
                return Err(QueryError::invalid(format!("max flamegraph nodes limit must be set (max allowed {max})")));
            }
            Some(n) => n,
        };
        if max > 0 && n > max {
            return Err(QueryError::invalid(format!("max flamegraph nodes limit {n} is greater than allowed {max}")));
        }
        Ok(n.max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const H: i64 = 3_600_000;

    #[test]
    fn range_rules() {
        let l = QueryLimits::default();
        assert!(l.check_range(0, NOW, NOW).unwrap_err().message.contains("missing time range"));
        assert!(l.check_range(NOW, NOW - 1, NOW).unwrap_err().message.contains("after end"));
        assert_eq!(l.check_range(NOW - 8 * 24 * H, NOW - 7 * 24 * H - 1, NOW).unwrap(), None);
        let r = l.check_range(NOW - 7 * 24 * H - 5, NOW - 7 * 24 * H + H, NOW).unwrap().unwrap();
        assert_eq!(r.start_ms, NOW - 7 * 24 * H, "clamped to the lookback");
        assert!(l.check_range(NOW - 25 * H, NOW, NOW).unwrap_err().message.contains("max_query_length"));
        assert_eq!(l.check_range(NOW - H, NOW, NOW).unwrap(), Some(TimeRange { start_ms: NOW - H, end_ms: NOW }));
        assert_eq!(TimeRange { start_ms: 1, end_ms: 2 }.nanos(), (1_000_000, 2_999_999));
    }

    #[test]
    fn node_limits() {
        let l = QueryLimits::default();
        assert_eq!(l.max_nodes(None).unwrap(), 8192);
        assert_eq!(l.max_nodes(Some(0)).unwrap(), 8192);
        assert_eq!(l.max_nodes(Some(16384)).unwrap(), 16384);
        assert!(l.max_nodes(Some(1_048_577)).unwrap_err().message.contains("greater than allowed 1048576"));
        assert!(l.max_nodes(Some(-1)).is_err());
    }
}
