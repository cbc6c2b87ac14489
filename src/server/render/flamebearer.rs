//! The "flamebearer" v1 JSON of the OG Pyroscope UI, which `/pyroscope/render` and
//! `/pyroscope/render-diff` still answer with (Grafana apps and scripts read it).

use std::collections::BTreeMap;

use flamedb_ingest::model::ProfileType;
use flamedb_proto::querier::v1::{FlameGraph, FlameGraphDiff, Level};
use serde::Serialize;

use super::timeline::Timeline;

/// Pyroscope's `FlamebearerProfile` (version 1). Field order is Go's.
#[derive(Debug, Serialize)]
pub struct Profile {
    pub version: u32,
    pub flamebearer: Flamebearer,
    pub metadata: Metadata,
    pub timeline: Option<Timeline>,
    pub groups: Option<BTreeMap<String, Timeline>>,
    /// Never computed here; clients read the key.
    pub heatmap: Option<()>,
    #[serde(rename = "leftTicks", skip_serializing_if = "Option::is_none")]
    pub left_ticks: Option<i64>,
    #[serde(rename = "rightTicks", skip_serializing_if = "Option::is_none")]
    pub right_ticks: Option<i64>,
}

/// The flame graph: levels as plain JSON numbers (not the strings of protojson int64).
#[derive(Debug, Serialize)]
pub struct Flamebearer {
    pub names: Vec<String>,
    pub levels: Vec<Vec<i64>>,
    #[serde(rename = "numTicks")]
    pub num_ticks: i64,
    #[serde(rename = "maxSelf")]
    pub max_self: i64,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    /// `single`, or `double` for a diff.
    pub format: &'static str,
    #[serde(rename = "spyName")]
    pub spy_name: &'static str,
    #[serde(rename = "sampleRate")]
    pub sample_rate: u32,
    pub units: String,
    pub name: String,
}

/// Pyroscope's units quirks: object counts for the object-like sample types, and for `cpu`
/// "samples" with a rate of 1e9 (ticks are nanoseconds); the sample unit and 100 otherwise.
pub fn units(profile_type: &ProfileType) -> (String, u32) {
    match profile_type.sample_type.as_str() {
        "inuse_objects" | "alloc_objects" | "goroutine" | "samples" => ("objects".into(), 100),
        "cpu" => ("samples".into(), 1_000_000_000),
        _ => (profile_type.sample_unit.clone(), 100),
    }
}

fn metadata(profile_type: &ProfileType, format: &'static str) -> Metadata {
    let (units, sample_rate) = units(profile_type);
    Metadata { format, spy_name: "", sample_rate, units, name: profile_type.sample_type.clone() }
}

fn levels(levels: &[Level]) -> Vec<Vec<i64>> {
    levels.iter().map(|l| l.values.clone()).collect()
}

/// A single flame graph with its timeline (and per-group timelines when grouped).
pub fn single(
    fg: &FlameGraph,
    profile_type: &ProfileType,
    timeline: Timeline,
    groups: Option<BTreeMap<String, Timeline>>,
) -> Profile {
    Profile {
        version: 1,
        flamebearer: Flamebearer {
            names: fg.names.clone(),
            levels: levels(&fg.levels),
            num_ticks: fg.total,
            max_self: fg.max_self,
        },
        metadata: metadata(profile_type, "single"),
        timeline: Some(timeline),
        groups,
        heatmap: None,
        left_ticks: None,
        right_ticks: None,
    }
}

/// A diff: 7-int level groups, both sides' ticks, no timeline.
pub fn diff(fg: &FlameGraphDiff, profile_type: &ProfileType) -> Profile {
    Profile {
        version: 1,
        flamebearer: Flamebearer {
            names: fg.names.clone(),
            levels: levels(&fg.levels),
            num_ticks: fg.total,
            max_self: fg.max_self,
        },
        metadata: metadata(profile_type, "double"),
        timeline: None,
        groups: None,
        heatmap: None,
        left_ticks: Some(fg.left_ticks),
        right_ticks: Some(fg.right_ticks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pt(id: &str) -> ProfileType {
        ProfileType::parse(id).unwrap()
    }

    #[test]
    fn units_quirks() {
        let cases = [
            ("process_cpu:cpu:nanoseconds:cpu:nanoseconds", "samples", 1_000_000_000),
            ("process_cpu:samples:count:cpu:nanoseconds", "objects", 100),
            ("memory:inuse_objects:count:space:bytes", "objects", 100),
            ("memory:alloc_objects:count:space:bytes", "objects", 100),
            ("goroutines:goroutine:count:goroutine:count", "objects", 100),
            ("memory:inuse_space:bytes:space:bytes", "bytes", 100),
            ("mutex:delay:nanoseconds:contentions:count", "nanoseconds", 100),
            ("wall:wall:microseconds:wall:microseconds", "microseconds", 100),
        ];
        for (id, want_units, want_rate) in cases {
            assert_eq!(units(&pt(id)), (want_units.to_string(), want_rate), "{id}");
        }
    }

    #[test]
    fn single_json_shape() {
        let fg = FlameGraph {
            names: vec!["total".into(), "main".into()],
            levels: vec![Level { values: vec![0, 10, 0, 0] }, Level { values: vec![0, 10, 10, 1] }],
            total: 10,
            max_self: 10,
        };
        let tl = super::super::timeline::timeline(&[], 0, 30_000, 15);
        let v = serde_json::to_value(single(&fg, &pt("memory:inuse_space:bytes:space:bytes"), tl, None)).unwrap();
        assert_eq!(
            v,
            json!({
                "version": 1,
                "flamebearer": {"names": ["total", "main"], "levels": [[0, 10, 0, 0], [0, 10, 10, 1]],
                                "numTicks": 10, "maxSelf": 10},
                "metadata": {"format": "single", "spyName": "", "sampleRate": 100, "units": "bytes",
                             "name": "inuse_space"},
                "timeline": {"startTime": 0, "samples": [0, 0], "durationDelta": 15, "watermarks": null},
                "groups": null,
                "heatmap": null
            })
        );
    }

    #[test]
    fn diff_json_shape() {
        let fg = FlameGraphDiff {
            names: vec!["total".into()],
            levels: vec![Level { values: vec![0, 3, 0, 0, 4, 0, 0] }],
            total: 7,
            max_self: 0,
            left_ticks: 3,
            right_ticks: 4,
        };
        let v = serde_json::to_value(diff(&fg, &pt("process_cpu:cpu:nanoseconds:cpu:nanoseconds"))).unwrap();
        assert_eq!(v["metadata"]["format"], "double");
        assert_eq!(v["flamebearer"]["levels"], json!([[0, 3, 0, 0, 4, 0, 0]]));
        assert_eq!((v["leftTicks"].as_i64(), v["rightTicks"].as_i64()), (Some(3), Some(4)));
        assert_eq!(v["flamebearer"]["numTicks"], 7);
        assert!(v["timeline"].is_null() && v.get("timeline").is_some());
    }
}
