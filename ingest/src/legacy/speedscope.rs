//! `format=speedscope`: a speedscope JSON file (https://www.speedscope.app/file-format-schema.json)
//! with `evented` and/or `sampled` profiles over one shared frame table.
//!
//! The rules are Pyroscope's (`pkg/og/convert/speedscope`), so the same upload lands in the same
//! series:
//!
//! * Profiles with the same name, type, unit and start value are merged (their samples, weights
//!   and events concatenated) so that they do not collide as one series at one timestamp; the
//!   rest are ordered by start value.
//! * Each profile gets the label `profile_name=<name>`. With more than one profile, the app name
//!   becomes `<app>.<unit>`, so the unit picks the profile type through the suffix table
//!   (`seconds` → wall, `bytes` → memory samples:bytes).
//! * Values are kept to 1/100 of a unit (`precision`, 1 for bytes), and when `sampleRate` is the
//!   default 100 it is replaced by the unit's own rate, so that the suffix table's
//!   `1e9 / sampleRate` scaling turns them into nanoseconds: `none` counts as 100 Hz ticks.
//! * Evented: the time between two consecutive events goes to the stack open during it; a close
//!   must match the innermost open frame; events must not go back in time.
//! * Sampled: `samples[i]` (frame indexes, root first) weighs `weights[i]`; negative weights and
//!   unequal lengths are errors.
//!
//! Where Pyroscope's code misbehaves we do what it evidently means: fractional values are scaled
//! before truncation (Go truncates first, making the precision factor moot), the gap before an
//! open event is scaled like every other (Go forgets the factor there), and `nanoseconds` keeps
//! nanoseconds exactly (Go's rate overflows `uint32` and scales every value to 0).

use std::collections::HashMap;

use serde::Deserialize;

use super::error::LegacyError;
use super::labelset::NameLabels;
use super::text_ingest::{self, StackBudget, StackBudgetExceeded};
use super::{DEFAULT_SAMPLE_RATE, LegacyProfile, RequestMeta};

/// The only `$schema` accepted.
pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";
/// Deepest stack of open frames in an evented profile.
pub const MAX_DEPTH: usize = 8192;
/// Most distinct call paths in one upload.
pub const MAX_NODES: usize = 16 << 20;
/// The label that tells the profiles of one upload apart.
pub const PROFILE_NAME: &str = "profile_name";

/// Why a speedscope body was refused (HTTP 422).
#[derive(Debug, thiserror::Error)]
pub enum SpeedscopeError {
    #[error("speedscope: invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("speedscope: unknown schema: {0:?}")]
    UnknownSchema(String),
    #[error("speedscope: invalid profile unit: unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("speedscope: profile type {0:?} not supported")]
    UnknownProfileKind(String),
    #[error("speedscope: unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("speedscope: events out of order, {at} < {last}")]
    EventsOutOfOrder { at: f64, last: f64 },
    #[error("speedscope: invalid frame {0}")]
    InvalidFrame(f64),
    #[error("speedscope: no stack to close at {0}")]
    NoStackToClose(f64),
    #[error("speedscope: closing non-open frame {0}")]
    ClosingNonOpenFrame(usize),
    #[error("speedscope: unequal lengths of samples and weights: {samples} != {weights}")]
    WeightCount { samples: usize, weights: usize },
    #[error("speedscope: negative weight {0}")]
    NegativeWeight(f64),
    #[error("speedscope: invalid number {0}")]
    NotFinite(f64),
    #[error("speedscope: open frames nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("speedscope: more than {MAX_NODES} distinct call paths")]
    TooManyNodes,
    #[error(transparent)]
    Budget(#[from] StackBudgetExceeded),
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "$schema", default)]
    schema: String,
    #[serde(default)]
    shared: Shared,
    #[serde(default)]
    profiles: Vec<ProfileDoc>,
}

#[derive(Deserialize, Default)]
struct Shared {
    #[serde(default)]
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ProfileDoc {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    unit: String,
    #[serde(rename = "startValue", default)]
    start_value: f64,
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    samples: Vec<Vec<f64>>,
    #[serde(default)]
    weights: Vec<f64>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    at: f64,
    #[serde(default)]
    frame: f64,
}

/// A speedscope value unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Bytes,
}

