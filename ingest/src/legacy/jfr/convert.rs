//! JFR events → one pprof per profile kind (cpu, wall, allocations, locks, ...), following the
//! rules of Pyroscope's JFR converter (grafana/jfr-parser `pprof`):
//!
//! * `jdk.ExecutionSample` is cpu unless its thread state is `STATE_SLEEPING` (a sample whose
//!   state does not resolve is not cpu), and also wall when the recording's `event` setting is
//!   `wall`; both are worth one sampling period (`1e9 / sampleRate` ns; 0 when the rate is 0).
//! * `profiler.WallClockSample` is wall worth `samples` periods.
//! * allocations in / outside TLABs and `jdk.ObjectAllocationSample` count one object and
//!   `tlabSize` / `allocationSize` / `weight` bytes; `jdk.JavaMonitorEnter` (mutex) and
//!   `jdk.ThreadPark` (block) count one contention and their `duration` (raw, as recorded);
//!   `profiler.LiveObject` counts one object; `profiler.Malloc` one call and `size` bytes.
//! * Frames are `<class>.<method>` with the frame's line number; frames whose method or class
//!   does not resolve are left out, events whose stack trace does not resolve are skipped.
//! * Cpu, wall and allocation samples (and lock samples) carry the async-profiler `contextId`;
//!   the labels of that context in the uploaded `LabelsSnapshot` become sample labels, which
//!   split the series later. A non-zero `spanId` becomes `profile_id`, a `spanName` `span_name`.

use std::collections::HashMap;
use std::io::Cursor;
use std::rc::Rc;

use flamedb_proto::google::v1::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};
use jfrs::reader::JfrReader;
use jfrs::reader::event::Accessor;
use jfrs::reader::value_descriptor::{Primitive, ValueDescriptor};

use super::labels::LabelsSnapshot;
use super::symbols::merge_generated;

/// The profiles a recording can produce, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Cpu,
    Wall,
    AllocInNewTlab,
    AllocOutsideTlab,
    Lock,
    ThreadPark,
    LiveObject,
    AllocSample,
    Malloc,
}

impl Kind {
    const COUNT: usize = 9;

    fn index(self) -> usize {
        self as usize
    }

    /// `(type, unit)` of each sample value.
    pub fn sample_types(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Cpu => &[("cpu", "nanoseconds")],
            Kind::Wall => &[("wall", "nanoseconds")],
            Kind::AllocInNewTlab => &[("alloc_in_new_tlab_objects", "count"), ("alloc_in_new_tlab_bytes", "bytes")],
            Kind::AllocOutsideTlab => &[("alloc_outside_tlab_objects", "count"), ("alloc_outside_tlab_bytes", "bytes")],
            Kind::Lock | Kind::ThreadPark => &[("contentions", "count"), ("delay", "nanoseconds")],
            Kind::LiveObject => &[("live", "count")],
            Kind::AllocSample => &[("alloc_sample_objects", "count"), ("alloc_sample_bytes", "bytes")],
            Kind::Malloc => &[("malloc_objects", "count"), ("malloc_bytes", "bytes")],
        }
    }

    fn period_type(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Cpu => Some(("cpu", "nanoseconds")),
            Kind::Wall => Some(("wall", "nanoseconds")),
            Kind::AllocInNewTlab | Kind::AllocOutsideTlab | Kind::AllocSample => Some(("space", "bytes")),
            Kind::Lock => Some(("mutex", "count")),
            Kind::ThreadPark => Some(("block", "count")),
            Kind::LiveObject => Some(("objects", "count")),
            Kind::Malloc => None,
        }
    }

    /// The `__name__` of the kind's series.
    pub fn metric(self) -> &'static str {
        match self {
            Kind::Cpu => "process_cpu",
            Kind::Wall => "wall",
            Kind::Lock => "mutex",
            Kind::ThreadPark => "block",
            _ => "memory",
        }
    }

    /// Cpu and wall samples count sampling periods.
    fn scaled_by_period(self) -> bool {
        matches!(self, Kind::Cpu | Kind::Wall)
    }
}

/// Request facts the profiles need.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub time_nanos: i64,
    pub duration_nanos: i64,
    /// Nanoseconds one cpu/wall sample is worth.
    pub period: i64,
}

/// The converted recording.
#[derive(Debug, Default)]
pub struct Converted {
    /// The async-profiler `event` setting (`cpu`, `itimer`, `wall`, ...), "" when absent.
    pub event: String,
    /// One profile per kind that got at least one sample.
    pub profiles: Vec<(Kind, Profile)>,
}

/// Identity of a sample inside one profile: the stack (per chunk) and what labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Correlation {
    context_id: i64,
    span_id: i64,
    span_name: i64,
}

#[derive(Hash, PartialEq, Eq)]
struct SampleKey {
    chunk: usize,
    stack: i64,
    correlation: Correlation,
}

/// A resolved frame: its function name and line.
type Frames = Rc<[(Rc<str>, i64)]>;

