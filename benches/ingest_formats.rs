//! Ingest throughput of the formats beside Push/pprof, in bytes/s of the request body as the
//! server receives it (un-gzipped where the request said `Content-Encoding: gzip`):
//!
//! * `jfr`: the pyroscope-java JFR recordings of Pyroscope's test data (gunzipped once, up front)
//!   through `legacy::convert` with `format=jfr`;
//! * `otlp`: the OpenTelemetry eBPF profiler's export through `otlp::convert_request`;
//! * `go_cpu`: one Go SDK CPU capture sent five ways (the SDK's own multipart form, a raw pprof,
//!   folded text, an OG `tree` body and a sampled speedscope document), all carrying the same
//!   stacks and counts, so their times per capture compare the converters on equal work with the
//!   pprof form as the baseline.
//!
//! Each input is benched convert-only and end to end (`convert_store`: convert, then
//! `Distributor::ingest_batch`/`ingest_profile` into an in-memory head without a WAL, as the
//! server does). The heads grow as in `benches/ingest.rs` and are replaced (untimed) after
//! [`HEAD_RESET_BYTES`] of input, so long runs do not measure a swapping machine. Inputs from
//! `../shared/fixtures/pyroscope` are skipped with a notice when that folder is absent.
//!
//! Times are wall time; `INGEST_FORMATS_CPU_TIME=1` times the bench thread's CPU time instead
//! (steadier on a shared, busy machine). Compare formats by time per capture within one run.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use flamedb_ingest::distributor::{Distributor, ProfileInput};
use flamedb_ingest::head::Head;
use flamedb_ingest::legacy::{self, ConvertLimits, IngestParams, LegacyProfile};
use flamedb_ingest::otlp;
use flamedb_ingest::validate::Limits;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use prost::Message;

const TENANT: &str = "bench";
/// Distinct `pod` label values the rounds cycle through (a few series per input, as in
/// `benches/ingest.rs`).
const PODS: usize = 16;
/// Input bytes a head takes before it is replaced by an empty one.
const HEAD_RESET_BYTES: usize = 1 << 30;
const MIB: f64 = 1024.0 * 1024.0;

/// What the benches time: wall time, or with `INGEST_FORMATS_CPU_TIME=1` in the environment the
/// CPU time of the bench thread (everything measured runs on it), which a busy shared machine
/// disturbs far less than wall time.
static CLOCK: LazyLock<Clock> = LazyLock::new(|| {
    if std::env::var_os("INGEST_FORMATS_CPU_TIME").is_some_and(|v| v != "0") && thread_cpu_time().is_some() {
        eprintln!("ingest_formats: timing the bench thread's CPU time (INGEST_FORMATS_CPU_TIME)");
        Clock::ThreadCpu
    } else {
        Clock::Wall
    }
});

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    /// Runs `f`, returning its result and how long it took by this clock.
    fn time<R>(self, f: impl FnOnce() -> R) -> (R, Duration) {
        match self {
            Clock::Wall => {
                let t = Instant::now();
                let r = f();
                (r, t.elapsed())
            }
            Clock::ThreadCpu => {
                let start = thread_cpu_time().unwrap_or_default();
                let r = f();
                (r, thread_cpu_time().unwrap_or_default().saturating_sub(start))
            }
        }
    }
}

/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: std has no thread CPU clock and the crate no `libc`
/// dependency, so the one call is declared here (Linux, 64-bit `timespec`).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_time() -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec of the platform's layout for the call's duration.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(u64::try_from(ts.sec).unwrap_or(0), u32::try_from(ts.nsec).unwrap_or(0)))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/pyroscope");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("notice: {} is absent; the jfr and otlp benches are skipped", dir.display());
        None
    }
}

fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b).read_to_end(&mut out).ok()?;
    Some(out)
}

fn gunzip_if(b: &[u8]) -> Vec<u8> {
    if b.starts_with(&[0x1f, 0x8b]) { gunzip(b).unwrap_or_else(|| b.to_vec()) } else { b.to_vec() }
}