impl Unit {
    /// Parses the `unit` field.
    pub fn parse(s: &str) -> Result<Unit, SpeedscopeError> {
        Ok(match s {
            "none" => Unit::None,
            "nanoseconds" => Unit::Nanoseconds,
            "microseconds" => Unit::Microseconds,
            "milliseconds" => Unit::Milliseconds,
            "seconds" => Unit::Seconds,
            "bytes" => Unit::Bytes,
            _ => return Err(SpeedscopeError::UnknownUnit(s.to_string())),
        })
    }

    /// The name used as the app-name suffix of multi-profile uploads.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::None => "none",
            Unit::Nanoseconds => "nanoseconds",
            Unit::Microseconds => "microseconds",
            Unit::Milliseconds => "milliseconds",
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
        }
    }

    /// What values are multiplied by before truncation to integers.
    pub fn precision(self) -> f64 {
        match self {
            Unit::Bytes | Unit::Nanoseconds => 1.0,
            _ => 100.0,
        }
    }

    /// The sample rate that replaces the default one: `1e9 / rate` is then the nanoseconds of
    /// one stored count. Bytes are not time (0: no scaling).
    pub fn default_sample_rate(self) -> u32 {
        match self {
            Unit::Nanoseconds => 1_000_000_000,
            Unit::Microseconds => 100_000_000,
            Unit::Milliseconds => 100_000,
            Unit::Seconds => 100,
            Unit::None => 10_000,
            Unit::Bytes => 0,
        }
    }
}

/// One decoded profile: its name, unit and `(stack, value)` pairs in stored counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub name: String,
    pub unit: Unit,
    pub stacks: Vec<(String, u64)>,
}

/// Call paths by frame index, with the self value of each path.
struct CallTree {
    /// (parent node, frame index, self value); node 0 is the root.
    nodes: Vec<(usize, usize, u64)>,
    children: HashMap<(usize, usize), usize>,
}

impl CallTree {
    fn new() -> Self {
        Self { nodes: vec![(0, 0, 0)], children: HashMap::new() }
    }

    fn child(&mut self, parent: usize, frame: usize) -> Result<usize, SpeedscopeError> {
        if let Some(&id) = self.children.get(&(parent, frame)) {
            return Ok(id);
        }
        if self.nodes.len() > MAX_NODES {
            return Err(SpeedscopeError::TooManyNodes);
        }
        let id = self.nodes.len();
        self.nodes.push((parent, frame, 0));
        self.children.insert((parent, frame), id);
        Ok(id)
    }

    fn add(&mut self, node: usize, value: u64) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.2 = n.2.saturating_add(value);
        }
    }

    /// The `;`-joined frame names of every path with a value (the root's own value is dropped).
    fn stacks(&self, frames: &[Frame], budget: &mut StackBudget) -> Result<Vec<(String, u64)>, SpeedscopeError> {
        let mut out = Vec::new();
        let mut path: Vec<&str> = Vec::new();
        for (id, &(_, _, value)) in self.nodes.iter().enumerate().skip(1) {
            if value == 0 {
                continue;
            }
            path.clear();
            let mut cur = id;
            while cur != 0 {
                let Some(&(parent, frame, _)) = self.nodes.get(cur) else { break };
                path.push(frames.get(frame).map_or("", |f| f.name.as_str()));
                cur = parent;
            }
            path.reverse();
            let bytes = path.iter().map(|f| f.len() + 1).sum::<usize>();
            budget.charge(bytes, path.len())?;
            out.push((path.join(";"), value));
        }
        Ok(out)
    }
}

/// A frame index given as a JSON number: truncated like Go's `int(f)`, within the frame table.
fn frame_index(v: f64, frames: usize) -> Result<usize, SpeedscopeError> {
    let t = v.trunc();
    if t.is_finite() && t >= 0.0 && t < frames as f64 { Ok(t as usize) } else { Err(SpeedscopeError::InvalidFrame(v)) }
}

/// A value in stored counts: `v * precision`, truncated (saturating at `u64::MAX`).
fn scaled(v: f64, precision: f64) -> Result<u64, SpeedscopeError> {
    if !v.is_finite() {
        return Err(SpeedscopeError::NotFinite(v));
    }
    Ok((v * precision) as u64)
}

