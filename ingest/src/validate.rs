//! Ingest validation with Pyroscope's default limits and error wording. Every failure here is the
//! client's fault (HTTP 400 / `invalid_argument`): clients drop such profiles instead of retrying.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::labels::{self, Labels};

/// Bytes in one of Pyroscope's "MB" (its limits are MiB).
const BYTES_IN_MB: f64 = 1024.0 * 1024.0;

/// Per-tenant ingest limits (Pyroscope's `limits` YAML block, same names and defaults). Serialized
/// with the same names, so per-tenant overrides can be laid over them and `/api/v1/tenant_limits`
/// can show them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Sustained ingestion rate per tenant in MiB/s of decompressed profile and label bytes.
    pub ingestion_rate_mb: f64,
    /// Token-bucket size in MiB: the largest push (all its profiles together) ever accepted.
    pub ingestion_burst_size_mb: f64,
    /// Series a tenant's live head may hold; a profile adding more is refused (0 disables).
    pub max_global_series_per_tenant: usize,
    /// Uncompressed size of one pprof.
    pub max_profile_size_bytes: usize,
    pub max_profile_stacktrace_samples: usize,
    pub max_profile_stacktrace_sample_labels: usize,
    /// Deeper stacks keep their leaf-most frames.
    pub max_profile_stacktrace_depth: usize,
    /// Longer symbol strings are truncated.
    pub max_profile_symbol_value_length: usize,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    #[serde(with = "humantime_serde")]
    pub reject_older_than: Duration,
    #[serde(with = "humantime_serde")]
    pub reject_newer_than: Duration,
    /// Body size cap of `/ingest` and Push, in MiB.
    pub ingestion_body_limit_mb: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 2.0,
            max_global_series_per_tenant: 5000,
            max_profile_size_bytes: 4 * 1024 * 1024,
            max_profile_stacktrace_samples: 16_000,
            max_profile_stacktrace_sample_labels: 100,
            max_profile_stacktrace_depth: 1000,
            max_profile_symbol_value_length: 65_535,
            max_label_names_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_older_than: Duration::from_secs(3600),
            reject_newer_than: Duration::from_secs(600),
            ingestion_body_limit_mb: 256.0,
        }
    }
}

impl Limits {
    /// Body size cap in bytes.
    pub fn body_limit_bytes(&self) -> usize {
        mb_to_bytes(self.ingestion_body_limit_mb)
    }

    /// Token refill rate in bytes per second.
    pub fn ingestion_rate_bytes(&self) -> f64 {
        self.ingestion_rate_mb.max(0.0) * BYTES_IN_MB
    }

    /// Token-bucket capacity in bytes.
    pub fn ingestion_burst_bytes(&self) -> usize {
        mb_to_bytes(self.ingestion_burst_size_mb)
    }
}

/// MiB to bytes, saturating (negative and NaN become 0).
fn mb_to_bytes(mb: f64) -> usize {
    // `as` saturates float-to-int conversions and maps NaN to 0.
    (mb * BYTES_IN_MB) as usize
}

/// Why a profile or its labels were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("invalid metric name")]
    MissingMetricName,
    #[error("duplicate label name: {0:?}")]
    DuplicateLabel(String),
    #[error("profile series '{labels}' has {count} label names; limit {limit}")]
    TooManyLabels { labels: String, count: usize, limit: usize },
    #[error("label name too long: {name:?} ({len} bytes; limit {limit})")]
    LabelNameTooLong { name: String, len: usize, limit: usize },
    #[error("label value too long: {value:?} for label {name:?} ({len} bytes; limit {limit})")]
    LabelValueTooLong { name: String, value: String, len: usize, limit: usize },
    #[error("invalid label name: {0:?}")]
    InvalidLabelName(String),
    #[error("profile has no sample types")]
    NoSampleTypes,
    #[error("invalid profile: string_table[0] must be the empty string")]
    BadStringTable,
    #[error("invalid profile: string index {index} out of range ({len} strings)")]
    StringIndex { index: i64, len: usize },
    #[error("invalid profile: function id is 0")]
    FunctionIdZero,
    #[error("invalid profile: location id is 0")]
    LocationIdZero,
    #[error("invalid profile: {kind} id {id} not found")]
    MissingReference { kind: &'static str, id: u64 },
    #[error("invalid profile: sample type {0:?} contains '-'")]
    SampleTypeDash(String),
    #[error("invalid profile: sample has {got} values, the profile has {want} sample types")]
    ValueCount { got: usize, want: usize },
    #[error("profile exceeds the samples count limit: actual: {count}, limit: {limit}")]
    TooManySamples { count: usize, limit: usize },
    #[error("profile exceeds the sample labels limit: actual: {count}, limit: {limit}")]
    TooManySampleLabels { count: usize, limit: usize },
    #[error(
        "profile with labels '{labels}' is outside of ingestion window (profile timestamp: {time_nanos}, the ingestion window starts at {start} and ends at {end})"
    )]
    OutsideWindow { labels: String, time_nanos: i64, start: i64, end: i64 },
    #[error("no profiles received")]
    NoProfiles,
}

