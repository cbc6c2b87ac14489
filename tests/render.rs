//! The legacy HTTP query endpoints on the real binary: `/pyroscope/render` (flamebearer JSON
//! with its timeline and groups, and DOT), `/pyroscope/render-diff` and
//! `/pyroscope/label-values`, checked against the stacks pushed and decoded independently.

mod common;

use common::*;
use prost::Message;
use serde_json::Value;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const MEM: &str = "memory:inuse_space:bytes:inuse_space:bytes";
const EARLY: &[(&[&str], i64)] = &[(&["main", "work", "hash"], 40), (&["main", "work"], 10), (&["main", "io"], 7)];
const LATE: &[(&[&str], i64)] = &[(&["main", "work", "hash"], 5), (&["main", "gc"], 30)];
const OTHER_SERVICE: &[(&[&str], i64)] = &[(&["elsewhere"], 1000)];
const MEMORY: &[(&[&str], i64)] = &[(&["main", "alloc"], 4096)];

struct Setup {
    server: Server,
    client: reqwest::Client,
    /// When the early and late profiles were taken, ns.
    early: i64,
    late: i64,
}

async fn push(client: &reqwest::Client, url: &str, labels: &[(&str, &str)], p: &flamedb_proto::google::v1::Profile) {
    let body = push_request(labels, p).encode_to_vec();
    let resp = client
        .post(format!("{url}/push.v1.PusherService/Push"))
        .header("Content-Type", "application/proto")
        .body(body)
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
}

async fn setup() -> Setup {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let (early, late) = (now - 20 * 60 * 1_000_000_000, now - 5 * 60 * 1_000_000_000);
    let url = &server.url;
    let cpu = [("__name__", "process_cpu"), ("service_name", "x")];
    push(&client, url, &[cpu[0], cpu[1], ("env", "a")], &build_pprof(("cpu", "nanoseconds"), EARLY, early)).await;
    push(&client, url, &[cpu[0], cpu[1], ("env", "b")], &build_pprof(("cpu", "nanoseconds"), LATE, late)).await;
    let other = [("__name__", "process_cpu"), ("service_name", "y")];
    push(&client, url, &other, &build_pprof(("cpu", "nanoseconds"), OTHER_SERVICE, late)).await;
    let mem = [("__name__", "memory"), ("service_name", "x")];
    push(&client, url, &mem, &build_pprof(("inuse_space", "bytes"), MEMORY, late)).await;
    Setup { server, client, early, late }
}

impl Setup {
    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client.get(format!("{}{path_and_query}", self.server.url)).send().await.expect("get")
    }

    async fn get_json(&self, path_and_query: &str) -> (u16, Value) {
        let r = self.get(path_and_query).await;
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn total(stacks: &[(&[&str], i64)]) -> i64 {
    stacks.iter().map(|(_, v)| v).sum()
}

fn numbers(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_i64().expect("plain JSON number")).collect()).unwrap_or_default()
}

fn names(fb: &Value) -> Vec<String> {
    fb["names"].as_array().expect("names").iter().map(|n| n.as_str().unwrap_or("").to_string()).collect()
}

/// `path -> total` of a flamebearer's 4-int levels.
fn flamebearer_tree(fb: &Value) -> Tree {
    let levels: Vec<Vec<i64>> = fb["levels"].as_array().expect("levels").iter().map(numbers).collect();
    flamegraph_tree(&names(fb), &levels)
}

/// One side of a diff's 7-int levels as a tree (`side` 0 = left, 1 = right); nodes of the other
/// side only (zero here) are left out.
fn diff_side_tree(fb: &Value, side: usize) -> Tree {
    let levels: Vec<Vec<i64>> = fb["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| {
            let v = numbers(l);
            assert_eq!(v.len() % 7, 0, "7 ints per node");
            v.chunks(7).flat_map(|n| [n[side * 3], n[side * 3 + 1], n[side * 3 + 2], n[6]]).collect()
        })
        .collect();
    let mut t = flamegraph_tree(&names(fb), &levels);
    t.retain(|_, v| *v != 0);
    t
}

