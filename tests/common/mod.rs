//! Shared harness of the integration tests: the real `flamedb` binary on a free loopback port,
//! pprof decoding into call trees computed independently of the server, and the flame-graph level
//! decoder Grafana uses.

#![allow(dead_code)]

pub mod sql_data;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flamedb_proto::google::v1::Profile;
use prost::Message;

/// A running `flamedb` process; killed on drop.
pub struct Server {
    pub port: u16,
    pub url: String,
    child: Child,
    pub data: tempfile::TempDir,
}

impl Server {
    /// Starts the binary with `args` (plus a free port and a temporary data directory) and waits
    /// until `/ready` answers.
    pub fn start(args: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), args)
    }

    /// Starts the binary on an existing data directory (a restart).
    pub fn start_in(data: tempfile::TempDir, args: &[&str]) -> Server {
        for attempt in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_flamedb"));
            cmd.arg(format!("-server.http-listen-port={port}"))
                .arg("-server.http-listen-address=127.0.0.1")
                .arg(format!("-pyroscopedb.data-path={}", data.path().display()))
                .args(args)
                .env("FLAMEDB_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let mut child = cmd.spawn().expect("spawn flamedb");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken; try another
                }
                // Another test's server may have taken the port between `free_port` and our
                // bind, and answer `/ready` for us: only a server serving our data path is ours.
                if ready(port) && serves_data_path(port, &data.path().display().to_string()) {
                    return Server { port, url, child, data };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("flamedb did not become ready (attempt {attempt})");
        }
        panic!("flamedb did not start");
    }
}

impl Server {
    /// SIGKILL: no shutdown hook runs. Returns the data directory for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn ready(port: u16) -> bool {
    get(port, "/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200") && r.ends_with("ready"))
}

/// Whether the server on `port` runs with `path` as its data path (its served configuration
/// names it).
fn serves_data_path(port: u16, path: &str) -> bool {
    get(port, "/api/v1/status/config").is_some_and(|r| r.starts_with("HTTP/1.1 200") && r.contains(path))
}

/// The raw HTTP/1.1 response to a GET of `path`.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    Some(buf)
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients")
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

pub fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b).read_to_end(&mut out).expect("gunzip");
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

pub fn is_gzip(b: &[u8]) -> bool {
    b.len() > 2 && b[0] == 0x1f && b[1] == 0x8b
}

/// Decodes a pprof that may be gzip'd.
pub fn decode_pprof(b: &[u8]) -> Profile {
    let raw = if is_gzip(b) { gunzip(b) } else { b.to_vec() };
    Profile::decode(raw.as_slice()).expect("pprof")
}

/// A call tree: root-first frame path -> total.
pub type Tree = BTreeMap<Vec<String>, i64>;

/// The call tree of sample type `k` of a pprof, built here from the raw messages: each location
/// expands to its lines (inlined callee first in pprof, so reversed), stacks are root first.
/// `rename` maps (function name, file name) to the frame name the server should show.
pub fn pprof_tree(p: &Profile, k: usize, rename: &dyn Fn(&str, &str) -> String, into: &mut Tree) {
    let s = |i: i64| p.string_table.get(i as usize).map(String::as_str).unwrap_or("");
    let funcs: BTreeMap<u64, (&str, &str)> = p.function.iter().map(|f| (f.id, (s(f.name), s(f.filename)))).collect();
    let locs: BTreeMap<u64, &flamedb_proto::google::v1::Location> = p.location.iter().map(|l| (l.id, l)).collect();
    for sample in &p.sample {
        let v = sample.value.get(k).copied().unwrap_or(0);
        if v == 0 {
            continue;
        }
        let mut frames = Vec::new();
        for id in &sample.location_id {
            let loc = locs[id];
            for line in &loc.line {
                let (name, file) = funcs[&line.function_id];
                frames.push(rename(name, file));
            }
        }
        frames.reverse();
        add_stack(into, &frames, v);
    }
}

pub fn add_stack(into: &mut Tree, root_first: &[String], v: i64) {
    for d in 1..=root_first.len() {
        *into.entry(root_first[..d].to_vec()).or_insert(0) += v;
    }
}

pub fn same_name(name: &str, _file: &str) -> String {
    name.to_string()
}

