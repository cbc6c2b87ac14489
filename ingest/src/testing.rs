//! Synthetic pprofs for tests and benches across the workspace: one sample type, stacks given
//! root first, one function and location per distinct frame name.

use std::collections::BTreeMap;

use flamedb_proto::google::v1::{Function, Line, Location, Profile, Sample, ValueType};

/// A pprof of sample type `(type, unit)` (also its period type) with root-first `stacks`.
pub fn pprof(sample_type: (&str, &str), stacks: &[(&[&str], i64)], time_nanos: i64) -> Profile {
    let mut strings = vec![String::new()];
    let mut id = |s: &str| -> i64 {
        match strings.iter().position(|x| x == s) {
            Some(i) => i as i64,
            None => {
                strings.push(s.to_string());
                (strings.len() - 1) as i64
            }
        }
    };
    let mut p = Profile {
        sample_type: vec![ValueType { r#type: id(sample_type.0), unit: id(sample_type.1) }],
        period_type: Some(ValueType { r#type: id(sample_type.0), unit: id(sample_type.1) }),
        period: 1,
        time_nanos,
        ..Default::default()
    };
    let mut fns: BTreeMap<String, u64> = BTreeMap::new();
    for (frames, v) in stacks {
        let mut locs = Vec::new();
        for f in frames.iter().rev() {
            let next = fns.len() as u64 + 1;
            let fid = *fns.entry(f.to_string()).or_insert(next);
            if fid == next {
                p.function.push(Function { id: fid, name: id(f), ..Default::default() });
                p.location.push(Location {
                    id: fid,
                    line: vec![Line { function_id: fid, line: 1 }],
                    ..Default::default()
                });
            }
            locs.push(fid);
        }
        p.sample.push(Sample { location_id: locs, value: vec![*v], label: vec![] });
    }
    p.string_table = strings;
    p
}

/// A cpu profile (`cpu`/`nanoseconds`).
pub fn cpu_pprof(stacks: &[(&[&str], i64)], time_nanos: i64) -> Profile {
    pprof(("cpu", "nanoseconds"), stacks, time_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_share_functions() {
        let p = cpu_pprof(&[(&["main", "a"], 3), (&["main", "b"], 4)], 7);
        assert_eq!(p.function.len(), 3);
        assert_eq!(p.sample[0].location_id.len(), 2);
        let leaf = p.sample[1].location_id[0] as usize - 1;
        assert_eq!(p.string_table[p.function[leaf].name as usize], "b", "leaf first, as pprof orders");
        assert_eq!(p.time_nanos, 7);
    }
}
