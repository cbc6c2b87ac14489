//! Pyroscope's own test profiles (`../shared/fixtures/pyroscope`, AGPL: read in place, never
//! copied) sent through `/ingest` and `push.v1.PusherService/Push` the way Pyroscope's integration
//! tests send them, with the profile type ids and status codes its INDEX.md gives. INDEX.md is
//! parsed at run time, and a profile-bearing file it lists without an expectation here fails the
//! suite, so nothing is skipped silently.
//!
//! Expectations are computed here from the files themselves: the profile type ids from the pprof's
//! sample types (the contract's naming rules, cross-checked against INDEX.md's ids), and each
//! merged flame graph from the pprof's own stacks (`tests/common`'s `pprof_tree`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use flamedb_proto::types::v1::LabelPair;
use prost::Message;
use serde_json::{Value, json};

/// Where the AGPL fixtures live, relative to the root package.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/pyroscope");

/// Most flame-graph nodes a query may ask for: nothing gets cut.
const MAX_NODES: i64 = 1 << 20;

/// The fixtures carry their recording times (2021-2025), so the server accepts any time and
/// queries reach back to the epoch (Pyroscope's integration tests disable the same windows).
const SERVER_FLAGS: &[&str] = &[
    "-auth.multitenancy-enabled=true",
    "-validation.reject-older-than=0",
    "-validation.reject-newer-than=0",
    "-querier.max-query-lookback=0",
    "-querier.max-query-length=0",
];

fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(DIR);
    if dir.join("INDEX.md").is_file() {
        Some(dir)
    } else {
        eprintln!("notice: {DIR} absent, Pyroscope fixture conformance skipped");
        None
    }
}

// ------------------------------------------------------------------ INDEX.md

/// One row of INDEX.md's table: our file name, the last column's text, and the ids it quotes.
#[derive(Debug, Clone)]
struct Row {
    file: String,
    expect_text: String,
    ids: Vec<String>,
}

/// The backtick-quoted strings of a table cell.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn parse_index(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").map(str::trim).collect();
            let file = quoted(cells.first()?).into_iter().next()?;
            let expect_text = cells.last()?.to_string();
            let ids = quoted(&expect_text).into_iter().filter(|s| s.matches(':').count() == 4).collect();
            Some(Row { file, expect_text, ids })
        })
        .collect()
}

/// INDEX.md's prose: sample-type configs, JFR label snapshots and the OTLP conversion outputs
/// hold no profile of their own.
fn is_profile_bearing(file: &str) -> bool {
    !(file.ends_with(".st.json")
        || file.ends_with(".labels.pb.gz")
        || (file.starts_with("ingester__otlp__testdata__") && file.ends_with(".json")))
}

fn index_rows(dir: &Path) -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(dir.join("INDEX.md")).expect("INDEX.md");
    let rows = parse_index(&text);
    assert!(rows.len() >= 50, "INDEX.md table parsed into {} rows", rows.len());
    rows.into_iter().map(|r| (r.file.clone(), r)).collect()
}

// ------------------------------------------------------------------ expectations

/// How the stacks of a pprof fixture are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stacks {
    /// The merged flame graph equals the file's own call tree.
    Exact,
    /// Go profiles whose stacks reach Go's frame limit (32 for heap, 64 for CPU): Pyroscope repairs
    /// truncated stacks by grafting a root-side prefix from a longer stack and rewrites
    /// `[go.shape.*]` type parameters (FixGoProfile). Neither changes the total or how much self
    /// value each (type-parameter-normalised) function has, so those are compared instead of the
    /// whole tree, whether or not the server repairs.
    GoRepairable,
    /// Locations without lines: Pyroscope drops those at address 0 (PR #4051); the contract does
    /// not say how address-only frames are named, so those are taken out of the served stacks
    /// (whatever their name) before the named frames are compared exactly, and no frame may stand
    /// for the address-0 location.
    UnsymbolizedFrames,
}

/// What a pprof fixture is sent with and what the server must answer.
#[derive(Debug, Clone, Copy)]
struct PprofCase {
    file: &'static str,
    sample_type_config: Option<&'static str>,
    spy: Option<&'static str>,
    ingest_status: u16,
    push_status: u16,
    /// Part of the Push error message (Pyroscope's test pins it).
    push_error: Option<&'static str>,
    stacks: Stacks,
}

const fn pprof(file: &'static str) -> PprofCase {
    PprofCase {
        file,
        sample_type_config: None,
        spy: None,
        ingest_status: 200,
        push_status: 200,
        push_error: None,
        stacks: Stacks::Exact,
    }
}

const fn with_config(c: PprofCase, st: &'static str) -> PprofCase {
    PprofCase { sample_type_config: Some(st), ..c }
}