/// Grafana's reading of flame-graph levels: absolute x = delta + end of the previous node on the
/// level; a node's parent is the node of the level above whose span contains it.
pub fn flamegraph_tree(names: &[String], levels: &[Vec<i64>]) -> Tree {
    let mut out = Tree::new();
    let mut prev: Vec<(i64, i64, Vec<String>)> = Vec::new();
    for (depth, vals) in levels.iter().enumerate() {
        let mut cur = Vec::new();
        let mut end = 0;
        for node in vals.chunks(4) {
            let x = end + node[0];
            let total = node[1];
            end = x + total;
            let path = if depth == 0 {
                Vec::new()
            } else {
                let parent = prev
                    .iter()
                    .find(|(px, pe, _)| *px <= x && x + total <= *pe)
                    .unwrap_or_else(|| panic!("node at depth {depth} x {x} has no parent"));
                let mut p = parent.2.clone();
                p.push(names[node[3] as usize].clone());
                *out.entry(p.clone()).or_insert(0) += total;
                p
            };
            cur.push((x, end, path));
        }
        prev = cur;
    }
    out
}

/// Checks the contract's layout of flame-graph levels; returns what is wrong.
pub fn layout_errors(names: &[String], levels: &[Vec<i64>], total: i64, max_self: i64) -> Vec<String> {
    let mut errs = Vec::new();
    if names.first().map(String::as_str) != Some("total") {
        errs.push("names[0] is not total".into());
    }
    let mut seen = std::collections::HashSet::new();
    if !names.iter().all(|n| seen.insert(n)) {
        errs.push("names has duplicates".into());
    }
    if levels.first() != Some(&vec![0, total, 0, 0]) {
        errs.push(format!("root is {:?}, want [0, {total}, 0, 0]", levels.first()));
    }
    let mut max = 0;
    // (x, total, self, name) of the level above
    let mut prev: Vec<(i64, i64, i64, String)> = vec![(0, total, 0, "total".into())];
    for (d, lv) in levels.iter().enumerate().skip(1) {
        let mut cur = Vec::new();
        let mut end = 0;
        for n in lv.chunks(4) {
            if n[0] < 0 {
                errs.push(format!("level {d}: negative delta"));
            }
            let x = end + n[0];
            end = x + n[1];
            max = max.max(n[2]);
            cur.push((x, n[1], n[2], names[n[3] as usize].clone()));
        }
        for (px, pt, ps, pn) in &prev {
            let kids: Vec<&(i64, i64, i64, String)> =
                cur.iter().filter(|c| c.0 >= *px && c.0 + c.1 <= px + pt).collect();
            let mut pos = px + ps;
            for c in &kids {
                if c.0 != pos {
                    errs.push(format!("level {d}: child {} of {pn} starts at {}, want {pos}", c.3, c.0));
                }
                pos = c.0 + c.1;
            }
            if kids.iter().map(|c| c.1).sum::<i64>() != pt - ps {
                errs.push(format!("level {d}: children of {pn} do not sum to total - self"));
            }
            let body: Vec<&str> = kids.iter().map(|c| c.3.as_str()).collect();
            let body = if body.last() == Some(&"other") { &body[..body.len() - 1] } else { &body[..] };
            if !body.windows(2).all(|w| w[0] < w[1]) {
                errs.push(format!("level {d}: children of {pn} not sorted: {body:?}"));
            }
        }
        prev = cur;
    }
    if max != max_self {
        errs.push(format!("max_self {max_self}, largest self {max}"));
    }
    errs
}

/// A pprof of one sample type with root-first stacks, stamped `time_nanos`.
pub fn build_pprof(sample_type: (&str, &str), stacks: &[(&[&str], i64)], time_nanos: i64) -> Profile {
    flamedb_ingest::testing::pprof(sample_type, stacks, time_nanos)
}

/// A Push request of one series holding one profile.
/// The index of `s` in the profile's string table, appending it when absent.
pub fn intern_string(p: &mut Profile, s: &str) -> i64 {
    match p.string_table.iter().position(|x| x == s) {
        Some(i) => i as i64,
        None => {
            p.string_table.push(s.to_string());
            p.string_table.len() as i64 - 1
        }
    }
}

