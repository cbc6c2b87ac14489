//! One OTLP `Profile` to pprof: samples are grouped by their `service.name` attribute (one pprof
//! per service), stacks and symbols are copied out of the dictionary, CPU sample counts become
//! nanoseconds and off-CPU values are summed per sample.

use hashbrown::HashMap;

use flamedb_proto::google::v1 as pprof;
use flamedb_proto::opentelemetry::proto::profiles::v1development as otel;

use super::dictionary::{Dictionary, IndexError, label_value};
use super::series_labels::SERVICE_NAME_ATTR;
use crate::model::labels;

/// Duration given to profiles that carry none (Pyroscope's default).
const DEFAULT_DURATION_NANOS: i64 = 10_000_000_000;
/// Mapping attribute holding the GNU build id of the binary.
const BUILD_ID_ATTR: &str = "process.executable.build_id.gnu";

/// A profile the conversion refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("sample type is missing")]
    MissingSampleType,
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("sample value is required")]
    MissingValue,
    #[error("sample values length mismatch {got} {want}")]
    ValuesLength { got: usize, want: usize },
}

/// One pprof out of an OTLP profile, for the samples of one service.
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    /// The samples' `service.name` attribute; empty when they had none (the resource decides).
    pub service: String,
    /// `__name__` of the series.
    pub name: String,
    pub profile: pprof::Profile,
}

/// How sample values are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueRule {
    AsIs,
    /// `samples/count` with a `cpu/nanoseconds` period: counts times the period.
    SamplesToNanos,
    /// Off-CPU: every value of a sample is one event's duration; pprof keeps their sum.
    SumEvents,
}

/// Converts `p`; the result has one entry per distinct sample `service.name`, in order of first
/// appearance.
pub(crate) fn convert(
    p: &otel::Profile,
    dict: &Dictionary<'_>,
    now_nanos: i64,
) -> Result<Vec<Converted>, ConvertError> {
    let st = p.sample_type.as_ref().ok_or(ConvertError::MissingSampleType)?;
    let (st_type, st_unit) = (dict.string(st.type_strindex)?, dict.string(st.unit_strindex)?);
    let period_type = p
        .period_type
        .as_ref()
        .map(|pt| Ok::<_, IndexError>((dict.string(pt.type_strindex)?, dict.string(pt.unit_strindex)?)))
        .transpose()?;
    let (pt_type, pt_unit) = match period_type {
        Some(pt) if p.period != 0 => pt,
        _ => ("", ""),
    };
    let (name, sample_type, rule) = match (st_type, st_unit, pt_type, pt_unit) {
        ("samples", "count", "cpu", "nanoseconds") => {
            ("process_cpu", ("cpu", "nanoseconds"), ValueRule::SamplesToNanos)
        }
        ("off_cpu", _, _, _) => ("off_cpu", (st_type, st_unit), ValueRule::SumEvents),
        (_, _, "", _) => ("process_cpu", (st_type, st_unit), ValueRule::AsIs),
        _ => (pt_type, (st_type, st_unit), ValueRule::AsIs),
    };
    let header = Header {
        sample_type,
        period_type,
        period: p.period,
        time_nanos: match i64::try_from(p.time_unix_nano) {
            Ok(0) | Err(_) => now_nanos,
            Ok(t) => t,
        },
        duration_nanos: match i64::try_from(p.duration_nano) {
            Ok(0) | Err(_) => DEFAULT_DURATION_NANOS,
            Ok(d) => d,
        },
    };
    let mut builders: Vec<(String, Builder<'_>)> = Vec::new();
    for s in &p.samples {
        let service = dict.string_attribute(&s.attribute_indices, SERVICE_NAME_ATTR)?;
        let b = match builders.iter().position(|(svc, _)| svc == service) {
            Some(i) => &mut builders[i].1,
            None => {
                builders.push((service.to_string(), Builder::new(dict, &header)));
                let last = builders.len() - 1;
                &mut builders[last].1
            }
        };
        b.add_sample(s, rule, p.period)?;
    }
    Ok(builders
        .into_iter()
        .map(|(service, b)| Converted { service, name: name.to_string(), profile: b.finish() })
        .collect())
}

/// The parts every pprof of one OTLP profile shares.
struct Header<'a> {
    sample_type: (&'a str, &'a str),
    period_type: Option<(&'a str, &'a str)>,
    period: i64,
    time_nanos: i64,
    duration_nanos: i64,
}

/// Builds one pprof, interning strings and copying each dictionary entry once.
struct Builder<'a> {
    dict: &'a Dictionary<'a>,
    out: pprof::Profile,
    strings: HashMap<String, i64>,
    /// dictionary index -> pprof id
    locations: HashMap<i32, u64>,
    mappings: HashMap<i32, u64>,
    functions: HashMap<i32, u64>,
    /// synthesized name of an unsymbolized frame -> pprof function id
    unsymbolized: HashMap<String, u64>,
}