const fn go_repairable(c: PprofCase) -> PprofCase {
    PprofCase { stacks: Stacks::GoRepairable, ..c }
}

const fn dotnet(c: PprofCase) -> PprofCase {
    PprofCase { spy: Some("dotnetspy"), ..c }
}

const fn broken_dotnet(c: PprofCase) -> PprofCase {
    PprofCase { push_status: 400, push_error: Some("function id is 0"), ..dotnet(c) }
}

const PPROF_CASES: &[PprofCase] = &[
    pprof("og__convert__testdata__cpu.pprof"),
    pprof("pprof__testdata__go.cpu.labels.pprof"),
    pprof("pprof__testdata__single_group_with_optional_span_id.pb.gz"),
    go_repairable(pprof("pprof__testdata__heap")),
    go_repairable(pprof("pprof__testdata__heap_delta")),
    go_repairable(pprof("og__convert__pprof__testdata__heap.pb")),
    go_repairable(pprof("og__convert__pprof__testdata__heap.pb.gz")),
    pprof("phlaredb__testdata__profile"),
    pprof("phlaredb__testdata__profile_uncompressed"),
    with_config(pprof("og__convert__pprof__testdata__req_2.pprof"), "og__convert__pprof__testdata__req_2.st.json"),
    with_config(pprof("og__convert__pprof__testdata__req_3.pprof"), "og__convert__pprof__testdata__req_3.st.json"),
    with_config(pprof("og__convert__pprof__testdata__req_4.pprof"), "og__convert__pprof__testdata__req_4.st.json"),
    with_config(pprof("og__convert__pprof__testdata__req_5.pprof"), "og__convert__pprof__testdata__req_5.st.json"),
    go_repairable(pprof("pprof__testdata__gotruncatefix__cpu_go_truncated_1.pb.gz")),
    pprof("pprof__testdata__profile_java"),
    pprof("pprof__testdata__dotnet.labels.pprof"),
    dotnet(with_config(
        pprof("og__convert__pprof__testdata__dotnet-pprof-211.pb.gz"),
        "og__convert__pprof__testdata__dotnet-pprof-211.st.json",
    )),
    broken_dotnet(with_config(
        pprof("og__convert__pprof__testdata__dotnet-pprof-3.pb.gz"),
        "og__convert__pprof__testdata__dotnet-pprof-3.st.json",
    )),
    broken_dotnet(with_config(
        pprof("og__convert__pprof__testdata__dotnet-pprof-73.pb.gz"),
        "og__convert__pprof__testdata__dotnet-pprof-3.st.json",
    )),
    pprof("pprof__testdata__profile_python"),
    PprofCase { spy: Some("pyspy"), ..pprof("og__convert__pprof__testdata__pyspy-1.pb.gz") },
    pprof("pprof__testdata__profile_ruby"),
    pprof("pprof__testdata__profile_nodejs"),
    pprof("og__convert__pprof__testdata__nodejs-wall.pb.gz"),
    pprof("og__convert__pprof__testdata__nodejs-heap.pb.gz"),
    pprof("og__convert__pprof__testdata__cpu-js.pb.gz"),
    pprof("og__convert__pprof__testdata__heap-js.pprof"),
    pprof("pprof__testdata__profile_rust"),
    // Invalid UTF-8 in the string table: /ingest's pprof path answers 422, Push 400.
    PprofCase { ingest_status: 422, push_status: 400, ..pprof("og__convert__pprof__testdata__invalid_utf8.pb.gz") },
    PprofCase { stacks: Stacks::UnsymbolizedFrames, ..pprof("pprof__testdata__malformed__no_addr_no_line.pb.gz") },
];

/// JFR recordings: the optional `labels` part, and whether INDEX.md's ids are all the recording
/// holds (`false` where Pyroscope's test checks only some: the lock events of `cpu_lock_alloc`).
const JFR_CASES: &[(&str, Option<&str>, bool)] = &[
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__0.jfr.gz", None, true),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__1.jfr.gz", None, true),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__2.jfr.gz", None, true),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu__3.jfr.gz", None, true),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock_alloc__0.jfr.gz", None, false),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock_alloc__1.jfr.gz", None, false),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock_alloc__2.jfr.gz", None, false),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock_alloc__3.jfr.gz", None, false),
    ("og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz", None, true),
    ("og__convert__jfr__testdata__dump1.jfr.gz", Some("og__convert__jfr__testdata__dump1.labels.pb.gz"), true),
    ("og__convert__jfr__testdata__dump2.jfr.gz", Some("og__convert__jfr__testdata__dump2.labels.pb.gz"), true),
];