/// The server's limits with the ingestion window off (fixture timestamps are old).
fn limits() -> Arc<Limits> {
    Arc::new(Limits { reject_older_than: Duration::ZERO, reject_newer_than: Duration::ZERO, ..Limits::default() })
}

/// What the server passes to `legacy::convert`.
fn convert_limits(limits: &Limits) -> ConvertLimits {
    ConvertLimits { max_profile_size: limits.max_profile_size_bytes, max_form_size: 32 << 20 }
}

/// A distributor over an in-memory head, replaced once it has taken [`HEAD_RESET_BYTES`].
struct Sink {
    limits: Arc<Limits>,
    d: Distributor,
    fed: usize,
}

impl Sink {
    fn new() -> Self {
        let limits = limits();
        Self { d: Distributor::new(Arc::new(Head::new()), limits.clone()), limits, fed: 0 }
    }

    /// Call outside the timed section: the old head is dropped here.
    fn fed(&mut self, bytes: usize) {
        self.fed += bytes;
        if self.fed >= HEAD_RESET_BYTES {
            self.d = Distributor::new(Arc::new(Head::new()), self.limits.clone());
            self.fed = 0;
        }
    }
}

/// One `/ingest` request: its body and Content-Type, with the query parameters of every pod.
struct LegacyRequest {
    params: Vec<IngestParams>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl LegacyRequest {
    /// `name` is `app{labels}` or `app`; each pod's copy gets a `pod` label.
    fn new(query: &[(&str, &str)], name: &str, content_type: Option<&str>, body: Vec<u8>) -> Self {
        let params = (0..PODS)
            .map(|pod| {
                let name = match name.strip_suffix('}') {
                    Some(open) => format!("{open},pod=pod-{pod}}}"),
                    None => format!("{name}{{pod=pod-{pod}}}"),
                };
                let mut pairs: Vec<(String, String)> =
                    query.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.to_string(), v.to_string())).collect();
                pairs.push(("name".to_string(), name));
                IngestParams::from_query(&pairs)
            })
            .collect();
        Self { params, content_type: content_type.map(str::to_owned), body }
    }

    fn convert(&self, pod: usize, limits: &ConvertLimits, now: i64) -> Result<Vec<LegacyProfile>, String> {
        let params = &self.params[pod % PODS];
        legacy::convert(params, self.content_type.as_deref(), &self.body, now, limits).map_err(|e| e.to_string())
    }
}

/// Converts every request of a round; returns the profiles converted.
fn legacy_convert_round(reqs: &[LegacyRequest], round: usize, limits: &ConvertLimits) -> Result<usize, String> {
    let now = common::now_nanos();
    let mut n = 0;
    for r in reqs {
        n += std::hint::black_box(r.convert(round, limits, now)?).len();
    }
    Ok(n)
}

/// Converts and stores every request of a round, as the `/ingest` handler does; returns the
/// profiles stored.
fn legacy_store_round(d: &Distributor, reqs: &[LegacyRequest], round: usize) -> Result<usize, String> {
    let now = common::now_nanos();
    let limits = convert_limits(d.limits());
    let mut n = 0;
    for r in reqs {
        let inputs = r.convert(round, &limits, now)?.into_iter().map(ProfileInput::from).collect();
        let outcome = d.ingest_batch(TENANT, inputs, now);
        if let Some(e) = outcome.error {
            return Err(e.to_string());
        }
        n += outcome.stats.profiles;
    }
    Ok(n)
}

