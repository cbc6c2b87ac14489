//! End-to-end tests of `convert`: real client captures (when /work/shared is present) and
//! hand-built requests for every rule and error of the contract.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flamedb_proto::google::v1::{Function, Line, Location, Profile, Sample, ValueType};
use prost::Message;

use super::pprof_names::string_at;
use super::*;

const NOW: i64 = 1_795_376_200_000_000_000;
const FIXTURES: &str = "/work/shared/fixtures/clients";

fn fixtures(folder: &str) -> Option<PathBuf> {
    let dir = Path::new(FIXTURES).join(folder);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("NOTICE: {} is absent; skipping the client-capture test", dir.display());
        None
    }
}

pub(super) fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A captured request, with `Content-Encoding: gzip` already undone as the server does.
struct Captured {
    params: IngestParams,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn header(meta: &serde_json::Value, name: &str) -> Option<String> {
    meta["headers"].as_array()?.iter().find_map(|h| {
        let h = h.as_array()?;
        (h.first()?.as_str()?.eq_ignore_ascii_case(name)).then(|| h.get(1)?.as_str().map(String::from))?
    })
}

fn load(dir: &Path, n: usize) -> Captured {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("req{n:04}.json"))).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = meta["query_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect();
    let mut body = std::fs::read(dir.join(format!("req{n:04}.body"))).unwrap();
    if header(&meta, "Content-Encoding").as_deref() == Some("gzip") {
        body = gunzip(&body);
    }
    Captured { params: IngestParams::from_query(&pairs), content_type: header(&meta, "Content-Type"), body }
}

fn convert_captured(c: &Captured) -> Result<Vec<LegacyProfile>, LegacyError> {
    convert(&c.params, c.content_type.as_deref(), &c.body, NOW, &ConvertLimits::default())
}

