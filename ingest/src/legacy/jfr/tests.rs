//! Tests of the JFR ingest path: the Pyroscope fixtures (skipped when /work/shared is absent),
//! checked against INDEX.md's profile types and against totals counted here by walking the
//! recording's events independently; upload shapes; and malformed recordings, including
//! hand-built ones that would hang or crash an unguarded reader.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use jfrs::reader::JfrReader;
use jfrs::reader::value_descriptor::{Primitive, ValueDescriptor};
use prost::Message;

use super::super::tests::{gunzip, gzip};
use super::super::{ConvertLimits, IngestParams, LegacyProfile, convert as convert_request};
use super::guard;
use super::labels::{Context, LabelsSnapshot};
use crate::model::labels as L;
use crate::normalize::normalize;
use crate::validate::Limits;

const NOW: i64 = 1_795_376_200_000_000_000;
const FROM_S: i64 = NOW / 1_000_000_000 - 10;

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/pyroscope"));
    if dir.join("INDEX.md").is_file() {
        Some(dir.to_path_buf())
    } else {
        eprintln!("notice: {} absent, skipped", dir.display());
        None
    }
}

/// INDEX.md rows of the JFR recordings: file name → expected profile type ids.
fn index(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(dir.join("INDEX.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(file) = cells.get(1).map(|c| c.trim_matches('`')) else { continue };
        if !(file.starts_with("og__convert__jfr__testdata__") && file.ends_with(".jfr.gz")) {
            continue;
        }
        let last = cells.iter().rev().find(|c| !c.is_empty()).unwrap();
        let ids: BTreeSet<String> =
            last.split('`').skip(1).step_by(2).filter(|s| s.contains(':')).map(String::from).collect();
        assert!(!ids.is_empty(), "no ids parsed for {file}");
        out.insert(file.to_string(), ids);
    }
    out
}

fn params(name: &str, rate: &str) -> IngestParams {
    IngestParams {
        name: name.to_string(),
        from: Some(FROM_S.to_string()),
        until: Some((FROM_S + 10).to_string()),
        sample_rate: Some(rate.to_string()),
        spy_name: Some("javaspy".to_string()),
        format: Some("jfr".to_string()),
        ..Default::default()
    }
}

fn form(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "jfrTestBoundary7";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn run(p: &IngestParams, ct: Option<&str>, body: &[u8]) -> Result<Vec<LegacyProfile>, super::super::LegacyError> {
    convert_request(p, ct, body, NOW, &ConvertLimits::default())
}

/// Series (profile type id → labels → total) after the real normalization.
fn series(profiles: &[LegacyProfile]) -> BTreeMap<String, Vec<(L::Labels, i64)>> {
    let mut out: BTreeMap<String, Vec<(L::Labels, i64)>> = BTreeMap::new();
    for p in profiles {
        let n = normalize(&p.labels, p.profile.clone(), None, &Limits::default(), NOW).unwrap();
        for s in n.series {
            let id = s.labels.get(L::PROFILE_TYPE).unwrap().to_string();
            out.entry(id).or_default().push((s.labels.clone(), s.total));
        }
    }
    out
}

fn total(series: &BTreeMap<String, Vec<(L::Labels, i64)>>, id: &str) -> i64 {
    series.get(id).map_or(0, |v| v.iter().map(|(_, t)| t).sum())
}

/// Totals counted independently from the events: profile type id → sum.
fn expected_totals(jfr: &[u8], period: i64) -> BTreeMap<&'static str, i64> {
    fn num(v: &ValueDescriptor) -> i64 {
        match v {
            ValueDescriptor::Primitive(Primitive::Long(x)) => *x,
            ValueDescriptor::Primitive(Primitive::Integer(x)) => i64::from(*x),
            _ => panic!("not a number: {v:?}"),
        }
    }
    let mut t: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut add = |k: &'static str, v: i64| *t.entry(k).or_default() += v;
    let mut event_setting = String::new();
    let mut reader = JfrReader::new(Cursor::new(jfr));
    for chunk in reader.chunks() {
        let (mut r, chunk) = chunk.unwrap();
        for e in r.events(&chunk) {
            let e = e.unwrap();
            let v = e.value();
            let has_stack = v.get_field("stackTrace").is_some();
            let field = |n: &str| v.get_field(n).map(|f| num(f.value)).unwrap();
            match e.class.name() {
                "jdk.ActiveSetting" => {
                    let s = |n: &str| v.get_field(n).and_then(|f| <&str>::try_from(f.value).ok()).unwrap().to_string();
                    if s("name") == "event" {
                        event_setting = s("value");
                    }
                }
                "jdk.ExecutionSample" if has_stack => {
                    let state = v.get_field("state").and_then(|s| s.get_field("name")).map(|n| n.value);
                    if let Some(ValueDescriptor::Primitive(Primitive::String(s))) = state
                        && s != "STATE_SLEEPING"
                    {
                        add("process_cpu:cpu:nanoseconds:cpu:nanoseconds", period);
                    }
                    if event_setting == "wall" {
                        add("wall:wall:nanoseconds:wall:nanoseconds", period);
                    }
                }
                "jdk.ObjectAllocationInNewTLAB" if has_stack => {
                    add("memory:alloc_in_new_tlab_objects:count:space:bytes", 1);
                    add("memory:alloc_in_new_tlab_bytes:bytes:space:bytes", field("tlabSize"));
                }
                "jdk.ObjectAllocationOutsideTLAB" if has_stack => {
                    add("memory:alloc_outside_tlab_objects:count:space:bytes", 1);
                    add("memory:alloc_outside_tlab_bytes:bytes:space:bytes", field("allocationSize"));
                }
                "jdk.JavaMonitorEnter" if has_stack => {
                    add("mutex:contentions:count:mutex:count", 1);
                    add("mutex:delay:nanoseconds:mutex:count", field("duration"));
                }
                "jdk.ThreadPark" if has_stack => {
                    add("block:contentions:count:block:count", 1);
                    add("block:delay:nanoseconds:block:count", field("duration"));
                }
                "profiler.LiveObject" if has_stack => add("memory:live:count:objects:count", 1),
                _ => {}
            }
        }
    }
    t.retain(|_, v| *v != 0);
    t
}

fn labels_for(dir: &Path, file: &str) -> Option<Vec<u8>> {
    let path = dir.join(file.replace(".jfr.gz", ".labels.pb.gz"));
    path.is_file().then(|| std::fs::read(path).unwrap())
}

#[test]
fn fixtures_match_index_and_independent_totals() {
    let Some(dir) = fixtures() else { return };
    let index = index(&dir);
    assert_eq!(index.len(), 11, "INDEX.md lists 11 JFR recordings: {:?}", index.keys());
    for (file, want_ids) in &index {
        let gz = std::fs::read(dir.join(file)).unwrap();
        let labels = labels_for(&dir, file);
        let mut parts: Vec<(&str, &[u8])> = vec![("jfr", &gz)];
        if let Some(l) = &labels {
            parts.push(("labels", l));
        }
        let (ct, body) = form(&parts);
        let profiles = run(&params("kafka{env=test}", "100"), Some(&ct), &body).unwrap();
        let got = series(&profiles);
        let got_ids: BTreeSet<String> = got.keys().cloned().collect();
        assert_eq!(&got_ids, want_ids, "{file}");

        let expected = expected_totals(&gunzip(&gz), 10_000_000);
        let want_keys: BTreeSet<String> = expected.keys().map(|k| k.to_string()).collect();
        assert_eq!(want_keys, got_ids, "{file}: kinds counted independently");
        for (id, want) in &expected {
            assert!(*want > 0);
            assert_eq!(total(&got, id), *want, "{file} {id}");
        }
        for p in &profiles {
            let l: BTreeMap<&str, &str> = p.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(l["service_name"], "kafka");
            assert_eq!(l["env"], "test");
            assert_eq!(l["pyroscope_spy"], "javaspy");
            assert_eq!(l["__delta__"], "false");
            assert!(["cpu", "itimer", "wall", "alloc", "lock"].contains(&l["jfr_event"]), "{file}: {l:?}");
            assert_eq!(p.profile.time_nanos, FROM_S * 1_000_000_000);
            assert_eq!(p.profile.duration_nanos, 10_000_000_000);
        }
    }
}

#[test]
fn dynamic_labels_split_series_by_thread_name() {
    let Some(dir) = fixtures() else { return };
    for (file, wall) in
        [("og__convert__jfr__testdata__dump1.jfr.gz", false), ("og__convert__jfr__testdata__dump2.jfr.gz", true)]
    {
        let gz = std::fs::read(dir.join(file)).unwrap();
        let labels_gz = labels_for(&dir, file).unwrap();
        let snapshot = LabelsSnapshot::decode(gunzip(&labels_gz).as_slice()).unwrap();
        assert!(!snapshot.contexts.is_empty());
        let (ct, body) = form(&[("jfr", &gz), ("labels", &labels_gz)]);
        let got = series(&run(&params("app", "100"), Some(&ct), &body).unwrap());
        let mut ids = vec!["process_cpu:cpu:nanoseconds:cpu:nanoseconds"];
        if wall {
            ids.push("wall:wall:nanoseconds:wall:nanoseconds");
        }
        for id in ids {
            let threads: BTreeSet<&str> = got[id].iter().filter_map(|(l, _)| l.get("thread_name")).collect();
            assert!(threads.len() > 1, "{file} {id}: {threads:?}");
            if file.contains("dump1") {
                assert!(threads.contains("pool-2-thread-7"), "{threads:?}");
            }
        }
        // Without the snapshot the same recording has one series per type and the same total.
        let (ct, body) = form(&[("jfr", &gz)]);
        let plain = series(&run(&params("app", "100"), Some(&ct), &body).unwrap());
        let id = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
        assert_eq!(plain[id].len(), 1);
        assert_eq!(total(&plain, id), total(&got, id));
    }
}

#[test]
fn raw_and_form_bodies_gzip_or_not_agree() {
    let Some(dir) = fixtures() else { return };
    let gz = std::fs::read(dir.join("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__0.jfr.gz")).unwrap();
    let raw = gunzip(&gz);
    let p = params("kafka", "100");
    let reference = series(&run(&p, None, &raw).unwrap());
    assert!(total(&reference, "process_cpu:cpu:nanoseconds:cpu:nanoseconds") > 0);
    let (ct1, form_gz) = form(&[("jfr", &gz)]);
    let (ct2, form_raw) = form(&[("jfr", &raw)]);
    for (ct, body) in [(None, gz.as_slice()), (Some(ct1.as_str()), &form_gz), (Some(ct2.as_str()), &form_raw)] {
        let got = series(&run(&p, ct, body).unwrap());
        let t = |s: &BTreeMap<String, Vec<(L::Labels, i64)>>| {
            s.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>()
        };
        assert_eq!(t(&got), t(&reference));
        assert_eq!(
            total(&got, "process_cpu:cpu:nanoseconds:cpu:nanoseconds"),
            total(&reference, "process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        );
    }
    // sampleRate scales cpu samples: 1e9/50 instead of 1e9/100 per sample.
    let half = series(&run(&params("kafka", "50"), None, &raw).unwrap());
    let id = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    assert_eq!(total(&half, id), 2 * total(&reference, id));
    // sampleRate=0: every cpu value is 0, so nothing is stored.
    assert!(series(&run(&params("kafka", "0"), None, &raw).unwrap()).is_empty());
}

#[test]
fn name_service_name_becomes_app_name() {
    let Some(dir) = fixtures() else { return };
    let gz = std::fs::read(dir.join("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__0.jfr.gz")).unwrap();
    let out = run(&params("myapp{service_name=svc,__x__=y}", "100"), None, &gz).unwrap();
    assert_eq!(out.len(), 1);
    let l: BTreeMap<&str, &str> = out[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!((l["service_name"], l["app_name"], l["__name__"]), ("svc", "myapp", "process_cpu"));
    assert_eq!(l["jfr_event"], "cpu");
    assert!(!l.contains_key("__x__"));
}

#[test]
fn form_errors() {
    let p = params("app", "100");
    let (ct, body) = form(&[("labels", b"xx")]);
    let e = run(&p, Some(&ct), &body).unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (422, "jfr field is required".to_string()));
    let (ct, body) = form(&[("jfr", b"")]);
    assert_eq!(run(&p, Some(&ct), &body).unwrap_err().http_status(), 422);
    let (ct, body) = form(&[("jfr", b"\x1f\x8b\x08\x00garbage")]);
    assert!(run(&p, Some(&ct), &body).unwrap_err().to_string().contains("decompress"));
    // A bad labels part fails even when the recording is fine.
    let (ct, body) = form(&[("jfr", b"FLR\0"), ("labels", b"\x0a\xff\xff")]);
    assert!(run(&p, Some(&ct), &body).unwrap_err().to_string().contains("labels"));
    // Gzip bombs are refused by the cap.
    let bomb = gzip(&vec![0u8; 2 << 20]);
    let limits = ConvertLimits { max_profile_size: 1 << 20, max_form_size: 1 << 20 };
    let e = convert_request(&p, None, &bomb, NOW, &limits).unwrap_err();
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    // An empty raw body stores nothing.
    assert!(run(&p, None, b"").unwrap().is_empty());
}

#[test]
fn garbage_and_truncations_are_errors_not_panics() {
    let p = params("app", "100");
    for body in [&b"garbage"[..], b"FLR\0", b"FLR\0\0\x02\0\0", &[0xffu8; 200]] {
        let e = run(&p, None, body).unwrap_err();
        assert_eq!(e.http_status(), 422, "{e}");
    }
    let Some(dir) = fixtures() else { return };
    let jfr =
        gunzip(&std::fs::read(dir.join("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__0.jfr.gz")).unwrap());
    // Truncations: the chunk size no longer fits, so all fail cleanly.
    for cut in (0..jfr.len()).step_by(jfr.len() / 97 + 1).skip(1) {
        assert!(run(&p, None, &jfr[..cut]).is_err(), "cut at {cut}");
    }
    // Corruptions (deterministic pseudo-random byte changes): errors or profiles, never a panic.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let rounds: usize = std::env::var("JFR_CORRUPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let mut errors = 0;
    for _ in 0..rounds {
        let mut bad = jfr.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() % bad.len() as u64) as usize;
            bad[at] = next() as u8;
        }
        if let Err(e) = run(&p, None, &bad) {
            assert_eq!(e.http_status(), 422);
            // A reader panic would mean the guard let through input jfrs cannot handle.
            assert!(!matches!(e, super::super::LegacyError::Jfr(super::JfrError::ReaderPanic)), "{e}");
            errors += 1;
        }
    }
    eprintln!("corruptions refused: {errors}/{rounds}");
}

#[test]
fn guard_accepts_fixtures_within_budget() {
    let Some(dir) = fixtures() else { return };
    for (file, _) in index(&dir) {
        let jfr = gunzip(&std::fs::read(dir.join(&file)).unwrap());
        let s = guard::check(&jfr).unwrap();
        assert!(s.chunks >= 1 && s.events > 0);
        eprintln!(
            "{file}: {} bytes, {s:?}, pool nodes/byte {:.2}",
            jfr.len(),
            s.max_pool_nodes as f64 / jfr.len() as f64
        );
    }
}

/// Writes small JFR chunks by hand (raw big-endian integers) for the hazards an unguarded
/// reader cannot survive.
mod craft {
    pub const LONG: i64 = 101;
    pub const STRING: i64 = 102;
    pub const EMPTY: i64 = 103;
    pub const HOLDER: i64 = 104;
    pub const EVENT: i64 = 105;
    pub const TEXT_EVENT: i64 = 106;

    pub struct Field {
        pub name: &'static str,
        pub class: i64,
        pub array: bool,
        pub constant_pool: bool,
    }

    pub struct Class {
        pub id: i64,
        pub name: &'static str,
        pub fields: Vec<Field>,
    }

    pub fn f(name: &'static str, class: i64) -> Field {
        Field { name, class, array: false, constant_pool: false }
    }

    pub fn classes() -> Vec<Class> {
        vec![
            Class { id: LONG, name: "long", fields: vec![] },
            Class { id: STRING, name: "java.lang.String", fields: vec![] },
            Class { id: EMPTY, name: "test.Empty", fields: vec![] },
            Class {
                id: HOLDER,
                name: "test.Holder",
                fields: vec![Field { name: "items", class: EMPTY, array: true, constant_pool: false }],
            },
            Class { id: EVENT, name: "test.Event", fields: vec![f("startTime", LONG), f("v", LONG)] },
            Class { id: TEXT_EVENT, name: "test.Text", fields: vec![f("s", STRING)] },
        ]
    }

    struct Strings(Vec<String>);

    impl Strings {
        fn id(&mut self, s: &str) -> i32 {
            if let Some(i) = self.0.iter().position(|x| x == s) {
                return i as i32;
            }
            self.0.push(s.to_string());
            self.0.len() as i32 - 1
        }
    }

    fn i32b(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    fn i64b(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// The metadata event: `extra_depth` nests that many annotations inside the first class.
    pub fn metadata(classes: &[Class], extra_depth: usize) -> Vec<u8> {
        let mut st = Strings(Vec::new());
        let mut tree = Vec::new();
        // root element: no attributes, one child "metadata"
        i32b(&mut tree, st.id("root"));
        i32b(&mut tree, 0);
        i32b(&mut tree, 1);
        i32b(&mut tree, st.id("metadata"));
        i32b(&mut tree, 0);
        i32b(&mut tree, classes.len() as i32);
        for (ci, c) in classes.iter().enumerate() {
            i32b(&mut tree, st.id("class"));
            let mut attrs = vec![("id", c.id.to_string()), ("name", c.name.to_string())];
            attrs.push(("simpleType", "false".to_string()));
            i32b(&mut tree, attrs.len() as i32);
            for (k, v) in &attrs {
                i32b(&mut tree, st.id(k));
                i32b(&mut tree, st.id(v));
            }
            let nested = if ci == 0 { extra_depth } else { 0 };
            i32b(&mut tree, c.fields.len() as i32 + i32::from(nested > 0));
            for fl in &c.fields {
                i32b(&mut tree, st.id("field"));
                let mut attrs = vec![("name", fl.name.to_string()), ("class", fl.class.to_string())];
                if fl.array {
                    attrs.push(("dimension", "1".to_string()));
                }
                if fl.constant_pool {
                    attrs.push(("constantPool", "true".to_string()));
                }
                i32b(&mut tree, attrs.len() as i32);
                for (k, v) in &attrs {
                    i32b(&mut tree, st.id(k));
                    i32b(&mut tree, st.id(v));
                }
                i32b(&mut tree, 0);
            }
            for level in 0..nested {
                i32b(&mut tree, st.id("annotation"));
                i32b(&mut tree, 0);
                i32b(&mut tree, i32::from(level + 1 < nested));
            }
        }
        let mut body = Vec::new();
        i64b(&mut body, 0); // type: metadata
        for _ in 0..3 {
            i64b(&mut body, 0);
        }
        i32b(&mut body, st.0.len() as i32);
        for s in &st.0 {
            body.push(3);
            i32b(&mut body, s.len() as i32);
            body.extend_from_slice(s.as_bytes());
        }
        body.extend_from_slice(&tree);
        sized(body)
    }

    /// Prefixes a record with its size (including the 4 size bytes).
    pub fn sized(body: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        i32b(&mut out, body.len() as i32 + 4);
        out.extend_from_slice(&body);
        out
    }

    pub fn event(class: i64, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        i64b(&mut body, class);
        body.extend_from_slice(payload);
        sized(body)
    }

    /// A constant-pool event with no pools whose delta is `delta`.
    pub fn empty_pool(delta: i64) -> Vec<u8> {
        let mut body = Vec::new();
        i64b(&mut body, 1);
        i64b(&mut body, 0);
        i64b(&mut body, 0);
        i64b(&mut body, delta);
        body.push(0);
        i32b(&mut body, 0);
        sized(body)
    }

    /// A chunk: header, metadata right after it, then `records`; `cp` is the header's
    /// constant-pool offset.
    pub fn chunk(metadata: &[u8], records: &[Vec<u8>], cp: i64) -> Vec<u8> {
        let mut out = b"FLR\0".to_vec();
        out.extend_from_slice(&2i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        let size = 68 + metadata.len() + records.iter().map(Vec::len).sum::<usize>();
        i64b(&mut out, size as i64);
        i64b(&mut out, cp);
        i64b(&mut out, 68); // metadata offset
        for v in [1_700_000_000_000_000_000i64, 1_000_000_000, 0, 1_000_000_000] {
            i64b(&mut out, v);
        }
        i32b(&mut out, 0); // raw integers
        out.extend_from_slice(metadata);
        for r in records {
            out.extend_from_slice(r);
        }
        out
    }

    pub fn long(v: i64) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }
}

fn refused(jfr: &[u8]) -> String {
    let e = super::read_recording(
        jfr,
        &LabelsSnapshot::default(),
        &super::convert::Settings { time_nanos: 0, duration_nanos: 0, period: 1 },
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(e, super::JfrError::Malformed(_)), "{e}");
    e.to_string()
}

#[test]
fn crafted_valid_chunk_reads() {
    use craft::*;
    let meta = metadata(&classes(), 0);
    let payload = [long(5), long(42)].concat();
    let jfr = chunk(&meta, &[event(EVENT, &payload), event(TEXT_EVENT, &[3, 0, 0, 0, 2, b'h', b'i'])], 0);
    let s = guard::check(&jfr).unwrap();
    assert_eq!((s.chunks, s.events), (1, 2));
    // jfrs reads it too (the writer is right), and no profile kind is involved.
    let mut reader = JfrReader::new(Cursor::new(&jfr));
    let (mut r, c) = reader.chunks().next().unwrap().unwrap();
    let names: Vec<String> = r.events(&c).map(|e| e.unwrap().class.name().to_string()).collect();
    assert_eq!(names, ["test.Event", "test.Text"]);
    let out = super::read_recording(
        &jfr,
        &LabelsSnapshot::default(),
        &super::convert::Settings { time_nanos: 0, duration_nanos: 0, period: 1 },
    )
    .unwrap();
    assert!(out.profiles.is_empty());
    // Two chunks back to back are fine as well.
    assert_eq!(guard::check(&[jfr.clone(), jfr].concat()).unwrap().chunks, 2);
}

#[test]
fn crafted_hazards_are_refused() {
    use craft::*;
    let meta = metadata(&classes(), 0);
    let ok_event = event(EVENT, &[long(5), long(42)].concat());

    // A zero-sized event makes jfrs loop forever on the same offset.
    let mut zero = event(EVENT, &[long(5), long(42)].concat());
    zero[..4].copy_from_slice(&0i32.to_be_bytes());
    assert!(refused(&chunk(&meta, &[zero], 0)).contains("event size"));

    // A negative event size overflows jfrs' offset arithmetic.
    let mut neg = ok_event.clone();
    neg[..4].copy_from_slice(&(-8i32).to_be_bytes());
    assert!(refused(&chunk(&meta, &[neg], 0)).contains("event size"));

    // A huge string length is reserved up front by jfrs.
    let huge_string = event(TEXT_EVENT, &[&[3u8][..], &i32::MAX.to_be_bytes()].concat());
    assert!(refused(&chunk(&meta, &[huge_string], 0)).contains("length"));
    let negative_string = event(TEXT_EVENT, &[&[3u8][..], &(-1i32).to_be_bytes()].concat());
    assert!(refused(&chunk(&meta, &[negative_string], 0)).contains("length"));

    // An array of zero-byte elements costs no input but would be allocated whole.
    let holder = event(HOLDER, &i32::MAX.to_be_bytes());
    assert!(refused(&chunk(&meta, &[holder], 0)).contains("budget"));
    let holder = event(HOLDER, &(-1i32).to_be_bytes());
    assert!(refused(&chunk(&meta, &[holder], 0)).contains("negative"));

    // A type that contains itself inline recurses without end.
    let mut cyclic = classes();
    cyclic.push(Class { id: 200, name: "test.Loop", fields: vec![f("me", 200)] });
    assert!(refused(&chunk(&metadata(&cyclic, 0), std::slice::from_ref(&ok_event), 0)).contains("cycle"));

    // A long inline chain nests too deeply.
    let mut chain = classes();
    for i in 0..100 {
        chain.push(Class { id: 300 + i, name: "test.Chain", fields: vec![f("next", 301 + i)] });
    }
    chain.push(Class { id: 400, name: "test.End", fields: vec![f("v", LONG)] });
    assert!(refused(&chunk(&metadata(&chain, 0), std::slice::from_ref(&ok_event), 0)).contains("deeply"));

    // Deeply nested metadata elements recurse in jfrs' metadata reader.
    assert!(refused(&chunk(&metadata(&classes(), 10_000), std::slice::from_ref(&ok_event), 0)).contains("deeply"));
    assert!(guard::check(&chunk(&metadata(&classes(), 3), std::slice::from_ref(&ok_event), 0)).is_ok());

    // A constant-pool chain that loops (A → B → A).
    let pool_a_at = (68 + meta.len()) as i64;
    let pool_len = empty_pool(0).len() as i64;
    let pool_b_at = pool_a_at + pool_len;
    let a = empty_pool(pool_b_at - pool_a_at);
    let b = empty_pool(pool_a_at - pool_b_at);
    assert!(refused(&chunk(&meta, &[a, b], pool_b_at)).contains("loops"));
    // The same chain ending properly is accepted.
    let a = empty_pool(0);
    let b = empty_pool(pool_a_at - pool_b_at);
    assert!(guard::check(&chunk(&meta, &[a, b], pool_b_at)).is_ok());
    // A constant-pool offset outside the chunk.
    assert!(refused(&chunk(&meta, std::slice::from_ref(&ok_event), i64::MAX)).contains("outside"));

    // Chunk sizes that do not fit.
    let mut bad = chunk(&meta, std::slice::from_ref(&ok_event), 0);
    bad[8..16].copy_from_slice(&(-1i64).to_be_bytes());
    assert!(refused(&bad).contains("chunk size"));
    bad[8..16].copy_from_slice(&10i64.to_be_bytes());
    assert!(refused(&bad).contains("chunk size"));
    // A metadata offset outside the chunk.
    let mut bad = chunk(&meta, &[ok_event], 0);
    bad[24..32].copy_from_slice(&(-5i64).to_be_bytes());
    assert!(refused(&bad).contains("metadata offset"));
}

#[test]
fn labels_snapshot_joins_context_ids() {
    let snap = LabelsSnapshot {
        contexts: [(3, Context { labels: [(1, 2)].into() })].into(),
        strings: [(1, "thread_name".to_string()), (2, "worker-1".to_string())].into(),
    };
    assert_eq!(snap.context_labels(3), vec![("thread_name".to_string(), "worker-1".to_string())]);
}
