//! Series labels: a sorted, de-duplicated set of name/value pairs, and the fingerprint Pyroscope
//! (and Prometheus) give it, so series identity is byte-compatible with theirs.

use std::fmt;

/// The profile "metric" name (`process_cpu`, `memory`, ...): first part of a profile type id.
pub const METRIC_NAME: &str = "__name__";
/// The user-facing service label; every series has one (`unknown_service` by default).
pub const SERVICE_NAME: &str = "service_name";
/// Server-side copy of `service_name`, kept so selectors written for Pyroscope keep matching.
pub const PRIVATE_SERVICE_NAME: &str = "__service_name__";
/// `__name__:type:unit:period_type:period_unit`: the key every query selects on.
pub const PROFILE_TYPE: &str = "__profile_type__";
/// pprof sample type string of the series.
pub const TYPE: &str = "__type__";
/// pprof sample unit string of the series.
pub const UNIT: &str = "__unit__";
/// pprof period type, present only when the profile has one.
pub const PERIOD_TYPE: &str = "__period_type__";
/// pprof period unit, present only when the profile has one.
pub const PERIOD_UNIT: &str = "__period_unit__";
/// Client hint that the profile is (not) cumulative; always removed before storage.
pub const DELTA: &str = "__delta__";
/// Marker of the OTLP path; removed before storage.
pub const OTEL: &str = "__otel__";
/// SDK session id; removed by default (`max_sessions_per_series = 0`).
pub const SESSION_ID: &str = "__session_id__";
/// The service label Pyroscope uses when a client sends none.
pub const DEFAULT_SERVICE_NAME: &str = "unknown_service";
/// pprof sample label kept per sample (not lifted into series labels).
pub const SPAN_ID: &str = "span_id";
/// pprof sample label kept per sample (not lifted into series labels).
pub const TRACE_ID: &str = "trace_id";
/// pprof sample label that Pyroscope renames to `span_id` at ingest.
pub const PROFILE_ID: &str = "profile_id";

/// One label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// A label set sorted by name, each name once. Identity of a series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a set from pairs in any order; for a repeated name the last value wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<Label> = pairs.into_iter().map(|(k, v)| Label::new(k, v)).collect();
        // Stable sort keeps insertion order among equal names, so "last wins" is well defined.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        Self(out)
    }

    /// Wraps labels that are already sorted by name and unique (checked in debug builds).
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name), "labels not sorted/unique");
        Self(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.0[i].value.as_str())
    }

    /// Sets a label, replacing any value it had.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        match self.0.binary_search_by(|l| l.name.as_str().cmp(&name)) {
            Ok(i) => self.0[i].value = value.into(),
            Err(i) => self.0.insert(i, Label { name, value: value.into() }),
        }
    }

    /// Removes a label; returns its value if it was there.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => Some(self.0.remove(i).value),
            Err(_) => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// XXH64 (seed 0) over `name 0xff value 0xff ...`: Prometheus' `Labels.Hash()`, which
    /// Pyroscope uses as the series fingerprint.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }
}

impl fmt::Display for Labels {
    /// Prometheus text form: `{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: names every client can put in a selector without quoting. Names
/// outside it (`service.name`) are hidden from clients that did not ask for UTF-8 names.
pub fn is_legacy_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_last_value_wins() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(l.to_string(), r#"{a="2", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn fingerprint_is_prometheus_hash() {
        // Independent computation of XXH64 over the Prometheus byte layout.
        let l = Labels::from_pairs([("job", "api"), ("__name__", "up")]);
        let bytes = b"__name__\xffup\xffjob\xffapi\xff";
        assert_eq!(l.fingerprint(), xxhash_rust::xxh64::xxh64(bytes, 0));
        assert_ne!(l.fingerprint(), Labels::from_pairs([("job", "api")]).fingerprint());
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs([("b", "1")]);
        l.set("a", "x");
        l.set("c", "y");
        l.set("b", "2");
        assert_eq!(l.to_string(), r#"{a="x", b="2", c="y"}"#);
        assert_eq!(l.remove("b").as_deref(), Some("2"));
        assert_eq!(l.remove("b"), None);
    }

    #[test]
    fn legacy_names() {
        assert!(is_legacy_label_name("service_name"));
        assert!(is_legacy_label_name("_x1"));
        assert!(!is_legacy_label_name("service.name"));
        assert!(!is_legacy_label_name("1a"));
        assert!(!is_legacy_label_name(""));
    }
}