fn stacks_union(parts: &[&[(&[&str], i64)]]) -> Tree {
    let mut t = Tree::new();
    for stacks in parts {
        for (frames, v) in *stacks {
            let f: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
            add_stack(&mut t, &f, *v);
        }
    }
    t
}

fn render_url(query: &str, extra: &str) -> String {
    format!("/pyroscope/render?query={}&from=now-1h&until=now{extra}", enc(query))
}

#[tokio::test]
async fn render_json_flamebearer_and_timeline() {
    let s = setup().await;
    let (status, v) = s.get_json(&render_url(&format!("{CPU}{{service_name=\"x\"}}"), "")).await;
    assert_eq!(status, 200, "{v}");
    let want = stacks_union(&[EARLY, LATE]);
    let fb = &v["flamebearer"];
    assert_eq!(flamebearer_tree(fb), want);
    let all = total(EARLY) + total(LATE);
    assert_eq!(fb["numTicks"].as_i64(), Some(all));
    assert_eq!(fb["maxSelf"].as_i64(), Some(45), "main;work;hash holds 40 + 5 self");
    assert_eq!(v["version"], 1);
    assert_eq!(v["metadata"]["format"], "single");
    assert_eq!(v["metadata"]["name"], "cpu");
    assert_eq!(v["metadata"]["units"], "samples");
    assert_eq!(v["metadata"]["sampleRate"], 1_000_000_000u64);
    assert_eq!(v["metadata"]["spyName"], "");
    assert!(v["groups"].is_null() && v["heatmap"].is_null());
    assert!(v.get("leftTicks").is_none());

    let tl = &v["timeline"];
    assert_eq!(tl["durationDelta"], 15);
    let start = tl["startTime"].as_i64().expect("startTime");
    assert_eq!(start % 15, 0, "snapped to the step");
    let now_s = now_nanos() / 1_000_000_000;
    assert!(start <= now_s - 3600 && start > now_s - 3600 - 30, "start {start}, now {now_s}");
    let samples = numbers(&tl["samples"]);
    assert!((239..=241).contains(&samples.len()), "one slot per 15 s of the hour: {}", samples.len());
    assert_eq!(samples.iter().sum::<i64>(), all);
    let nonzero: Vec<(usize, i64)> = samples.iter().copied().enumerate().filter(|(_, v)| *v != 0).collect();
    assert_eq!(nonzero.len(), 2, "zero-filled around two profiles: {nonzero:?}");
    for ((slot, value), (at, want)) in nonzero.iter().zip([(s.early, total(EARLY)), (s.late, total(LATE))]) {
        let expected = ((at / 1_000_000_000 - start) / 15) as usize;
        assert_eq!(*value, want);
        assert!(*slot == expected || *slot == expected + 1, "slot {slot}, profile at slot {expected}");
    }
}

