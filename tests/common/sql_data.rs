//! The dataset behind the worked examples of `docs/sql.md`, pushed to a live server, and the
//! answers those examples must give, computed here from the plain Rust structures (never from the
//! server) so a test can compare.
//!
//! Stable API (the HTTP test `tests/sql_examples.rs` and the Flight SQL test both use it):
//! - [`Dataset::new`] / [`push_dataset`]: three services (`api`, `worker`, `db`) x two versions
//!   (`version` label `1.0`, `1.1`) x two regions (`region` label `eu-west`, `us-east`); CPU
//!   profiles ([`CPU`]) at four and memory profiles ([`MEMORY`]) at two timestamps between 22 and 4
//!   minutes before `now`; stacks share prefixes, `json.Marshal` and `reflect.Value.Field` regress
//!   in `1.1`, `api.authenticate` bursts at the third CPU timestamp, and the request-handling samples of `api`'s CPU profiles carry pprof `span_id`
//!   labels (16 hex digits, as Pyroscope's SDKs send them).
//! - [`doc_examples`]: the ten `### N. Title` + ` ```sql ` examples of `docs/sql.md`.
//! - [`Dataset::expected`]: the rows example N must answer; [`compare_rows`] checks an answer
//!   (HTTP JSON rows, or rows whose timestamps are integer nanoseconds) against them.
//! - [`sql_http`]: `POST /api/v1/sql` with an `Accept` header.

use std::collections::{BTreeMap, BTreeSet};

use flamedb_proto::google::v1::{Label, ValueType};

use super::{Server, build_pprof, connect_proto, intern_string, push_request};

/// The CPU profile type of the dataset.
pub const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// The memory (allocated bytes) profile type of the dataset.
pub const MEMORY: &str = "memory:alloc_space:bytes:space:bytes";
pub const SERVICES: [&str; 3] = ["api", "worker", "db"];
pub const VERSIONS: [&str; 2] = ["1.0", "1.1"];
pub const REGIONS: [&str; 2] = ["eu-west", "us-east"];
/// When the CPU and memory profiles were taken, in minutes before `now`.
const CPU_MINUTES_AGO: [i64; 4] = [22, 16, 10, 4];
const MEMORY_MINUTES_AGO: [i64; 2] = [19, 7];
/// Every profile covers ten seconds, as SDKs upload them.
pub const DURATION_NANOS: i64 = 10_000_000_000;
/// The high bits of every span id; the low bits say which api profile the span is in.
const SPAN_BASE: u64 = 0x3f6a_91c2_0000_0000;

