//! Normalization: one pprof plus the series labels it was pushed with becomes one series profile
//! per (sample type x distinct sample-label set), with Pyroscope's label rules, and the pprof's
//! symbol references rewritten to dense indexes so the head can map them without hashing ids.

use hashbrown::HashMap;

use flamedb_proto::google::v1::Profile;

use crate::model::labels::{self, Labels};
use crate::validate::{self, Limits, ValidationError};

/// A sample of one series profile: a stack (index into [`NormalizedProfile::stacks`]), its value
/// and the span it was recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackValue {
    pub stack: u32,
    pub value: i64,
    pub span_id: Option<u64>,
}

/// The profile of one series (one sample type, one sample-label set).
#[derive(Debug, Clone)]
pub struct SeriesProfile {
    pub labels: Labels,
    pub samples: Vec<StackValue>,
    pub total: i64,
}

/// Stacks as location indexes (1-based into `profile.location`), root first, flattened.
#[derive(Debug, Clone, Default)]
pub struct Stacks {
    pub locations: Vec<u32>,
    pub offsets: Vec<u32>,
}

impl Stacks {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Location indexes of stack `i`, root first.
    pub fn get(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.locations[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// A pprof ready for the head. After normalization `profile.location[i].id == i + 1`, every
/// `line.function_id` is a 1-based index into `profile.function` and every `mapping_id` a 1-based
/// index into `profile.mapping` (0 = none); string indexes are all in range.
#[derive(Debug, Clone)]
pub struct NormalizedProfile {
    /// The symbols partition: the service the profile belongs to.
    pub partition: String,
    pub profile: Profile,
    pub stacks: Stacks,
    pub series: Vec<SeriesProfile>,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    /// The client's profile id (`RawSample.ID`), if any.
    pub profile_id: Option<String>,
}

impl NormalizedProfile {
    /// Number of sample rows this profile adds.
    pub fn sample_rows(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// Normalizes a decoded pprof pushed with `series_labels`.
pub fn normalize(
    series_labels: &[(String, String)],
    mut profile: Profile,
    profile_id: Option<String>,
    limits: &Limits,
    now_nanos: i64,
) -> Result<NormalizedProfile, ValidationError> {
    let base = base_labels(series_labels)?;
    check_profile(&profile, limits)?;

    if profile.time_nanos == 0 {
        profile.time_nanos = now_nanos;
    }
    let (start, end) = validate::ingestion_window(limits, now_nanos);
    if profile.time_nanos < start || profile.time_nanos > end {
        return Err(ValidationError::OutsideWindow {
            labels: base.to_string(),
            time_nanos: profile.time_nanos,
            start,
            end,
        });
    }
    truncate_strings(&mut profile, limits.max_profile_symbol_value_length);
    let location_index = densify_ids(&mut profile)?;
    let stacks = collect_stacks(&profile, &location_index, limits.max_profile_stacktrace_depth)?;
    let groups = group_samples(&profile, limits)?;

    let s = |i: i64| profile.string_table.get(i as usize).map_or("", String::as_str);
    let (period_type, period_unit) = profile.period_type.as_ref().map_or(("", ""), |p| (s(p.r#type), s(p.unit)));
    let mut series = Vec::new();
    for group in &groups {
        let mut ls = base.clone();
        for (k, v) in &group.labels {
            if ls.get(k).is_none() {
                ls.set(k.clone(), v.clone());
            }
        }
        for (t, st) in profile.sample_type.iter().enumerate() {
            let (sample_type, sample_unit) = (s(st.r#type), s(st.unit));
            let mut samples = Vec::new();
            let mut total = 0i64;
            for &(i, span_id) in &group.samples {
                let value = profile.sample[i as usize].value.get(t).copied().unwrap_or(0);
                if value != 0 {
                    samples.push(StackValue { stack: i, value, span_id });
                    total = total.wrapping_add(value);
                }
            }
            if samples.is_empty() {
                continue;
            }
            let mut ls = ls.clone();
            let name = metric_name(ls.get(labels::METRIC_NAME).unwrap_or(""), sample_type);
            ls.set(labels::METRIC_NAME, name.clone());
            let profile_type = format!("{name}:{sample_type}:{sample_unit}:{period_type}:{period_unit}");
            ls.set(labels::PROFILE_TYPE, profile_type);
            ls.set(labels::TYPE, sample_type);
            ls.set(labels::UNIT, sample_unit);
            if !period_type.is_empty() || !period_unit.is_empty() {
                ls.set(labels::PERIOD_TYPE, period_type);
                ls.set(labels::PERIOD_UNIT, period_unit);
            }
            if let Some(svc) = ls.get(labels::SERVICE_NAME).map(str::to_owned) {
                ls.set(labels::PRIVATE_SERVICE_NAME, svc);
            }
            validate::validate_labels(&ls, limits)?;
            series.push(SeriesProfile { labels: ls, samples, total });
        }
    }
    Ok(NormalizedProfile {
        partition: base.get(labels::SERVICE_NAME).unwrap_or(labels::DEFAULT_SERVICE_NAME).to_string(),
        time_nanos: profile.time_nanos,
        duration_nanos: profile.duration_nanos,
        profile,
        stacks,
        series,
        profile_id: profile_id.filter(|s| !s.is_empty()),
    })
}

/// The series labels every series of the profile starts from: client labels minus the ones the
/// server never stores, with `service_name` defaulted.
fn base_labels(pairs: &[(String, String)]) -> Result<Labels, ValidationError> {
    let mut seen = hashbrown::HashSet::with_capacity(pairs.len());
    for (k, _) in pairs {
        if !seen.insert(k.as_str()) {
            return Err(ValidationError::DuplicateLabel(k.clone()));
        }
    }
    let mut ls = Labels::from_pairs(
        pairs
            .iter()
            .filter(|(k, v)| !v.is_empty() && !matches!(k.as_str(), labels::DELTA | labels::OTEL | labels::SESSION_ID))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if ls.get(labels::METRIC_NAME).is_none_or(str::is_empty) {
        return Err(ValidationError::MissingMetricName);
    }
    if ls.get(labels::SERVICE_NAME).is_none() {
        ls.set(labels::SERVICE_NAME, labels::DEFAULT_SERVICE_NAME);
    }
    Ok(ls)
}

/// Pyroscope's default relabel rules on `__name__`: `godeltaprof_X` is `X`, and a `wall` series
/// of sample type `cpu` is `process_cpu`.
fn metric_name(name: &str, sample_type: &str) -> String {
    let name = name.strip_prefix("godeltaprof_").unwrap_or(name);
    if name == "wall" && sample_type == "cpu" {
        return "process_cpu".into();
    }
    name.to_string()
}

fn check_profile(p: &Profile, limits: &Limits) -> Result<(), ValidationError> {
    if p.sample_type.is_empty() {
        return Err(ValidationError::NoSampleTypes);
    }
    if p.string_table.first().is_none_or(|s| !s.is_empty()) {
        return Err(ValidationError::BadStringTable);
    }
    let n = p.string_table.len();
    let check = |i: i64| {
        if i < 0 || i as usize >= n { Err(ValidationError::StringIndex { index: i, len: n }) } else { Ok(()) }
    };
    for st in p.sample_type.iter().chain(p.period_type.as_ref()) {
        check(st.r#type)?;
        check(st.unit)?;
    }
    // Function ids before sample-type names: Pyroscope's order, so a broken .NET profile
    // is refused for its function ids as its integration test pins.
    for f in &p.function {
        if f.id == 0 {
            return Err(ValidationError::FunctionIdZero);
        }
        check(f.name)?;
        check(f.system_name)?;
        check(f.filename)?;
    }
    for st in &p.sample_type {
        let name = &p.string_table[st.r#type as usize];
        if name.contains('-') {
            return Err(ValidationError::SampleTypeDash(name.clone()));
        }
    }
    for m in &p.mapping {
        check(m.filename)?;
        check(m.build_id)?;
    }
    for l in &p.location {
        if l.id == 0 {
            return Err(ValidationError::LocationIdZero);
        }
    }
    if p.sample.len() > limits.max_profile_stacktrace_samples {
        return Err(ValidationError::TooManySamples {
            count: p.sample.len(),
            limit: limits.max_profile_stacktrace_samples,
        });
    }
    let want = p.sample_type.len();
    for s in &p.sample {
        if s.value.len() != want {
            return Err(ValidationError::ValueCount { got: s.value.len(), want });
        }
        if s.label.len() > limits.max_profile_stacktrace_sample_labels {
            return Err(ValidationError::TooManySampleLabels {
                count: s.label.len(),
                limit: limits.max_profile_stacktrace_sample_labels,
            });
        }
        for l in &s.label {
            check(l.key)?;
            check(l.str)?;
        }
    }
    Ok(())
}

/// Cuts symbol strings longer than the limit, keeping their end (the most specific part of a
/// long qualified name).
fn truncate_strings(p: &mut Profile, max: usize) {
    if max == 0 {
        return;
    }
    for s in p.string_table.iter_mut() {
        if s.len() > max {
            let mut cut = s.len() - max;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }
}

/// Id -> 0-based index, dense when the ids are 1..=n (what every real client writes).
struct IdIndex {
    dense: bool,
    map: HashMap<u64, u32>,
}

impl IdIndex {
    fn new(ids: impl ExactSizeIterator<Item = u64> + Clone) -> Self {
        let dense = ids.clone().enumerate().all(|(i, id)| id == i as u64 + 1);
        let map = if dense { HashMap::new() } else { ids.enumerate().map(|(i, id)| (id, i as u32)).collect() };
        Self { dense, map }
    }

    fn get(&self, id: u64, len: usize) -> Option<u32> {
        if self.dense { (id >= 1 && id <= len as u64).then(|| (id - 1) as u32) } else { self.map.get(&id).copied() }
    }
}

/// Rewrites function, mapping and location ids to 1-based indexes; returns the location id index
/// of the original ids (samples still refer to those).
fn densify_ids(p: &mut Profile) -> Result<IdIndex, ValidationError> {
    let functions = IdIndex::new(p.function.iter().map(|f| f.id));
    let mappings = IdIndex::new(p.mapping.iter().map(|m| m.id));
    let locations = IdIndex::new(p.location.iter().map(|l| l.id));
    let (nf, nm) = (p.function.len(), p.mapping.len());
    for (i, f) in p.function.iter_mut().enumerate() {
        f.id = i as u64 + 1;
    }
    for (i, m) in p.mapping.iter_mut().enumerate() {
        m.id = i as u64 + 1;
    }
    for (i, l) in p.location.iter_mut().enumerate() {
        l.id = i as u64 + 1;
        if l.mapping_id != 0 {
            // A dangling mapping reference loses only the mapping, not the frame.
            l.mapping_id = mappings.get(l.mapping_id, nm).map_or(0, |m| u64::from(m) + 1);
        }
        for line in l.line.iter_mut() {
            match functions.get(line.function_id, nf) {
                Some(f) => line.function_id = u64::from(f) + 1,
                None if line.function_id == 0 => return Err(ValidationError::FunctionIdZero),
                None => return Err(ValidationError::MissingReference { kind: "function", id: line.function_id }),
            }
        }
    }
    Ok(locations)
}

/// One stack per sample, root first, at most `max_depth` frames (the leaf side is kept).
/// Locations without lines and without an address carry nothing to show and are left out.
fn collect_stacks(p: &Profile, locations: &IdIndex, max_depth: usize) -> Result<Stacks, ValidationError> {
    let n = p.location.len();
    let mut out = Stacks { locations: Vec::new(), offsets: Vec::with_capacity(p.sample.len() + 1) };
    out.offsets.push(0);
    for s in &p.sample {
        let start = out.locations.len();
        for &id in s.location_id.iter().take(if max_depth == 0 { usize::MAX } else { max_depth }) {
            let idx = locations.get(id, n).ok_or(if id == 0 {
                ValidationError::LocationIdZero
            } else {
                ValidationError::MissingReference { kind: "location", id }
            })?;
            let loc = &p.location[idx as usize];
            if loc.line.is_empty() && loc.address == 0 {
                continue;
            }
            out.locations.push(idx + 1);
        }
        out.locations[start..].reverse();
        out.offsets.push(out.locations.len() as u32);
    }
    Ok(out)
}

/// Samples sharing one set of string sample labels (those lifted into series labels).
struct Group {
    labels: Vec<(String, String)>,
    /// (sample index, span id)
    samples: Vec<(u32, Option<u64>)>,
}

fn group_samples(p: &Profile, _limits: &Limits) -> Result<Vec<Group>, ValidationError> {
    let s = |i: i64| p.string_table.get(i as usize).map_or("", String::as_str);
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<Vec<(u32, u32)>, usize> = HashMap::new();
    // Canonical string index per distinct string, so equal label sets written with different
    // string indexes still group together.
    let mut canon: HashMap<&str, u32> = HashMap::new();
    for (i, sample) in p.sample.iter().enumerate() {
        let mut key: Vec<(u32, u32)> = Vec::new();
        let mut span = None;
        for l in &sample.label {
            if l.str == 0 {
                continue; // numeric label: not part of series identity
            }
            let (k, v) = (s(l.key), s(l.str));
            if k.is_empty() || v.is_empty() {
                continue;
            }
            match k {
                labels::SPAN_ID | labels::PROFILE_ID => {
                    span = u64::from_str_radix(v, 16).ok().or(span);
                    continue;
                }
                labels::TRACE_ID => continue,
                _ => {}
            }
            let next = canon.len() as u32;
            let kc = *canon.entry(k).or_insert(next);
            let next = canon.len() as u32;
            let vc = *canon.entry(v).or_insert(next);
            key.push((kc, vc));
        }
        key.sort_unstable();
        key.dedup_by_key(|e| e.0);
        let gi = match by_key.get(&key) {
            Some(&gi) => gi,
            None => {
                let mut names: Vec<&str> = vec![""; canon.len()];
                for (name, &id) in &canon {
                    names[id as usize] = name;
                }
                let labels =
                    key.iter().map(|&(k, v)| (names[k as usize].to_string(), names[v as usize].to_string())).collect();
                groups.push(Group { labels, samples: Vec::new() });
                by_key.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[gi].samples.push((i as u32, span));
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use flamedb_proto::google::v1::{Function, Label, Line, Location, Sample, ValueType};

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    /// A pprof with two sample types (samples/count, cpu/nanoseconds) and stacks given root first.
    /// (root-first frames, [samples, cpu] values, sample labels)
    type TestSample<'a> = (&'a [&'a str], [i64; 2], &'a [(&'a str, &'a str)]);

    fn profile(stacks: &[TestSample]) -> Profile {
        let mut st = vec![String::new()];
        let mut intern = |x: &str| match st.iter().position(|s| s == x) {
            Some(i) => i as i64,
            None => {
                st.push(x.to_string());
                (st.len() - 1) as i64
            }
        };
        let mut p = Profile {
            sample_type: vec![
                ValueType { r#type: intern("samples"), unit: intern("count") },
                ValueType { r#type: intern("cpu"), unit: intern("nanoseconds") },
            ],
            period_type: Some(ValueType { r#type: intern("cpu"), unit: intern("nanoseconds") }),
            time_nanos: NOW,
            ..Default::default()
        };
        let mut fn_of: HashMap<String, u64> = HashMap::new();
        for (frames, values, lbls) in stacks {
            let mut ids = Vec::new();
            for f in frames.iter().rev() {
                let id = *fn_of.entry(f.to_string()).or_insert_with(|| {
                    let id = p.function.len() as u64 + 10; // not dense on purpose
                    p.function.push(Function { id, name: intern(f), ..Default::default() });
                    p.location.push(Location {
                        id: id * 2,
                        line: vec![Line { function_id: id, line: 1 }],
                        ..Default::default()
                    });
                    id
                });
                ids.push(id * 2);
            }
            let label =
                lbls.iter().map(|(k, v)| Label { key: intern(k), str: intern(v), ..Default::default() }).collect();
            p.sample.push(Sample { location_id: ids, value: values.to_vec(), label });
        }
        p.string_table = st;
        p
    }

    fn labels() -> Vec<(String, String)> {
        vec![("__name__".into(), "process_cpu".into()), ("service_name".into(), "svc".into())]
    }

    #[test]
    fn one_series_per_sample_type_with_private_labels() {
        let p = profile(&[(&["main", "a"], [1, 10], &[]), (&["main", "b"], [2, 20], &[])]);
        let n = normalize(&labels(), p, Some("id1".into()), &Limits::default(), NOW).unwrap();
        assert_eq!(n.partition, "svc");
        assert_eq!(n.series.len(), 2);
        let cpu = &n.series[1];
        assert_eq!(cpu.labels.get("__profile_type__"), Some("process_cpu:cpu:nanoseconds:cpu:nanoseconds"));
        assert_eq!(cpu.labels.get("__type__"), Some("cpu"));
        assert_eq!(cpu.labels.get("__period_unit__"), Some("nanoseconds"));
        assert_eq!(cpu.labels.get("__service_name__"), Some("svc"));
        assert_eq!(cpu.total, 30);
        assert_eq!(n.series[0].total, 3);
        // Stacks resolve back to names root first through the densified ids.
        let names: Vec<&str> = n
            .stacks
            .get(cpu.samples[0].stack as usize)
            .iter()
            .map(|&li| {
                let loc = &n.profile.location[li as usize - 1];
                let f = &n.profile.function[loc.line[0].function_id as usize - 1];
                n.profile.string_table[f.name as usize].as_str()
            })
            .collect();
        assert_eq!(names, vec!["main", "a"]);
        assert_eq!(n.profile_id.as_deref(), Some("id1"));
    }

    #[test]
    fn sample_labels_split_series_and_span_ids_stay_per_sample() {
        let p = profile(&[
            (&["a"], [1, 1], &[("function", "fast"), ("span_id", "00000000000000ef")]),
            (&["b"], [1, 2], &[("function", "slow")]),
            (&["c"], [1, 4], &[("function", "fast"), ("profile_id", "0000000000000010")]),
            (&["d"], [1, 8], &[("service_name", "other"), ("trace_id", "x")]),
        ]);
        let n = normalize(&labels(), p, None, &Limits::default(), NOW).unwrap();
        let cpu: Vec<&SeriesProfile> = n.series.iter().filter(|s| s.labels.get("__type__") == Some("cpu")).collect();
        assert_eq!(cpu.len(), 3, "fast, slow, and no lifted labels");
        let fast = cpu.iter().find(|s| s.labels.get("function") == Some("fast")).unwrap();
        assert_eq!(fast.total, 5);
        assert_eq!(fast.samples.iter().map(|s| s.span_id).collect::<Vec<_>>(), vec![Some(0xef), Some(0x10)]);
        assert!(fast.labels.get("span_id").is_none());
        let plain = cpu.iter().find(|s| s.labels.get("function").is_none()).unwrap();
        assert_eq!(plain.labels.get("service_name"), Some("svc"), "series labels win over sample labels");
        assert!(plain.labels.get("trace_id").is_none());
    }

    #[test]
    fn label_rules() {
        let p = profile(&[(&["a"], [1, 1], &[])]);
        let ls = vec![
            ("__name__".to_string(), "godeltaprof_memory".to_string()),
            ("__delta__".to_string(), "false".to_string()),
            ("__session_id__".to_string(), "77e4".to_string()),
            ("empty".to_string(), String::new()),
        ];
        let n = normalize(&ls, p, None, &Limits::default(), NOW).unwrap();
        let l = &n.series[0].labels;
        assert_eq!(l.get("__name__"), Some("memory"));
        assert_eq!(l.get("service_name"), Some("unknown_service"));
        assert!(l.get("__delta__").is_none() && l.get("__session_id__").is_none() && l.get("empty").is_none());
        assert_eq!(metric_name("wall", "cpu"), "process_cpu");
        assert_eq!(metric_name("wall", "wall"), "wall");
    }

    #[test]
    fn rejections() {
        let lim = Limits::default();
        let good = || profile(&[(&["a"], [1, 1], &[])]);
        let dup = vec![("__name__".to_string(), "x".to_string()), ("__name__".to_string(), "y".to_string())];
        assert!(matches!(normalize(&dup, good(), None, &lim, NOW), Err(ValidationError::DuplicateLabel(_))));
        assert_eq!(
            normalize(&[("service_name".into(), "a".into())], good(), None, &lim, NOW).unwrap_err(),
            ValidationError::MissingMetricName
        );
        let mut p = good();
        p.function[0].id = 0;
        assert_eq!(normalize(&labels(), p, None, &lim, NOW).unwrap_err(), ValidationError::FunctionIdZero);
        let mut p = good();
        p.sample[0].value.pop();
        assert!(matches!(normalize(&labels(), p, None, &lim, NOW), Err(ValidationError::ValueCount { .. })));
        let mut p = good();
        p.string_table[1] = "alloc-samples".into();
        assert!(matches!(normalize(&labels(), p, None, &lim, NOW), Err(ValidationError::SampleTypeDash(_))));
        let mut p = good();
        p.time_nanos = NOW - 2 * 3_600_000_000_000;
        assert!(matches!(normalize(&labels(), p, None, &lim, NOW), Err(ValidationError::OutsideWindow { .. })));
        let mut p = good();
        p.sample[0].location_id.push(12345);
        assert!(matches!(normalize(&labels(), p, None, &lim, NOW), Err(ValidationError::MissingReference { .. })));
        let mut p = good();
        p.string_table[0] = "x".into();
        assert_eq!(normalize(&labels(), p, None, &lim, NOW).unwrap_err(), ValidationError::BadStringTable);
    }

    #[test]
    fn deep_stacks_keep_the_leaf_side_and_zero_values_are_dropped() {
        let frames: Vec<String> = (0..1500).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
        let p = profile(&[(&refs, [0, 5], &[])]);
        let n = normalize(&labels(), p, None, &Limits::default(), NOW).unwrap();
        assert_eq!(n.series.len(), 1, "the all-zero samples/count series is dropped");
        let st = n.stacks.get(0);
        assert_eq!(st.len(), 1000);
        let leaf = &n.profile.location[*st.last().unwrap() as usize - 1];
        let f = &n.profile.function[leaf.line[0].function_id as usize - 1];
        assert_eq!(n.profile.string_table[f.name as usize], "f1499");
    }

    #[test]
    fn zero_time_is_now_and_long_strings_keep_their_end() {
        let mut p = profile(&[(&["a"], [1, 1], &[])]);
        p.time_nanos = 0;
        let long = format!("{}tail", "x".repeat(70_000));
        p.string_table.push(long);
        let n = normalize(&labels(), p, None, &Limits::default(), NOW).unwrap();
        assert_eq!(n.time_nanos, NOW);
        let last = n.profile.string_table.last().unwrap();
        assert_eq!(last.len(), 65_535);
        assert!(last.ends_with("tail"));
    }
}