#[tokio::test]
async fn render_group_by_and_ms_range() {
    let s = setup().await;
    let (status, v) = s.get_json(&render_url(&format!("{CPU}{{service_name=\"x\"}}"), "&groupBy=env")).await;
    assert_eq!(status, 200, "{v}");
    let groups = v["groups"].as_object().expect("groups");
    let keys: Vec<&String> = groups.keys().collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(numbers(&groups["a"]["samples"]).iter().sum::<i64>(), total(EARLY));
    assert_eq!(numbers(&groups["b"]["samples"]).iter().sum::<i64>(), total(LATE));
    // Two series: the main timeline stays zero (Pyroscope only uses a single series).
    assert!(numbers(&v["timeline"]["samples"]).iter().all(|&x| x == 0));

    // Millisecond from/until around the early profile only.
    let (from, until) = ((s.early - 60_000_000_000) / 1_000_000, (s.early + 60_000_000_000) / 1_000_000);
    let q = enc(&format!("{CPU}{{service_name=\"x\"}}"));
    let (status, v) = s.get_json(&format!("/pyroscope/render?query={q}&from={from}&until={until}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(flamebearer_tree(&v["flamebearer"]), stacks_union(&[EARLY]));
    assert_eq!(v["flamebearer"]["numTicks"].as_i64(), Some(total(EARLY)));
    let tl = &v["timeline"];
    assert_eq!(tl["startTime"].as_i64(), Some(from / 1000 / 15 * 15));
    assert_eq!(numbers(&tl["samples"]).len() as i64, (until / 1000 / 15 - from / 1000 / 15));
    assert_eq!(numbers(&tl["samples"]).iter().sum::<i64>(), total(EARLY));

    // Another profile type on the same service: memory units are bytes at rate 100.
    let (status, v) = s.get_json(&render_url(&format!("{MEM}{{service_name=\"x\"}}"), "")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["metadata"]["units"], "bytes");
    assert_eq!(v["metadata"]["sampleRate"], 100);
    assert_eq!(flamebearer_tree(&v["flamebearer"]), stacks_union(&[MEMORY]));
}

#[tokio::test]
async fn render_dot() {
    let s = setup().await;
    let r = s.get(&render_url(&format!("{CPU}{{service_name=\"x\"}}"), "&format=dot")).await;
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let dot = r.text().await.expect("body");
    assert!(dot.starts_with("digraph \"unnamed\" {\n") && dot.ends_with("}\n"), "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    graphviz_accepts(&dot);
    for name in ["main", "work", "hash", "io", "gc"] {
        assert!(dot.contains(&format!("label=\"{name}\\n")), "{name} missing: {dot}");
    }
    assert!(!dot.contains("elsewhere"), "other service leaked: {dot}");
    // Values are nanoseconds, printed as seconds the way pprof does (92 ns rounds to 0).
    assert!(dot.contains("Type: cpu") && dot.contains("of 0 total"), "{dot}");
    // Edges only between declared nodes.
    let declared: Vec<&str> = dot
        .lines()
        .filter(|l| !l.contains(" -> "))
        .filter_map(|l| l.split_once(" [label=").map(|(id, _)| id))
        .collect();
    assert_eq!(declared.len(), 5, "{dot}");
    for line in dot.lines().filter(|l| l.contains(" -> ")) {
        let (a, rest) = line.split_once(" -> ").expect("edge");
        let b = rest.split(' ').next().unwrap_or("");
        assert!(declared.contains(&a) && declared.contains(&b), "{line}");
    }

    // maxNodes=2 keeps the two largest cum: main (92) and work (55).
    let r = s.get(&render_url(&format!("{CPU}{{service_name=\"x\"}}"), "&format=dot&maxNodes=2")).await;
    let dot = r.text().await.expect("body");
    assert!(dot.contains("label=\"main\\n") && dot.contains("label=\"work\\n"), "{dot}");
    assert!(!dot.contains("label=\"hash\\n") && !dot.contains("label=\"gc\\n"), "{dot}");
    assert!(dot.contains("Showing top 2 nodes out of 5"), "{dot}");

    // Nothing selected: an empty body.
    let r = s.get(&render_url(&format!("{CPU}{{service_name=\"nobody\"}}"), "&format=dot")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body"), "");
}

#[tokio::test]
async fn render_errors() {
    let s = setup().await;
    let (status, v) = s.get_json("/pyroscope/render?from=now-1h").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "invalid_argument");
    let (status, v) = s.get_json(&render_url("{service_name=\"x\"}", "")).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("profile-type"), "{v}");
    let (status, _) = s.get_json(&render_url("process_cpu:cpu{service_name=\"x\"}", "")).await;
    assert_eq!(status, 400);
    let (status, _) = s.get_json(&render_url(&format!("{CPU}{{service_name=\"x\""), "")).await;
    assert_eq!(status, 400, "unterminated selector");
    let r = s.client.post(format!("{}{}", s.server.url, render_url(CPU, ""))).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 405);
    let r =
        s.client.post(format!("{}/pyroscope/label-values?label=__name__", s.server.url)).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn render_diff_both_sides() {
    let s = setup().await;
    let left = enc(&format!("{CPU}{{service_name=\"x\",env=\"a\"}}"));
    let right = enc(&format!("{CPU}{{service_name=\"x\",env=\"b\"}}"));
    let url = format!(
        "/pyroscope/render-diff?leftQuery={left}&leftFrom=now-1h&leftUntil=now&rightQuery={right}\
         &rightFrom=now-1h&rightUntil=now"
    );
    let (status, v) = s.get_json(&url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["metadata"]["format"], "double");
    assert!(v.get("timeline").is_some_and(Value::is_null), "{v}");
    assert_eq!(v["leftTicks"].as_i64(), Some(total(EARLY)));
    assert_eq!(v["rightTicks"].as_i64(), Some(total(LATE)));
    assert_eq!(v["flamebearer"]["numTicks"].as_i64(), Some(total(EARLY) + total(LATE)));
    assert_eq!(diff_side_tree(&v["flamebearer"], 0), stacks_union(&[EARLY]));
    assert_eq!(diff_side_tree(&v["flamebearer"], 1), stacks_union(&[LATE]));

    let mem = enc(&format!("{MEM}{{service_name=\"x\"}}"));
    let url = format!("/pyroscope/render-diff?leftQuery={left}&rightQuery={mem}&leftFrom=now-1h&rightFrom=now-1h");
    let (status, v) = s.get_json(&url).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["message"], "profile types must match");
    let (status, _) = s.get_json(&format!("/pyroscope/render-diff?leftQuery={left}")).await;
    assert_eq!(status, 400, "right side missing");
}

#[tokio::test]
async fn label_values_endpoint() {
    let s = setup().await;
    let (status, v) = s.get_json("/pyroscope/label-values?label=__name__").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, serde_json::json!([MEM, CPU]), "sorted profile type ids");
    let (status, v) = s.get_json("/pyroscope/label-values").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "invalid_argument");
    let (status, v) = s.get_json("/pyroscope/label-values?label=service_name").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, serde_json::json!(["x", "y"]));
    let q = enc(&format!("{MEM}{{}}"));
    let (status, v) = s.get_json(&format!("/pyroscope/label-values?label=service_name&query={q}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, serde_json::json!(["x"]));
    let (status, v) =
        s.get_json(&format!("/pyroscope/label-values?label=env&query={}", enc("{service_name=\"x\"}"))).await;
    assert_eq!((status, v), (200, serde_json::json!(["a", "b"])));
}

#[tokio::test]
async fn tenancy_on_legacy_queries() {
    let server = Server::start(&["-auth.multitenancy-enabled=true"]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let body = push_request(
        &[("__name__", "process_cpu"), ("service_name", "x")],
        &build_pprof(("cpu", "nanoseconds"), EARLY, now - 60_000_000_000),
    )
    .encode_to_vec();
    let r = client
        .post(format!("{}/push.v1.PusherService/Push", server.url))
        .header("Content-Type", "application/proto")
        .header("X-Scope-OrgID", "team-a")
        .body(body)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status().as_u16(), 200);
    let url = format!("{}{}", server.url, render_url(&format!("{CPU}{{}}"), ""));
    let r = client.get(&url).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "unauthenticated");
    let r = client.get(format!("{}/pyroscope/label-values?label=__name__", server.url)).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let v: Value =
        client.get(&url).header("X-Scope-OrgID", "team-a").send().await.expect("get").json().await.expect("json");
    assert_eq!(v["flamebearer"]["numTicks"].as_i64(), Some(total(EARLY)));
    let v: Value =
        client.get(&url).header("X-Scope-OrgID", "team-b").send().await.expect("get").json().await.expect("json");
    assert_eq!(v["flamebearer"]["numTicks"].as_i64(), Some(0), "another tenant sees nothing");
}