fn parse_evented(p: &ProfileDoc, frames: &[Frame], precision: f64) -> Result<CallTree, SpeedscopeError> {
    let mut tree = CallTree::new();
    // Open frames (index, call-tree node), innermost last.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut last = p.start_value;
    for ev in &p.events {
        if !ev.at.is_finite() {
            return Err(SpeedscopeError::NotFinite(ev.at));
        }
        if ev.at < last {
            return Err(SpeedscopeError::EventsOutOfOrder { at: ev.at, last });
        }
        let fid = frame_index(ev.frame, frames.len())?;
        match ev.kind.as_str() {
            "C" => {
                let Some(&(top, node)) = open.last() else {
                    return Err(SpeedscopeError::NoStackToClose(ev.at));
                };
                if top != fid {
                    return Err(SpeedscopeError::ClosingNonOpenFrame(fid));
                }
                tree.add(node, scaled(ev.at - last, precision)?);
                open.pop();
            }
            "O" => {
                let parent = open.last().map_or(0, |&(_, node)| node);
                if parent != 0 {
                    tree.add(parent, scaled(ev.at - last, precision)?);
                }
                if open.len() >= MAX_DEPTH {
                    return Err(SpeedscopeError::TooDeep);
                }
                let node = tree.child(parent, fid)?;
                open.push((fid, node));
            }
            other => return Err(SpeedscopeError::UnknownEventType(other.to_string())),
        }
        last = ev.at;
    }
    Ok(tree)
}

fn parse_sampled(p: &ProfileDoc, frames: &[Frame], precision: f64) -> Result<CallTree, SpeedscopeError> {
    if p.samples.len() != p.weights.len() {
        return Err(SpeedscopeError::WeightCount { samples: p.samples.len(), weights: p.weights.len() });
    }
    let mut tree = CallTree::new();
    for (sample, &weight) in p.samples.iter().zip(&p.weights) {
        if weight < 0.0 {
            return Err(SpeedscopeError::NegativeWeight(weight));
        }
        let mut node = 0;
        for &f in sample {
            node = tree.child(node, frame_index(f, frames.len())?)?;
        }
        tree.add(node, scaled(weight, precision)?);
    }
    Ok(tree)
}

/// Merges profiles with the same (name, type, unit, start value), then orders them by start
/// value (stable, so equal starts keep their order in the file).
fn merge_profiles(profiles: Vec<ProfileDoc>) -> Vec<ProfileDoc> {
    let mut merged: Vec<ProfileDoc> = Vec::new();
    for p in profiles {
        let same = merged
            .iter_mut()
            .find(|m| m.name == p.name && m.kind == p.kind && m.unit == p.unit && m.start_value == p.start_value);
        match same {
            Some(m) => {
                m.samples.extend(p.samples);
                m.weights.extend(p.weights);
                m.events.extend(p.events);
            }
            None => merged.push(p),
        }
    }
    merged.sort_by(|a, b| a.start_value.total_cmp(&b.start_value));
    merged
}

/// Decodes a speedscope document into one [`Decoded`] per (merged) profile, values in stored
/// counts (`value * unit.precision()`).
pub fn decode(body: &[u8]) -> Result<Vec<Decoded>, SpeedscopeError> {
    let file: File = serde_json::from_slice(body)?;
    if file.schema != SCHEMA {
        return Err(SpeedscopeError::UnknownSchema(file.schema));
    }
    let frames = file.shared.frames;
    let mut budget = StackBudget::default();
    let mut out = Vec::new();
    for p in merge_profiles(file.profiles) {
        let unit = Unit::parse(&p.unit)?;
        let tree = match p.kind.as_str() {
            "evented" => parse_evented(&p, &frames, unit.precision())?,
            "sampled" => parse_sampled(&p, &frames, unit.precision())?,
            other => return Err(SpeedscopeError::UnknownProfileKind(other.to_string())),
        };
        let stacks = tree.stacks(&frames, &mut budget)?;
        out.push(Decoded { name: p.name, unit, stacks });
    }
    Ok(out)
}