fn label<'a>(p: &'a LegacyProfile, name: &str) -> Option<&'a str> {
    p.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn sample_types(p: &Profile) -> Vec<String> {
    p.sample_type.iter().map(|vt| format!("{}/{}", string_at(p, vt.r#type), string_at(p, vt.unit))).collect()
}

fn total(p: &Profile, index: usize) -> i64 {
    p.sample.iter().map(|s| s.value[index]).sum()
}

// ---------------------------------------------------------------- multipart on real captures

#[test]
fn multipart_go_sdk_capture() {
    let Some(dir) = fixtures("go-sdk") else {
        return;
    };
    let c = load(&dir, 1);
    let ct = c.content_type.unwrap();
    let b = multipart::boundary(&ct).unwrap();
    assert_eq!(b, "4845c90baa600e39f272a1909d190f8c5ba8088e2ea84f13242a1e181428");
    let parts = multipart::parse(&c.body, &b, 32 << 20).unwrap();
    let names: Vec<_> = parts.iter().map(|p| p.name.as_deref().unwrap()).collect();
    assert_eq!(names, vec!["profile", "sample_type_config"]);
    assert_eq!(parts[0].filename.as_deref(), Some("profile.pprof"));
    assert_eq!(parts[0].data.len(), 1028);
    assert_eq!(&parts[0].data[..2], &[0x1f, 0x8b]);
    assert_eq!(
        std::str::from_utf8(parts[1].data).unwrap(),
        r#"{"contentions":{"units":"lock_samples","display-name":"mutex_count"},"delay":{"units":"lock_nanoseconds","display-name":"mutex_duration"}}"#
    );
}

#[test]
fn multipart_go_stdlib_capture() {
    let Some(dir) = fixtures("go-stdlib") else {
        return;
    };
    let c = load(&dir, 1);
    let b = multipart::boundary(c.content_type.as_deref().unwrap()).unwrap();
    let parts = multipart::parse(&c.body, &b, 32 << 20).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].name.as_deref(), Some("profile"));
    assert_eq!(parts[0].data.len(), 9290);
    // The same body with LF line breaks instead of CRLF in the framing still parses.
    let lf: Vec<u8> = String::from_utf8_lossy(&c.body[..200]).replace("\r\n", "\n").into_bytes();
    let header_len = c.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let header_lf_len = lf.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let mut body = lf[..header_lf_len].to_vec();
    body.extend_from_slice(parts[0].data);
    body.extend_from_slice(format!("\n--{b}--\n").as_bytes());
    assert!(header_len > header_lf_len);
    let parts2 = multipart::parse(&body, &b, 32 << 20).unwrap();
    assert_eq!(parts2[0].data, parts[0].data);
}

// ---------------------------------------------------------------- convert on real captures

#[test]
fn convert_go_sdk_captures() {
    let Some(dir) = fixtures("go-sdk") else {
        return;
    };
    // From decoded.txt: sample types and the sent display names of each request.
    let expected = [
        "mutex",
        "goroutines",
        "block",
        "memory",
        "goroutines",
        "block",
        "mutex",
        "process_cpu",
        "memory",
        "process_cpu",
    ];
    for (i, want) in expected.iter().enumerate() {
        let c = load(&dir, i + 1);
        let out = convert_captured(&c).unwrap();
        assert_eq!(out.len(), 1, "req {}", i + 1);
        let p = &out[0];
        assert_eq!(label(p, "__name__"), Some(*want), "req {}", i + 1);
        assert_eq!(label(p, "service_name"), Some("go.app"));
        assert_eq!(label(p, "pyroscope_spy"), Some("gospy"));
        assert_eq!(label(p, "__delta__"), Some("false"));
        assert_eq!(label(p, "__session_id__"), Some("77e425ea48b3919f"));
        assert!(p.uncompressed_size > 0);
        // Real times (not 1970) are kept.
        assert!(p.profile.time_nanos > 1_795_376_000_000_000_000);
    }

    let first = convert_captured(&load(&dir, 1)).unwrap().remove(0);
    assert_eq!(
        first.labels,
        pairs(&[
            ("__delta__", "false"),
            ("__name__", "mutex"),
            ("__session_id__", "77e425ea48b3919f"),
            ("env", "test"),
            ("otel.scope.name", "com.grafana.pyroscope/godeltaprof"),
            ("otel.scope.version", "v0.1.11"),
            ("process.runtime.name", "go"),
            ("process.runtime.version", "go1.27.3"),
            ("pyroscope_spy", "gospy"),
            ("region", "local"),
            ("service_name", "go.app"),
        ])
    );
    assert_eq!(sample_types(&first.profile), vec!["contentions/count", "delay/nanoseconds"]);
    assert_eq!(first.profile.time_nanos, 1_795_376_160_170_091_529);
    assert_eq!(total(&first.profile, 0), 1100);
    assert_eq!(total(&first.profile, 1), 3_393_902_245);

    let cpu = convert_captured(&load(&dir, 8)).unwrap().remove(0);
    assert_eq!(sample_types(&cpu.profile), vec!["samples/count", "cpu/nanoseconds"]);
    assert_eq!(label(&cpu, "otel.scope.name"), Some("com.grafana.pyroscope/go"));
}

#[test]
fn convert_go_stdlib_captures() {
    let Some(dir) = fixtures("go-stdlib") else {
        return;
    };
    let cpu = convert_captured(&load(&dir, 1)).unwrap().remove(0);
    assert_eq!(
        cpu.labels,
        pairs(&[
            ("__delta__", "false"),
            ("__name__", "process_cpu"),
            ("env", "test"),
            ("pyroscope_spy", "gospy"),
            // No suffix split on the pprof path.
            ("service_name", "gostd.app.cpu"),
        ])
    );
    assert_eq!(total(&cpu.profile, 0), 526);
    assert_eq!(total(&cpu.profile, 1), 5_260_000_000);
    let mem = convert_captured(&load(&dir, 2)).unwrap().remove(0);
    assert_eq!(label(&mem, "__name__"), Some("memory"));
    assert_eq!(label(&mem, "service_name"), Some("gostd.app"));
}

#[test]
fn convert_nodejs_captures() {
    let Some(dir) = fixtures("nodejs-0.6.4") else {
        return;
    };
    let expected = ["memory", "wall", "wall", "memory", "wall"];
    for (i, want) in expected.iter().enumerate() {
        let c = load(&dir, i + 1);
        assert_eq!(c.params.format.as_deref(), Some("pprof"));
        let p = convert_captured(&c).unwrap().remove(0);
        assert_eq!(label(&p, "__name__"), Some(*want), "req {}", i + 1);
        assert_eq!(label(&p, "service_name"), Some("node.app"));
        assert_eq!(label(&p, "pyroscope_spy"), Some("nodespy"));
        assert_eq!(label(&p, "process.runtime.name"), Some("nodejs"));
        assert_eq!(label(&p, "env"), Some("test"));
    }
    let wall = convert_captured(&load(&dir, 2)).unwrap().remove(0);
    assert_eq!(sample_types(&wall.profile), vec!["samples/count", "wall/nanoseconds"]);
    assert_eq!(wall.profile.time_nanos, 1_795_375_949_496_000_000);
}

#[test]
fn convert_python_0_8_captures() {
    let Some(dir) = fixtures("python-0.8.16") else {
        return;
    };
    for n in 1..=4 {
        // The stored body is gzip (Content-Encoding); once undone, it is the raw pprof.
        let stored = std::fs::read(dir.join(format!("req{n:04}.body"))).unwrap();
        assert_eq!(&stored[..2], &[0x1f, 0x8b]);
        let c = load(&dir, n);
        assert_ne!(&c.body[..2], &[0x1f, 0x8b]);
        let p = convert_captured(&c).unwrap().remove(0);
        assert_eq!(
            p.labels,
            pairs(&[
                ("__delta__", "false"),
                ("__name__", "process_cpu"),
                ("pyroscope_spy", "pyspy"),
                ("service_name", "py.app"),
            ])
        );
        assert_eq!(sample_types(&p.profile), vec!["cpu/nanoseconds"]);
        assert_eq!(p.uncompressed_size, c.body.len());
    }
    let p = convert_captured(&load(&dir, 1)).unwrap().remove(0);
    assert_eq!(p.profile.time_nanos, 1_795_375_880_000_000_000);
    assert_eq!(total(&p.profile, 0), 4_370_000_000);
    // py-spy with absolute file names (/app/burn.py): names are not rewritten.
    let mut names: Vec<&str> = p.profile.function.iter().map(|f| string_at(&p.profile, f.name)).collect();
    names.sort();
    assert_eq!(names, vec!["<module>", "burn_a", "burn_b", "fib"]);
}

#[test]
fn convert_rust_folded_captures() {
    let Some(dir) = fixtures("rust-0.5.8-folded") else {
        return;
    };
    for n in 1..=6 {
        let c = load(&dir, n);
        let text = String::from_utf8(c.body.clone()).unwrap();
        // Independent total: the last whitespace-separated token of every non-empty line.
        let counts: i64 =
            text.lines().filter_map(|l| l.split_whitespace().last()).map(|t| t.parse::<i64>().unwrap()).sum();
        assert!(counts > 0);
        let p = convert_captured(&c).unwrap().remove(0);
        assert_eq!(total(&p.profile, 0), counts * (1_000_000_000 / 100), "req {n}");
        assert_eq!(label(&p, "service_name"), Some("rs05.app"));
        assert_eq!(label(&p, "__name__"), Some("process_cpu"));
        assert_eq!(label(&p, "pyroscope_spy"), Some("pyroscope-rs"));
        assert_eq!(p.uncompressed_size, c.body.len());
        assert_eq!(sample_types(&p.profile), vec!["cpu/nanoseconds"]);
        let pt = p.profile.period_type.unwrap();
        assert_eq!((string_at(&p.profile, pt.r#type), p.profile.period), ("cpu", 10_000_000));
    }
    let c = load(&dir, 1);
    assert_eq!(c.body.len(), 47_025);
    let p = convert_captured(&c).unwrap().remove(0);
    assert_eq!(
        p.labels,
        pairs(&[
            ("__delta__", "false"),
            ("__name__", "process_cpu"),
            ("env", "test"),
            ("phase", "b"),
            ("pyroscope_spy", "pyroscope-rs"),
            ("region", "local"),
            ("service_name", "rs05.app"),
        ])
    );
    assert_eq!(p.profile.time_nanos, 1_795_376_020 * 1_000_000_000);
    assert_eq!(p.profile.duration_nanos, 10 * 1_000_000_000);
    // Frames with spaces survive whole.
    assert!(p.profile.function.iter().any(|f| string_at(&p.profile, f.name) == "main.rs:9 - pyro_rs05_client::fib"));
}

#[test]
fn truncated_captures_never_panic() {
    for folder in ["go-sdk", "nodejs-0.6.4", "python-0.8.16", "rust-0.5.8-folded"] {
        let Some(dir) = fixtures(folder) else { return };
        let c = load(&dir, 1);
        for cut in (0..c.body.len()).step_by(97) {
            let _ = convert(&c.params, c.content_type.as_deref(), &c.body[..cut], NOW, &ConvertLimits::default());
        }
    }
}

// ---------------------------------------------------------------- hand-built requests

fn params(query: &[(&str, &str)]) -> IngestParams {
    IngestParams::from_query(&pairs(query))
}

fn run(query: &[(&str, &str)], ct: Option<&str>, body: &[u8]) -> Result<Vec<LegacyProfile>, LegacyError> {
    convert(&params(query), ct, body, NOW, &ConvertLimits::default())
}

/// A small valid pprof: sample types as given, one function/location per `functions` entry
/// (`(name, filename)`), one sample with value 1 per sample type.
fn pprof(types: &[&str], functions: &[(&str, &str)], time_nanos: i64) -> Profile {
    let mut p = Profile { string_table: vec![String::new()], time_nanos, ..Default::default() };
    let s = |p: &mut Profile, v: &str| {
        p.string_table.push(v.to_string());
        p.string_table.len() as i64 - 1
    };
    for t in types {
        let ty = s(&mut p, t);
        let unit = s(&mut p, "count");
        p.sample_type.push(ValueType { r#type: ty, unit });
    }
    for (i, (name, file)) in functions.iter().enumerate() {
        let id = i as u64 + 1;
        let name = s(&mut p, name);
        let filename = s(&mut p, file);
        p.function.push(Function { id, name, filename, ..Default::default() });
        p.location.push(Location { id, line: vec![Line { function_id: id, line: 1 }], ..Default::default() });
    }
    p.sample.push(Sample {
        location_id: (1..=functions.len() as u64).collect(),
        value: vec![1; types.len()],
        label: vec![],
    });
    p
}

fn form(boundary: &str, fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in fields {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn params_from_query() {
    let p = params(&[("name", "a"), ("name", "b"), ("sampleRate", "7"), ("sampleRate", "9")]);
    assert_eq!(p.name, "a");
    assert_eq!(p.sample_rate(), 7);
    assert_eq!(p.spy_name(), "unknown");
    assert_eq!(params(&[("spyName", "")]).spy_name(), "unknown");
    assert_eq!(params(&[]).name, "");
    for (raw, want) in [("0", 0), ("abc", 100), ("-5", 100), ("", 100), ("+20", 20), ("99999999999", 100), ("250", 250)]
    {
        assert_eq!(params(&[("sampleRate", raw)]).sample_rate(), want, "{raw:?}");
    }
    assert_eq!(params(&[]).sample_rate(), 100);
    assert_eq!(params(&[]).from_nanos(NOW), NOW);
    assert_eq!(params(&[("from", "")]).from_nanos(NOW), NOW);
    assert_eq!(params(&[("until", "now-1m")]).until_nanos(NOW), NOW - 60_000_000_000);
    let p = params(&[("units", "bytes"), ("aggregationType", "sum"), ("format", "lines"), ("from", "1")]);
    assert_eq!(
        (p.units.as_deref(), p.aggregation_type.as_deref(), p.format.as_deref(), p.from_nanos(NOW)),
        (Some("bytes"), Some("sum"), Some("lines"), 1_000_000_000)
    );
}

#[test]
fn format_detection_order() {
    use Format::*;
    let mp = Some("multipart/form-data; boundary=x");
    let cases: &[(Option<&str>, Option<&str>, Format)] = &[
        (Some("trie"), None, Trie),
        (None, Some("binary/octet-stream+trie"), Trie),
        (Some("pprof"), Some("binary/octet-stream+trie"), Trie),
        (Some("tree"), None, Tree),
        (None, Some("binary/octet-stream+tree; x=y"), Tree),
        (Some("lines"), mp, Lines),
        (Some("jfr"), mp, Jfr),
        (Some("pprof"), mp, Pprof),
        (Some("speedscope"), None, Speedscope),
        (None, mp, MultipartPprof),
        (Some("folded"), mp, MultipartPprof),
        (Some("folded"), None, Folded),
        (Some("collapsed"), Some("text/plain"), Folded),
        (None, None, Folded),
        (Some("PPROF"), None, Folded),
    ];
    for &(f, ct, want) in cases {
        assert_eq!(Format::detect(f, ct), want, "{f:?} {ct:?}");
    }
}

#[test]
fn malformed_binary_and_json_formats_are_422() {
    // Every format has a converter now: a body none of them can read is a conversion failure (422),
    // never a "not supported" answer and never a panic.
    for (q, ct) in
        [("jfr", None), ("speedscope", None), ("tree", None), ("trie", None), ("", Some("binary/octet-stream+trie"))]
    {
        let e = run(&[("name", "app"), ("format", q)], ct, b"\xff\xff\xff").unwrap_err();
        assert_eq!(e.http_status(), 422, "format {q:?} / {ct:?}: {e}");
        assert!(!e.to_string().contains("not supported"), "{e}");
    }
}

#[test]
fn bad_names_are_400() {
    let e = run(&[("format", "pprof")], None, b"").unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (400, "name: service name is required".into()));
    let e = run(&[("name", "app{bad key=1}")], None, b"a 1").unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert!(e.to_string().starts_with("name: invalid label name: bad key"), "{e}");
}

#[test]
fn folded_rules() {
    let body = b"a;b;c 3\na;b 2\na;b;c 1\n";
    // Rate 50 Hz: 20 ms per sample.
    let out = run(&[("name", "svc.wall{env=x}"), ("sampleRate", "50"), ("from", "100"), ("until", "110")], None, body)
        .unwrap();
    let p = &out[0];
    assert_eq!(label(p, "__name__"), Some("wall"));
    assert_eq!(label(p, "service_name"), Some("svc"));
    assert_eq!(label(p, "pyroscope_spy"), Some("unknown"));
    assert_eq!(label(p, "env"), Some("x"));
    assert_eq!(sample_types(&p.profile), vec!["wall/nanoseconds"]);
    assert_eq!(total(&p.profile, 0), 6 * 20_000_000);
    assert_eq!(p.profile.sample.len(), 2);
    assert_eq!((p.profile.time_nanos, p.profile.duration_nanos), (100_000_000_000, 10_000_000_000));
    assert_eq!(p.uncompressed_size, body.len());

    // sampleRate=0: raw counts, no period.
    let p = run(&[("name", "svc"), ("sampleRate", "0")], Some("text/plain"), body).unwrap().remove(0);
    assert_eq!(sample_types(&p.profile), vec!["samples/count"]);
    assert_eq!(p.profile.period_type, None);
    assert_eq!(total(&p.profile, 0), 6);
    assert_eq!(label(&p, "service_name"), Some("svc"));
    assert_eq!(label(&p, "__name__"), Some("process_cpu"));

    // A memory suffix is never scaled.
    let p = run(&[("name", "svc.alloc_space")], None, b"a 1024").unwrap().remove(0);
    assert_eq!((label(&p, "__name__"), total(&p.profile, 0)), (Some("memory"), 1024));
}

#[test]
fn folded_service_name_label_adds_app_name() {
    let p = run(&[("name", "my.app.cpu{service_name=svc}")], None, b"a 1").unwrap().remove(0);
    assert_eq!(label(&p, "service_name"), Some("svc"));
    assert_eq!(label(&p, "app_name"), Some("my.app"));
}

#[test]
fn folded_errors_and_drops() {
    let e = run(&[("name", "my.app")], None, b"a 1").unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (400, "unknown profile type: app".into()));
    let e = run(&[("name", "app.cpu")], None, b"a;b 1\na;b one\n").unwrap_err();
    assert_eq!(e.http_status(), 422);
    let e = run(&[("name", "app.cpu")], None, b"a;\xff 1").unwrap_err();
    assert!(matches!(e, LegacyError::InvalidUtf8(_)));
    assert_eq!(e.http_status(), 422);
    // Exemplar uploads and empty bodies store nothing.
    assert!(run(&[("name", "app.cpu{profile_id=abc}")], None, b"a 1").unwrap().is_empty());
    assert!(run(&[("name", "app.cpu{profile_id=}")], None, b"a 1").unwrap().len() == 1);
    assert!(run(&[("name", "app.cpu")], None, b"").unwrap().is_empty());
    assert!(run(&[("name", "app.cpu")], None, b"a 0\nno-count-line\n").unwrap().is_empty());
}

#[test]
fn lines_format_counts_identical_lines() {
    let p = run(&[("name", "app.cpu"), ("format", "lines"), ("sampleRate", "100")], None, b"a;b\na;b\nc\n")
        .unwrap()
        .remove(0);
    let mut values: Vec<i64> = p.profile.sample.iter().map(|s| s.value[0]).collect();
    values.sort();
    assert_eq!(values, vec![10_000_000, 20_000_000]);
}

#[test]
fn raw_pprof_path() {
    let prof = pprof(&["samples", "cpu"], &[("main", "/x.go")], 0);
    let raw = prof.encode_to_vec();
    let q =
        [("name", "gostd.app.cpu{env=t,__x__=1}"), ("format", "pprof"), ("from", "1795376129"), ("spyName", "gospy")];
    for body in [raw.clone(), gzip(&raw)] {
        let p = run(&q, Some("application/octet-stream"), &body).unwrap().remove(0);
        assert_eq!(
            p.labels,
            pairs(&[
                ("__delta__", "false"),
                ("__name__", "process_cpu"),
                ("env", "t"),
                ("pyroscope_spy", "gospy"),
                ("service_name", "gostd.app.cpu"),
            ])
        );
        // time_nanos 0 → from.
        assert_eq!(p.profile.time_nanos, 1_795_376_129_000_000_000);
        assert_eq!(p.uncompressed_size, raw.len());
    }
    // Multipart content types are not looked at with format=pprof.
    let p = run(&q, Some("multipart/form-data; boundary=zz"), &raw).unwrap();
    assert_eq!(p.len(), 1);
    // Empty body, no samples: nothing to store.
    assert!(run(&q, None, b"").unwrap().is_empty());
    let empty = Profile { string_table: vec![String::new()], ..Default::default() }.encode_to_vec();
    assert!(run(&q, None, &gzip(&empty)).unwrap().is_empty());
}

#[test]
fn raw_pprof_errors_are_422() {
    let q = [("name", "app"), ("format", "pprof")];
    let e = run(&q, None, b"\x0a\xff\xff\xff").unwrap_err();
    assert!(matches!(e, LegacyError::Pprof(_)));
    assert_eq!(e.http_status(), 422);
    let e = run(&q, None, &[0x1f, 0x8b, 0, 0, 0]).unwrap_err();
    assert_eq!(e.http_status(), 422);
    // Too large once decompressed.
    let mut big = pprof(&["cpu"], &[("f", "")], 5);
    big.string_table.push("x".repeat(2000));
    let limits = ConvertLimits { max_profile_size: 1000, max_form_size: 1 << 20 };
    let e = convert(&params(&q), None, &gzip(&big.encode_to_vec()), NOW, &limits).unwrap_err();
    assert!(matches!(e, LegacyError::Pprof(crate::pprof::PprofDecodeError::TooLarge { limit: 1000 })));
    assert_eq!(e.http_status(), 422);
    // Invalid UTF-8 in the string table is a decode error.
    let mut bad = pprof(&["cpu"], &[("f", "")], 5).encode_to_vec();
    let pos = bad.windows(3).position(|w| w == b"cpu").unwrap();
    bad[pos] = 0xff;
    assert_eq!(run(&q, None, &bad).unwrap_err().http_status(), 422);
}

#[test]
fn form_path_rules_and_errors() {
    let ct = "multipart/form-data; boundary=\"BB\"";
    let prof = gzip(&pprof(&["contentions", "delay"], &[("lock", "")], 1_795_376_000_000_000_000).encode_to_vec());
    let q = [("name", "go.app"), ("spyName", "gospy")];

    let p = run(&q, Some(ct), &form("BB", &[("profile", &prof)])).unwrap().remove(0);
    assert_eq!(label(&p, "__name__"), Some("mutex"));
    let cfg = br#"{"contentions":{"display-name":"block_count"},"delay":{"display-name":"block_duration"}}"#;
    let p = run(&q, Some(ct), &form("BB", &[("sample_type_config", cfg), ("profile", &prof)])).unwrap().remove(0);
    assert_eq!(label(&p, "__name__"), Some("block"));
    assert_eq!(p.profile.time_nanos, 1_795_376_000_000_000_000);

    let e = run(&q, Some(ct), &form("BB", &[("profile", &prof), ("prev_profile", &prof)])).unwrap_err();
    assert!(matches!(e, LegacyError::PrevProfile));
    assert_eq!(e.http_status(), 422);
    let e = run(&q, Some(ct), &form("BB", &[("sample_type_config", cfg)])).unwrap_err();
    assert!(matches!(e, LegacyError::MissingProfile));
    assert_eq!(e.http_status(), 422);
    let e = run(&q, Some(ct), &form("BB", &[("profile", &prof), ("sample_type_config", b"{nope")])).unwrap_err();
    assert!(matches!(e, LegacyError::SampleTypeConfig(_)));
    assert_eq!(e.http_status(), 422);
    let e = run(&q, Some("multipart/form-data"), &form("BB", &[("profile", &prof)])).unwrap_err();
    assert!(matches!(e, LegacyError::Multipart(multipart::MultipartError::MissingBoundary(_))));
    let e = run(&q, Some(ct), b"garbage").unwrap_err();
    assert_eq!(e.http_status(), 422);
    let small = ConvertLimits { max_profile_size: 4 << 20, max_form_size: 10 };
    let e = convert(&params(&q), Some(ct), &form("BB", &[("profile", &prof)]), NOW, &small).unwrap_err();
    assert!(matches!(e, LegacyError::Multipart(multipart::MultipartError::TooLarge { .. })));
    assert_eq!(e.http_status(), 422);
    // An empty profile field stores nothing.
    assert!(run(&q, Some(ct), &form("BB", &[("profile", b"")])).unwrap().is_empty());
}

#[test]
fn scripting_spies_rewrite_function_names() {
    let prof = pprof(&["cpu"], &[("fib", "lib/a.rb"), ("main", "/abs/b.rb")], 5).encode_to_vec();
    let names = |spy: &str| -> Vec<String> {
        let p = run(&[("name", "app"), ("format", "pprof"), ("spyName", spy)], None, &prof).unwrap().remove(0);
        p.profile.function.iter().map(|f| string_at(&p.profile, f.name).to_string()).collect()
    };
    assert_eq!(names("rbspy"), vec!["lib/a.rb fib", "/abs/b.rb main"]);
    assert_eq!(names("pyspy"), vec!["lib/a.rb fib", "main"]);
    assert_eq!(names("gospy"), vec!["fib", "main"]);
}

#[test]
fn dotnet_repairs() {
    let mut prof = pprof(&["inuse-space"], &[("A", ""), ("B", "")], 5);
    for f in &mut prof.function {
        f.id = 0;
    }
    let raw = prof.encode_to_vec();
    let cfg = br#"{"inuse-space":{"units":"bytes"}}"#;
    let ct = "multipart/form-data; boundary=BB";
    let body = form("BB", &[("profile", &raw), ("sample_type_config", cfg)]);
    // No spy name + the .NET config spelling: repaired.
    let p = run(&[("name", "net.app")], Some(ct), &body).unwrap().remove(0);
    assert_eq!(sample_types(&p.profile), vec!["inuse_space/count"]);
    assert_eq!(p.profile.function.iter().map(|f| f.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(label(&p, "__name__"), Some("memory"));
    // Another spy: left as sent.
    let p = run(&[("name", "net.app"), ("spyName", "gospy")], Some(ct), &body).unwrap().remove(0);
    assert_eq!(sample_types(&p.profile), vec!["inuse-space/count"]);
    assert_eq!(p.profile.function.iter().map(|f| f.id).collect::<Vec<_>>(), vec![0, 0]);
    // dotnetspy without config.
    let p = run(&[("name", "net.app"), ("spyName", "dotnetspy"), ("format", "pprof")], None, &raw).unwrap().remove(0);
    assert_eq!(sample_types(&p.profile), vec!["inuse_space/count"]);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator: bodies mixing structure characters and noise.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"ab; 0123456789\r\n-{}=,\"\x1f\x8b\x0a\x12\xff";
    let formats = [None, Some("pprof"), Some("lines"), Some("folded")];
    for i in 0..400 {
        let len = (next() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        let mut form_body = b"--BB\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\n".to_vec();
        form_body.extend_from_slice(&body);
        let f = formats[i % formats.len()];
        let mut q = vec![("name", "app.cpu")];
        if let Some(f) = f {
            q.push(("format", f));
        }
        let _ = run(&q, None, &body);
        let _ = run(&[("name", "app")], Some("multipart/form-data; boundary=BB"), &form_body);
        let name = String::from_utf8_lossy(&body).into_owned();
        let _ = labelset::parse(&name);
        let _ = attime::parse(&name, NOW);
    }
}
