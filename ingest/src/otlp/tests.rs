//! Conversion tests: requests built here mirror Pyroscope's OTLP unit tests (their expected
//! outputs are the `ingester__otlp__testdata__*.json` fixtures), plus malformed input and the real
//! eBPF-profiler export.

use flamedb_proto::google::v1 as pprof;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use flamedb_proto::opentelemetry::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use flamedb_proto::opentelemetry::proto::profiles::v1development as otel;
use flamedb_proto::opentelemetry::proto::resource::v1::Resource;
use prost::Message;

use super::*;

const NOW: i64 = 1_800_000_000_000_000_000;

/// Builds a one-profile request the way Pyroscope's `otlpbuilder` does.
#[derive(Default)]
struct B {
    dict: otel::ProfilesDictionary,
    profile: otel::Profile,
    resource: Vec<KeyValue>,
    scope: Vec<KeyValue>,
}

impl B {
    fn new() -> Self {
        let mut b = B::default();
        b.dict.string_table.push(String::new());
        b
    }

    fn s(&mut self, x: &str) -> i32 {
        match self.dict.string_table.iter().position(|s| s == x) {
            Some(i) => i as i32,
            None => {
                self.dict.string_table.push(x.to_string());
                (self.dict.string_table.len() - 1) as i32
            }
        }
    }

    fn vt(&mut self, t: &str, u: &str) -> otel::ValueType {
        otel::ValueType { type_strindex: self.s(t), unit_strindex: self.s(u) }
    }

    fn mapping(&mut self, start: u64, limit: u64, file: &str) -> i32 {
        let filename_strindex = self.s(file);
        self.dict.mapping_table.push(otel::Mapping {
            memory_start: start,
            memory_limit: limit,
            filename_strindex,
            ..Default::default()
        });
        (self.dict.mapping_table.len() - 1) as i32
    }

    fn location(&mut self, mapping: i32, address: u64, func: Option<(&str, &str, i64)>) -> i32 {
        let lines = match func {
            Some((name, file, line)) => {
                let (n, f) = (self.s(name), self.s(file));
                self.dict.function_table.push(otel::Function {
                    name_strindex: n,
                    system_name_strindex: n,
                    filename_strindex: f,
                    start_line: 0,
                });
                vec![otel::Line { function_index: (self.dict.function_table.len() - 1) as i32, line, column: 0 }]
            }
            None => vec![],
        };
        self.dict.location_table.push(otel::Location {
            mapping_index: mapping,
            address,
            lines,
            attribute_indices: vec![],
        });
        (self.dict.location_table.len() - 1) as i32
    }

    fn stack(&mut self, locations: &[i32]) -> i32 {
        self.dict.stack_table.push(otel::Stack { location_indices: locations.to_vec() });
        (self.dict.stack_table.len() - 1) as i32
    }

    fn attr(&mut self, key: &str, v: Value) -> i32 {
        let key_strindex = self.s(key);
        self.dict.attribute_table.push(otel::KeyValueAndUnit {
            key_strindex,
            value: Some(AnyValue { value: Some(v) }),
            unit_strindex: 0,
        });
        (self.dict.attribute_table.len() - 1) as i32
    }

    fn sample(&mut self, stack: i32, values: &[i64], attrs: &[i32]) {
        self.profile.samples.push(otel::Sample {
            stack_index: stack,
            values: values.to_vec(),
            attribute_indices: attrs.to_vec(),
            ..Default::default()
        });
    }