/// Thread names of the dump recordings Pyroscope's JFR test queries by.
const JFR_THREADS: &[(&str, &[&str])] = &[
    (
        "og__convert__jfr__testdata__dump1.jfr.gz",
        &["pool-2-thread-1", "pool-2-thread-3", "pool-2-thread-5", "pool-2-thread-7"],
    ),
    (
        "og__convert__jfr__testdata__dump2.jfr.gz",
        &[
            "pool-2-thread-1",
            "pool-2-thread-2",
            "pool-2-thread-3",
            "pool-2-thread-4",
            "pool-2-thread-5",
            "pool-2-thread-6",
            "pool-2-thread-7",
            "pool-2-thread-8",
        ],
    ),
];

/// Speedscope documents: the ids (INDEX.md's where it gives them) and the `profile_name` values
/// (profiles of the same name merge into one series).
const SPEEDSCOPE_CASES: &[(&str, &[&str], &[&str])] = &[
    (
        "og__convert__speedscope__testdata__simple.speedscope.json",
        &["process_cpu:cpu:nanoseconds:cpu:nanoseconds"],
        &["simple.txt"],
    ),
    (
        "og__convert__speedscope__testdata__two-sampled.speedscope.json",
        &["wall:wall:nanoseconds:cpu:nanoseconds"],
        &["one", "two"],
    ),
    (
        "og__convert__speedscope__testdata__two-sampled-bytes.speedscope.json",
        &["memory:samples:bytes::"],
        &["one", "two"],
    ),
    // Pyroscope's unit test pins the merged series as `foo{profile_name=one,...}`, without the
    // `.seconds` suffix `two-sampled` gets, so it is filed as CPU.
    (
        "og__convert__speedscope__testdata__duplicates.speedscope.json",
        &["process_cpu:cpu:nanoseconds:cpu:nanoseconds"],
        &["one"],
    ),
];

const OTLP_CASES: &[&str] = &["test__integration__testdata__otel-ebpf-profile.pb.bin"];

fn all_case_files() -> Vec<&'static str> {
    let mut v: Vec<&str> = PPROF_CASES.iter().map(|c| c.file).collect();
    v.extend(JFR_CASES.iter().map(|c| c.0));
    v.extend(SPEEDSCOPE_CASES.iter().map(|c| c.0));
    v.extend(OTLP_CASES);
    v
}

// ------------------------------------------------------------------ requests

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

/// The whole stored history: the fixtures are years old.
fn range() -> (i64, i64) {
    (1, now_ms() + 3_600_000)
}

fn tenant_of(file: &str, path: &str) -> String {
    let short: String = file.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let short = if short.len() > 100 { short[short.len() - 100..].to_string() } else { short };
    format!("{path}-{short}")
}

async fn post(client: &reqwest::Client, url: String, tenant: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let resp = client
        .post(url)
        .header("X-Scope-OrgID", tenant)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// A Push of the file's bytes exactly as stored (gzip'd or raw).
async fn push_raw(client: &reqwest::Client, url: &str, tenant: &str, name: &str, raw: &[u8]) -> (u16, String) {
    let req = PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![
                LabelPair { name: "__name__".into(), value: name.into() },
                LabelPair { name: "service_name".into(), value: "fixture".into() },
            ],
            samples: vec![RawSample { raw_profile: raw.to_vec().into(), id: String::new() }],
            annotations: vec![],
        }],
    };
    post(client, format!("{url}/push.v1.PusherService/Push"), tenant, "application/proto", req.encode_to_vec()).await
}