/// Checks a series label set against the limits. Server-added private labels
/// (`__profile_type__` and friends) do not count towards the label-name limit.
pub fn validate_labels(ls: &Labels, limits: &Limits) -> Result<(), ValidationError> {
    match ls.get(labels::METRIC_NAME) {
        Some(v) if !v.is_empty() => {}
        _ => return Err(ValidationError::MissingMetricName),
    }
    let counted = ls.iter().filter(|l| !is_server_label(&l.name)).count();
    if counted > limits.max_label_names_per_series {
        return Err(ValidationError::TooManyLabels {
            labels: ls.to_string(),
            count: counted,
            limit: limits.max_label_names_per_series,
        });
    }
    for l in ls.iter() {
        if l.name.is_empty() {
            return Err(ValidationError::InvalidLabelName(l.name.clone()));
        }
        if l.name.len() > limits.max_label_name_length {
            return Err(ValidationError::LabelNameTooLong {
                name: l.name.clone(),
                len: l.name.len(),
                limit: limits.max_label_name_length,
            });
        }
        if l.value.len() > limits.max_label_value_length {
            return Err(ValidationError::LabelValueTooLong {
                name: l.name.clone(),
                value: l.value.chars().take(64).collect(),
                len: l.value.len(),
                limit: limits.max_label_value_length,
            });
        }
    }
    Ok(())
}

fn is_server_label(name: &str) -> bool {
    matches!(
        name,
        labels::PROFILE_TYPE
            | labels::TYPE
            | labels::UNIT
            | labels::PERIOD_TYPE
            | labels::PERIOD_UNIT
            | labels::PRIVATE_SERVICE_NAME
    )
}

/// The accepted window of profile timestamps around `now`.
pub fn ingestion_window(limits: &Limits, now_nanos: i64) -> (i64, i64) {
    let older = i64::try_from(limits.reject_older_than.as_nanos()).unwrap_or(i64::MAX);
    let newer = i64::try_from(limits.reject_newer_than.as_nanos()).unwrap_or(i64::MAX);
    let start = if older == 0 { i64::MIN } else { now_nanos.saturating_sub(older) };
    let end = if newer == 0 { i64::MAX } else { now_nanos.saturating_add(newer) };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        let l = Limits::default();
        let ok = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "a")]);
        assert_eq!(validate_labels(&ok, &l), Ok(()));
        let no_name = Labels::from_pairs([("service_name", "a")]);
        assert_eq!(validate_labels(&no_name, &l), Err(ValidationError::MissingMetricName));
        let many = Labels::from_pairs((0..31).map(|i| (format!("l{i}"), "v")).chain([("__name__".into(), "x")]));
        assert!(matches!(validate_labels(&many, &l), Err(ValidationError::TooManyLabels { count: 32, .. })));
        let long = Labels::from_pairs([("__name__", "x".to_string()), ("k", "v".repeat(2049))]);
        assert!(matches!(validate_labels(&long, &l), Err(ValidationError::LabelValueTooLong { len: 2049, .. })));
    }

    #[test]
    fn window() {
        let l = Limits::default();
        let (s, e) = ingestion_window(&l, 10_000_000_000_000);
        assert_eq!(s, 10_000_000_000_000 - 3_600_000_000_000);
        assert_eq!(e, 10_000_000_000_000 + 600_000_000_000);
        let off = Limits { reject_older_than: Duration::ZERO, ..Limits::default() };
        assert_eq!(ingestion_window(&off, 5).0, i64::MIN);
    }
}
