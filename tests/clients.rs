//! Every request real Pyroscope SDKs sent (tests/fixtures/clients) is replayed against the real
//! binary with its recorded method, path, query, headers and body, timestamps moved to now. Each
//! capture folder goes to its own tenant; then every flame graph is compared node by node with a
//! call tree this test builds from the same pprof (or folded) bytes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::PushRequest;
use flamedb_proto::querier::v1 as q;
use prost::Message;
use serde_json::Value;

/// What one recorded request holds, as this test reads it: per profile type, the expected tree.
type Expect = BTreeMap<String, Tree>;

struct Capture {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    time: f64,
}

fn load(dir: &Path) -> Vec<Capture> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("capture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("req"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let m: Value = serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
            let pairs = |v: &Value| -> Vec<(String, String)> {
                v.as_array()
                    .expect("pairs")
                    .iter()
                    .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
                    .collect()
            };
            Capture {
                method: m["method"].as_str().expect("method").to_string(),
                path: m["path"].as_str().expect("path").to_string(),
                query: pairs(&m["query_params"]),
                headers: pairs(&m["headers"]),
                body: std::fs::read(dir.join(m["body_file"].as_str().expect("body"))).expect("body"),
                time: m["time"].as_f64().expect("time"),
            }
        })
        .collect()
}

