//! `flamedb export` end to end: the real binary pulls a selection over Arrow Flight into a Parquet
//! file, which is read back here with the `parquet` crate and compared with the query API's flame
//! graph of the same selection and with the stacks that were pushed (an expectation written out
//! independently of the server). Also: tenancy, a refused selector, and an export large enough to
//! span several record batches and row groups.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, TimeUnit};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const MEM: &str = "memory:alloc_space:bytes:alloc_space:bytes";
const MINUTE: i64 = 60_000_000_000;

// alpha / api / cpu, in range: the same stacks recur across profiles and series, so values add up.
const API_1: &[(&[&str], i64)] = &[(&["main", "serve", "parse"], 40), (&["main", "serve", "render"], 25)];
const API_2: &[(&[&str], i64)] = &[(&["main", "serve", "parse"], 10), (&["main", "gc"], 7)];
const API_3: &[(&[&str], i64)] = &[(&["main", "serve", "render"], 5), (&["main", "serve"], 3), (&["main"], 1)];
// alpha, not selected: api's old profile (outside the range), api's memory, worker's cpu.
const API_OLD: &[(&[&str], i64)] = &[(&["main", "old_code"], 1000)];
const API_MEM: &[(&[&str], i64)] = &[(&["main", "alloc_buffers"], 4096)];
const WORKER: &[(&[&str], i64)] = &[(&["run", "worker_loop"], 300)];
// beta / api / cpu.
const BETA: &[(&[&str], i64)] = &[(&["beta_main", "beta_handler"], 77), (&["beta_main"], 2)];

struct Setup {
    server: Server,
    client: reqwest::Client,
    /// The exported range, Unix ms.
    start: i64,
    end: i64,
    dir: tempfile::TempDir,
}

async fn push(
    s: &Server,
    c: &reqwest::Client,
    tenant: &str,
    labels: &[(&str, &str)],
    p: &flamedb_proto::google::v1::Profile,
) {
    let (st, body) =
        connect_proto(c, &s.url, "/push.v1.PusherService/Push", Some(tenant), &push_request(labels, p)).await;
    assert_eq!(st, 200, "{body:?}");
}