/// DOT of a real profile through the Connect API: the Java CPU fixture drawn whole has one node
/// per function and one edge per distinct caller -> callee pair of its stacks (both counted here
/// from the raw pprof), and a cut to 10 nodes says so in the legend.
#[tokio::test]
async fn dot_of_a_real_profile() {
    let path = std::path::Path::new("../shared/fixtures/pyroscope/pprof__testdata__profile_java");
    let Ok(raw) = std::fs::read(path) else {
        eprintln!("notice: {} absent, skipped", path.display());
        return;
    };
    let mut p = decode_pprof(&raw);
    let now = now_nanos();
    p.time_nanos = now - 60_000_000_000;
    let mut tree = Tree::new();
    pprof_tree(&p, 0, &same_name, &mut tree);
    let functions: std::collections::BTreeSet<&String> = tree.keys().flat_map(|path| path.last()).collect();
    let pairs: std::collections::BTreeSet<(&String, &String)> = tree
        .keys()
        .filter(|k| k.len() > 1)
        .map(|k| (&k[k.len() - 2], &k[k.len() - 1]))
        .filter(|(a, b)| a != b)
        .collect();
    let total: i64 = tree.iter().filter(|(k, _)| k.len() == 1).map(|(_, v)| v).sum();
    assert!(functions.len() > 100, "a profile worth cutting: {}", functions.len());

    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    push(&client, &server.url, &[("__name__", "process_cpu"), ("service_name", "java")], &p).await;
    let (start, end) = ((now - 600_000_000_000) / 1_000_000, now / 1_000_000);
    let ask = |max_nodes: i64| {
        serde_json::json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"java\"}", "start": start,
                           "end": end, "format": "PROFILE_FORMAT_DOT", "maxNodes": max_nodes})
    };
    let (status, v) = connect_json(&client, &server.url, "SelectMergeStacktraces", None, ask(1_000_000)).await;
    assert_eq!(status, 200, "{v}");
    let dot = v["dot"].as_str().expect("dot");
    let nodes = dot.lines().filter(|l| l.starts_with('N') && !l.contains(" -> ")).count();
    let edges = dot.lines().filter(|l| l.contains(" -> ")).count();
    assert_eq!(nodes, functions.len());
    assert_eq!(edges, pairs.len());
    let total_label = format!("{:.2}", total as f64 / 1e9);
    let total_label = total_label.strip_suffix(".00").unwrap_or(&total_label);
    assert!(dot.contains(&format!("of {total_label}s total")), "total {total}: {}", &dot[..400.min(dot.len())]);
    assert!(!dot.contains("Showing top"));
    graphviz_accepts(dot);

    let (status, v) = connect_json(&client, &server.url, "SelectMergeStacktraces", None, ask(10)).await;
    assert_eq!(status, 200, "{v}");
    let dot = v["dot"].as_str().expect("dot");
    graphviz_accepts(dot);
    let nodes = dot.lines().filter(|l| l.starts_with('N') && !l.contains(" -> ")).count();
    assert_eq!(nodes, 10);
    assert!(dot.contains("Showing top 10 nodes out of "), "{dot}");
    // The default: 100 nodes.
    let mut req = ask(0);
    req.as_object_mut().map(|o| o.remove("maxNodes"));
    let (_, v) = connect_json(&client, &server.url, "SelectMergeStacktraces", None, req).await;
    let dot = v["dot"].as_str().expect("dot");
    graphviz_accepts(dot);
    assert_eq!(dot.lines().filter(|l| l.starts_with('N') && !l.contains(" -> ")).count(), 100);
}

/// Runs Graphviz over `dot` when it is installed (it is not a build dependency): the output must
/// be a graph it lays out without complaint.
fn graphviz_accepts(dot: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) =
        Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()
    else {
        eprintln!("notice: graphviz `dot` absent, syntax check skipped");
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).expect("write to dot");
    }
    let out = child.wait_with_output().expect("dot");
    assert!(out.status.success(), "graphviz rejected the graph: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "graphviz warnings: {}", String::from_utf8_lossy(&out.stderr));
}
