//! A function tree as a pprof `Profile` (format PPROF, and SelectMergeProfile), for clients
//! such as `go tool pprof` or profilecli that want a standard profile rather than a flame graph.

use std::collections::HashMap;

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::google::v1::{Function, Line, Location, Profile, Sample, ValueType};

/// Builds the profile: one sample per node with a non-zero self value, whose locations are the
/// node's path leaf first (pprof's order), and one function plus one location per distinct
/// name, ids from 1 and equal for the two, since frames were merged by name and nothing finer
/// (addresses, lines) survives in the tree.
///
/// The tree is taken as given: callers that honour `max_nodes` cut it first.
pub fn to_pprof(
    tree: &FunctionTree,
    sample_type: (&str, &str),
    period_type: (&str, &str),
    period: i64,
    time_nanos: i64,
    duration_nanos: i64,
) -> Profile {
    let mut strings = StringTable::default();
    let sample_type = ValueType { r#type: strings.index(sample_type.0), unit: strings.index(sample_type.1) };
    let period_type = ValueType { r#type: strings.index(period_type.0), unit: strings.index(period_type.1) };

    // Location (= function) id per tree name id; 0 = not assigned yet.
    let mut location_of = vec![0u64; tree.name_count()];
    let mut function = Vec::new();
    let mut location = Vec::new();
    let mut sample = Vec::new();
    for node in 1..=tree.node_count() as u32 {
        let value = tree.self_value(node);
        if value == 0 {
            continue;
        }
        let mut location_id = Vec::new();
        let mut at = node;
        while at != FunctionTree::ROOT {
            let name = tree.name_id(at) as usize;
            if location_of[name] == 0 {
                let id = function.len() as u64 + 1;
                location_of[name] = id;
                function.push(Function { id, name: strings.index(tree.name(name as u32)), ..Function::default() });
                location.push(Location { id, line: vec![Line { function_id: id, line: 0 }], ..Location::default() });
            }
            location_id.push(location_of[name]);
            at = tree.parent(at);
        }
        sample.push(Sample { location_id, value: vec![value], label: Vec::new() });
    }

    Profile {
        sample_type: vec![sample_type],
        sample,
        location,
        function,
        string_table: strings.strings,
        time_nanos,
        duration_nanos,
        period_type: Some(period_type),
        period,
        ..Profile::default()
    }
}

/// pprof's string table: de-duplicated, with "" at index 0 as the format requires.
struct StringTable {
    strings: Vec<String>,
    index: HashMap<String, i64>,
}

impl Default for StringTable {
    fn default() -> Self {
        Self { strings: vec![String::new()], index: HashMap::from([(String::new(), 0)]) }
    }
}

impl StringTable {
    fn index(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}