async fn profile_type_ids(client: &reqwest::Client, url: &str, tenant: &str) -> BTreeSet<String> {
    let (start, end) = range();
    let (st, v) = connect_json(client, url, "ProfileTypes", Some(tenant), json!({"start": start, "end": end})).await;
    assert_eq!(st, 200, "ProfileTypes for {tenant}: {v}");
    v["profileTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["ID"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

async fn label_values(client: &reqwest::Client, url: &str, tenant: &str, name: &str) -> Vec<String> {
    let (start, end) = range();
    let (st, v) =
        connect_json(client, url, "LabelValues", Some(tenant), json!({"name": name, "start": start, "end": end})).await;
    assert_eq!(st, 200, "LabelValues for {tenant}: {v}");
    v["names"].as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The merged flame graph of one profile type as {path: total} and its total.
async fn flame_graph(client: &reqwest::Client, url: &str, tenant: &str, id: &str, selector: &str) -> (Tree, i64) {
    select_flamegraph(client, url, Some(tenant), id, selector, range(), Some(MAX_NODES)).await
}

// ------------------------------------------------------------------ pprof expectations

fn string_at(p: &Profile, i: i64) -> String {
    usize::try_from(i).ok().and_then(|i| p.string_table.get(i)).cloned().unwrap_or_default()
}

/// The `__name__` `/ingest` files a pprof under (see [`common::ingest_name`]).
fn ingest_name(p: &Profile, config: Option<&Value>) -> String {
    let types: Vec<String> = p.sample_type.iter().map(|t| string_at(p, t.r#type)).collect();
    common::ingest_name(&types, config)
}

/// `name:type:unit:period_type:period_unit` of every sample type that has a non-zero value
/// (zero values are not stored, so an all-zero sample type has no series), with its index.
fn type_ids(p: &Profile, name: &str) -> Vec<(String, usize)> {
    let (pt, pu) = p
        .period_type
        .as_ref()
        .map_or((String::new(), String::new()), |v| (string_at(p, v.r#type), string_at(p, v.unit)));
    p.sample_type
        .iter()
        .enumerate()
        .filter(|(k, _)| p.sample.iter().any(|s| s.value.get(*k).is_some_and(|v| *v != 0)))
        .map(|(k, st)| (format!("{name}:{}:{}:{pt}:{pu}", string_at(p, st.r#type), string_at(p, st.unit)), k))
        .collect()
}

/// The .NET repair /ingest does (contract §2.1): when every function id is 0 and there is one
/// function per location, each function takes its location's id; `-` in sample type names
/// becomes `_`.
fn repair_dotnet(p: &mut Profile) {
    if !p.function.is_empty() && p.function.iter().all(|f| f.id == 0) && p.function.len() == p.location.len() {
        let ids: Vec<u64> = p.location.iter().map(|l| l.id).collect();
        for (f, id) in p.function.iter_mut().zip(ids) {
            f.id = id;
        }
    }
    let idx: BTreeSet<usize> = p.sample_type.iter().filter_map(|t| usize::try_from(t.r#type).ok()).collect();
    for i in idx {
        if let Some(s) = p.string_table.get_mut(i) {
            *s = s.replace('-', "_");
        }
    }
}

/// Function names on /ingest: py-spy / rbspy / scripting agents' become `"<file> <function>"`
/// (py-spy: relative files only); other agents' stay as they are.
fn scripting_name(spy: &str) -> impl Fn(&str, &str) -> String + '_ {
    let scripting = matches!(spy, "pyspy" | "rbspy" | "scripting");
    move |name: &str, file: &str| {
        if !scripting || file.is_empty() || (spy == "pyspy" && file.starts_with('/')) {
            name.to_string()
        } else {
            format!("{file} {name}")
        }
    }
}

/// `[go.shape.int,...]` type parameters written as `[...]`, as Pyroscope's Go fix does.
fn drop_go_shapes(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find("[go.shape.") {
        out.push_str(&rest[..i]);
        let mut depth = 0usize;
        let mut end = rest.len();
        for (j, c) in rest[i..].char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str("[...]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Self value per function name (type parameters normalised) of a {path: total} tree.
fn self_by_function(t: &Tree) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (path, total) in t {
        let children: i64 = t
            .range(path.clone()..)
            .skip(1)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, _)| p.len() == path.len() + 1)
            .map(|(_, v)| v)
            .sum();
        let own = total - children;
        if own != 0
            && let Some(leaf) = path.last()
        {
            *out.entry(drop_go_shapes(leaf)).or_insert(0) += own;
        }
    }
    out
}

/// Whether a frame name is an address alone (`0x5e997`), as unsymbolized frames are shown.
fn is_address(name: &str) -> bool {
    name.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The tree with address-only frames taken out of every stack (their values move to the caller).
fn without_address_frames(t: &Tree) -> Tree {
    let mut out = Tree::new();
    for (path, total) in t {
        let children: i64 = t
            .range(path.clone()..)
            .skip(1)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, _)| p.len() == path.len() + 1)
            .map(|(_, v)| v)
            .sum();
        let own = total - children;
        let kept: Vec<String> = path.iter().filter(|f| !is_address(f)).cloned().collect();
        if own != 0 && !kept.is_empty() {
            add_stack(&mut out, &kept, own);
        }
    }
    out
}

fn tree_total(t: &Tree) -> i64 {
    t.iter().filter(|(p, _)| p.len() == 1).map(|(_, v)| v).sum()
}

/// Compares a served flame graph with the expected tree; returns the failure, if any.
fn compare(what: &str, stacks: Stacks, got: &Tree, got_total: i64, want: &Tree) -> Option<String> {
    let want_total = tree_total(want);
    if want_total == 0 {
        return Some(format!("{what}: the expected tree is empty (test bug)"));
    }
    if got_total != want_total {
        return Some(format!("{what}: total {got_total}, want {want_total}"));
    }
    let stripped;
    let got = if stacks == Stacks::UnsymbolizedFrames {
        if let Some(bad) = got.keys().flatten().find(|f| f.is_empty() || *f == "0x0") {
            return Some(format!("{what}: a frame {bad:?} stands for the address-0 location without lines"));
        }
        stripped = without_address_frames(got);
        &stripped
    } else {
        got
    };
    match stacks {
        Stacks::Exact | Stacks::UnsymbolizedFrames => {
            let keys: BTreeSet<&Vec<String>> = got.keys().chain(want.keys()).collect();
            let diff: Vec<_> = keys
                .into_iter()
                .filter(|k| got.get(*k) != want.get(*k))
                .take(3)
                .map(|k| (k.clone(), got.get(k).copied(), want.get(k).copied()))
                .collect();
            (!diff.is_empty()).then(|| format!("{what}: {} nodes, want {}; e.g. {diff:?}", got.len(), want.len()))
        }
        Stacks::GoRepairable => {
            let (g, w) = (self_by_function(got), self_by_function(want));
            let diff: Vec<_> = w
                .keys()
                .chain(g.keys())
                .filter(|k| g.get(*k) != w.get(*k))
                .take(3)
                .map(|k| (k.clone(), g.get(k).copied(), w.get(k).copied()))
                .collect();
            (!diff.is_empty()).then(|| format!("{what}: self per function differs, e.g. {diff:?}"))
        }
    }
}

/// The INDEX.md ids of a pprof row with `<name>` filled in.
fn index_ids(row: &Row, name: &str) -> Vec<String> {
    row.ids.iter().map(|id| id.replace("<name>", name)).collect()
}

/// Where an upload went: the server and the tenant.
struct Store<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    tenant: &'a str,
}

/// Checks one pprof fixture through one path after its upload; returns failures.
async fn check_pprof_store(
    store: &Store<'_>,
    case: &PprofCase,
    p: &Profile,
    name: &str,
    row: &Row,
    rename: &dyn Fn(&str, &str) -> String,
) -> Vec<String> {
    let Store { client, url, tenant } = *store;
    let mut fails = Vec::new();
    let want_ids = type_ids(p, name);
    let want_set: BTreeSet<String> = want_ids.iter().map(|(id, _)| id.clone()).collect();
    // INDEX.md's ids are what Pyroscope's tests pin: every one is among the ids computed here, and
    // unless INDEX.md says it lists only the ones its test checks, they are all of them.
    let listed: BTreeSet<String> = index_ids(row, name).into_iter().collect();
    if !listed.is_subset(&want_set) {
        fails.push(format!("{tenant}: INDEX.md ids {listed:?} are not among the sample types' ids {want_set:?}"));
    }
    let partial = row.expect_text.contains("the two the test checks") || row.ids.is_empty();
    if !partial && listed != want_set {
        fails.push(format!("{tenant}: INDEX.md lists {listed:?}, the file's sample types give {want_set:?}"));
    }
    let got = profile_type_ids(client, url, tenant).await;
    if got != want_set {
        fails.push(format!("{tenant}: ProfileTypes {got:?}, want {want_set:?}"));
        return fails;
    }
    for (id, k) in &want_ids {
        let mut want = Tree::new();
        pprof_tree(p, *k, rename, &mut want);
        let (got, total) = flame_graph(client, url, tenant, id, "{}").await;
        if let Some(f) = compare(&format!("{tenant} {id}"), case.stacks, &got, total, &want) {
            fails.push(f);
        }
    }
    fails
}

async fn run_pprof_case(client: &reqwest::Client, url: &str, dir: &Path, case: &PprofCase, row: &Row) -> Vec<String> {
    let mut fails = Vec::new();
    let raw = std::fs::read(dir.join(case.file)).expect("fixture");
    let config_bytes = case.sample_type_config.map(|st| std::fs::read(dir.join(st)).expect("sample_type_config"));
    let config: Option<Value> =
        config_bytes.as_ref().map(|b| serde_json::from_slice(b).expect("sample_type_config json"));
    // `None` for the one file that is not valid protobuf text (invalid UTF-8): it is only sent.
    let decoded: Option<Profile> = {
        let bytes = if is_gzip(&raw) { gunzip(&raw) } else { raw.clone() };
        Profile::decode(bytes.as_slice()).ok()
    };
    if decoded.is_none() && case.ingest_status == 200 {
        return vec![format!("{}: does not decode as pprof", case.file)];
    }

    // /ingest, multipart `profile` (+ `sample_type_config`), as the Go SDK and Pyroscope's test send.
    let tenant = tenant_of(case.file, "ingest");
    let mut parts: Vec<(&str, &[u8])> = vec![("profile", &raw)];
    if let Some(b) = &config_bytes {
        parts.push(("sample_type_config", b));
    }
    let (ct, body) = multipart_form(&parts);
    let mut q = vec![("name", "fixture".to_string())];
    if let Some(spy) = case.spy {
        q.push(("spyName", spy.to_string()));
    }
    let qs = serde_urlencoded::to_string(&q).expect("query");
    let (st, text) = post(client, format!("{url}/ingest?{qs}"), &tenant, &ct, body).await;
    if st != case.ingest_status {
        fails.push(format!("{tenant}: /ingest answered {st} ({text}), want {}", case.ingest_status));
    } else if st != 200 {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // A 422 the handler picks itself carries code `unknown` (contract §2.1).
        if v["code"] != json!("unknown") {
            fails.push(format!("{tenant}: /ingest {st} body {text}, want code unknown"));
        }
        if !profile_type_ids(client, url, &tenant).await.is_empty() {
            fails.push(format!("{tenant}: a rejected upload left profile types behind"));
        }
    } else if let Some(p) = &decoded {
        let mut p = p.clone();
        let spy = case.spy.unwrap_or("unknown");
        if spy == "dotnetspy" {
            repair_dotnet(&mut p);
        }
        let name = ingest_name(&p, config.as_ref());
        let rename = scripting_name(spy);
        fails.extend(check_pprof_store(&Store { client, url, tenant: &tenant }, case, &p, &name, row, &rename).await);
    }

    // Push with `__name__` = the first expected id's name (the /ingest name where INDEX.md gives
    // none or writes `<name>`).
    let tenant = tenant_of(case.file, "push");
    let name = match (row.ids.first(), &decoded) {
        (Some(id), _) if !id.starts_with("<name>") => id.split(':').next().unwrap_or_default().to_string(),
        (_, Some(p)) => ingest_name(p, config.as_ref()),
        (_, None) => "process_cpu".to_string(),
    };
    let (st, text) = push_raw(client, url, &tenant, &name, &raw).await;
    if st != case.push_status {
        fails.push(format!("{tenant}: Push answered {st} ({text}), want {}", case.push_status));
    } else if st != 200 {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if v["code"] != json!("invalid_argument") {
            fails.push(format!("{tenant}: Push {st} body {text}, want code invalid_argument"));
        }
        // Pyroscope's integration test pins the message for the broken .NET files.
        if let Some(e) = case.push_error
            && !v["message"].as_str().is_some_and(|m| m.contains(e))
        {
            fails.push(format!("{tenant}: Push error {text} does not say {e:?}"));
        }
        if !profile_type_ids(client, url, &tenant).await.is_empty() {
            fails.push(format!("{tenant}: a rejected push left profile types behind"));
        }
    } else if let Some(p) = &decoded {
        fails.extend(check_pprof_store(&Store { client, url, tenant: &tenant }, case, p, &name, row, &same_name).await);
    }
    fails
}

// ------------------------------------------------------------------ tests

/// Every profile-bearing file of INDEX.md has an expectation here, and every expectation names a
/// file INDEX.md lists (and that exists).
#[test]
fn every_index_file_has_an_expectation() {
    let Some(dir) = fixtures_dir() else { return };
    let rows = index_rows(&dir);
    let ours: BTreeSet<&str> = all_case_files().into_iter().collect();
    let missing: Vec<&String> = rows.keys().filter(|f| is_profile_bearing(f) && !ours.contains(f.as_str())).collect();
    assert!(missing.is_empty(), "INDEX.md files without an expectation in this test: {missing:?}");
    for f in &ours {
        assert!(rows.contains_key(*f), "{f} is not in INDEX.md");
        assert!(dir.join(f).is_file(), "{f} is missing from {DIR}");
    }
    let aux = PPROF_CASES.iter().filter_map(|c| c.sample_type_config).chain(JFR_CASES.iter().filter_map(|c| c.1));
    for f in aux {
        assert!(rows.contains_key(f) && !is_profile_bearing(f), "{f}: not an INDEX.md auxiliary file");
    }
    // The rows this suite relies on parse as INDEX.md's prose describes them.
    assert_eq!(rows["og__convert__testdata__cpu.pprof"].ids.len(), 2);
    assert_eq!(rows["og__convert__jfr__testdata__cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz"].ids.len(), 9);
    assert!(rows["og__convert__pprof__testdata__invalid_utf8.pb.gz"].ids.is_empty());
}

#[tokio::test]
async fn pprof_fixtures_through_ingest_and_push() {
    let Some(dir) = fixtures_dir() else { return };
    let rows = index_rows(&dir);
    let server = Server::start(SERVER_FLAGS);
    let client = reqwest::Client::new();
    let mut fails = Vec::new();
    for case in PPROF_CASES {
        let row = rows.get(case.file).unwrap_or_else(|| panic!("{} not in INDEX.md", case.file));
        fails.extend(run_pprof_case(&client, &server.url, &dir, case, row).await);
    }

    // A `prev_profile` part (old Go SDKs' cumulative delta) is refused with 422.
    let raw = std::fs::read(dir.join("og__convert__testdata__cpu.pprof")).expect("fixture");
    let (ct, body) = multipart_form(&[("profile", &raw), ("prev_profile", &raw)]);
    let tenant = "ingest-prev_profile";
    let (st, text) = post(&client, format!("{}/ingest?name=fixture", server.url), tenant, &ct, body).await;
    if st != 422 {
        fails.push(format!("prev_profile: /ingest answered {st} ({text}), want 422"));
    }
    if !profile_type_ids(&client, &server.url, tenant).await.is_empty() {
        fails.push("prev_profile: the refused upload was stored".into());
    }
    assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
}

#[tokio::test]
async fn jfr_fixtures_through_ingest() {
    let Some(dir) = fixtures_dir() else { return };
    let rows = index_rows(&dir);
    let server = Server::start(SERVER_FLAGS);
    let client = reqwest::Client::new();
    let url = &server.url;
    let mut fails = Vec::new();
    for (file, labels, exact) in JFR_CASES {
        let tenant = tenant_of(file, "ingest");
        let jfr = std::fs::read(dir.join(file)).expect("fixture");
        let labels = labels.map(|l| std::fs::read(dir.join(l)).expect("labels"));
        let mut parts: Vec<(&str, &[u8])> = vec![("jfr", &jfr)];
        if let Some(l) = &labels {
            parts.push(("labels", l));
        }
        let (ct, body) = multipart_form(&parts);
        let (st, text) =
            post(&client, format!("{url}/ingest?name=fixture&spyName=javaspy&format=jfr"), &tenant, &ct, body).await;
        if st != 200 {
            fails.push(format!("{tenant}: /ingest answered {st} ({text})"));
            continue;
        }
        let want: BTreeSet<String> = rows[*file].ids.iter().cloned().collect();
        let got = profile_type_ids(&client, url, &tenant).await;
        if *exact && got != want || !want.is_subset(&got) {
            fails.push(format!(
                "{tenant}: ProfileTypes {got:?}, want {}{want:?}",
                if *exact { "" } else { "at least " }
            ));
            continue;
        }
        for id in &want {
            let (tree, total) = flame_graph(&client, url, &tenant, id, "{}").await;
            if total <= 0 || tree_total(&tree) != total {
                fails.push(format!("{tenant} {id}: total {total}, tree total {}", tree_total(&tree)));
            }
        }
        // Context labels split series by thread: each named thread has samples, and together they
        // hold no more than the whole.
        if let Some((_, threads)) = JFR_THREADS.iter().find(|(f, _)| f == file) {
            let id = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
            let (_, all) = flame_graph(&client, url, &tenant, id, "{}").await;
            let values = label_values(&client, url, &tenant, "thread_name").await;
            let mut sum = 0;
            for t in *threads {
                if !values.iter().any(|v| v == t) {
                    fails.push(format!("{tenant}: thread_name {t} not among {values:?}"));
                }
                let (_, total) = flame_graph(&client, url, &tenant, id, &format!("{{thread_name=\"{t}\"}}")).await;
                if total <= 0 {
                    fails.push(format!("{tenant}: no {id} samples for thread_name={t}"));
                }
                sum += total;
            }
            if sum > all {
                fails.push(format!("{tenant}: per-thread totals {sum} exceed the whole {all}"));
            }
        }
    }
    assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
}

/// The call tree of a speedscope document computed here: sampled profiles add each sample's
/// weight; evented profiles give each open frame's stack the time until the next event.
fn speedscope_tree(doc: &Value) -> Tree {
    let frames: Vec<String> = doc["shared"]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["name"].as_str().unwrap_or("").to_string())
        .collect();
    let mut tree = Tree::new();
    for p in doc["profiles"].as_array().expect("profiles") {
        if p["type"] == json!("sampled") {
            let samples = p["samples"].as_array().expect("samples");
            let weights = p["weights"].as_array().expect("weights");
            for (s, w) in samples.iter().zip(weights) {
                let stack: Vec<String> = s
                    .as_array()
                    .expect("sample")
                    .iter()
                    .map(|i| frames[i.as_u64().expect("idx") as usize].clone())
                    .collect();
                add_stack(&mut tree, &stack, w.as_i64().expect("weight"));
            }
        } else {
            let mut open: Vec<String> = Vec::new();
            let mut last = p["startValue"].as_i64().unwrap_or(0);
            for e in p["events"].as_array().expect("events") {
                let at = e["at"].as_i64().expect("at");
                if at > last && !open.is_empty() {
                    add_stack(&mut tree, &open, at - last);
                }
                last = at;
                let frame = frames[e["frame"].as_u64().expect("frame") as usize].clone();
                if e["type"] == json!("O") {
                    open.push(frame);
                } else {
                    open.pop();
                }
            }
        }
    }
    tree
}

#[tokio::test]
async fn speedscope_fixtures_through_ingest() {
    let Some(dir) = fixtures_dir() else { return };
    let rows = index_rows(&dir);
    let server = Server::start(SERVER_FLAGS);
    let client = reqwest::Client::new();
    let url = &server.url;
    let mut fails = Vec::new();
    for (file, ids, names) in SPEEDSCOPE_CASES {
        let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        let listed: BTreeSet<String> = rows[*file].ids.iter().cloned().collect();
        assert!(listed.is_empty() || listed == want, "{file}: INDEX.md says {listed:?}, this test {want:?}");
        let tenant = tenant_of(file, "ingest");
        let body = std::fs::read(dir.join(file)).expect("fixture");
        let doc: Value = serde_json::from_slice(&body).expect("speedscope json");
        let (st, text) =
            post(&client, format!("{url}/ingest?name=fixture&format=speedscope"), &tenant, "application/json", body)
                .await;
        if st != 200 {
            fails.push(format!("{tenant}: /ingest answered {st} ({text})"));
            continue;
        }
        let got = profile_type_ids(&client, url, &tenant).await;
        if got != want {
            fails.push(format!("{tenant}: ProfileTypes {got:?}, want {want:?}"));
            continue;
        }
        let got_names = label_values(&client, url, &tenant, "profile_name").await;
        if got_names != *names {
            fails.push(format!("{tenant}: profile_name values {got_names:?}, want {names:?}"));
        }
        // The unit decides the scale (seconds become nanoseconds, a sample rate may apply), so the
        // tree is compared up to one common factor: same paths, totals in the same proportions.
        let want_tree = speedscope_tree(&doc);
        let want_total = tree_total(&want_tree);
        let (got_tree, got_total) = flame_graph(&client, url, &tenant, ids[0], "{}").await;
        let same_paths = got_tree.keys().eq(want_tree.keys());
        let proportional = got_tree.iter().all(|(k, v)| {
            want_tree
                .get(k)
                .is_some_and(|w| i128::from(*v) * i128::from(want_total) == i128::from(*w) * i128::from(got_total))
        });
        if got_total <= 0 || !same_paths || !proportional {
            fails.push(format!("{tenant}: tree {got_tree:?} (total {got_total}) is not a multiple of {want_tree:?}"));
        }
    }
    assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
}

#[tokio::test]
async fn otlp_fixture_through_http() {
    let Some(dir) = fixtures_dir() else { return };
    let rows = index_rows(&dir);
    let server = Server::start(SERVER_FLAGS);
    let client = reqwest::Client::new();
    let url = &server.url;
    let mut fails = Vec::new();
    for file in OTLP_CASES {
        let tenant = tenant_of(file, "otlp");
        let body = std::fs::read(dir.join(file)).expect("fixture");
        let (st, text) =
            post(&client, format!("{url}/v1development/profiles"), &tenant, "application/x-protobuf", body).await;
        if st != 200 {
            fails.push(format!("{tenant}: OTLP export answered {st} ({text})"));
            continue;
        }
        let want: BTreeSet<String> = rows[*file].ids.iter().cloned().collect();
        assert_eq!(want.len(), 2, "{file}: INDEX.md ids");
        let got = profile_type_ids(&client, url, &tenant).await;
        if got != want {
            fails.push(format!("{tenant}: ProfileTypes {got:?}, want {want:?}"));
            continue;
        }
        // No resource names a service: `unknown_service`, or `unknown_service:<executable>` where the
        // process is known (contract §2.3).
        let services = label_values(&client, url, &tenant, "service_name").await;
        if !services.iter().any(|s| s == "unknown_service")
            || !services.iter().all(|s| s.starts_with("unknown_service"))
        {
            fails.push(format!("{tenant}: service_name values {services:?}, want unknown_service[:<executable>]"));
        }
        for id in &want {
            let (tree, total) = flame_graph(&client, url, &tenant, id, "{service_name=\"unknown_service\"}").await;
            if total <= 0 || tree_total(&tree) != total {
                fails.push(format!("{tenant} {id}: total {total}, tree total {}", tree_total(&tree)));
            }
        }
    }
    assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
}