impl Capture {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Moves a unix time written with the `attime` digit-count rule by `shift_ns`.
fn shift_time(v: &str, shift_ns: i64) -> String {
    let n: i64 = v.parse().expect("numeric time");
    let unit = match v.len() {
        19 => 1,
        16 => 1_000,
        13 => 1_000_000,
        _ => 1_000_000_000,
    };
    (n + shift_ns / unit).to_string()
}

/// A pprof with its time moved (same encoding layer: gzip'd stays gzip'd).
fn shift_pprof(b: &[u8], shift_ns: i64) -> Vec<u8> {
    let mut p = decode_pprof(b);
    if p.time_nanos != 0 {
        p.time_nanos += shift_ns;
    }
    let raw = p.encode_to_vec();
    if is_gzip(b) { gzip(&raw) } else { raw }
}

fn boundary(ct: &str) -> String {
    ct.split("boundary=").nth(1).expect("boundary").trim_matches('"').to_string()
}

/// (part name, headers block, content) of a multipart body.
fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let delim = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delim.len() <= body.len() {
        if body[i..].starts_with(&delim) {
            pieces.push(&body[start..i]);
            i += delim.len();
            start = i;
        } else {
            i += 1;
        }
    }
    for p in pieces.into_iter().skip(1) {
        let p = p.strip_prefix(b"\r\n").unwrap_or(p);
        let Some(split) = p.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = p[..split].to_vec();
        let mut content = p[split + 4..].to_vec();
        if content.ends_with(b"\r\n") {
            content.truncate(content.len() - 2);
        }
        let head_s = String::from_utf8_lossy(&head);
        let name = head_s.split("name=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_string();
        out.push((name, head, content));
    }
    out
}

fn build_multipart(parts: &[(String, Vec<u8>, Vec<u8>)], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, head, content) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(head);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn type_id(p: &Profile, name: &str, k: usize) -> String {
    let s = |i: i64| p.string_table[i as usize].clone();
    let (pt, pu) = p.period_type.as_ref().map_or((String::new(), String::new()), |v| (s(v.r#type), s(v.unit)));
    let st = &p.sample_type[k];
    format!("{name}:{}:{}:{pt}:{pu}", s(st.r#type), s(st.unit))
}

fn add_pprof(expect: &mut Expect, p: &Profile, name: &str, spy: &str) {
    let rename = |f: &str, file: &str| -> String {
        let script = matches!(spy, "pyspy" | "rbspy" | "scripting");
        if script && !file.is_empty() && !(spy == "pyspy" && file.starts_with('/')) {
            format!("{file} {f}")
        } else {
            f.to_string()
        }
    };
    for k in 0..p.sample_type.len() {
        let mut t = Tree::new();
        pprof_tree(p, k, &rename, &mut t);
        if t.is_empty() {
            continue;
        }
        let e = expect.entry(type_id(p, name, k)).or_default();
        for (path, v) in t {
            *e.entry(path).or_insert(0) += v;
        }
    }
}

/// Replays one capture (timestamps moved by `shift_ns`), records what the server must now hold.
async fn replay(client: &reqwest::Client, url: &str, tenant: &str, c: &Capture, shift_ns: i64, expect: &mut Expect) {
    let ct = c.header("content-type").unwrap_or("").to_string();
    let gz_body = c.header("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let plain = if gz_body { gunzip(&c.body) } else { c.body.clone() };
    let mut query = c.query.clone();
    for (k, v) in query.iter_mut() {
        if (k == "from" || k == "until") && !v.is_empty() {
            *v = shift_time(v, shift_ns);
        }
    }
    let new_plain: Vec<u8> = if c.path.starts_with("/push.v1") {
        let mut req = PushRequest::decode(plain.as_slice()).expect("push request");
        for s in &mut req.series {
            let labels: BTreeMap<&str, &str> = s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
            let name = labels["__name__"].to_string();
            for raw in &mut s.samples {
                add_pprof(expect, &decode_pprof(&raw.raw_profile), &name, "");
                raw.raw_profile = shift_pprof(&raw.raw_profile, shift_ns).into();
            }
        }
        req.encode_to_vec()
    } else if c.param("format") == Some("folded") {
        let rate: i64 = c.param("sampleRate").and_then(|r| r.parse().ok()).unwrap_or(100);
        let e = expect.entry("process_cpu:cpu:nanoseconds:cpu:nanoseconds".into()).or_default();
        for line in String::from_utf8(plain.clone()).expect("utf8").lines() {
            let Some((stack, n)) = line.rsplit_once(' ') else { continue };
            let frames: Vec<String> = stack.split(';').map(String::from).collect();
            add_stack(e, &frames, n.parse::<i64>().expect("count") * (1_000_000_000 / rate));
        }
        plain.clone()
    } else {
        let spy = c.param("spyName").unwrap_or("unknown");
        if ct.contains("multipart/form-data") {
            let b = boundary(&ct);
            let mut ps = parts(&plain, &b);
            let config = ps
                .iter()
                .find(|p| p.0 == "sample_type_config")
                .map(|p| serde_json::from_slice::<Value>(&p.2).expect("config json"));
            for p in ps.iter_mut().filter(|p| p.0 == "profile") {
                let prof = decode_pprof(&p.2);
                let types: Vec<String> =
                    prof.sample_type.iter().map(|t| prof.string_table[t.r#type as usize].clone()).collect();
                add_pprof(expect, &prof, &common::ingest_name(&types, config.as_ref()), spy);
                p.2 = shift_pprof(&p.2, shift_ns);
            }
            build_multipart(&ps, &b)
        } else {
            let prof = decode_pprof(&plain);
            let types: Vec<String> =
                prof.sample_type.iter().map(|t| prof.string_table[t.r#type as usize].clone()).collect();
            add_pprof(expect, &prof, &common::ingest_name(&types, None), spy);
            shift_pprof(&plain, shift_ns)
        }
    };
    let body = if gz_body { gzip(&new_plain) } else { new_plain };
    let qs = serde_urlencoded::to_string(&query).expect("query");
    let full = if qs.is_empty() { format!("{url}{}", c.path) } else { format!("{url}{}?{qs}", c.path) };
    let mut req = client.request(c.method.parse().expect("method"), full).header("X-Scope-OrgID", tenant).body(body);
    for (k, v) in &c.headers {
        if !["host", "content-length", "connection"].contains(&k.to_ascii_lowercase().as_str()) {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.expect("send");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 200, "{} {} for tenant {tenant}: {text}", c.method, c.path);
}

async fn select(
    client: &reqwest::Client,
    url: &str,
    tenant: &str,
    type_id: &str,
    start: i64,
    end: i64,
) -> q::FlameGraph {
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: type_id.into(),
        label_selector: "{}".into(),
        start,
        end,
        max_nodes: Some(1 << 20),
        ..Default::default()
    };
    let resp = client
        .post(format!("{url}/querier.v1.QuerierService/SelectMergeStacktraces"))
        .header("Content-Type", "application/proto")
        .header("Connect-Protocol-Version", "1")
        .header("X-Scope-OrgID", tenant)
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("select");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.expect("body");
    q::SelectMergeStacktracesResponse::decode(body).expect("response").flamegraph.expect("flamegraph")
}

#[tokio::test]
async fn every_client_capture_round_trips_to_an_exact_flame_graph() {
    let server = Server::start(&["-auth.multitenancy-enabled=true"]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let mut folders: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(folders.len() >= 7, "expected the client capture folders, got {folders:?}");
    let mut checked_nodes = 0usize;
    for dir in &folders {
        let tenant = dir.file_name().expect("name").to_string_lossy().replace('.', "_");
        let captures = load(dir);
        assert!(!captures.is_empty(), "{dir:?} has captures");
        let newest = captures.iter().map(|c| c.time).fold(f64::MIN, f64::max);
        let shift_ns = now - (newest * 1e9) as i64 - 60_000_000_000;
        let mut expect = Expect::new();
        for c in &captures {
            replay(&client, &server.url, &tenant, c, shift_ns, &mut expect).await;
        }
        assert!(!expect.is_empty(), "{tenant}: nothing expected");
        let (start, end) = ((now - 3_000_000_000_000) / 1_000_000, (now + 60_000_000_000) / 1_000_000);
        for (type_id, want) in &expect {
            let fg = select(&client, &server.url, &tenant, type_id, start, end).await;
            let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
            let errs = layout_errors(&fg.names, &levels, fg.total, fg.max_self);
            assert!(errs.is_empty(), "{tenant} {type_id}: layout: {errs:?}");
            let got = flamegraph_tree(&fg.names, &levels);
            let want_total: i64 = want.iter().filter(|(p, _)| p.len() == 1).map(|(_, v)| v).sum();
            assert_eq!(fg.total, want_total, "{tenant} {type_id}: total");
            let keys: BTreeSet<&Vec<String>> = got.keys().chain(want.keys()).collect();
            let diff: Vec<_> = keys.into_iter().filter(|k| got.get(*k) != want.get(*k)).take(5).collect();
            assert!(
                diff.is_empty(),
                "{tenant} {type_id}: nodes differ, e.g. {:?}",
                diff.iter().map(|k| (k, got.get(*k), want.get(*k))).collect::<Vec<_>>()
            );
            checked_nodes += want.len();
        }
        eprintln!("{tenant}: {} requests, {} profile types checked", captures.len(), expect.len());
    }
    assert!(checked_nodes > 1000, "compared {checked_nodes} nodes");
}