/// One stack of a service's profiles: root-first frames joined by ';', a base value (milliseconds
/// of CPU or KiB), the percentage it takes in version 1.1 relative to 1.0, and whether its samples
/// belong to a traced request.
struct StackDef(&'static str, i64, i64, bool);

/// Each service's stacks.
type StackTable = [(&'static str, &'static [StackDef])];

const CPU_STACKS: [(&str, &[StackDef]); 3] = [
    (
        "api",
        &[
            StackDef("runtime.main;main.main;http.serve;api.handleOrder;json.Marshal", 400, 200, true),
            StackDef(
                "runtime.main;main.main;http.serve;api.handleOrder;json.Marshal;reflect.Value.Field",
                150,
                300,
                true,
            ),
            StackDef("runtime.main;main.main;http.serve;api.handleOrder;sql.Query;net.Write", 250, 100, true),
            StackDef("runtime.main;main.main;http.serve;api.authenticate;sha256.block", 300, 100, true),
            StackDef("runtime.main;main.main;http.serve;net.Read", 100, 100, false),
            StackDef("runtime.goexit;runtime.gcBgMarkWorker;runtime.gcDrain", 200, 100, false),
        ],
    ),
    (
        "worker",
        &[
            StackDef("runtime.main;main.main;worker.run;worker.processJob;gzip.Write", 600, 100, false),
            StackDef("runtime.main;main.main;worker.run;worker.processJob;json.Marshal", 200, 200, false),
            StackDef(
                "runtime.main;main.main;worker.run;worker.processJob;json.Marshal;reflect.Value.Field",
                100,
                300,
                false,
            ),
            StackDef("runtime.main;main.main;worker.run;queue.Poll;net.Read", 150, 100, false),
            StackDef("runtime.goexit;runtime.gcBgMarkWorker;runtime.gcDrain", 250, 100, false),
        ],
    ),
    (
        "db",
        &[
            StackDef("runtime.main;main.main;db.serve;db.execQuery;btree.Search", 500, 80, false),
            StackDef("runtime.main;main.main;db.serve;db.execQuery;wal.Append;syscall.Fsync", 350, 100, false),
            StackDef("runtime.main;main.main;db.serve;net.Read", 200, 100, false),
            StackDef("runtime.goexit;runtime.gcBgMarkWorker;runtime.gcDrain", 100, 100, false),
        ],
    ),
];

const MEMORY_STACKS: [(&str, &[StackDef]); 3] = [
    (
        "api",
        &[
            StackDef(
                "runtime.main;main.main;http.serve;api.handleOrder;json.Marshal;bytes.growSlice",
                4096,
                200,
                false,
            ),
            StackDef("runtime.main;main.main;http.serve;api.handleOrder;sql.Query;sql.scanRows", 2048, 100, false),
            StackDef("runtime.main;main.main;http.serve;bufio.NewReaderSize", 1024, 100, false),
        ],
    ),
    (
        "worker",
        &[
            StackDef("runtime.main;main.main;worker.run;worker.processJob;gzip.NewWriter", 8192, 100, false),
            StackDef(
                "runtime.main;main.main;worker.run;worker.processJob;json.Marshal;bytes.growSlice",
                3072,
                200,
                false,
            ),
        ],
    ),
    (
        "db",
        &[
            StackDef("runtime.main;main.main;db.serve;db.execQuery;btree.newNode", 5120, 100, false),
            StackDef("runtime.main;main.main;db.serve;db.execQuery;wal.Append;bytes.growSlice", 1536, 100, false),
        ],
    ),
];

/// One stack trace of a profile with its value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Function names, root first (as the `samples.stack` column).
    pub stack: Vec<String>,
    pub value: i64,
    /// The pprof `span_id` label, when the sample belongs to a traced request.
    pub span_id: Option<u64>,
}

/// One profile as pushed: one series (its labels) and its samples.
#[derive(Debug, Clone)]
pub struct DataProfile {
    /// [`CPU`] or [`MEMORY`].
    pub profile_type: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    pub region: &'static str,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub samples: Vec<Sample>,
}

impl DataProfile {
    /// The sum of the sample values (the `profiles.total` column).
    pub fn total(&self) -> i64 {
        self.samples.iter().map(|s| s.value).sum()
    }

    /// The series labels it is pushed with.
    pub fn labels(&self) -> Vec<(&'static str, &'static str)> {
        let name = if self.profile_type == CPU { "process_cpu" } else { "memory" };
        vec![("__name__", name), ("service_name", self.service), ("version", self.version), ("region", self.region)]
    }

    /// The pprof: one sample type (`cpu`/`nanoseconds` or `alloc_space`/`bytes`, period type
    /// `space`/`bytes` for memory, so the ids are those of Go's SDK), `span_id` sample labels.
    pub fn pprof(&self) -> flamedb_proto::google::v1::Profile {
        let (sample_type, period_type) = if self.profile_type == CPU {
            (("cpu", "nanoseconds"), "cpu")
        } else {
            (("alloc_space", "bytes"), "space")
        };
        let frames: Vec<Vec<&str>> =
            self.samples.iter().map(|s| s.stack.iter().map(String::as_str).collect()).collect();
        let stacks: Vec<(&[&str], i64)> =
            frames.iter().zip(&self.samples).map(|(f, s)| (f.as_slice(), s.value)).collect();
        let mut p = build_pprof(sample_type, &stacks, self.time_nanos);
        p.duration_nanos = self.duration_nanos;
        let mut intern = |s: &str| intern_string(&mut p, s);
        let period = ValueType { r#type: intern(period_type), unit: intern(sample_type.1) };
        let span_key = intern("span_id");
        let span_labels: Vec<Option<Label>> = self
            .samples
            .iter()
            .map(|s| {
                s.span_id.map(|id| Label { key: span_key, str: intern(&format!("{id:016x}")), ..Default::default() })
            })
            .collect();
        p.period_type = Some(period);
        for (sample, label) in p.sample.iter_mut().zip(span_labels) {
            sample.label.extend(label);
        }
        p
    }
}

/// Every profile the examples run over.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The `now` the timestamps are relative to (whole milliseconds).
    pub now_nanos: i64,
    pub profiles: Vec<DataProfile>,
}

