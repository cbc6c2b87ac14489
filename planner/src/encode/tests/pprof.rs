use std::collections::BTreeMap;

use flamedb_proto::google::v1::Profile;

use super::{random_tree, tree_of};
use crate::encode::to_pprof;

/// `root-first stack -> value` from a profile, resolving ids the way pprof readers do.
fn decode(profile: &Profile) -> BTreeMap<String, i64> {
    let string = |i: i64| profile.string_table[i as usize].as_str();
    let mut out = BTreeMap::new();
    for sample in &profile.sample {
        let mut frames: Vec<&str> = sample
            .location_id
            .iter()
            .map(|&id| {
                let location = profile.location.iter().find(|l| l.id == id).expect("location");
                assert_eq!(location.line.len(), 1);
                let function_id = location.line[0].function_id;
                let function = profile.function.iter().find(|f| f.id == function_id).expect("function");
                string(function.name)
            })
            .collect();
        frames.reverse();
        assert_eq!(sample.value.len(), 1);
        *out.entry(frames.join(";")).or_default() += sample.value[0];
    }
    out
}

/// `root-first path -> self` for the nodes with a non-zero self value.
fn leaf_paths(tree: &flamedb_exec::tree::FunctionTree) -> BTreeMap<String, i64> {
    super::node_map(tree).into_iter().filter(|(_, (own, _))| *own != 0).map(|(path, (own, _))| (path, own)).collect()
}

#[test]
fn pprof_small_tree() {
    let tree = tree_of(&[("main;run;work", 7), ("main;run", 2), ("main;idle", 1)]);
    let profile = to_pprof(&tree, ("cpu", "nanoseconds"), ("cpu", "nanoseconds"), 10_000_000, 5, 60);
    assert_eq!(profile.string_table[0], "");
    assert_eq!(profile.sample_type.len(), 1);
    let string = |i: i64| profile.string_table[i as usize].as_str();
    assert_eq!(string(profile.sample_type[0].r#type), "cpu");
    assert_eq!(string(profile.sample_type[0].unit), "nanoseconds");
    let period_type = profile.period_type.expect("period type");
    assert_eq!((string(period_type.r#type), string(period_type.unit)), ("cpu", "nanoseconds"));
    assert_eq!((profile.period, profile.time_nanos, profile.duration_nanos), (10_000_000, 5, 60));

    assert_eq!(profile.sample.len(), 3);
    assert_eq!(profile.function.len(), 4);
    assert_eq!(profile.location.len(), 4);
    let mut ids: Vec<u64> = profile.function.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4]);
    for location in &profile.location {
        assert_eq!(location.line[0].function_id, location.id);
    }
    let names: std::collections::HashSet<&str> = profile.function.iter().map(|f| string(f.name)).collect();
    assert_eq!(names.len(), 4, "one function per distinct name");

    let expected: BTreeMap<String, i64> = [("main;run;work", 7), ("main;run", 2), ("main;idle", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(decode(&profile), expected);
}

#[test]
fn pprof_round_trips_random_tree() {
    let tree = random_tree(37, 3000, 40);
    let profile = to_pprof(&tree, ("samples", "count"), ("cpu", "nanoseconds"), 1, 0, 0);
    assert_eq!(decode(&profile), leaf_paths(&tree));
    assert_eq!(profile.sample.len(), leaf_paths(&tree).len());
    assert!(profile.function.len() <= 40);

    let empty = to_pprof(&flamedb_exec::tree::FunctionTree::new(), ("samples", "count"), ("", ""), 0, 0, 0);
    assert!(empty.sample.is_empty() && empty.function.is_empty());
    assert_eq!(empty.string_table[0], "");
}
