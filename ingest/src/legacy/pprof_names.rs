//! `__name__` of an `/ingest` pprof: derived from its sample types, optionally renamed by the
//! `sample_type_config` form part the Go and .NET SDKs send (`"contentions"` → `mutex_count`
//! or `block_count`, which is the only way to tell a mutex profile from a block profile).

use std::collections::HashMap;

use flamedb_proto::google::v1::Profile;
use serde::Deserialize;

/// One entry of `sample_type_config`. Only `display-name` affects the result; the other keys
/// are accepted (and type-checked) because clients send them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SampleTypeConfig {
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub aggregation: Option<String>,
    #[serde(default, rename = "display-name")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub sampled: Option<bool>,
    #[serde(default)]
    pub cumulative: Option<bool>,
}

/// The parsed `sample_type_config`, keyed by pprof sample-type name; `null` entries are kept
/// as `None` so key presence can still be checked (the .NET detection does).
pub type SampleTypeConfigMap = HashMap<String, Option<SampleTypeConfig>>;

/// Parses the `sample_type_config` part. A JSON `null` (or an empty part) means "not sent",
/// so the built-in mapping applies.
pub fn parse_sample_type_config(data: &[u8]) -> Result<Option<SampleTypeConfigMap>, serde_json::Error> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Option<SampleTypeConfigMap>>(data)
}

/// Display names used when a client sends no config (Go runtime profile sample types).
fn default_display_name(sample_type: &str) -> Option<&'static str> {
    match sample_type {
        "samples" => Some("cpu"),
        "goroutine" => Some("goroutines"),
        "contentions" => Some("mutex_count"),
        "delay" => Some("mutex_duration"),
        _ => None,
    }
}

/// A sample type's display name: the sent config replaces the defaults entirely.
fn display_name<'a>(config: Option<&'a SampleTypeConfigMap>, sample_type: &'a str) -> &'a str {
    let renamed = match config {
        Some(map) => map
            .get(sample_type)
            .and_then(Option::as_ref)
            .and_then(|c| c.display_name.as_deref())
            .filter(|n| !n.is_empty()),
        None => default_display_name(sample_type),
    };
    renamed.unwrap_or(sample_type)
}

/// A string of the profile's table; an out-of-range index reads as "" (validation, later,
/// rejects such profiles; here it must only not panic).
pub fn string_at(profile: &Profile, index: i64) -> &str {
    usize::try_from(index).ok().and_then(|i| profile.string_table.get(i)).map_or("", String::as_str)
}

/// The `__name__` for a pprof pushed through `/ingest`: `wall` if any sample type is literally
/// `wall`; otherwise the first sample type (after renaming) that mentions `cpu` →
/// `process_cpu`, `alloc_`/`inuse_` or is `space`/`objects` → `memory`, `mutex_` → `mutex`,
/// `block_` → `block`, `goroutines` → `goroutines`; otherwise the last (renamed) sample type.
pub fn metric_name(profile: &Profile, config: Option<&SampleTypeConfigMap>) -> String {
    let types: Vec<&str> = profile.sample_type.iter().map(|vt| string_at(profile, vt.r#type)).collect();
    if types.contains(&"wall") {
        return "wall".to_string();
    }
    let mut last = "";
    for st in types {
        let st = display_name(config, st);
        if st.contains("cpu") {
            return "process_cpu".to_string();
        }
        if st.contains("alloc_") || st.contains("inuse_") || st == "space" || st == "objects" {
            return "memory".to_string();
        }
        if st.contains("mutex_") {
            return "mutex".to_string();
        }
        if st.contains("block_") {
            return "block".to_string();
        }
        if st.contains("goroutines") {
            return "goroutines".to_string();
        }
        last = st;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use flamedb_proto::google::v1::ValueType;

    use super::*;

    fn profile(types: &[&str]) -> Profile {
        let mut p = Profile { string_table: vec![String::new()], ..Default::default() };
        for t in types {
            p.string_table.push(t.to_string());
            p.string_table.push("count".to_string());
            let n = p.string_table.len() as i64;
            p.sample_type.push(ValueType { r#type: n - 2, unit: n - 1 });
        }
        p
    }

    fn config(json: &str) -> SampleTypeConfigMap {
        parse_sample_type_config(json.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn defaults_without_config() {
        assert_eq!(metric_name(&profile(&["samples", "cpu"]), None), "process_cpu");
        assert_eq!(metric_name(&profile(&["samples"]), None), "process_cpu");
        assert_eq!(metric_name(&profile(&["samples", "wall"]), None), "wall");
        assert_eq!(metric_name(&profile(&["inuse_objects", "inuse_space"]), None), "memory");
        assert_eq!(metric_name(&profile(&["alloc_space"]), None), "memory");
        assert_eq!(metric_name(&profile(&["space"]), None), "memory");
        assert_eq!(metric_name(&profile(&["objects"]), None), "memory");
        assert_eq!(metric_name(&profile(&["goroutine"]), None), "goroutines");
        assert_eq!(metric_name(&profile(&["contentions", "delay"]), None), "mutex");
        assert_eq!(metric_name(&profile(&["exceptions", "other"]), None), "other");
        assert_eq!(metric_name(&profile(&[]), None), "");
    }

    #[test]
    fn wall_wins_over_earlier_types() {
        assert_eq!(metric_name(&profile(&["cpu", "wall"]), None), "wall");
    }

    #[test]
    fn sent_config_renames_and_replaces_defaults() {
        let block = config(
            r#"{"contentions":{"units":"lock_samples","display-name":"block_count"},"delay":{"units":"lock_nanoseconds","display-name":"block_duration"}}"#,
        );
        assert_eq!(metric_name(&profile(&["contentions", "delay"]), Some(&block)), "block");
        // A config without the entry: no default renaming, so `samples` stays `samples`.
        let other = config(r#"{"alloc_objects":{"units":"objects"}}"#);
        assert_eq!(metric_name(&profile(&["samples"]), Some(&other)), "samples");
        // Empty display name falls back to the type name.
        let empty = config(r#"{"goroutine":{"display-name":""}}"#);
        assert_eq!(metric_name(&profile(&["goroutine"]), Some(&empty)), "goroutine");
    }

    #[test]
    fn config_parsing() {
        assert_eq!(parse_sample_type_config(b"").unwrap(), None);
        assert_eq!(parse_sample_type_config(b"null").unwrap(), None);
        let c = config(r#"{"a":null,"b":{"sampled":true,"cumulative":false,"aggregation":"sum","x":1}}"#);
        assert_eq!(c.get("a"), Some(&None));
        assert_eq!(c["b"].as_ref().unwrap().sampled, Some(true));
        assert!(parse_sample_type_config(b"{").is_err());
        assert!(parse_sample_type_config(br#"{"a":{"sampled":"yes"}}"#).is_err());
    }

    #[test]
    fn bad_string_indexes_do_not_panic() {
        let mut p = profile(&["cpu"]);
        p.sample_type[0].r#type = 99;
        assert_eq!(metric_name(&p, None), "");
        p.sample_type[0].r#type = -1;
        assert_eq!(metric_name(&p, None), "");
    }
}