pub fn push_request(labels: &[(&str, &str)], p: &Profile) -> flamedb_proto::push::v1::PushRequest {
    use flamedb_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
    use flamedb_proto::types::v1::LabelPair;
    PushRequest {
        series: vec![RawProfileSeries {
            labels: labels.iter().map(|(k, v)| LabelPair { name: k.to_string(), value: v.to_string() }).collect(),
            samples: vec![RawSample { raw_profile: p.encode_to_vec().into(), id: String::new() }],
            annotations: vec![],
        }],
    }
}

/// Calls a Connect method with a binary proto body; returns (status, body).
pub async fn connect_proto(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    tenant: Option<&str>,
    msg: &impl Message,
) -> (u16, bytes::Bytes) {
    let mut req = client
        .post(format!("{url}{path}"))
        .header("Content-Type", "application/proto")
        .header("Connect-Protocol-Version", "1")
        .body(msg.encode_to_vec());
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.expect("send");
    (resp.status().as_u16(), resp.bytes().await.expect("body"))
}

/// Calls a Connect method with a JSON body; returns (status, parsed JSON or Null).
pub async fn connect_json(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    tenant: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut req = client
        .post(format!("{url}/querier.v1.QuerierService/{method}"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("text");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The query API's flame graph of a selection (`SelectMergeStacktraces` over Connect JSON) as
/// {path: total} and its total; the call must answer 200.
pub async fn select_flamegraph(
    client: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    type_id: &str,
    selector: &str,
    (start_ms, end_ms): (i64, i64),
    max_nodes: Option<i64>,
) -> (Tree, i64) {
    let mut body =
        serde_json::json!({"profileTypeID": type_id, "labelSelector": selector, "start": start_ms, "end": end_ms});
    if let Some(n) = max_nodes {
        body["maxNodes"] = n.into();
    }
    let (st, v) = connect_json(client, url, "SelectMergeStacktraces", tenant, body).await;
    assert_eq!(st, 200, "SelectMergeStacktraces {type_id} {selector} for {tenant:?}: {v}");
    json_flamegraph_tree(&v["flamegraph"])
}

/// The {path: total} of a JSON FlameGraph.
pub fn json_flamegraph_tree(fg: &serde_json::Value) -> (Tree, i64) {
    let names: Vec<String> = fg["names"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    let levels: Vec<Vec<i64>> = fg["levels"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    l["values"]
                        .as_array()
                        .map(|v| v.iter().map(|x| x.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let total = fg["total"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    (flamegraph_tree(&names, &levels), total)
}

/// {path: total} of root-first stacks.
pub fn stacks_tree(stacks: &[(&[&str], i64)]) -> Tree {
    let mut t = Tree::new();
    for (frames, v) in stacks {
        let f: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
        add_stack(&mut t, &f, *v);
    }
    t
}

/// The `__name__` `/ingest` files a pprof under (contract §2.1, written out here independently of
/// the server): `wall` wins; else the first sample type whose display name says cpu / memory /
/// mutex / block / goroutines; else the last sample type's name.
pub fn ingest_name(types: &[String], config: Option<&serde_json::Value>) -> String {
    let display = |t: &str| -> String {
        match config {
            Some(c) => c
                .get(t)
                .and_then(|e| e.get("display-name"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or(t)
                .to_string(),
            None => match t {
                "samples" => "cpu".into(),
                "goroutine" => "goroutines".into(),
                "contentions" => "mutex_count".into(),
                "delay" => "mutex_duration".into(),
                _ => t.into(),
            },
        }
    };
    if types.iter().any(|t| t == "wall") {
        return "wall".into();
    }
    for t in types {
        let d = display(t);
        if d.contains("cpu") {
            return "process_cpu".into();
        }
        if d.contains("alloc_") || d.contains("inuse_") || d == "space" || d == "objects" {
            return "memory".into();
        }
        if d.contains("mutex_") {
            return "mutex".into();
        }
        if d.contains("block_") {
            return "block".into();
        }
        if d.contains("goroutines") {
            return "goroutines".into();
        }
    }
    types.last().cloned().unwrap_or_default()
}

/// A `multipart/form-data` body of file parts (as the Go, Node and Java agents send them), and
/// its Content-Type.
pub fn multipart_form(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "flamedb-test-7f3a9c";
    let mut body = Vec::new();
    for (name, content) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