async fn setup() -> Setup {
    // The old profile is three hours old: widen the ingestion window (1h by default) to take it.
    let server = Server::start(&["-auth.multitenancy-enabled", "-validation.reject-older-than=6h"]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let cpu = ("cpu", "nanoseconds");
    let api_eu = [("__name__", "process_cpu"), ("service_name", "api"), ("region", "eu")];
    let api_us = [("__name__", "process_cpu"), ("service_name", "api"), ("region", "us")];
    let (c, s) = (&client, &server);
    push(s, c, "alpha", &api_eu, &build_pprof(cpu, API_1, now - 30 * MINUTE)).await;
    push(s, c, "alpha", &api_us, &build_pprof(cpu, API_2, now - 20 * MINUTE)).await;
    push(s, c, "alpha", &api_eu, &build_pprof(cpu, API_3, now - 10 * MINUTE)).await;
    push(s, c, "alpha", &api_eu, &build_pprof(cpu, API_OLD, now - 180 * MINUTE)).await;
    let mem = build_pprof(("alloc_space", "bytes"), API_MEM, now - 20 * MINUTE);
    push(s, c, "alpha", &[("__name__", "memory"), ("service_name", "api")], &mem).await;
    let worker = [("__name__", "process_cpu"), ("service_name", "worker")];
    push(s, c, "alpha", &worker, &build_pprof(cpu, WORKER, now - 30 * MINUTE)).await;
    push(s, c, "alpha", &worker, &build_pprof(cpu, WORKER, now - 10 * MINUTE)).await;
    push(s, c, "beta", &api_eu, &build_pprof(cpu, BETA, now - 15 * MINUTE)).await;
    let (start, end) = ((now - 60 * MINUTE) / 1_000_000, (now + MINUTE) / 1_000_000);
    Setup { server, client, start, end, dir: tempfile::tempdir().expect("tempdir") }
}

impl Setup {
    /// Runs `flamedb export` against the server with `args` after the address.
    fn export(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_flamedb"))
            .arg("export")
            .arg(format!("-addr={}", self.server.url))
            .args(args)
            .output()
            .expect("run flamedb export");
        eprintln!("export {args:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        out
    }

    /// The query API's flame graph of a selection over the exported range.
    async fn flamegraph(&self, tenant: &str, type_id: &str, selector: &str) -> (Tree, i64) {
        let range = (self.start, self.end);
        select_flamegraph(&self.client, &self.server.url, Some(tenant), type_id, selector, range, None).await
    }
}

/// The rows of an exported Parquet file, read back with the `parquet` crate.
#[derive(Default, Debug)]
struct Rows {
    time_nanos: Vec<i64>,
    profile_type: Vec<String>,
    service_name: Vec<String>,
    stack: Vec<Vec<String>>,
    value: Vec<i64>,
}

impl Rows {
    fn total(&self) -> i64 {
        self.value.iter().sum()
    }

    /// {root-first stack joined with ';': summed value}.
    fn folded(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for (s, v) in self.stack.iter().zip(&self.value) {
            *m.entry(s.join(";")).or_insert(0) += v;
        }
        m
    }

    /// {path: cumulative value}, the shape `json_flamegraph_tree` returns.
    fn tree(&self) -> Tree {
        let mut t = Tree::new();
        for (s, v) in self.stack.iter().zip(&self.value) {
            add_stack(&mut t, s, *v);
        }
        t
    }
}

struct ParquetFile {
    rows: Rows,
    row_groups: usize,
    compressions: Vec<Compression>,
    metadata: BTreeMap<String, String>,
}

fn read_parquet(path: &Path) -> ParquetFile {
    let file = std::fs::File::open(path).expect("open the exported file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file");
    let meta = builder.metadata().clone();
    let compressions = meta.row_groups().iter().flat_map(|g| g.columns().iter().map(|c| c.compression())).collect();
    let metadata = meta
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let mut rows = Rows::default();
    for batch in builder.build().expect("reader") {
        append(&mut rows, &batch.expect("batch"));
    }
    ParquetFile { rows, row_groups: meta.num_row_groups(), compressions, metadata }
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> arrow::array::ArrayRef {
    let c = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
    cast(c, to).unwrap_or_else(|e| panic!("column {name} ({}) as {to}: {e}", c.data_type()))
}

fn append(rows: &mut Rows, batch: &RecordBatch) {
    let strings = |name: &str| -> Vec<String> {
        let c = column(batch, name, &DataType::Utf8);
        let a = c.as_string::<i32>();
        (0..a.len()).map(|i| a.value(i).to_string()).collect()
    };
    rows.profile_type.extend(strings("profile_type"));
    rows.service_name.extend(strings("service_name"));
    let value = column(batch, "value", &DataType::Int64);
    rows.value.extend(value.as_primitive::<Int64Type>().values().iter().copied());
    let time = column(batch, "time", &DataType::Timestamp(TimeUnit::Nanosecond, None));
    let time = cast(&time, &DataType::Int64).expect("time as i64");
    rows.time_nanos.extend(time.as_primitive::<Int64Type>().values().iter().copied());
    let stack = column(batch, "stack", &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))));
    let list = stack.as_list::<i32>();
    for i in 0..list.len() {
        let frames = list.value(i);
        let frames = frames.as_string::<i32>();
        rows.stack.push((0..frames.len()).map(|j| frames.value(j).to_string()).collect());
    }
    for name in ["labels", "span_id"] {
        assert!(batch.column_by_name(name).is_some(), "column {name} missing from {:?}", batch.schema());
    }
}

