//! Profile types of the text and tree formats, which carry no sample types of their own: the
//! app name's last `.`-suffix says what was measured (`myapp.cpu`, `myapp.alloc_space`).

/// Metric names (`__name__`) the suffix table produces.
pub const PROCESS_CPU: &str = "process_cpu";
pub const WALL: &str = "wall";
pub const MEMORY: &str = "memory";

/// Sample type, unit and period of a synthesized profile, with its `__name__`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuffixType {
    pub metric: &'static str,
    pub sample_type: &'static str,
    pub sample_unit: &'static str,
    /// `(period type, period unit, period)`; only CPU and wall profiles with a sample rate.
    pub period: Option<(&'static str, &'static str, i64)>,
    /// What each count is multiplied by (the period in ns, or 1).
    pub scale: u64,
}

/// The suffix is not in the table; answered with 400 `unknown profile type: <suffix>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile type: {0}")]
pub struct UnknownProfileType(pub String);

/// Splits an app name at its last `.` into (service name, suffix); no dot means no suffix.
pub fn split_app_name(app: &str) -> (&str, Option<&str>) {
    match app.rsplit_once('.') {
        Some((prefix, suffix)) => (prefix, Some(suffix)),
        None => (app, None),
    }
}

/// `(metric, sample type, unit)` for a suffix; `None` is the dot-less name (CPU).
fn lookup(suffix: Option<&str>) -> Option<(&'static str, &'static str, &'static str)> {
    let Some(s) = suffix else {
        return Some((PROCESS_CPU, "samples", "count"));
    };
    Some(match s {
        "cpu" | "itimer" => (PROCESS_CPU, "samples", "count"),
        "wall" | "seconds" | "nanoseconds" | "microseconds" | "milliseconds" => (WALL, "samples", "count"),
        "inuse_objects" => (MEMORY, "inuse_objects", "count"),
        "alloc_objects" => (MEMORY, "alloc_objects", "count"),
        "inuse_space" => (MEMORY, "inuse_space", "bytes"),
        "alloc_space" => (MEMORY, "alloc_space", "bytes"),
        "alloc_in_new_tlab_objects" => (MEMORY, "alloc_in_new_tlab_objects", "count"),
        "alloc_in_new_tlab_bytes" => (MEMORY, "alloc_in_new_tlab_bytes", "bytes"),
        "alloc_outside_tlab_objects" => (MEMORY, "alloc_outside_tlab_objects", "count"),
        "alloc_outside_tlab_bytes" => (MEMORY, "alloc_outside_tlab_bytes", "bytes"),
        "live" => (MEMORY, "live", "count"),
        "goroutines" => ("goroutine", "goroutines", "count"),
        "mutex_count" => ("mutex", "contentions", "count"),
        "mutex_duration" => ("mutex", "delay", "nanoseconds"),
        "block_count" | "lock_count" => ("block", "contentions", "count"),
        "block_duration" | "lock_duration" => ("block", "delay", "nanoseconds"),
        "exceptions" => ("exceptions", "samples", "count"),
        "bytes" => (MEMORY, "samples", "bytes"),
        _ => return None,
    })
}