/// Benches `reqs` convert-only and end to end under `name`; first runs one checked round of
/// each, and skips the input (with a notice) if any request fails or nothing is stored.
fn bench_legacy(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, reqs: &[LegacyRequest]) -> Option<usize> {
    let bytes: usize = reqs.iter().map(|r| r.body.len()).sum();
    let climits = convert_limits(&limits());
    let converted = match legacy_convert_round(reqs, 0, &climits) {
        Ok(n) if n > 0 => {
            // What the input amounts to, to check that inputs said to be equal are.
            let now = common::now_nanos();
            let profiles: Vec<LegacyProfile> =
                reqs.iter().filter_map(|r| r.convert(0, &climits, now).ok()).flatten().collect();
            let samples: usize = profiles.iter().map(|p| p.profile.sample.len()).sum();
            let totals: Vec<i64> = profiles
                .iter()
                .map(|p| p.profile.sample.iter().map(|s| s.value.first().copied().unwrap_or(0)).sum())
                .collect();
            eprintln!("ingest_formats: {name}: {samples} pprof sample(s), first-value totals {totals:?}");
            n
        }
        Ok(_) => {
            eprintln!("notice: {name}: converted to no profiles; skipped");
            return None;
        }
        Err(e) => {
            eprintln!("notice: {name}: conversion failed ({e}); skipped");
            return None;
        }
    };
    let mut sink = Sink::new();
    match legacy_store_round(&sink.d, reqs, 0) {
        Ok(n) if n == converted => {}
        Ok(n) => {
            eprintln!("notice: {name}: {n} of {converted} profiles stored; skipped");
            return None;
        }
        Err(e) => {
            eprintln!("notice: {name}: storing failed ({e}); skipped");
            return None;
        }
    }
    eprintln!(
        "ingest_formats: {name}: {} request(s), {:.3} MiB of body, {converted} profile(s) per round",
        reqs.len(),
        bytes as f64 / MIB
    );
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut round = 0usize;
    g.bench_function(format!("{name}/convert"), |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let (converted, t) = CLOCK.time(|| legacy_convert_round(reqs, round, &climits));
                took += t;
                std::hint::black_box(converted.ok());
            }
            took
        })
    });
    g.bench_function(format!("{name}/convert_store"), |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let (stored, t) = CLOCK.time(|| legacy_store_round(&sink.d, reqs, round));
                took += t;
                std::hint::black_box(stored.ok());
                sink.fed(bytes);
            }
            took
        })
    });
    Some(converted)
}

// ---------------------------------------------------------------------------------------------
// JFR

/// The JFR recordings with their file names.
fn jfr_requests(dir: &Path) -> Vec<(String, LegacyRequest)> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("og__convert__jfr__testdata__") && n.ends_with(".jfr.gz"))
    });
    files.sort();
    let query = [("format", "jfr"), ("spyName", "javaspy"), ("sampleRate", "100")];
    files
        .iter()
        .filter_map(|f| {
            let raw = std::fs::read(f).ok()?;
            let Some(jfr) = gunzip(&raw) else {
                eprintln!("notice: {} does not gunzip; left out", f.display());
                return None;
            };
            let name = f.file_name()?.to_str()?.trim_start_matches("og__convert__jfr__testdata__").to_string();
            Some((name, LegacyRequest::new(&query, "kafka{env=bench}", None, jfr)))
        })
        .collect()
}

fn bench_jfr(c: &mut Criterion) {
    let Some(dir) = shared_dir() else { return };
    let reqs = jfr_requests(&dir);
    if reqs.is_empty() {
        eprintln!("notice: no og__convert__jfr__testdata__*.jfr.gz in {}; jfr skipped", dir.display());
        return;
    }
    // Where a round's time goes: one (untimed by criterion, indicative) conversion of each.
    let climits = convert_limits(&limits());
    for (name, r) in &reqs {
        let t = Instant::now();
        let profiles = r.convert(0, &climits, common::now_nanos()).map_or(0, |p| p.len());
        let took = t.elapsed();
        eprintln!(
            "ingest_formats: jfr: {name}: {:.3} MiB, {profiles} profile(s), one conversion {:.1} ms ({:.1} MiB/s)",
            r.body.len() as f64 / MIB,
            took.as_secs_f64() * 1e3,
            r.body.len() as f64 / MIB / took.as_secs_f64().max(1e-9)
        );
    }
    let reqs: Vec<LegacyRequest> = reqs.into_iter().map(|(_, r)| r).collect();
    let mut g = c.benchmark_group("ingest_formats");
    // A round takes about half a second: fewer samples keep the run short.
    g.sample_size(20);
    bench_legacy(&mut g, "jfr", &reqs);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// OTLP

/// The eBPF profiler's export with every profile stamped now, and its re-encoding (the body
/// the end-to-end bench decodes).
fn otlp_request(dir: &Path) -> Option<(ExportProfilesServiceRequest, Vec<u8>)> {
    let path = dir.join("test__integration__testdata__otel-ebpf-profile.pb.bin");
    let Ok(raw) = std::fs::read(&path) else {
        eprintln!("notice: {} absent; otlp skipped", path.display());
        return None;
    };
    let mut req = match ExportProfilesServiceRequest::decode(raw.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("notice: {} does not decode ({e}); otlp skipped", path.display());
            return None;
        }
    };
    let now = common::now_nanos() as u64;
    for p in req
        .resource_profiles
        .iter_mut()
        .flat_map(|rp| rp.scope_profiles.iter_mut())
        .flat_map(|sp| sp.profiles.iter_mut())
    {
        p.time_unix_nano = now;
    }
    let body = req.encode_to_vec();
    Some((req, body))
}

