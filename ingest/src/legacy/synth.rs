//! Builds a pprof from `(stack, count)` pairs of the text formats, so that they travel the same
//! normalization and storage path as every native pprof upload.

use std::collections::HashMap;

use flamedb_proto::google::v1::{Function, Line, Location, Mapping, Profile, Sample, ValueType};

use super::suffix::SuffixType;

/// Interns strings into a pprof string table whose entry 0 is "".
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self { table: Vec::new(), index: HashMap::new() };
        s.intern("");
        s
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// Synthesizes the profile: one mapping; one function and one location per distinct frame
/// name (function id = location id); one sample per distinct stack, its location ids leaf
/// first and its value the summed counts times `ty.scale`. Stacks are `;`-separated, root
/// first. Stacks whose value is zero are left out.
pub fn build_profile<'a>(
    stacks: impl IntoIterator<Item = (&'a str, u64)>,
    ty: &SuffixType,
    time_nanos: i64,
    duration_nanos: i64,
) -> Profile {
    let mut strings = Strings::new();
    let sample_type = ValueType { r#type: strings.intern(ty.sample_type), unit: strings.intern(ty.sample_unit) };
    let (period_type, period) = match ty.period {
        Some((pt, pu, period)) => (Some(ValueType { r#type: strings.intern(pt), unit: strings.intern(pu) }), period),
        None => (None, 0),
    };

    let mut frame_ids: HashMap<&'a str, u64> = HashMap::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut sample_index: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut samples: Vec<(Vec<u64>, u64)> = Vec::new();

    for (stack, count) in stacks {
        let mut ids: Vec<u64> = Vec::new();
        for frame in stack.split(';') {
            let id = match frame_ids.get(frame) {
                Some(&id) => id,
                None => {
                    let id = functions.len() as u64 + 1;
                    let name = strings.intern(frame);
                    functions.push(Function { id, name, system_name: name, ..Default::default() });
                    locations.push(Location {
                        id,
                        mapping_id: 1,
                        line: vec![Line { function_id: id, line: 0 }],
                        ..Default::default()
                    });
                    frame_ids.insert(frame, id);
                    id
                }
            };
            ids.push(id);
        }
        ids.reverse(); // pprof lists the leaf first
        match sample_index.get(&ids) {
            Some(&i) => {
                if let Some(s) = samples.get_mut(i) {
                    s.1 = s.1.saturating_add(count);
                }
            }
            None => {
                sample_index.insert(ids.clone(), samples.len());
                samples.push((ids, count));
            }
        }
    }

    let sample = samples
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(location_id, count)| {
            let value = i64::try_from(count.saturating_mul(ty.scale)).unwrap_or(i64::MAX);
            Sample { location_id, value: vec![value], label: Vec::new() }
        })
        .collect();

    Profile {
        sample_type: vec![sample_type],
        sample,
        mapping: vec![Mapping { id: 1, has_functions: true, ..Default::default() }],
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos,
        duration_nanos,
        period_type,
        period,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::pprof_names::string_at;
    use super::super::suffix::profile_type;
    use super::*;

    fn frames(p: &Profile, s: &Sample) -> Vec<String> {
        s.location_id
            .iter()
            .map(|id| {
                let loc = p.location.iter().find(|l| l.id == *id).unwrap();
                let f = p.function.iter().find(|f| f.id == loc.line[0].function_id).unwrap();
                string_at(p, f.name).to_string()
            })
            .collect()
    }

    #[test]
    fn structure_of_a_cpu_profile() {
        let ty = profile_type(Some("cpu"), 100).unwrap();
        let p = build_profile([("a;b;c", 2), ("a;b", 1), ("a;b;c", 3), ("x y;b", 0)], &ty, 5, 7);
        assert_eq!(p.string_table[0], "");
        assert_eq!(string_at(&p, p.sample_type[0].r#type), "cpu");
        assert_eq!(string_at(&p, p.sample_type[0].unit), "nanoseconds");
        let pt = p.period_type.unwrap();
        assert_eq!((string_at(&p, pt.r#type), string_at(&p, pt.unit)), ("cpu", "nanoseconds"));
        assert_eq!(p.period, 10_000_000);
        assert_eq!((p.time_nanos, p.duration_nanos), (5, 7));
        assert_eq!(p.mapping.len(), 1);
        // Distinct frames: a, b, c, "x y".
        assert_eq!(p.function.len(), 4);
        assert_eq!(p.location.len(), 4);
        assert!(p.location.iter().all(|l| l.mapping_id == 1));
        // Merged stacks, zero-valued one dropped, leaf first.
        assert_eq!(p.sample.len(), 2);
        assert_eq!(frames(&p, &p.sample[0]), vec!["c", "b", "a"]);
        assert_eq!(p.sample[0].value, vec![50_000_000]);
        assert_eq!(frames(&p, &p.sample[1]), vec!["b", "a"]);
        assert_eq!(p.sample[1].value, vec![10_000_000]);
    }

    #[test]
    fn unscaled_types_have_no_period() {
        let ty = profile_type(Some("alloc_space"), 100).unwrap();
        let p = build_profile([("a", 7)], &ty, 0, 0);
        assert_eq!(p.period_type, None);
        assert_eq!(p.period, 0);
        assert_eq!(p.sample[0].value, vec![7]);
        assert_eq!(string_at(&p, p.sample_type[0].r#type), "alloc_space");
        assert_eq!(string_at(&p, p.sample_type[0].unit), "bytes");
    }

    #[test]
    fn huge_counts_saturate() {
        let ty = profile_type(None, 1).unwrap();
        let p = build_profile([("a", u64::MAX), ("a", 1)], &ty, 0, 0);
        assert_eq!(p.sample[0].value, vec![i64::MAX]);
    }
}