    fn request(mut self) -> ExportProfilesServiceRequest {
        self.profile.time_unix_nano = 239;
        ExportProfilesServiceRequest {
            resource_profiles: vec![otel::ResourceProfiles {
                resource: Some(Resource { attributes: self.resource, ..Default::default() }),
                scope_profiles: vec![otel::ScopeProfiles {
                    scope: Some(InstrumentationScope { attributes: self.scope, ..Default::default() }),
                    profiles: vec![self.profile],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
            dictionary: Some(self.dict),
        }
    }
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }) }
}

fn sv(s: &str) -> Value {
    Value::StringValue(s.into())
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn st(p: &pprof::Profile, i: i64) -> &str {
    p.string_table.get(i as usize).map_or("<bad>", String::as_str)
}

/// A sample read back from a pprof: root-first frame names, value, sorted "k=v" labels.
type ReadSample = (Vec<String>, i64, String);

/// Each sample of `p`, read back independently of the conversion code.
fn samples(p: &pprof::Profile) -> Vec<ReadSample> {
    p.sample
        .iter()
        .map(|s| {
            let mut frames: Vec<String> = Vec::new();
            for id in s.location_id.iter().rev() {
                let loc = p.location.iter().find(|l| l.id == *id).expect("location id");
                for line in loc.line.iter().rev() {
                    let f = p.function.iter().find(|f| f.id == line.function_id).expect("function id");
                    frames.push(st(p, f.name).to_string());
                }
            }
            let mut ls: Vec<String> = s.label.iter().map(|l| format!("{}={}", st(p, l.key), st(p, l.str))).collect();
            ls.sort();
            (frames, s.value.iter().sum(), ls.join(","))
        })
        .collect()
}

#[test]
fn unsymbolized_frames_are_named_by_binary_and_address() {
    // Pyroscope's TestConversion "symbolized function names".
    let mut b = B::new();
    let m = b.mapping(0x1000, 0x1000, "file1.so");
    let (l0, l1) = (b.location(m, 0x1e0, None), b.location(m, 0x2f0, None));
    let stack = b.stack(&[l0, l1]);
    b.profile.sample_type = Some(b.vt("samples", "ms"));
    b.sample(stack, &[0xef], &[]);
    let out = convert_request(&b.request(), NOW).unwrap();
    assert_eq!(out.len(), 1);
    let (labels, p) = (&out[0].labels, &out[0].profile);
    assert_eq!(label(labels, "__name__"), Some("process_cpu"), "no period type: the fallback name");
    assert_eq!(label(labels, "service_name"), Some("unknown_service"));
    assert_eq!(label(labels, "__delta__"), Some("false"));
    assert_eq!(label(labels, "__otel__"), Some("true"));
    assert_eq!(p.sample_type.len(), 1);
    assert_eq!((st(p, p.sample_type[0].r#type), st(p, p.sample_type[0].unit)), ("samples", "ms"));
    assert_eq!((p.time_nanos, p.duration_nanos, p.period), (239, 10_000_000_000, 0));
    // Leaf first in OTLP as in pprof: root-first the stack reads 0x2f0 -> 0x1e0.
    assert_eq!(samples(p), vec![(vec!["file1.so 0x2f0".to_string(), "file1.so 0x1e0".into()], 239, String::new())]);
    let addrs: Vec<u64> = p.location.iter().map(|l| l.address).collect();
    assert_eq!(addrs, vec![0x1e0, 0x2f0]);
    assert_eq!(p.mapping.len(), 1);
    assert_eq!(st(p, p.mapping[0].filename), "file1.so");
    assert_eq!((p.mapping[0].memory_start, p.mapping[0].memory_limit), (0x1000, 0x1000));
}

#[test]
fn off_cpu_values_are_summed_per_sample() {
    // Pyroscope's TestConversionOffCpu: values 239 and 1+2+3+4+5+6 = 21.
    let mut b = B::new();
    b.profile.sample_type = Some(b.vt("off_cpu", "nanoseconds"));
    let m = b.mapping(0x1000, 0x1000, "file1.so");
    let ls: Vec<i32> = [0x1e0, 0x2f0, 0x3f0].iter().map(|a| b.location(m, *a, None)).collect();
    let (s0, s1) = (b.stack(&ls[..2]), b.stack(&ls[2..]));
    b.sample(s0, &[0xef], &[]);
    b.sample(s1, &[1, 2, 3, 4, 5, 6], &[]);
    let out = convert_request(&b.request(), NOW).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(label(&out[0].labels, "__name__"), Some("off_cpu"));
    let p = &out[0].profile;
    assert_eq!((st(p, p.sample_type[0].r#type), st(p, p.sample_type[0].unit)), ("off_cpu", "nanoseconds"));
    let values: Vec<Vec<i64>> = p.sample.iter().map(|s| s.value.clone()).collect();
    assert_eq!(values, vec![vec![239], vec![21]]);
    assert!(p.period_type.is_none());
}

#[test]
fn several_values_for_one_sample_type_are_refused() {
    let mut b = B::new();
    b.profile.sample_type = Some(b.vt("wrote_type", "wrong_unit"));
    b.profile.period_type = Some(b.vt("period_type", "period_unit"));
    b.profile.period = 100;
    let m = b.mapping(0x1000, 0x1000, "file1.so");
    let l = b.location(m, 0x1e0, None);
    let s = b.stack(&[l]);
    b.sample(s, &[0xef], &[]);
    b.sample(s, &[1, 2, 3, 4, 5, 6], &[]);
    let err = convert_request(&b.request(), NOW).unwrap_err();
    assert!(err.to_string().contains("sample values length mismatch"), "{err}");
}

#[test]
fn sample_attributes_become_sample_labels_not_series_labels() {
    // Pyroscope's TestSampleAttributes.
    let mut b = B::new();
    let (ff, ch) = (b.mapping(0x1000, 0x1000, "firefox.so"), b.mapping(0x1000, 0x1000, "chrome.so"));
    let l: Vec<i32> = vec![b.location(ff, 0x1e, None), b.location(ff, 0x2e, None)];
    let l2: Vec<i32> = vec![b.location(ch, 0x3e, None), b.location(ch, 0x4e, None)];
    let (s0, s1) = (b.stack(&l), b.stack(&l2));
    let a = [
        b.attr("process", sv("firefox")),
        b.attr("process", sv("chrome")),
        b.attr("cpu.logical_number", Value::IntValue(0)),
        b.attr("cpu.logical_number", Value::IntValue(7)),
    ];
    b.sample(s0, &[0xef], &[a[0], a[2]]);
    b.sample(s1, &[0xefef], &[a[1], a[3]]);
    b.profile.sample_type = Some(b.vt("samples", "ms"));
    let out = convert_request(&b.request(), NOW).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(label(&out[0].labels, "process"), None);
    assert_eq!(label(&out[0].labels, "service.name"), None);
    let got = samples(&out[0].profile);
    assert_eq!(got[0].1, 239);
    assert_eq!(got[0].2, "cpu.logical_number=0,process=firefox");
    assert_eq!(got[1].1, 61423);
    assert_eq!(got[1].2, "cpu.logical_number=7,process=chrome");
    assert_eq!(got[1].0, vec!["chrome.so 0x4e".to_string(), "chrome.so 0x3e".into()]);
}

#[test]
fn sample_service_names_split_the_profile() {
    // Pyroscope's TestDifferentServiceNames: counts times the 10 ms period become nanoseconds.
    let mut b = B::new();
    let ma = b.mapping(0x1000, 0x2000, "service-a.so");
    let mb = b.mapping(0x2000, 0x3000, "service-b.so");
    let mc = b.mapping(0x4000, 0x5000, "service-c.so");
    let la = [
        b.location(ma, 0x1100, Some(("serviceA_func1", "service_a.go", 10))),
        b.location(ma, 0x1200, Some(("serviceA_func2", "service_a.go", 20))),
    ];
    let lb = [
        b.location(mb, 0x2100, Some(("serviceB_func1", "service_b.go", 30))),
        b.location(mb, 0x2200, Some(("serviceB_func2", "service_b.go", 40))),
    ];
    let lc = b.location(mc, 0xef0, Some(("serviceC_func3", "service_c.go", 50)));
    let (sa, sb, sc) = (b.stack(&la), b.stack(&lb), b.stack(&[lc, lc]));
    let (aa, ab) = (b.attr("service.name", sv("service-a")), b.attr("service.name", sv("service-b")));
    b.sample(sa, &[100], &[aa]);
    b.sample(sb, &[200], &[ab]);
    b.sample(sc, &[700], &[]);
    b.profile.sample_type = Some(b.vt("samples", "count"));
    b.profile.period_type = Some(b.vt("cpu", "nanoseconds"));
    b.profile.period = 10_000_000;
    let out = convert_request(&b.request(), NOW).unwrap();
    let got: Vec<(String, Vec<ReadSample>)> =
        out.iter().map(|o| (label(&o.labels, "service_name").unwrap_or("").to_string(), samples(&o.profile))).collect();
    let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            ("service-a".into(), vec![(f(&["serviceA_func2", "serviceA_func1"]), 1_000_000_000, String::new())]),
            ("service-b".into(), vec![(f(&["serviceB_func2", "serviceB_func1"]), 2_000_000_000, String::new())]),
            ("unknown_service".into(), vec![(f(&["serviceC_func3", "serviceC_func3"]), 7_000_000_000, String::new())]),
        ]
    );
    for o in &out {
        assert_eq!(label(&o.labels, "__name__"), Some("process_cpu"));
        let p = &o.profile;
        assert_eq!((st(p, p.sample_type[0].r#type), st(p, p.sample_type[0].unit)), ("cpu", "nanoseconds"));
        assert_eq!(p.period, 10_000_000);
        assert_eq!(p.mapping.len(), 1, "only the mappings the service's samples use");
        let line = &p.location[0].line[0];
        assert!(line.line == 10 || line.line == 30 || line.line == 50, "{line:?}");
    }
}

#[test]
fn resource_and_scope_attributes_become_series_labels() {
    let mut b = B::new();
    let l = b.location(0, 0x10, None);
    let s = b.stack(&[l]);
    b.sample(s, &[5], &[]);
    b.profile.sample_type = Some(b.vt("alloc", "bytes"));
    b.profile.period_type = Some(b.vt("memory", "bytes"));
    b.profile.period = 512;
    b.resource = vec![
        kv("host.name", sv("h1")),
        kv("process.executable.name", sv("bash")),
        kv("process.pid", Value::IntValue(66)),
        kv("ratio", Value::DoubleValue(0.5)),
        kv("empty", sv("")),
        kv("__name__", sv("evil")),
        kv("service_name", sv("evil")),
    ];
    b.scope = vec![kv("host.name", sv("h2")), kv("lib", sv("ebpf"))];
    let out = convert_request(&b.request(), NOW).unwrap();
    let ls = &out[0].labels;
    assert_eq!(label(ls, "__name__"), Some("memory"), "the period type names the profile");
    assert_eq!(label(ls, "host.name"), Some("h1"), "first occurrence wins");
    assert_eq!(label(ls, "lib"), Some("ebpf"));
    assert_eq!(label(ls, "process.pid"), Some("66"));
    assert_eq!(label(ls, "ratio"), None);
    assert_eq!(label(ls, "empty"), None);
    assert_eq!(label(ls, "service_name"), Some("unknown_service:bash"));
    let mut names: Vec<&str> = ls.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "no duplicate names: {ls:?}");
    // The mapping table is empty: index 0 means no mapping.
    assert_eq!(out[0].profile.location[0].mapping_id, 0);
    assert_eq!(samples(&out[0].profile)[0].0, vec!["unknown 0x10".to_string()]);

    let mut b2 = B::new();
    let l = b2.location(0, 0x10, None);
    let s = b2.stack(&[l]);
    b2.sample(s, &[5], &[]);
    b2.profile.sample_type = Some(b2.vt("samples", "count"));
    b2.resource = vec![kv("process.executable.name", sv("bash")), kv("service.name", sv("api"))];
    let out = convert_request(&b2.request(), NOW).unwrap();
    assert_eq!(label(&out[0].labels, "service_name"), Some("api"));
    assert_eq!(label(&out[0].labels, "service.name"), Some("api"), "kept as sent, like every attribute");
    assert_eq!(out[0].profile.time_nanos, 239);
}

#[test]
fn timestamps_only_samples_count_occurrences_and_links_become_span_ids() {
    let mut b = B::new();
    let l = b.location(0, 0x10, None);
    let s = b.stack(&[l]);
    b.dict.link_table =
        vec![otel::Link::default(), otel::Link { trace_id: vec![1; 16].into(), span_id: vec![0xab, 0x01].into() }];
    b.profile.samples.push(otel::Sample {
        stack_index: s,
        timestamps_unix_nano: vec![1, 2, 3],
        link_index: 1,
        ..Default::default()
    });
    b.profile.sample_type = Some(b.vt("samples", "count"));
    b.profile.period_type = Some(b.vt("cpu", "nanoseconds"));
    b.profile.period = 7;
    let out = convert_request(&b.request(), NOW).unwrap();
    let got = samples(&out[0].profile);
    assert_eq!(got[0].1, 21, "3 occurrences x 7 ns");
    assert_eq!(got[0].2, "span_id=ab01");
}

#[test]
fn malformed_requests_are_errors() {
    fn valid() -> B {
        let mut b = B::new();
        let m = b.mapping(1, 2, "a.so");
        let l = b.location(m, 0x10, Some(("f", "f.c", 1)));
        let s = b.stack(&[l]);
        let a = b.attr("k", sv("v"));
        b.sample(s, &[1], &[a]);
        b.profile.sample_type = Some(b.vt("samples", "count"));
        b
    }
    assert!(convert_request(&valid().request(), NOW).is_ok());

    let mut r = valid().request();
    r.dictionary = None;
    assert!(matches!(convert_request(&r, NOW), Err(OtlpError::MissingDictionary)));
    let mut r = valid().request();
    r.resource_profiles.clear();
    assert!(matches!(convert_request(&r, NOW), Err(OtlpError::MissingResourceProfiles)));

    type Breaker = fn(&mut ExportProfilesServiceRequest);
    let cases: Vec<(&str, Breaker)> = vec![
        ("stack", |r| r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 9),
        ("stack", |r| r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = -1),
        ("location", |r| r.dictionary.as_mut().unwrap().stack_table[0].location_indices = vec![0, 5]),
        ("mapping", |r| r.dictionary.as_mut().unwrap().location_table[0].mapping_index = 3),
        ("function", |r| r.dictionary.as_mut().unwrap().location_table[0].lines[0].function_index = 2),
        ("string", |r| r.dictionary.as_mut().unwrap().function_table[0].name_strindex = 99),
        ("string", |r| r.dictionary.as_mut().unwrap().mapping_table[0].filename_strindex = -4),
        ("attribute", |r| r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].attribute_indices = vec![1]),
        ("string", |r| r.dictionary.as_mut().unwrap().attribute_table[0].key_strindex = 1000),
        ("link", |r| r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].link_index = 1),
        ("string", |r| {
            r.resource_profiles[0].scope_profiles[0].profiles[0].sample_type.as_mut().unwrap().unit_strindex = 50
        }),
        ("sample type is missing", |r| r.resource_profiles[0].scope_profiles[0].profiles[0].sample_type = None),
        ("sample value is required", |r| {
            r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].values.clear()
        }),
    ];
    for (want, breaker) in cases {
        let mut r = valid().request();
        breaker(&mut r);
        match convert_request(&r, NOW) {
            Err(OtlpError::Convert(e)) => assert!(e.to_string().contains(want), "{want}: {e}"),
            other => panic!("{want}: expected a conversion error, got {other:?}"),
        }
    }
}

#[test]
fn garbage_bytes_do_not_decode() {
    assert!(ExportProfilesServiceRequest::decode(&b"\xff\xff\xff\xff not a protobuf"[..]).is_err());
}

#[test]
fn ebpf_profiler_export() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/pyroscope/test__integration__testdata__otel-ebpf-profile.pb.bin"
    );
    let Ok(raw) = std::fs::read(path) else {
        eprintln!("notice: {path} absent, skipped");
        return;
    };
    let req = ExportProfilesServiceRequest::decode(raw.as_slice()).expect("the 1.8 messages decode the real export");
    // Independent totals, read straight from the request: CPU counts times the period, off-CPU
    // sums of every value.
    let dict = req.dictionary.as_ref().unwrap();
    let s = |i: i32| dict.string_table[i as usize].as_str();
    let (mut want_cpu, mut want_off) = (0i64, 0i64);
    let mut want_services = Vec::new();
    for rp in &req.resource_profiles {
        // unknown_service, or unknown_service:<executable> when the resource names one.
        let exe = rp.resource.iter().flat_map(|r| &r.attributes).find(|a| a.key == "process.executable.name");
        let service = match exe.and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => format!("unknown_service:{s}"),
            _ => "unknown_service".to_string(),
        };
        for sp in &rp.scope_profiles {
            for p in &sp.profiles {
                want_services.push(service.clone());
                let t = p.sample_type.as_ref().unwrap();
                // The profiler sends CPU samples as timestamps only: one occurrence each.
                let sum: i64 =
                    p.samples
                        .iter()
                        .map(|x| {
                            if x.values.is_empty() {
                                x.timestamps_unix_nano.len() as i64
                            } else {
                                x.values.iter().sum()
                            }
                        })
                        .sum();
                match (s(t.type_strindex), s(t.unit_strindex)) {
                    ("samples", "count") => want_cpu += sum * p.period,
                    ("off_cpu", "nanoseconds") => want_off += sum,
                    other => panic!("unexpected sample type {other:?}"),
                }
            }
        }
    }
    assert!(want_cpu > 0 && want_off > 0, "the export has both kinds");
    let out = convert_request(&req, NOW).unwrap();
    assert_eq!(out.len(), want_services.len(), "no sample carries service.name: one pprof per profile");
    let services: Vec<&str> = out.iter().filter_map(|o| label(&o.labels, "service_name")).collect();
    assert_eq!(services, want_services);
    assert!(services.contains(&"unknown_service:containerd"));
    let (mut cpu, mut off) = (0i64, 0i64);
    let mut types = std::collections::BTreeSet::new();
    for o in &out {
        let p = &o.profile;
        let name = label(&o.labels, "__name__").unwrap();
        let pt = p
            .period_type
            .as_ref()
            .map_or((String::new(), String::new()), |v| (st(p, v.r#type).to_string(), st(p, v.unit).to_string()));
        types.insert(format!(
            "{name}:{}:{}:{}:{}",
            st(p, p.sample_type[0].r#type),
            st(p, p.sample_type[0].unit),
            pt.0,
            pt.1
        ));
        let total: i64 = p.sample.iter().flat_map(|s| &s.value).sum();
        match name {
            "process_cpu" => cpu += total,
            "off_cpu" => off += total,
            other => panic!("unexpected name {other}"),
        }
        // Every frame has a name: symbolized or synthesized from binary and address.
        for f in &p.function {
            assert!(!st(p, f.name).is_empty());
        }
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        vec!["off_cpu:off_cpu:nanoseconds::".to_string(), "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into()]
    );
    assert_eq!((cpu, off), (want_cpu, want_off));
    // And each converted pprof passes the ingest path's normalization.
    let limits = crate::validate::Limits::default();
    for o in out {
        let mut p = o.profile;
        p.time_nanos = NOW;
        crate::normalize::normalize(&o.labels, p, None, &limits, NOW).expect("normalizes");
    }
}