/// Decodes, converts and stores one export as the OTLP handlers do; returns the profiles stored.
fn otlp_store(d: &Distributor, body: &[u8]) -> Result<usize, String> {
    let now = common::now_nanos();
    let req = ExportProfilesServiceRequest::decode(body).map_err(|e| e.to_string())?;
    let profiles = otlp::convert_request(&req, now).map_err(|e| e.to_string())?;
    let max = d.limits().max_profile_size_bytes;
    let sized: Vec<(usize, otlp::OtlpProfile)> = profiles.into_iter().map(|p| (p.profile.encoded_len(), p)).collect();
    if let Some((size, _)) = sized.iter().find(|(size, _)| *size > max) {
        return Err(format!("profile of {size} bytes over the limit"));
    }
    let mut n = 0;
    for (size, p) in sized {
        n += d.ingest_profile(TENANT, &p.labels, p.profile, size, None, now).map_err(|e| e.to_string())?.profiles;
    }
    Ok(n)
}

fn bench_otlp(c: &mut Criterion) {
    let Some(dir) = shared_dir() else { return };
    let Some((req, body)) = otlp_request(&dir) else { return };
    let converted = match otlp::convert_request(&req, common::now_nanos()) {
        Ok(p) if !p.is_empty() => p.len(),
        Ok(_) => {
            eprintln!("notice: otlp: converted to no profiles; skipped");
            return;
        }
        Err(e) => {
            eprintln!("notice: otlp: conversion failed ({e}); skipped");
            return;
        }
    };
    let mut sink = Sink::new();
    match otlp_store(&sink.d, &body) {
        Ok(n) if n == converted => {}
        Ok(n) => {
            eprintln!("notice: otlp: {n} of {converted} profiles stored; skipped");
            return;
        }
        Err(e) => {
            eprintln!("notice: otlp: storing failed ({e}); skipped");
            return;
        }
    }
    eprintln!(
        "ingest_formats: otlp: {:.3} MiB of request protobuf, {converted} profile(s) per request",
        body.len() as f64 / MIB
    );
    let mut g = c.benchmark_group("ingest_formats");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("otlp/convert", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let (converted, t) = CLOCK.time(|| otlp::convert_request(&req, common::now_nanos()));
                took += t;
                std::hint::black_box(converted.ok());
            }
            took
        })
    });
    g.bench_function("otlp/decode_convert_store", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let (stored, t) = CLOCK.time(|| otlp_store(&sink.d, &body));
                took += t;
                std::hint::black_box(stored.ok());
                sink.fed(body.len());
            }
            took
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// One Go CPU capture, five ways

/// The Go SDK's CPU upload (the capture with the most CPU samples): its query, Content-Type,
/// multipart body and the pprof inside it (uncompressed).
struct GoCpu {
    query: Vec<(String, String)>,
    content_type: String,
    body: Vec<u8>,
    pprof: Vec<u8>,
}

