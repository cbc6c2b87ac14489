//! `meta.json`: what a block holds, in Pyroscope's v1 layout (camelCase, times in milliseconds),
//! so block tooling written against Pyroscope reads it. It is written last: a block without one
//! is not a block yet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the block layout described in `docs/block-format.md`.
pub const BLOCK_FORMAT_VERSION: u32 = 1;

/// The file name that makes a block visible.
pub const META_FILE: &str = "meta.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block's ULID (26 Crockford characters); also its directory name.
    pub ulid: String,
    /// First and last profile time, in milliseconds (inclusive; rounded outwards from ns).
    pub min_time: i64,
    pub max_time: i64,
    pub stats: BlockStats,
    pub files: Vec<FileMeta>,
    pub compaction: Compaction,
    pub version: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_series: u64,
    pub num_profiles: u64,
    pub num_samples: u64,
    #[serde(default)]
    pub num_partitions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    /// Path relative to the block directory.
    pub rel_path: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compaction {
    /// 1 for a block cut from a head; compacted blocks count up.
    pub level: u32,
    /// ULIDs of the level-1 blocks this block's data came from (itself for a head block).
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
}

impl BlockMeta {
    /// The block's time range in nanoseconds (inclusive, at millisecond precision).
    pub fn nanos(&self) -> (i64, i64) {
        (self.min_time.saturating_mul(1_000_000), self.max_time.saturating_mul(1_000_000).saturating_add(999_999))
    }

    /// Whether the block may hold profiles in `[min, max]` (ns).
    pub fn overlaps_nanos(&self, min: i64, max: i64) -> bool {
        let (a, b) = self.nanos();
        a <= max && b >= min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_camel_case_and_round_trips() {
        let m = BlockMeta {
            ulid: "01J00000000000000000000000".into(),
            min_time: 1_000,
            max_time: 2_000,
            stats: BlockStats { num_series: 2, num_profiles: 3, num_samples: 4, num_partitions: 1 },
            files: vec![FileMeta { rel_path: "profiles.parquet".into(), size_bytes: 10 }],
            compaction: Compaction { level: 1, sources: vec!["01J00000000000000000000000".into()], parents: vec![] },
            version: BLOCK_FORMAT_VERSION,
            labels: BTreeMap::new(),
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.contains("\"minTime\":1000") && s.contains("\"numSeries\":2") && s.contains("\"relPath\""), "{s}");
        assert_eq!(serde_json::from_str::<BlockMeta>(&s).unwrap(), m);
        assert!(m.overlaps_nanos(2_000_999_999, 3_000_000_000));
        assert!(!m.overlaps_nanos(2_001_000_000, 3_000_000_000));
    }
}