fn folded(stacks: &[&[(&[&str], i64)]]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for (frames, v) in stacks.iter().flat_map(|s| s.iter()) {
        *m.entry(frames.join(";")).or_insert(0) += v;
    }
    m
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn total(stacks: &[&[(&[&str], i64)]]) -> i64 {
    stacks.iter().flat_map(|s| s.iter()).map(|(_, v)| v).sum()
}

#[tokio::test]
async fn export_round_trips_to_the_query_api() {
    let s = setup().await;
    let out = s.dir.path().join("api.parquet");
    let from = rfc3339(s.start);
    let to = s.end.to_string();
    let output = format!("-output={}", out.display());
    let sel = "{service_name=\"api\"}";
    let r = s.export(&[
        "-tenant=alpha",
        &format!("-profile-type={CPU}"),
        "-selector",
        sel,
        "-from",
        &from,
        "--to",
        &to,
        &output,
    ]);
    assert!(r.status.success(), "export failed: {}", String::from_utf8_lossy(&r.stderr));
    assert!(!Path::new(&format!("{}.tmp", out.display())).exists(), "the temporary file was renamed");

    let file = read_parquet(&out);
    let rows = &file.rows;
    assert!(!rows.value.is_empty(), "rows were exported");
    assert!(rows.profile_type.iter().all(|t| t == CPU), "{:?}", rows.profile_type);
    assert!(rows.service_name.iter().all(|n| n == "api"), "{:?}", rows.service_name);
    let (lo, hi) = (s.start * 1_000_000, s.end * 1_000_000);
    assert!(rows.time_nanos.iter().all(|t| (lo..=hi).contains(t)), "{:?}", rows.time_nanos);

    // Independent expectation: what was pushed for alpha/api/cpu inside the range.
    let pushed = [API_1, API_2, API_3];
    assert_eq!(rows.folded(), folded(&pushed), "value per stack");
    assert_eq!(rows.total(), total(&pushed));

    // The query API over the same selection.
    let (tree, api_total) = s.flamegraph("alpha", CPU, sel).await;
    assert_eq!(rows.tree(), tree, "the flame graph of the export equals the query API's");
    assert_eq!(rows.total(), api_total);

    // zstd pages, and the file says what it holds.
    assert!(!file.compressions.is_empty());
    assert!(file.compressions.iter().all(|c| matches!(c, Compression::ZSTD(_))), "{:?}", file.compressions);
    let ticket: serde_json::Value =
        serde_json::from_str(file.metadata.get("flamedb.export").map(String::as_str).unwrap_or("null")).expect("json");
    assert_eq!(ticket["profile_type"], CPU);
    assert_eq!(ticket["label_selector"], sel);

    // The other profile type of the same service.
    let mem_out = s.dir.path().join("mem.parquet");
    let mem_args =
        [format!("-profile-type={MEM}"), format!("-from={}", s.start), format!("-output={}", mem_out.display())];
    let r2 = s.export(&["-tenant=alpha", "-selector={service_name=\"api\"}", &mem_args[0], &mem_args[1], &mem_args[2]]);
    assert!(r2.status.success(), "{}", String::from_utf8_lossy(&r2.stderr));
    let mem = read_parquet(&mem_out).rows;
    assert_eq!(mem.folded(), folded(&[API_MEM]));
    assert!(mem.profile_type.iter().all(|t| t == MEM));

    // stderr is not a terminal here: no progress bar, one summary line.
    let stderr = String::from_utf8_lossy(&r.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let summary = format!("exported {} rows", rows.value.len());
    assert!(lines[0].starts_with(&summary) && lines[0].ends_with(&out.display().to_string()), "{stderr}");
}

#[tokio::test]
async fn export_reads_only_the_callers_tenant() {
    let s = setup().await;
    let out = s.dir.path().join("beta.parquet");
    let (from, to) = (s.start.to_string(), s.end.to_string());
    let output = format!("-output={}", out.display());
    let profile_type = format!("-profile-type={CPU}");
    let r = s.export(&["-tenant=beta", &profile_type, "-from", &from, "-to", &to, &output]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rows = read_parquet(&out).rows;
    assert_eq!(rows.folded(), folded(&[BETA]), "beta's samples and nothing of alpha's");
    assert_eq!(rows.total(), s.flamegraph("beta", CPU, "{}").await.1);

    // Tenant x has no data: an empty but valid file with the export's columns.
    let empty = s.dir.path().join("x.parquet");
    let r =
        s.export(&["-tenant=x", &profile_type, "-from", &from, "-to", &to, &format!("-output={}", empty.display())]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(read_parquet(&empty).rows.value.is_empty());

    // No tenant at all on a multi-tenant server: refused, nothing written.
    let none = s.dir.path().join("none.parquet");
    let r = s.export(&[&profile_type, "-from", &from, "-to", &to, &format!("-output={}", none.display())]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("tenant"), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!none.exists() && !Path::new(&format!("{}.tmp", none.display())).exists());
}

#[tokio::test]
async fn a_bad_selector_fails_with_the_servers_message_and_writes_nothing() {
    let s = setup().await;
    let out = s.dir.path().join("bad.parquet");
    let output = format!("-output={}", out.display());
    let r = s.export(&["-tenant=alpha", &format!("-profile-type={CPU}"), "-selector={service_name=", &output]);
    assert_eq!(r.status.code(), Some(1), "a failed export exits 1");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.starts_with("flamedb export: ") && stderr.contains("InvalidArgument"), "{stderr}");
    assert!(stderr.contains("label_selector"), "the server's message is shown: {stderr}");
    assert!(!out.exists() && !Path::new(&format!("{}.tmp", out.display())).exists(), "no file left behind");

    // A usage error is clap's: exit 2, and -h prints the help.
    let r = s.export(&["-output=x.parquet"]);
    assert_eq!(r.status.code(), Some(2));
    let r = s.export(&["-h"]);
    assert!(r.status.success() && String::from_utf8_lossy(&r.stdout).contains("-profile-type"));
}

#[tokio::test]
async fn a_large_export_spans_batches_and_row_groups() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let names: Vec<String> = (0..20_000).map(|i| format!("fn_{i:05}")).collect();
    let stacks: Vec<(Vec<&str>, i64)> =
        names.iter().enumerate().map(|(i, n)| (vec!["root", n.as_str()], 1 + i as i64 % 7)).collect();
    let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|(f, v)| (f.as_slice(), *v)).collect();
    let now = now_nanos();
    // Two profiles of 10 000 stacks each (16 000 samples is the per-profile limit).
    for (i, half) in stacks.chunks(10_000).enumerate() {
        let p = build_pprof(("cpu", "nanoseconds"), half, now - (i as i64 + 1) * MINUTE);
        let req = push_request(&[("__name__", "process_cpu"), ("service_name", "bulk")], &p);
        let (st, body) = connect_proto(&client, &server.url, "/push.v1.PusherService/Push", None, &req).await;
        assert_eq!(st, 200, "{body:?}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bulk.parquet");
    let r = Command::new(env!("CARGO_BIN_EXE_flamedb"))
        .args(["export", &format!("-addr={}", server.url), &format!("-profile-type={CPU}"), "-from=now-10m"])
        .args(["-row-group-rows=4096", &format!("-output={}", out.display())])
        .output()
        .expect("run flamedb export");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let file = read_parquet(&out);
    assert_eq!(file.rows.value.len(), stacks.len());
    assert_eq!(file.row_groups, stacks.len().div_ceil(4096), "row groups of at most -row-group-rows rows");
    let mut expected = BTreeMap::new();
    for (frames, v) in &stacks {
        expected.insert(frames.join(";"), *v);
    }
    assert_eq!(file.rows.folded(), expected);
    let range = ((now - 10 * MINUTE) / 1_000_000, now / 1_000_000 + 60_000);
    let (_, api_total) = select_flamegraph(&client, &server.url, None, CPU, "{}", range, None).await;
    assert_eq!(file.rows.total(), api_total, "the query API's total");
}

/// Export throughput over a debug build (numbers for the note, not a gate): 30 profiles of 10 000
/// depth-12 stacks. Run with `cargo test --workspace --test export -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run on demand"]
async fn export_throughput() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let vocabulary: Vec<String> = (0..2_000).map(|i| format!("pkg{}.module{}.function_{i}", i % 17, i % 101)).collect();
    let frames: Vec<Vec<&str>> = (0..10_000usize)
        .map(|i| (0..12usize).map(|d| vocabulary[(i * 31 + d * 977 + d * d * i) % vocabulary.len()].as_str()).collect())
        .collect();
    let stacks: Vec<(&[&str], i64)> =
        frames.iter().enumerate().map(|(i, f)| (f.as_slice(), 1 + (i as i64 * 37) % 1000)).collect();
    let now = now_nanos();
    let profiles = 30;
    for i in 0..profiles {
        let p = build_pprof(("cpu", "nanoseconds"), &stacks, now - (i + 1) * 10_000_000_000);
        let req = push_request(
            &[("__name__", "process_cpu"), ("service_name", "bench"), ("pod", &format!("pod-{}", i % 3))],
            &p,
        );
        let (st, body) = connect_proto(&client, &server.url, "/push.v1.PusherService/Push", None, &req).await;
        assert_eq!(st, 200, "{body:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bench.parquet");
    let started = std::time::Instant::now();
    let r = Command::new(env!("CARGO_BIN_EXE_flamedb"))
        .args(["export", &format!("-addr={}", server.url), &format!("-profile-type={CPU}"), "-from=now-1h"])
        .arg(format!("-output={}", out.display()))
        .output()
        .expect("run flamedb export");
    let secs = started.elapsed().as_secs_f64();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rows = read_parquet(&out).rows;
    assert_eq!(rows.value.len(), stacks.len() * profiles as usize);
    eprintln!("{}", String::from_utf8_lossy(&r.stderr).trim());
    eprintln!("throughput: {:.0} rows/s over {secs:.2} s including process start", rows.value.len() as f64 / secs);
}