impl<'a> Builder<'a> {
    fn new(dict: &'a Dictionary<'a>, h: &Header<'_>) -> Self {
        let mut b = Builder {
            dict,
            out: pprof::Profile::default(),
            strings: HashMap::new(),
            locations: HashMap::new(),
            mappings: HashMap::new(),
            functions: HashMap::new(),
            unsymbolized: HashMap::new(),
        };
        b.intern("");
        let vt = pprof::ValueType { r#type: b.intern(h.sample_type.0), unit: b.intern(h.sample_type.1) };
        b.out.sample_type = vec![vt];
        b.out.default_sample_type = vt.r#type;
        b.out.period_type = h.period_type.map(|(t, u)| pprof::ValueType { r#type: b.intern(t), unit: b.intern(u) });
        b.out.period = h.period;
        b.out.time_nanos = h.time_nanos;
        b.out.duration_nanos = h.duration_nanos;
        b
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn add_sample(&mut self, s: &otel::Sample, rule: ValueRule, period: i64) -> Result<(), ConvertError> {
        let mut values = s.values.clone();
        // A sample may carry only timestamps: each one is an occurrence.
        if values.is_empty() && !s.timestamps_unix_nano.is_empty() {
            values.push(i64::try_from(s.timestamps_unix_nano.len()).unwrap_or(i64::MAX));
        }
        if values.is_empty() {
            return Err(ConvertError::MissingValue);
        }
        match rule {
            ValueRule::AsIs => {}
            ValueRule::SamplesToNanos => {
                if let Some(v) = values.first_mut() {
                    *v = v.saturating_mul(period);
                }
            }
            ValueRule::SumEvents => values = vec![values.iter().fold(0i64, |a, v| a.saturating_add(*v))],
        }
        if values.len() != 1 {
            return Err(ConvertError::ValuesLength { got: values.len(), want: 1 });
        }
        let mut label = Vec::with_capacity(s.attribute_indices.len());
        for &i in &s.attribute_indices {
            let (key, value) = self.dict.attribute(i)?;
            if key == SERVICE_NAME_ATTR || key.is_empty() {
                continue;
            }
            if let Some(v) = label_value(value) {
                label.push(pprof::Label { key: self.intern(key), str: self.intern(&v), ..Default::default() });
            }
        }
        if s.link_index != 0 {
            let link = self.dict.link(s.link_index)?;
            if !link.span_id.is_empty() {
                let hex: String = link.span_id.iter().map(|b| format!("{b:02x}")).collect();
                label.push(pprof::Label {
                    key: self.intern(labels::SPAN_ID),
                    str: self.intern(&hex),
                    ..Default::default()
                });
            }
        }
        let stack = self.dict.stack(s.stack_index)?;
        let mut location_id = Vec::with_capacity(stack.location_indices.len());
        for &li in &stack.location_indices {
            location_id.push(self.location(li)?);
        }
        self.out.sample.push(pprof::Sample { location_id, value: values, label });
        Ok(())
    }

    fn location(&mut self, index: i32) -> Result<u64, ConvertError> {
        if let Some(&id) = self.locations.get(&index) {
            return Ok(id);
        }
        let l = self.dict.location(index)?;
        // Index 0 of an empty mapping table means "no mapping".
        let mapping_id = if self.dict.d.mapping_table.is_empty() && l.mapping_index == 0 {
            0
        } else {
            self.mapping(l.mapping_index)?
        };
        let mut line = Vec::with_capacity(l.lines.len().max(1));
        for ln in &l.lines {
            line.push(pprof::Line { function_id: self.function(ln.function_index)?, line: ln.line });
        }
        if line.is_empty() {
            line.push(pprof::Line { function_id: self.unsymbolized_function(mapping_id, l.address), line: 0 });
        }
        let id = self.out.location.len() as u64 + 1;
        self.out.location.push(pprof::Location { id, mapping_id, address: l.address, line, is_folded: false });
        self.locations.insert(index, id);
        Ok(id)
    }

    fn mapping(&mut self, index: i32) -> Result<u64, ConvertError> {
        if let Some(&id) = self.mappings.get(&index) {
            return Ok(id);
        }
        let m = self.dict.mapping(index)?;
        let filename = self.dict.string(m.filename_strindex)?;
        let build_id = self.dict.string_attribute(&m.attribute_indices, BUILD_ID_ATTR)?;
        let id = self.out.mapping.len() as u64 + 1;
        let mapping = pprof::Mapping {
            id,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: self.intern(filename),
            build_id: self.intern(build_id),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        };
        self.out.mapping.push(mapping);
        self.mappings.insert(index, id);
        Ok(id)
    }

    fn function(&mut self, index: i32) -> Result<u64, ConvertError> {
        if let Some(&id) = self.functions.get(&index) {
            return Ok(id);
        }
        let f = self.dict.function(index)?;
        let (name, system_name, filename) = (
            self.dict.string(f.name_strindex)?,
            self.dict.string(f.system_name_strindex)?,
            self.dict.string(f.filename_strindex)?,
        );
        let id = self.out.function.len() as u64 + 1;
        let function = pprof::Function {
            id,
            name: self.intern(name),
            system_name: self.intern(system_name),
            filename: self.intern(filename),
            start_line: f.start_line,
        };
        self.out.function.push(function);
        self.functions.insert(index, id);
        Ok(id)
    }

    /// A frame with only an address is shown as its binary and address (`libc.so.6 0x1e0`), so
    /// unsymbolized stacks still split by binary and code location instead of collapsing into
    /// one unnamed frame.
    fn unsymbolized_function(&mut self, mapping_id: u64, address: u64) -> u64 {
        let file = mapping_id
            .checked_sub(1)
            .and_then(|i| self.out.mapping.get(i as usize))
            .and_then(|m| self.out.string_table.get(m.filename as usize))
            .map(|f| f.rsplit('/').next().unwrap_or(f))
            .filter(|f| !f.is_empty())
            .unwrap_or("unknown");
        let name = format!("{file} 0x{address:x}");
        if let Some(&id) = self.unsymbolized.get(&name) {
            return id;
        }
        let id = self.out.function.len() as u64 + 1;
        let name_idx = self.intern(&name);
        self.out.function.push(pprof::Function { id, name: name_idx, system_name: name_idx, ..Default::default() });
        self.unsymbolized.insert(name, id);
        id
    }

    fn finish(self) -> pprof::Profile {
        self.out
    }
}