/// The profile type for a suffix at a sample rate (Hz). A non-zero rate turns CPU and wall
/// sample counts into nanoseconds (`1e9 / rate` per sample) with a `cpu:nanoseconds` period.
pub fn profile_type(suffix: Option<&str>, sample_rate: u32) -> Result<SuffixType, UnknownProfileType> {
    let (metric, sample_type, sample_unit) =
        lookup(suffix).ok_or_else(|| UnknownProfileType(suffix.unwrap_or_default().to_string()))?;
    let mut t = SuffixType { metric, sample_type, sample_unit, period: None, scale: 1 };
    if sample_rate != 0 && (metric == PROCESS_CPU || metric == WALL) {
        let period = 1_000_000_000 / i64::from(sample_rate);
        t.sample_type = if metric == WALL { "wall" } else { "cpu" };
        t.sample_unit = "nanoseconds";
        t.period = Some(("cpu", "nanoseconds", period));
        t.scale = period.unsigned_abs();
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_last_dot() {
        assert_eq!(split_app_name("rs05.app.cpu"), ("rs05.app", Some("cpu")));
        assert_eq!(split_app_name("myapp"), ("myapp", None));
        assert_eq!(split_app_name("myapp."), ("myapp", Some("")));
    }

    #[test]
    fn every_row_without_sample_rate() {
        let rows: &[(Option<&str>, &str, &str, &str)] = &[
            (None, "process_cpu", "samples", "count"),
            (Some("cpu"), "process_cpu", "samples", "count"),
            (Some("itimer"), "process_cpu", "samples", "count"),
            (Some("wall"), "wall", "samples", "count"),
            (Some("seconds"), "wall", "samples", "count"),
            (Some("nanoseconds"), "wall", "samples", "count"),
            (Some("microseconds"), "wall", "samples", "count"),
            (Some("milliseconds"), "wall", "samples", "count"),
            (Some("inuse_objects"), "memory", "inuse_objects", "count"),
            (Some("alloc_objects"), "memory", "alloc_objects", "count"),
            (Some("inuse_space"), "memory", "inuse_space", "bytes"),
            (Some("alloc_space"), "memory", "alloc_space", "bytes"),
            (Some("alloc_in_new_tlab_objects"), "memory", "alloc_in_new_tlab_objects", "count"),
            (Some("alloc_in_new_tlab_bytes"), "memory", "alloc_in_new_tlab_bytes", "bytes"),
            (Some("alloc_outside_tlab_objects"), "memory", "alloc_outside_tlab_objects", "count"),
            (Some("alloc_outside_tlab_bytes"), "memory", "alloc_outside_tlab_bytes", "bytes"),
            (Some("live"), "memory", "live", "count"),
            (Some("goroutines"), "goroutine", "goroutines", "count"),
            (Some("mutex_count"), "mutex", "contentions", "count"),
            (Some("mutex_duration"), "mutex", "delay", "nanoseconds"),
            (Some("block_count"), "block", "contentions", "count"),
            (Some("lock_count"), "block", "contentions", "count"),
            (Some("block_duration"), "block", "delay", "nanoseconds"),
            (Some("lock_duration"), "block", "delay", "nanoseconds"),
            (Some("exceptions"), "exceptions", "samples", "count"),
            (Some("bytes"), "memory", "samples", "bytes"),
        ];
        for &(suffix, metric, st, unit) in rows {
            // Rate 0: no scaling for any row.
            let t = profile_type(suffix, 0).unwrap();
            assert_eq!((t.metric, t.sample_type, t.sample_unit), (metric, st, unit), "{suffix:?}");
            assert_eq!((t.period, t.scale), (None, 1), "{suffix:?}");
            // Rate 100: only CPU and wall rows change.
            let t = profile_type(suffix, 100).unwrap();
            match metric {
                "process_cpu" => {
                    assert_eq!((t.sample_type, t.sample_unit), ("cpu", "nanoseconds"));
                    assert_eq!(t.period, Some(("cpu", "nanoseconds", 10_000_000)));
                    assert_eq!(t.scale, 10_000_000);
                }
                "wall" => {
                    assert_eq!((t.sample_type, t.sample_unit), ("wall", "nanoseconds"));
                    assert_eq!(t.period, Some(("cpu", "nanoseconds", 10_000_000)));
                    assert_eq!(t.scale, 10_000_000);
                }
                _ => {
                    assert_eq!((t.sample_type, t.sample_unit), (st, unit), "{suffix:?}");
                    assert_eq!((t.period, t.scale), (None, 1), "{suffix:?}");
                }
            }
        }
    }

    #[test]
    fn period_is_integer_division() {
        assert_eq!(profile_type(Some("cpu"), 3).unwrap().scale, 333_333_333);
        assert_eq!(profile_type(Some("cpu"), 1).unwrap().scale, 1_000_000_000);
    }

    #[test]
    fn unknown_suffixes() {
        let e = profile_type(Some("app"), 100).unwrap_err();
        assert_eq!(e.to_string(), "unknown profile type: app");
        assert_eq!(profile_type(Some(""), 100).unwrap_err().to_string(), "unknown profile type: ");
        assert!(profile_type(Some("CPU"), 100).is_err());
        assert!(profile_type(Some("goroutine"), 100).is_err());
    }
}