fn go_cpu_capture() -> Option<GoCpu> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients/go-sdk");
    let mut best: Option<(usize, GoCpu)> = None;
    for n in 1..=99 {
        let Ok(meta) = std::fs::read(dir.join(format!("req{n:04}.json"))) else { continue };
        let Ok(body) = std::fs::read(dir.join(format!("req{n:04}.body"))) else { continue };
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&meta) else { continue };
        let query: Vec<(String, String)> = meta["query_params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.get(0)?.as_str()?.to_string(), kv.get(1)?.as_str()?.to_string())))
            .collect();
        let content_type = meta["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h.get(0).and_then(|k| k.as_str()).is_some_and(|k| k.eq_ignore_ascii_case("content-type")))
            .and_then(|h| h.get(1)?.as_str())
            .unwrap_or_default()
            .to_string();
        let Ok(boundary) = legacy::multipart::boundary(&content_type) else { continue };
        let Ok(parts) = legacy::multipart::parse(&body, &boundary, 32 << 20) else { continue };
        let Some(part) = parts.iter().find(|p| p.name.as_deref() == Some("profile")) else { continue };
        let pprof = gunzip_if(part.data);
        let Ok(p) = Profile::decode(pprof.as_slice()) else { continue };
        let is_cpu = p.sample_type.iter().any(|t| p.string_table.get(t.r#type as usize).is_some_and(|s| s == "cpu"));
        let samples: usize = p.sample.iter().map(|s| s.value.first().copied().unwrap_or(0).max(0) as usize).sum();
        if is_cpu && best.as_ref().is_none_or(|(b, _)| samples > *b) {
            best = Some((samples, GoCpu { query, content_type, body, pprof }));
        }
    }
    best.map(|(_, c)| c)
}

/// The root-first frame names and sample count of every sample (one entry per pprof sample;
/// inlined frames expanded, as pprof's line order has them leaf-first).
fn stacks_of(p: &Profile) -> Vec<(Vec<String>, u64)> {
    let functions: HashMap<u64, &str> =
        p.function.iter().map(|f| (f.id, p.string_table.get(f.name as usize).map_or("?", |s| s.as_str()))).collect();
    let locations: HashMap<u64, Vec<&str>> = p
        .location
        .iter()
        .map(|l| {
            let names = l.line.iter().rev().map(|line| functions.get(&line.function_id).copied().unwrap_or("?"));
            let mut names: Vec<&str> = names.collect();
            if names.is_empty() {
                names.push("?");
            }
            (l.id, names)
        })
        .collect();
    p.sample
        .iter()
        .filter_map(|s| {
            let count = u64::try_from(s.value.first().copied().unwrap_or(0)).ok().filter(|&c| c > 0)?;
            let frames: Vec<String> = s
                .location_id
                .iter()
                .rev()
                .flat_map(|id| locations.get(id).into_iter().flatten())
                // `;` separates frames and a trailing ` N` is the count: neither may be in a name.
                .map(|name| name.replace(';', ":").replace(' ', "_"))
                .collect();
            (!frames.is_empty()).then_some((frames, count))
        })
        .collect()
}

/// Folded text: `a;b;c N` per distinct stack (clients fold equal stacks), in first-seen order.
fn folded_body(stacks: &[(Vec<String>, u64)]) -> Vec<u8> {
    let mut lines: Vec<(String, u64)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (frames, count) in stacks {
        let stack = frames.join(";");
        match at.get(&stack) {
            Some(&i) => lines[i].1 += count,
            None => {
                at.insert(stack.clone(), lines.len());
                lines.push((stack, *count));
            }
        }
    }
    let mut out = String::new();
    for (stack, count) in lines {
        out.push_str(&format!("{stack} {count}\n"));
    }
    out.into_bytes()
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The OG agents' `tree` layout: a pre-order walk of the call tree, each node
/// `uvarint(len) name uvarint(self) uvarint(children)`, under a virtual root with an empty name.
fn tree_body(stacks: &[(Vec<String>, u64)]) -> Vec<u8> {
    // (name, self value, children by name in first-seen order)
    struct Node {
        name: String,
        value: u64,
        children: Vec<usize>,
    }
    let mut nodes = vec![Node { name: String::new(), value: 0, children: Vec::new() }];
    let mut index: HashMap<(usize, String), usize> = HashMap::new();
    for (frames, count) in stacks {
        let mut at = 0;
        for f in frames {
            at = match index.get(&(at, f.clone())) {
                Some(&child) => child,
                None => {
                    let child = nodes.len();
                    nodes.push(Node { name: f.clone(), value: 0, children: Vec::new() });
                    nodes[at].children.push(child);
                    index.insert((at, f.clone()), child);
                    child
                }
            };
        }
        nodes[at].value += count;
    }
    let mut out = Vec::new();
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        let n = &nodes[i];
        put_uvarint(&mut out, n.name.len() as u64);
        out.extend_from_slice(n.name.as_bytes());
        put_uvarint(&mut out, n.value);
        put_uvarint(&mut out, n.children.len() as u64);
        todo.extend(n.children.iter().rev());
    }
    out
}

/// A speedscope document with one sampled profile: a sample (frame indices, root first) and a
/// weight per pprof sample, unit `none` (counts), as sampling exporters write them unmerged.
fn speedscope_body(stacks: &[(Vec<String>, u64)]) -> Vec<u8> {
    let mut frame_ids: HashMap<&str, usize> = HashMap::new();
    let mut frames: Vec<serde_json::Value> = Vec::new();
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (names, count) in stacks {
        let ids: Vec<usize> = names
            .iter()
            .map(|n| {
                *frame_ids.entry(n.as_str()).or_insert_with(|| {
                    frames.push(serde_json::json!({ "name": n }));
                    frames.len() - 1
                })
            })
            .collect();
        samples.push(ids);
        weights.push(*count);
    }
    let total: u64 = weights.iter().sum();
    let doc = serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": "flamedb bench",
        "name": "go cpu",
        "activeProfileIndex": 0,
        "shared": { "frames": frames },
        "profiles": [{
            "type": "sampled",
            "name": "cpu",
            "unit": "none",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }],
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn bench_go_cpu(c: &mut Criterion) {
    let Some(cap) = go_cpu_capture() else {
        eprintln!("notice: no Go SDK CPU capture in tests/fixtures/clients/go-sdk; go_cpu skipped");
        return;
    };
    let Ok(profile) = Profile::decode(cap.pprof.as_slice()) else { return };
    let stacks = stacks_of(&profile);
    let total: u64 = stacks.iter().map(|(_, c)| c).sum();
    let query: Vec<(&str, &str)> = cap.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let name = cap.query.iter().find(|(k, _)| k == "name").map_or("go.app", |(_, v)| v.as_str()).to_string();
    // The stack formats carry no profile type: the `.cpu` suffix and the SDK's 100 Hz give it.
    let text_name = match name.split_once('{') {
        Some((app, labels)) => format!("{app}.cpu{{{labels}"),
        None => format!("{name}.cpu"),
    };
    let text_query = |format: &'static str| {
        let mut q: Vec<(&str, &str)> = query
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "format" | "sampleRate" | "units" | "aggregationType"))
            .collect();
        q.extend([("format", format), ("sampleRate", "100")]);
        q
    };
    let mut pprof_query: Vec<(&str, &str)> = query.iter().copied().filter(|(k, _)| *k != "format").collect();
    pprof_query.push(("format", "pprof"));
    let inputs = [
        ("pprof_multipart", LegacyRequest::new(&query, &name, Some(&cap.content_type), cap.body.clone())),
        ("pprof_raw", LegacyRequest::new(&pprof_query, &name, None, cap.pprof.clone())),
        ("folded", LegacyRequest::new(&text_query("folded"), &text_name, None, folded_body(&stacks))),
        ("tree", LegacyRequest::new(&text_query("tree"), &text_name, None, tree_body(&stacks))),
        ("speedscope", LegacyRequest::new(&text_query("speedscope"), &text_name, None, speedscope_body(&stacks))),
    ];
    eprintln!(
        "ingest_formats: go_cpu: {} samples ({} distinct pprof samples), bodies: {}",
        total,
        stacks.len(),
        inputs.iter().map(|(n, r)| format!("{n} {} B", r.body.len())).collect::<Vec<_>>().join(", ")
    );
    let mut g = c.benchmark_group("ingest_formats");
    for (n, req) in &inputs {
        bench_legacy(&mut g, &format!("go_cpu/{n}"), std::slice::from_ref(req));
    }
    g.finish();
}

criterion_group!(benches, bench_jfr, bench_otlp, bench_go_cpu);
criterion_main!(benches);