/// A deterministic wobble so that no two profiles (and no two sums the examples sort by) tie.
fn jitter(t: usize, s: usize, v: usize, r: usize, svc: usize) -> i64 {
    ((t * 7 + s * 3 + v * 5 + r * 11 + svc * 13) % 17) as i64 + 1
}

impl Dataset {
    /// The dataset with timestamps relative to `now_nanos`.
    pub fn new(now_nanos: i64) -> Dataset {
        let now = now_nanos - now_nanos.rem_euclid(1_000_000);
        let mut profiles = Vec::new();
        let kinds: [(&'static str, &StackTable, &[i64]); 2] =
            [(CPU, &CPU_STACKS, &CPU_MINUTES_AGO), (MEMORY, &MEMORY_STACKS, &MEMORY_MINUTES_AGO)];
        for (profile_type, stacks, minutes) in kinds {
            for (ti, ago) in minutes.iter().enumerate() {
                for (si, (service, defs)) in stacks.iter().enumerate() {
                    for (vi, version) in VERSIONS.iter().enumerate() {
                        for (ri, region) in REGIONS.iter().enumerate() {
                            // us-east serves half again as much traffic as eu-west.
                            let region_pct = if ri == 0 { 100 } else { 150 };
                            // Each instance uploads a few seconds apart from the others.
                            let offset = (si * 4 + vi * 2 + ri) as i64 * 1_000_000_000 + 137_000_000;
                            let time_nanos = now - ago * 60_000_000_000 + offset;
                            let span = SPAN_BASE | ((ti as u64) << 8) | ((vi as u64) << 4) | ri as u64;
                            let samples = defs
                                .iter()
                                .enumerate()
                                .map(|(k, d)| {
                                    let mut pct = if vi == 1 { d.2 } else { 100 };
                                    // A login burst at the third CPU timestamp: authentication
                                    // takes four times its usual CPU in api (a spike per minute,
                                    // spans whose hottest function is sha256.block).
                                    if profile_type == CPU && ti == 2 && d.0.contains("api.authenticate") {
                                        pct *= 4;
                                    }
                                    let wobble = jitter(ti, k, vi, ri, si);
                                    let value = if profile_type == CPU {
                                        // nanoseconds: ms * 1e6 * pct/100 * region/100, plus 10 ms steps
                                        d.1 * 100 * pct * region_pct + wobble * 10_000_000
                                    } else {
                                        // bytes: KiB * 1024 * pct/100 * region/100, plus 4 KiB steps
                                        d.1 * 1024 * pct * region_pct / 10_000 + wobble * 4096
                                    };
                                    Sample {
                                        stack: d.0.split(';').map(str::to_string).collect(),
                                        value,
                                        span_id: d.3.then_some(span),
                                    }
                                })
                                .collect();
                            profiles.push(DataProfile {
                                profile_type,
                                service,
                                version,
                                region,
                                time_nanos,
                                duration_nanos: DURATION_NANOS,
                                samples,
                            });
                        }
                    }
                }
            }
        }
        Dataset { now_nanos: now, profiles }
    }
}

/// Pushes a fresh [`Dataset`] (timestamps relative to the current time) to `server` through
/// `push.v1.PusherService/Push`, one request per profile, as `tenant` (no `X-Scope-OrgID` when
/// `None`). Panics when a push is refused. Returns the dataset for computing expectations.
pub async fn push_dataset(server: &Server, tenant: Option<&str>) -> Dataset {
    let data = Dataset::new(super::now_nanos());
    let client = reqwest::Client::new();
    for p in &data.profiles {
        let req = push_request(&p.labels(), &p.pprof());
        let (status, body) = connect_proto(&client, &server.url, "/push.v1.PusherService/Push", tenant, &req).await;
        assert_eq!(status, 200, "push of {} {} {}: {}", p.service, p.version, p.region, String::from_utf8_lossy(&body));
    }
    data
}

/// One worked example of `docs/sql.md`.
#[derive(Debug, Clone)]
pub struct Example {
    /// 1 to 10, as numbered in the document.
    pub number: u32,
    pub title: String,
    /// The statement, as the ` ```sql ` block holds it.
    pub sql: String,
}

/// The path of the SQL guide.
pub fn doc_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/sql.md")
}

/// The worked examples of `docs/sql.md`: each `### N. Title` heading followed by exactly one
/// ` ```sql ` block before the next heading. Panics unless there are exactly ten, numbered 1..=10
/// in order, each with its statement.
pub fn doc_examples() -> Vec<Example> {
    let path = doc_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_examples(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// [`doc_examples`] over a document's text.
pub fn parse_examples(text: &str) -> Result<Vec<Example>, String> {
    let mut out: Vec<Example> = Vec::new();
    let mut current: Option<(u32, String, Vec<String>)> = None;
    let mut in_sql: Option<Vec<String>> = None;
    let finish = |cur: Option<(u32, String, Vec<String>)>, out: &mut Vec<Example>| -> Result<(), String> {
        if let Some((number, title, blocks)) = cur {
            match blocks.as_slice() {
                [sql] => out.push(Example { number, title, sql: sql.clone() }),
                _ => return Err(format!("example {number} has {} sql blocks, want one", blocks.len())),
            }
        }
        Ok(())
    };
    for line in text.lines() {
        if let Some(block) = in_sql.as_mut() {
            if line.trim_end() == "```" {
                let sql = block.join("\n").trim().to_string();
                in_sql = None;
                if let Some(cur) = current.as_mut() {
                    cur.2.push(sql);
                }
            } else {
                block.push(line.to_string());
            }
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            finish(current.take(), &mut out)?;
        }
        if let Some(rest) = line.strip_prefix("### ")
            && let Some((n, title)) = rest.split_once(". ")
            && let Ok(number) = n.trim().parse::<u32>()
        {
            current = Some((number, title.trim().to_string(), Vec::new()));
        } else if line.trim_end() == "```sql" {
            in_sql = Some(Vec::new());
        }
    }
    if in_sql.is_some() {
        return Err("unterminated ```sql block".into());
    }
    finish(current.take(), &mut out)?;
    let numbers: Vec<u32> = out.iter().map(|e| e.number).collect();
    if numbers != (1..=10).collect::<Vec<u32>>() {
        return Err(format!("want examples numbered 1..=10 in order, found {numbers:?}"));
    }
    Ok(out)
}

/// One expected cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Str(String),
    Int(i64),
    /// A float computed independently: equal within a relative 1e-9.
    Float(f64),
    /// A value SQL rounds to `decimals` places, given unrounded: the answer must be it rounded
    /// (or, when it lies within 1e-6 of a half unit, rounded the other way).
    Rounded(f64, i32),
    /// A timestamp: an RFC 3339 string in HTTP JSON, or integer nanoseconds.
    Time(i64),
    Null,
}

/// One expected row: (column name, value) in the statement's column order.
pub type Row = Vec<(&'static str, Cell)>;

fn round(v: f64, decimals: i32) -> Cell {
    Cell::Rounded(v, decimals)
}

/// Whether `got` is `raw` rounded to `decimals` places.
fn rounds_to(raw: f64, decimals: i32, got: f64) -> bool {
    let m = 10f64.powi(decimals);
    let close = |x: f64| (got - x).abs() <= 1e-9 * x.abs().max(1.0);
    let scaled = raw * m;
    let near_half = (scaled - scaled.floor() - 0.5).abs() < 1e-6;
    close(scaled.round() / m) || (near_half && (close(scaled.floor() / m) || close(scaled.ceil() / m)))
}

fn cell_matches(want: &Cell, got: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (want, got) {
        (Cell::Null, Value::Null) => true,
        (Cell::Str(w), Value::String(g)) => w == g,
        (Cell::Int(w), Value::Number(g)) => g.as_i64() == Some(*w),
        (Cell::Float(w), Value::Number(g)) => g.as_f64().is_some_and(|g| (g - w).abs() <= 1e-9 * w.abs().max(1.0)),
        (Cell::Rounded(w, d), Value::Number(g)) => g.as_f64().is_some_and(|g| rounds_to(*w, *d, g)),
        (Cell::Time(w), Value::String(g)) => {
            arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(g).ok() == Some(*w)
        }
        (Cell::Time(w), Value::Number(g)) => g.as_i64() == Some(*w),
        _ => false,
    }
}

/// Compares an answer (a JSON array of row objects, as `POST /api/v1/sql` writes it) with the
/// expected rows: same number of rows in the same order, each with exactly the expected columns.
pub fn compare_rows(got: &serde_json::Value, want: &[Row]) -> Result<(), String> {
    let rows = got.as_array().ok_or_else(|| format!("answer is not a JSON array: {got}"))?;
    let mut errs = Vec::new();
    if rows.len() != want.len() {
        errs.push(format!("{} rows, want {}", rows.len(), want.len()));
    }
    for (i, (g, w)) in rows.iter().zip(want).enumerate() {
        let Some(obj) = g.as_object() else {
            errs.push(format!("row {i} is not an object: {g}"));
            continue;
        };
        let want_cols: BTreeSet<&str> = w.iter().map(|(c, _)| *c).collect();
        let got_cols: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        if want_cols != got_cols {
            errs.push(format!("row {i}: columns {got_cols:?}, want {want_cols:?}"));
        }
        for (col, cell) in w {
            let v = obj.get(*col).unwrap_or(&serde_json::Value::Null);
            if !cell_matches(cell, v) {
                errs.push(format!("row {i} column {col}: got {v}, want {cell:?}"));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(format!("{}\ngot: {got}", errs.join("\n"))) }
}

/// `POST {url}/api/v1/sql` with the statement as the body, `accept` as `Accept` and `tenant` as
/// `X-Scope-OrgID`; returns (status, Content-Type, body).
pub async fn sql_http(
    client: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    accept: &str,
    sql: &str,
) -> (u16, String, bytes::Bytes) {
    let mut req =
        client.post(format!("{url}/api/v1/sql")).header("Accept", accept).header("Content-Type", "text/plain");
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.body(sql.to_string()).send().await.expect("send");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, resp.bytes().await.expect("body"))
}

/// Expectations, one function per example, computed from the dataset alone.
impl Dataset {
    /// The rows example `number` of `docs/sql.md` answers over this dataset (all of it lies within
    /// the examples' last-hour window). Panics for a number outside 1..=10.
    pub fn expected(&self, number: u32) -> Vec<Row> {
        match number {
            1 => self.ex01_inventory(),
            2 => self.ex02_cpu_per_service(),
            3 => self.ex03_cost_by_region(),
            4 => self.ex04_top_self(),
            5 => self.ex05_inclusive(),
            6 => self.ex06_regression(),
            7 => self.ex07_flamegraph(),
            8 => self.ex08_per_minute(),
            9 => self.ex09_memory_paths(),
            10 => self.ex10_spans(),
            n => panic!("no example {n}"),
        }
    }

    fn of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a DataProfile> + 'a {
        self.profiles.iter().filter(move |p| p.profile_type == t)
    }

    fn samples_of<'a>(&'a self, t: &'a str) -> impl Iterator<Item = (&'a DataProfile, &'a Sample)> + 'a {
        self.of_type(t).flat_map(|p| p.samples.iter().map(move |s| (p, s)))
    }

    fn ex01_inventory(&self) -> Vec<Row> {
        // (profile_type, service) -> (count, first, last)
        let mut m: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
        for p in &self.profiles {
            let e = m.entry((p.profile_type, p.service)).or_insert((0, i64::MAX, i64::MIN));
            e.0 += 1;
            e.1 = e.1.min(p.time_nanos);
            e.2 = e.2.max(p.time_nanos);
        }
        m.into_iter()
            .map(|((t, s), (n, first, last))| {
                vec![
                    ("profile_type", Cell::Str(t.into())),
                    ("service_name", Cell::Str(s.into())),
                    ("profiles", Cell::Int(n)),
                    ("first_seen", Cell::Time(first)),
                    ("last_seen", Cell::Time(last)),
                ]
            })
            .collect()
    }

    fn ex02_cpu_per_service(&self) -> Vec<Row> {
        let mut m: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for p in self.of_type(CPU) {
            let e = m.entry(p.service).or_default();
            e.0 += p.total();
            e.1 += p.duration_nanos;
        }
        let mut v: Vec<(&str, (i64, i64))> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        v.into_iter()
            .map(|(s, (cpu, dur))| {
                vec![
                    ("service_name", Cell::Str(s.into())),
                    ("cpu_seconds", Cell::Float(cpu as f64 / 1e9)),
                    ("avg_cores", Cell::Float(cpu as f64 / dur as f64)),
                ]
            })
            .collect()
    }

    fn ex03_cost_by_region(&self) -> Vec<Row> {
        let mut m: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for p in self.of_type(CPU) {
            *m.entry((p.region, p.service)).or_default() += p.total();
        }
        let all: i64 = m.values().sum();
        let mut v: Vec<((&str, &str), i64)> = m.into_iter().collect();
        v.sort_by(|a, b| a.0.0.cmp(b.0.0).then(b.1.cmp(&a.1)).then(a.0.1.cmp(b.0.1)));
        v.into_iter()
            .map(|((r, s), cpu)| {
                vec![
                    ("region", Cell::Str(r.into())),
                    ("service_name", Cell::Str(s.into())),
                    ("cpu_seconds", Cell::Float(cpu as f64 / 1e9)),
                    ("pct_of_all", round(100.0 * cpu as f64 / all as f64, 1)),
                ]
            })
            .collect()
    }

    fn ex04_top_self(&self) -> Vec<Row> {
        let mut m: BTreeMap<&str, (i64, BTreeSet<&str>)> = BTreeMap::new();
        for (p, s) in self.samples_of(CPU) {
            let leaf = s.stack.last().map(String::as_str).unwrap_or("");
            let e = m.entry(leaf).or_default();
            e.0 += s.value;
            e.1.insert(p.service);
        }
        let mut v: Vec<(&str, (i64, BTreeSet<&str>))> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(10)
            .map(|(f, (ns, services))| {
                vec![
                    ("function", Cell::Str(f.into())),
                    ("self_ns", Cell::Int(ns)),
                    ("services", Cell::Int(services.len() as i64)),
                ]
            })
            .collect()
    }

    fn ex05_inclusive(&self) -> Vec<Row> {
        const F: &str = "json.Marshal";
        // service -> (inclusive, self, all)
        let mut m: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for (p, s) in self.samples_of(CPU) {
            let e = m.entry(p.service).or_default();
            if s.stack.iter().any(|f| f == F) {
                e.0 += s.value;
            }
            if s.stack.last().is_some_and(|f| f == F) {
                e.1 += s.value;
            }
            e.2 += s.value;
        }
        let mut v: Vec<(&str, (i64, i64, i64))> = m.into_iter().filter(|(_, e)| e.0 > 0).collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        v.into_iter()
            .map(|(s, (inc, slf, all))| {
                vec![
                    ("service_name", Cell::Str(s.into())),
                    ("inclusive_ns", Cell::Int(inc)),
                    ("self_ns", Cell::Int(slf)),
                    ("pct_of_service", round(100.0 * inc as f64 / all as f64, 2)),
                ]
            })
            .collect()
    }

    fn ex06_regression(&self) -> Vec<Row> {
        let mut m: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (p, s) in self.samples_of(CPU) {
            let leaf = s.stack.last().map(String::as_str).unwrap_or("");
            let e = m.entry(leaf).or_default();
            match p.version {
                "1.0" => e.0 += s.value,
                "1.1" => e.1 += s.value,
                _ => {}
            }
        }
        let mut v: Vec<(&str, (i64, i64))> = m.into_iter().collect();
        v.sort_by(|a, b| (b.1.1 - b.1.0).cmp(&(a.1.1 - a.1.0)).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(5)
            .map(|(f, (old, new))| {
                vec![
                    ("function", Cell::Str(f.into())),
                    ("v1_0_ns", Cell::Int(old)),
                    ("v1_1_ns", Cell::Int(new)),
                    ("delta_ns", Cell::Int(new - old)),
                    (
                        "delta_pct",
                        if old == 0 { Cell::Null } else { round(100.0 * (new - old) as f64 / old as f64, 1) },
                    ),
                ]
            })
            .collect()
    }

    fn ex07_flamegraph(&self) -> Vec<Row> {
        // service -> (root-first path -> self value)
        let mut m: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        for (p, s) in self.samples_of(CPU) {
            if p.version == "1.1" {
                *m.entry(p.service).or_default().entry(s.stack.join(";")).or_default() += s.value;
            }
        }
        m.into_iter()
            .map(|(svc, selfs)| {
                let total: i64 = selfs.values().sum();
                let mut lines: Vec<String> =
                    selfs.iter().filter(|(_, v)| **v > 0).map(|(path, v)| format!("{path} {v}")).collect();
                lines.sort();
                vec![
                    ("service_name", Cell::Str(svc.into())),
                    ("total", Cell::Int(total)),
                    ("folded", Cell::Str(lines.join("\n"))),
                ]
            })
            .collect()
    }

    fn ex08_per_minute(&self) -> Vec<Row> {
        let mut m: BTreeMap<(i64, &str), i64> = BTreeMap::new();
        for p in self.of_type(CPU) {
            let minute = p.time_nanos - p.time_nanos.rem_euclid(60_000_000_000);
            *m.entry((minute, p.service)).or_default() += p.total();
        }
        m.into_iter()
            .map(|((minute, svc), cpu)| {
                vec![
                    ("minute", Cell::Time(minute)),
                    ("service_name", Cell::Str(svc.into())),
                    ("cpu_seconds", Cell::Float(cpu as f64 / 1e9)),
                ]
            })
            .collect()
    }

    fn ex09_memory_paths(&self) -> Vec<Row> {
        let mut m: BTreeMap<String, (i64, BTreeSet<&str>)> = BTreeMap::new();
        for (p, s) in self.samples_of(MEMORY) {
            let e = m.entry(s.stack.join(";")).or_default();
            e.0 += s.value;
            e.1.insert(p.service);
        }
        let mut v: Vec<(String, (i64, BTreeSet<&str>))> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(5)
            .map(|(path, (bytes, services))| {
                vec![
                    ("call_path", Cell::Str(path)),
                    ("bytes", Cell::Int(bytes)),
                    ("mib", round(bytes as f64 / 1_048_576.0, 1)),
                    ("services", Cell::Int(services.len() as i64)),
                ]
            })
            .collect()
    }

    fn ex10_spans(&self) -> Vec<Row> {
        /// One span's samples.
        #[derive(Default)]
        struct Span<'a> {
            rows: i64,
            sum: i64,
            /// (value, leaf) of each sample
            leaves: Vec<(i64, &'a str)>,
        }
        let mut m: BTreeMap<u64, Span> = BTreeMap::new();
        for (p, s) in self.samples_of(CPU) {
            let Some(span) = s.span_id.filter(|_| p.service == "api") else { continue };
            let e = m.entry(span).or_default();
            e.rows += 1;
            e.sum += s.value;
            e.leaves.push((s.value, s.stack.last().map(String::as_str).unwrap_or("")));
        }
        let mut v: Vec<(String, Span)> = m.into_iter().map(|(span, e)| (format!("{span:016x}"), e)).collect();
        v.sort_by(|a, b| b.1.sum.cmp(&a.1.sum).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(5)
            .map(|(span, mut e)| {
                // first_value(leaf ORDER BY value DESC, leaf)
                e.leaves.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
                let hottest = e.leaves.first().map(|l| l.1).unwrap_or("");
                vec![
                    ("span", Cell::Str(span)),
                    ("stacks", Cell::Int(e.rows)),
                    ("cpu_ns", Cell::Int(e.sum)),
                    ("hottest_function", Cell::Str(hottest.into())),
                ]
            })
            .collect()
    }
}