/// Converts a `format=speedscope` upload: one profile per (merged) speedscope profile, each
/// through the stack path with its own app name, `profile_name` label and sample rate.
pub(super) fn convert(name: &NameLabels, meta: &RequestMeta, body: &[u8]) -> Result<Vec<LegacyProfile>, LegacyError> {
    let decoded = decode(body)?;
    let multi = decoded.len() > 1;
    let size = body.len().div_ceil(decoded.len().max(1));
    let mut out = Vec::new();
    for d in decoded {
        let mut name = name.clone();
        if multi {
            name.app_name = format!("{}.{}", name.app_name, d.unit.as_str());
        }
        if !d.name.is_empty() {
            name.labels.insert(PROFILE_NAME.to_string(), d.name.clone());
        }
        let mut meta = meta.clone();
        if meta.sample_rate == DEFAULT_SAMPLE_RATE {
            meta.sample_rate = d.unit.default_sample_rate();
        }
        let stacks = d.stacks.iter().map(|(s, v)| (s.as_str(), *v));
        out.extend(text_ingest::from_stacks(&name, &meta, stacks, size)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use flamedb_proto::google::v1::Profile;
    use serde_json::json;

    use super::super::{ConvertLimits, IngestParams, convert as convert_request, labelset};
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/pyroscope");

    fn fixture(name: &str) -> Option<Vec<u8>> {
        let path = format!("{FIXTURES}/og__convert__speedscope__testdata__{name}.speedscope.json");
        match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(_) => {
                eprintln!("notice: {path} absent, skipped");
                None
            }
        }
    }

    fn sorted(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
        v.sort();
        v
    }

    fn owned(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        sorted(v.iter().map(|(s, n)| (s.to_string(), *n)).collect())
    }

    /// The stacks of a pprof (root first, `;`-joined) with their first value, read here from the
    /// raw messages.
    fn pprof_stacks(p: &Profile) -> BTreeMap<String, i64> {
        let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
        let mut out = BTreeMap::new();
        for sample in &p.sample {
            let mut frames: Vec<String> = sample
                .location_id
                .iter()
                .map(|id| {
                    let loc = p.location.iter().find(|l| l.id == *id).expect("location");
                    let f = p.function.iter().find(|f| f.id == loc.line[0].function_id).expect("function");
                    s(f.name)
                })
                .collect();
            frames.reverse();
            *out.entry(frames.join(";")).or_insert(0) += sample.value[0];
        }
        out
    }

    fn value_types(p: &Profile) -> (String, String, Option<(String, String)>, i64) {
        let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
        let st = &p.sample_type[0];
        (s(st.r#type), s(st.unit), p.period_type.as_ref().map(|pt| (s(pt.r#type), s(pt.unit))), p.period)
    }

    fn label<'a>(p: &'a LegacyProfile, k: &str) -> Option<&'a str> {
        p.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn meta(sample_rate: u32) -> RequestMeta {
        RequestMeta { from_nanos: 1_000, until_nanos: 2_000, sample_rate, spy_name: "unknown".into() }
    }

    fn run(app: &str, sample_rate: u32, doc: &serde_json::Value) -> Result<Vec<LegacyProfile>, LegacyError> {
        convert(&labelset::parse(app).unwrap(), &meta(sample_rate), doc.to_string().as_bytes())
    }

    fn expect(v: &[(&str, i64)]) -> BTreeMap<String, i64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn simple_evented_fixture() {
        let Some(body) = fixture("simple") else { return };
        let d = decode(&body).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].name.as_str(), d[0].unit), ("simple.txt", Unit::None));
        assert_eq!(sorted(d[0].stacks.clone()), owned(&[("a;b", 500), ("a;b;c", 500), ("a;b;d", 400)]));

        let out = convert(&labelset::parse("foo").unwrap(), &meta(100), &body).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(label(p, "profile_name"), Some("simple.txt"));
        assert_eq!(label(p, "service_name"), Some("foo"));
        assert_eq!(label(p, "__name__"), Some("process_cpu"));
        // process_cpu:cpu:nanoseconds:cpu:nanoseconds at sample rate 10000 (period 1e9 / 1e4).
        let ty = value_types(&p.profile);
        assert_eq!(ty, ("cpu".into(), "nanoseconds".into(), Some(("cpu".into(), "nanoseconds".into())), 100_000));
        assert_eq!(
            pprof_stacks(&p.profile),
            expect(&[("a;b", 50_000_000), ("a;b;c", 50_000_000), ("a;b;d", 40_000_000)])
        );
        assert_eq!(p.profile.time_nanos, 1_000);
    }

    #[test]
    fn two_sampled_fixture() {
        let Some(body) = fixture("two-sampled") else { return };
        let d = decode(&body).unwrap();
        let names: Vec<&str> = d.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        for x in &d {
            assert_eq!(x.unit, Unit::Seconds);
            assert_eq!(sorted(x.stacks.clone()), owned(&[("a;b", 500), ("a;b;c", 500), ("a;b;d", 400)]));
        }
        let out = convert(&labelset::parse("foo{x=y}").unwrap(), &meta(100), &body).unwrap();
        assert_eq!(out.len(), 2);
        for (p, name) in out.iter().zip(["one", "two"]) {
            assert_eq!(label(p, "profile_name"), Some(name));
            assert_eq!((label(p, "service_name"), label(p, "x")), (Some("foo"), Some("y")));
            // foo.seconds: wall:wall:nanoseconds:cpu:nanoseconds, 100 Hz.
            assert_eq!(label(p, "__name__"), Some("wall"));
            let ty = value_types(&p.profile);
            assert_eq!(
                ty,
                ("wall".into(), "nanoseconds".into(), Some(("cpu".into(), "nanoseconds".into())), 10_000_000)
            );
            // Weights are seconds: a;b weighs 5 s.
            let want = expect(&[("a;b", 5_000_000_000), ("a;b;c", 5_000_000_000), ("a;b;d", 4_000_000_000)]);
            assert_eq!(pprof_stacks(&p.profile), want);
        }
    }

    #[test]
    fn two_sampled_bytes_fixture() {
        let Some(body) = fixture("two-sampled-bytes") else { return };
        let out = convert(&labelset::parse("foo").unwrap(), &meta(100), &body).unwrap();
        assert_eq!(out.len(), 2);
        for p in &out {
            // foo.bytes: memory:samples:bytes::, values unscaled.
            assert_eq!(label(p, "__name__"), Some("memory"));
            assert_eq!(value_types(&p.profile), ("samples".into(), "bytes".into(), None, 0));
            assert_eq!(pprof_stacks(&p.profile), expect(&[("a;b", 5), ("a;b;c", 5), ("a;b;d", 4)]));
        }
        assert_eq!(label(&out[0], "profile_name"), Some("one"));
        assert_eq!(label(&out[1], "profile_name"), Some("two"));
    }

    #[test]
    fn duplicates_fixture_merges_into_one_series() {
        let Some(body) = fixture("duplicates") else { return };
        let d = decode(&body).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(sorted(d[0].stacks.clone()), owned(&[("a;b", 1500), ("a;b;c", 1500), ("a;b;d", 1200)]));
        let out = convert(&labelset::parse("foo{x=y}").unwrap(), &meta(100), &body).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(label(&out[0], "profile_name"), Some("one"));
        assert_eq!(label(&out[0], "x"), Some("y"));
        // A single profile keeps the app name: process_cpu, seconds at 100 Hz.
        assert_eq!(label(&out[0], "__name__"), Some("process_cpu"));
        assert_eq!(out[0].profile.period, 10_000_000);
        assert_eq!(pprof_stacks(&out[0].profile)["a;b"], 15_000_000_000);
    }

    fn frames() -> serde_json::Value {
        json!({"frames": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    }

    fn sampled(unit: &str, weights: &[f64]) -> serde_json::Value {
        json!({"$schema": SCHEMA, "shared": frames(), "profiles": [{
            "type": "sampled", "name": "s", "unit": unit, "startValue": 0, "endValue": 10,
            "samples": [[0, 1], [0, 2], [0]], "weights": weights}]})
    }

    /// a opens at 1, b at 1.5 and closes at 3, a closes at 4: a self 1.5, a;b 1.5.
    fn evented(unit: &str) -> serde_json::Value {
        json!({"$schema": SCHEMA, "shared": frames(), "profiles": [{
            "type": "evented", "name": "e", "unit": unit, "startValue": 0, "endValue": 10,
            "events": [{"type": "O", "frame": 0, "at": 1}, {"type": "O", "frame": 1, "at": 1.5},
                       {"type": "C", "frame": 1, "at": 3}, {"type": "C", "frame": 0, "at": 4}]}]})
    }

    #[test]
    fn time_units_become_nanoseconds() {
        // (unit, nanoseconds per unit)
        let units: &[(&str, f64)] =
            &[("none", 1e7), ("nanoseconds", 1.0), ("microseconds", 1e3), ("milliseconds", 1e6), ("seconds", 1e9)];
        for &(unit, ns) in units {
            // Whole and fractional weights; nanoseconds are not subdivided.
            let weights = if unit == "nanoseconds" { [4.0, 3.0, 7.0] } else { [2.5, 0.25, 7.0] };
            let out = run("app", 100, &sampled(unit, &weights)).unwrap();
            assert_eq!(out.len(), 1, "{unit}");
            let p = &out[0].profile;
            assert_eq!(value_types(p).0, "cpu", "{unit}");
            let got = pprof_stacks(p);
            let want = expect(&[
                ("a;b", (weights[0] * ns) as i64),
                ("a;c", (weights[1] * ns) as i64),
                ("a", (weights[2] * ns) as i64),
            ]);
            assert_eq!(got, want, "{unit}");

            let out = run("app", 100, &evented(unit)).unwrap();
            let got = pprof_stacks(&out[0].profile);
            let (a, ab) = if unit == "nanoseconds" { (1, 1) } else { ((1.5 * ns) as i64, (1.5 * ns) as i64) };
            assert_eq!(got, expect(&[("a", a), ("a;b", ab)]), "evented {unit}");
        }
    }

    #[test]
    fn bytes_unit() {
        let out = run("app", 100, &sampled("bytes", &[2.5, 1.0, 3.0])).unwrap();
        // One profile keeps the app name (a CPU name), and bytes have no sample rate.
        let p = &out[0].profile;
        assert_eq!(value_types(p), ("samples".into(), "count".into(), None, 0));
        assert_eq!(pprof_stacks(p), expect(&[("a;b", 2), ("a;c", 1), ("a", 3)]));
        let out = run("app.alloc_space", 100, &evented("bytes")).unwrap();
        assert_eq!(value_types(&out[0].profile).0, "alloc_space");
        assert_eq!(pprof_stacks(&out[0].profile), expect(&[("a", 1), ("a;b", 1)]));
    }

    #[test]
    fn explicit_sample_rate_is_kept() {
        // Only the default 100 is replaced by the unit's rate: at 50 Hz each stored count
        // (1/100 s) weighs 20 ms.
        let out = run("app", 50, &sampled("seconds", &[1.0, 0.0, 0.0])).unwrap();
        assert_eq!(out[0].profile.period, 20_000_000);
        assert_eq!(pprof_stacks(&out[0].profile), expect(&[("a;b", 2_000_000_000)]));
    }

    #[test]
    fn multi_profile_names_and_merge_order() {
        let doc = json!({"$schema": SCHEMA, "shared": frames(), "profiles": [
            {"type": "sampled", "name": "late", "unit": "milliseconds", "startValue": 5,
             "samples": [[0]], "weights": [1]},
            {"type": "sampled", "name": "early", "unit": "milliseconds", "startValue": 1,
             "samples": [[1]], "weights": [2]},
            {"type": "sampled", "name": "late", "unit": "milliseconds", "startValue": 5,
             "samples": [[0, 2]], "weights": [3]}]});
        let out = run("svc.cpu{env=x}", 100, &doc).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(label(&out[0], "profile_name"), Some("early"));
        assert_eq!(label(&out[1], "profile_name"), Some("late"));
        for p in &out {
            // `svc.cpu.milliseconds`: wall, service `svc.cpu`.
            assert_eq!((label(p, "__name__"), label(p, "service_name")), (Some("wall"), Some("svc.cpu")));
            assert_eq!(label(p, "env"), Some("x"));
        }
        assert_eq!(pprof_stacks(&out[1].profile), expect(&[("a", 1_000_000), ("a;c", 3_000_000)]));
        // Several unit-less profiles make the app name `app.none`, which is no profile type.
        let doc = json!({"$schema": SCHEMA, "shared": frames(), "profiles": [
            {"type": "sampled", "name": "p", "unit": "none", "samples": [[0]], "weights": [1]},
            {"type": "sampled", "name": "q", "unit": "none", "samples": [[0]], "weights": [1]}]});
        let e = run("app", 100, &doc).unwrap_err();
        assert_eq!((e.http_status(), e.to_string()), (400, "unknown profile type: none".into()));
    }

    #[test]
    fn empty_documents_store_nothing() {
        let doc = json!({"$schema": SCHEMA, "profiles": []});
        assert!(run("app", 100, &doc).unwrap().is_empty());
        let doc = sampled("seconds", &[0.0, 0.0, 0.0]);
        assert!(run("app", 100, &doc).unwrap().is_empty());
    }

    fn assert_422(doc: &[u8], needle: &str) {
        let e = convert(&labelset::parse("app").unwrap(), &meta(100), doc).unwrap_err();
        assert_eq!(e.http_status(), 422, "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    }

    #[test]
    fn malformed_documents_are_422() {
        assert_422(b"{", "invalid JSON");
        assert_422(b"", "invalid JSON");
        assert_422(b"42", "invalid JSON");
        assert_422(json!({"$schema": "x", "profiles": []}).to_string().as_bytes(), "unknown schema");
        assert_422(json!({"profiles": []}).to_string().as_bytes(), "unknown schema");
        assert_422(sampled("parsecs", &[1.0, 1.0, 1.0]).to_string().as_bytes(), "unknown unit");
        let mut doc = sampled("seconds", &[1.0, 1.0, 1.0]);
        doc["profiles"][0]["type"] = json!("timeline");
        assert_422(doc.to_string().as_bytes(), "not supported");
        assert_422(sampled("seconds", &[1.0, -1.0, 1.0]).to_string().as_bytes(), "negative weight");
        assert_422(sampled("seconds", &[1.0, 1.0]).to_string().as_bytes(), "unequal lengths");
        for bad in [json!(3), json!(-1), json!(1e300), json!("0")] {
            let mut doc = sampled("seconds", &[1.0, 1.0, 1.0]);
            doc["profiles"][0]["samples"][1][1] = bad.clone();
            let needle = if bad.is_string() { "invalid JSON" } else { "invalid frame" };
            assert_422(doc.to_string().as_bytes(), needle);
        }
        let events = |ev: serde_json::Value| {
            let mut doc = evented("seconds");
            doc["profiles"][0]["events"] = ev;
            doc.to_string().into_bytes()
        };
        assert_422(
            &events(json!([{"type": "O", "frame": 0, "at": 2}, {"type": "C", "frame": 0, "at": 1}])),
            "out of order",
        );
        assert_422(&events(json!([{"type": "C", "frame": 0, "at": 1}])), "no stack to close");
        assert_422(
            &events(json!([{"type": "O", "frame": 0, "at": 1}, {"type": "C", "frame": 1, "at": 2}])),
            "non-open frame",
        );
        assert_422(&events(json!([{"type": "X", "frame": 0, "at": 1}])), "unknown event type");
        assert_422(&events(json!([{"type": "O", "frame": 9, "at": 1}])), "invalid frame");
        // Events before the start value are out of order too.
        let mut doc = evented("seconds");
        doc["profiles"][0]["startValue"] = json!(2);
        assert_422(doc.to_string().as_bytes(), "out of order");
    }

    #[test]
    fn open_frames_nest_at_most_max_depth() {
        let opens: Vec<serde_json::Value> =
            (0..=MAX_DEPTH).map(|i| json!({"type": "O", "frame": 0, "at": i})).collect();
        let mut doc = evented("seconds");
        doc["profiles"][0]["events"] = json!(opens);
        let e = decode(doc.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, SpeedscopeError::TooDeep), "{e}");
        // Unclosed frames are fine below the cap: their time up to the last event counts.
        let opens: Vec<serde_json::Value> = (0..3).map(|i| json!({"type": "O", "frame": i, "at": i})).collect();
        doc["profiles"][0]["events"] = json!(opens);
        let d = decode(doc.to_string().as_bytes()).unwrap();
        assert_eq!(sorted(d[0].stacks.clone()), owned(&[("a", 100), ("a;b", 100)]));
    }

    #[test]
    fn sampled_expansion_is_capped() {
        // One 1 MiB frame name referenced 200 times: 200 MiB of stacks from a ~1 MiB body.
        let big = "x".repeat(1 << 20);
        let samples: Vec<Vec<u32>> = (0..200).map(|i| vec![0; i + 1]).collect();
        let weights: Vec<u32> = vec![1; 200];
        let doc = json!({"$schema": SCHEMA, "shared": {"frames": [{"name": big}]},
            "profiles": [{"type": "sampled", "name": "s", "unit": "bytes", "samples": samples, "weights": weights}]});
        let e = decode(doc.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, SpeedscopeError::Budget(_)), "{e}");
    }

    #[test]
    fn through_the_dispatcher() {
        let Some(body) = fixture("simple") else { return };
        let params = IngestParams::from_query(&[
            ("name".to_string(), "myapp".to_string()),
            ("format".to_string(), "speedscope".to_string()),
        ]);
        let out = convert_request(&params, Some("application/json"), &body, 7, &ConvertLimits::default()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(label(&out[0], "profile_name"), Some("simple.txt"));
        assert_eq!(pprof_stacks(&out[0].profile).values().sum::<i64>(), 140_000_000);
    }
}