struct Builder {
    kind: Kind,
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<Rc<str>, u64>,
    locations: Vec<Location>,
    location_ids: HashMap<(u64, i64), u64>,
    samples: Vec<Sample>,
    sample_ids: HashMap<SampleKey, usize>,
}

impl Builder {
    fn new(kind: Kind) -> Self {
        let mut b = Self {
            kind,
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            samples: Vec::new(),
            sample_ids: HashMap::new(),
        };
        b.intern("");
        b
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), i);
        i
    }

    fn location(&mut self, name: &Rc<str>, line: i64) -> u64 {
        let function = match self.function_ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.functions.len() as u64 + 1;
                let name_idx = self.intern(name);
                self.functions.push(Function { id, name: name_idx, ..Default::default() });
                self.function_ids.insert(name.clone(), id);
                id
            }
        };
        *self.location_ids.entry((function, line)).or_insert_with(|| {
            let id = self.locations.len() as u64 + 1;
            self.locations.push(Location {
                id,
                mapping_id: 1,
                line: vec![Line { function_id: function, line }],
                ..Default::default()
            });
            id
        })
    }

    fn add(&mut self, key: SampleKey, frames: &Frames, values: &[i64], labels: &LabelsSnapshot) {
        if let Some(sample) = self.sample_ids.get(&key).and_then(|&i| self.samples.get_mut(i)) {
            for (dst, v) in sample.value.iter_mut().zip(values) {
                *dst = dst.saturating_add(*v);
            }
            return;
        }
        let location_id = frames.iter().map(|(name, line)| self.location(name, *line)).collect();
        let c = key.correlation;
        let mut pairs = labels.context_labels(c.context_id);
        if c.span_id != 0 {
            pairs.push(("profile_id".to_string(), format!("{:016x}", c.span_id as u64)));
        }
        if c.span_name != 0 {
            let name = labels.string(c.span_name);
            if !name.is_empty() {
                pairs.push(("span_name".to_string(), name.to_string()));
            }
        }
        let label = pairs
            .iter()
            .map(|(k, v)| Label { key: self.intern(k), str: self.intern(v), ..Default::default() })
            .collect();
        self.sample_ids.insert(key, self.samples.len());
        self.samples.push(Sample { location_id, value: values.to_vec(), label });
    }

    fn build(mut self, settings: &Settings) -> Profile {
        let sample_type = self
            .kind
            .sample_types()
            .iter()
            .map(|(t, u)| ValueType { r#type: self.intern(t), unit: self.intern(u) })
            .collect();
        let period_type =
            self.kind.period_type().map(|(t, u)| ValueType { r#type: self.intern(t), unit: self.intern(u) });
        Profile {
            sample_type,
            sample: self.samples,
            mapping: vec![Mapping { id: 1, has_functions: true, ..Default::default() }],
            location: self.locations,
            function: self.functions,
            string_table: self.strings,
            time_nanos: settings.time_nanos,
            duration_nanos: settings.duration_nanos,
            period_type,
            ..Default::default()
        }
    }
}

/// A numeric field of an event (JFR writes these as long or int).
fn number(acc: &Accessor<'_>, name: &str) -> Option<i64> {
    match acc.get_field(name)?.value {
        ValueDescriptor::Primitive(Primitive::Long(v)) => Some(*v),
        ValueDescriptor::Primitive(Primitive::Integer(v)) => Some(i64::from(*v)),
        ValueDescriptor::Primitive(Primitive::Short(v)) => Some(i64::from(*v)),
        ValueDescriptor::Primitive(Primitive::Byte(v)) => Some(i64::from(*v)),
        _ => None,
    }
}

fn text<'a>(acc: &Accessor<'a>, name: &str) -> Option<&'a str> {
    let field = acc.get_field(name)?;
    <&str>::try_from(field.value).ok()
}

/// `<symbol>.string` of a field that refers to a `jdk.types.Symbol`; "" when it does not resolve.
fn symbol(acc: &Accessor<'_>, name: &str) -> String {
    acc.get_field(name).and_then(|s| text(&s, "string")).map(merge_generated).unwrap_or_default()
}

fn constant_index(acc: &Accessor<'_>, name: &str) -> Option<i64> {
    match acc.get_field_raw(name)?.value {
        ValueDescriptor::ConstantPool { constant_index, .. } => Some(*constant_index),
        _ => None,
    }
}

/// Per-chunk caches (constant-pool indexes are only meaningful inside their chunk).
#[derive(Default)]
struct ChunkCache {
    methods: HashMap<i64, Option<Rc<str>>>,
    stacks: HashMap<i64, Option<Frames>>,
}

fn method_name(method: &Accessor<'_>) -> Option<Rc<str>> {
    let class = method.get_field("type")?;
    let class_name = symbol(&class, "name");
    let method_name = symbol(method, "name");
    Some(Rc::from(format!("{class_name}.{method_name}")))
}

/// The frames (leaf first) of an event's stack trace and the trace's constant index.
fn stack(event: &Accessor<'_>, cache: &mut ChunkCache) -> Option<(i64, Frames)> {
    let idx = constant_index(event, "stackTrace")?;
    if let Some(hit) = cache.stacks.get(&idx) {
        return hit.clone().map(|f| (idx, f));
    }
    let resolved = event.get_field("stackTrace").map(|trace| {
        let mut frames: Vec<(Rc<str>, i64)> = Vec::new();
        if let Some(list) = trace.get_field("frames").and_then(Accessor::as_iter) {
            for frame in list {
                let name = match constant_index(&frame, "method") {
                    Some(m) => cache
                        .methods
                        .entry(m)
                        .or_insert_with(|| frame.get_field("method").as_ref().and_then(method_name))
                        .clone(),
                    None => frame.get_field("method").as_ref().and_then(method_name),
                };
                if let Some(name) = name {
                    // Pyroscope reads the line as uint32.
                    let line = number(&frame, "lineNumber").unwrap_or(0) as u32 as i64;
                    frames.push((name, line));
                }
            }
        }
        Frames::from(frames)
    });
    cache.stacks.insert(idx, resolved.clone());
    resolved.map(|f| (idx, f))
}

fn correlation(event: &Accessor<'_>) -> Correlation {
    Correlation {
        context_id: number(event, "contextId").unwrap_or(0),
        span_id: number(event, "spanId").unwrap_or(0),
        span_name: number(event, "spanName").unwrap_or(0),
    }
}

/// Reads the recording (already checked by the guard) and builds the profiles.
pub fn convert(data: &[u8], labels: &LabelsSnapshot, settings: &Settings) -> Result<Converted, jfrs::reader::Error> {
    let mut builders: Vec<Option<Builder>> = (0..Kind::COUNT).map(|_| None).collect();
    let mut event_setting = String::new();
    let mut reader = JfrReader::new(Cursor::new(data));
    for (chunk_no, item) in reader.chunks().enumerate() {
        let (mut chunk_reader, chunk) = item?;
        let mut cache = ChunkCache::default();
        for event in chunk_reader.events(&chunk) {
            let event = event?;
            let acc = event.value();
            let mut add = |kind: Kind, corr: Correlation, values: &[i64], cache: &mut ChunkCache| {
                let Some((stack_idx, frames)) = stack(&acc, cache) else {
                    return;
                };
                let mul = if kind.scaled_by_period() { settings.period } else { 1 };
                let values: Vec<i64> = values.iter().map(|v| v.saturating_mul(mul)).collect();
                let key = SampleKey { chunk: chunk_no, stack: stack_idx, correlation: corr };
                let slot = builders.get_mut(kind.index());
                if let Some(slot) = slot {
                    slot.get_or_insert_with(|| Builder::new(kind)).add(key, &frames, &values, labels);
                }
            };
            match event.class.name() {
                "jdk.ExecutionSample" => {
                    let corr = correlation(&acc);
                    let state = acc.get_field("state").and_then(|s| text(&s, "name"));
                    if state.is_some_and(|s| s != "STATE_SLEEPING") {
                        add(Kind::Cpu, corr, &[1], &mut cache);
                    }
                    if event_setting == "wall" {
                        add(Kind::Wall, corr, &[1], &mut cache);
                    }
                }
                "profiler.WallClockSample" => {
                    let samples = number(&acc, "samples").unwrap_or(0);
                    add(Kind::Wall, Correlation::default(), &[samples], &mut cache);
                }
                "jdk.ObjectAllocationInNewTLAB" => {
                    let bytes = number(&acc, "tlabSize").unwrap_or(0);
                    add(Kind::AllocInNewTlab, correlation(&acc), &[1, bytes], &mut cache);
                }
                "jdk.ObjectAllocationOutsideTLAB" => {
                    let bytes = number(&acc, "allocationSize").unwrap_or(0);
                    add(Kind::AllocOutsideTlab, correlation(&acc), &[1, bytes], &mut cache);
                }
                "jdk.ObjectAllocationSample" => {
                    let bytes = number(&acc, "weight").unwrap_or(0);
                    add(Kind::AllocSample, Correlation::default(), &[1, bytes], &mut cache);
                }
                "jdk.JavaMonitorEnter" => {
                    let delay = number(&acc, "duration").unwrap_or(0);
                    add(Kind::Lock, correlation(&acc), &[1, delay], &mut cache);
                }
                "jdk.ThreadPark" => {
                    let delay = number(&acc, "duration").unwrap_or(0);
                    add(Kind::ThreadPark, Correlation::default(), &[1, delay], &mut cache);
                }
                "profiler.LiveObject" => add(Kind::LiveObject, Correlation::default(), &[1], &mut cache),
                "profiler.Malloc" => {
                    let bytes = number(&acc, "size").unwrap_or(0);
                    add(Kind::Malloc, Correlation::default(), &[1, bytes], &mut cache);
                }
                "jdk.ActiveSetting" if text(&acc, "name") == Some("event") => {
                    event_setting = text(&acc, "value").unwrap_or_default().to_string();
                }
                _ => {}
            }
        }
    }
    let profiles =
        builders.into_iter().flatten().filter(|b| !b.samples.is_empty()).map(|b| (b.kind, b.build(settings))).collect();
    Ok(Converted { event: event_setting, profiles })
}
