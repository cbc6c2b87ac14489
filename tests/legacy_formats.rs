//! `POST /ingest` with the legacy formats of the OG agents and tools: speedscope JSON, the binary
//! `tree` and `trie`, against the real binary. What is sent is encoded here (or read from
//! Pyroscope's speedscope fixtures), and what the flame graph shows is compared with the stacks
//! sent, scaled as the app-name suffix rules say.

mod common;

use common::*;
use serde_json::json;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const WALL: &str = "wall:wall:nanoseconds:cpu:nanoseconds";
const MEM_BYTES: &str = "memory:samples:bytes::";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/pyroscope");

/// Stacks sent in the tree and trie tests (counts; at `sampleRate=100` one count is 10 ms).
const STACKS: &[(&[&str], i64)] = &[
    (&["main", "a", "x"], 50),
    (&["main", "a", "y"], 25),
    (&["main", "a"], 3),
    (&["main", "b"], 15),
    (&["other_root", "z"], 4),
];

fn speedscope_fixture(name: &str) -> Option<Vec<u8>> {
    let path = format!("{FIXTURES}/og__convert__speedscope__testdata__{name}.speedscope.json");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("notice: {path} absent, skipped");
            None
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_node(out: &mut Vec<u8>, name: &[u8], value: u64, children: u64) {
    put_uvarint(out, name.len() as u64);
    out.extend_from_slice(name);
    put_uvarint(out, value);
    put_uvarint(out, children);
}

/// The tree format: a virtual root, then each frame once with its self value, pre-order.
fn encode_tree(stacks: &[(&[&str], i64)]) -> Vec<u8> {
    #[derive(Default)]
    struct Node(i64, std::collections::BTreeMap<String, Node>);
    fn walk(out: &mut Vec<u8>, name: &str, n: &Node) {
        put_node(out, name.as_bytes(), n.0 as u64, n.1.len() as u64);
        for (k, c) in &n.1 {
            walk(out, k, c);
        }
    }
    let mut root = Node::default();
    for (frames, v) in stacks {
        let mut n = &mut root;
        for f in *frames {
            n = n.1.entry(f.to_string()).or_default();
        }
        n.0 += v;
    }
    let mut out = Vec::new();
    walk(&mut out, "", &root);
    out
}

/// The trie format, hand-fragmented for `STACKS`: keys share the fragments `main;` and `a`, and
/// `main;a;x` / `main;a;y` split in the middle of the stack text.
fn encode_trie_of_stacks() -> Vec<u8> {
    let mut out = Vec::new();
    put_node(&mut out, b"", 0, 2);
    put_node(&mut out, b"main;", 0, 2); // main;
    put_node(&mut out, b"a", 3, 1); //       main;a         3
    put_node(&mut out, b";", 0, 2); //        main;a;
    put_node(&mut out, b"x", 50, 0); //       main;a;x      50
    put_node(&mut out, b"y", 25, 0); //       main;a;y      25
    put_node(&mut out, b"b", 15, 0); //       main;b        15
    put_node(&mut out, b"other_root;z", 4, 0);
    out
}

struct Setup {
    server: Server,
    client: reqwest::Client,
}

impl Setup {
    fn new() -> Self {
        Self { server: Server::start(&[]), client: reqwest::Client::new() }
    }

    async fn ingest(&self, query: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut req = self.client.post(format!("{}/ingest?{query}", self.server.url)).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.expect("send");
        (resp.status().as_u16(), resp.text().await.unwrap_or_default())
    }

    /// The flame graph of `selector` for a profile type over the last hour: (path -> total, total).
    async fn flamegraph(&self, type_id: &str, selector: &str) -> (Tree, i64) {
        let end = now_nanos() / 1_000_000 + 60_000;
        let range = (end - 3_600_000, end);
        select_flamegraph(&self.client, &self.server.url, None, type_id, selector, range, Some(65536)).await
    }
}

fn scaled<'a>(stacks: &[(&'a [&'a str], i64)], factor: i64) -> Vec<(&'a [&'a str], i64)> {
    stacks.iter().map(|(f, v)| (*f, v * factor)).collect()
}

fn total(stacks: &[(&[&str], i64)]) -> i64 {
    stacks.iter().map(|(_, v)| v).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_trie_bodies_are_stored_as_sent() {
    let s = Setup::new();
    let want = scaled(STACKS, 10_000_000); // sampleRate=100: one count = 10 ms
    let want_total = total(&want);
    assert!(want_total > 0);

    let (st, body) = s.ingest("name=treeapp.cpu&sampleRate=100&format=tree", None, encode_tree(STACKS)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.flamegraph(CPU, r#"{service_name="treeapp"}"#).await, (stacks_tree(&want), want_total));

    // The Content-Type alone selects the format too.
    let (st, body) =
        s.ingest("name=treect.cpu&sampleRate=100", Some("binary/octet-stream+tree"), encode_tree(STACKS)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.flamegraph(CPU, r#"{service_name="treect"}"#).await, (stacks_tree(&want), want_total));

    let (st, body) = s.ingest("name=trieapp.cpu&sampleRate=100&format=trie", None, encode_trie_of_stacks()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.flamegraph(CPU, r#"{service_name="trieapp"}"#).await, (stacks_tree(&want), want_total));

    let (st, body) =
        s.ingest("name=triect.wall&sampleRate=100", Some("binary/octet-stream+trie"), encode_trie_of_stacks()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.flamegraph(WALL, r#"{service_name="triect"}"#).await, (stacks_tree(&want), want_total));

    // Unscaled types keep the counts.
    let (st, body) = s.ingest("name=treemem.alloc_space{env=t}&format=tree", None, encode_tree(STACKS)).await;
    assert_eq!(st, 200, "{body}");
    let got = s.flamegraph("memory:alloc_space:bytes::", r#"{service_name="treemem",env="t"}"#).await;
    assert_eq!(got, (stacks_tree(STACKS), total(STACKS)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speedscope_fixtures_are_stored_per_profile() {
    let (Some(simple), Some(two), Some(bytes), Some(dups)) = (
        speedscope_fixture("simple"),
        speedscope_fixture("two-sampled"),
        speedscope_fixture("two-sampled-bytes"),
        speedscope_fixture("duplicates"),
    ) else {
        return;
    };
    let s = Setup::new();
    let abcd: &[(&[&str], i64)] = &[(&["a", "b"], 500), (&["a", "b", "c"], 500), (&["a", "b", "d"], 400)];

    // Evented, unit none: 100 stored counts per unit at rate 10000 (100 µs each) = 10 ms a unit.
    let (st, body) = s.ingest("name=ss-simple&format=speedscope", Some("application/json"), simple).await;
    assert_eq!(st, 200, "{body}");
    let want = scaled(abcd, 100_000);
    let got = s.flamegraph(CPU, r#"{service_name="ss-simple",profile_name="simple.txt"}"#).await;
    assert_eq!(got, (stacks_tree(&want), total(&want)));

    // Two sampled profiles in seconds: `ss-two.seconds`, a wall series per profile name.
    let (st, body) = s.ingest("name=ss-two&format=speedscope", None, two).await;
    assert_eq!(st, 200, "{body}");
    let want = scaled(abcd, 10_000_000); // 100 counts per second, 10 ms each: nanoseconds
    for name in ["one", "two"] {
        let got = s.flamegraph(WALL, &format!(r#"{{service_name="ss-two",profile_name="{name}"}}"#)).await;
        assert_eq!(got, (stacks_tree(&want), total(&want)), "{name}");
    }

    // Bytes: memory:samples:bytes, unscaled.
    let (st, body) = s.ingest("name=ss-bytes&format=speedscope", None, bytes).await;
    assert_eq!(st, 200, "{body}");
    let per_profile: &[(&[&str], i64)] = &[(&["a", "b"], 5), (&["a", "b", "c"], 5), (&["a", "b", "d"], 4)];
    let got = s.flamegraph(MEM_BYTES, r#"{service_name="ss-bytes",profile_name="two"}"#).await;
    assert_eq!(got, (stacks_tree(per_profile), total(per_profile)));
    let both = scaled(per_profile, 2);
    let got = s.flamegraph(MEM_BYTES, r#"{service_name="ss-bytes"}"#).await;
    assert_eq!(got, (stacks_tree(&both), total(&both)), "both profiles");

    // Three profiles named `one`: merged into a single series.
    let (st, body) = s.ingest("name=ss-dups.cpu&format=speedscope", None, dups).await;
    assert_eq!(st, 200, "{body}");
    let want = scaled(abcd, 3 * 10_000_000);
    let got = s.flamegraph(CPU, r#"{service_name="ss-dups",profile_name="one"}"#).await;
    assert_eq!(got, (stacks_tree(&want), total(&want)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_the_contract_status() {
    let s = Setup::new();
    let tree = encode_tree(STACKS);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Truncated and overflowing binary bodies: conversion failures.
        ("name=bad.cpu&format=tree", tree[..tree.len() - 2].to_vec(), 422),
        ("name=bad.cpu&format=trie", vec![0xff; 11], 422),
        ("name=bad.cpu&format=tree", vec![0, 0, 1, 0x7f, b'a'], 422),
        // Invalid UTF-8 in a frame name.
        ("name=bad.cpu&format=tree", vec![0, 0, 1, 1, 0xff, 1, 0], 422),
        // Malformed speedscope documents.
        ("name=bad&format=speedscope", b"{\"profiles\": [".to_vec(), 422),
        ("name=bad&format=speedscope", br#"{"$schema": "nope", "profiles": []}"#.to_vec(), 422),
        (
            "name=bad&format=speedscope",
            br#"{"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": [{"name": "a"}]},
                "profiles": [{"type": "sampled", "name": "p", "unit": "seconds", "samples": [[0, 5]], "weights": [1]}]}"#
                .to_vec(),
            422,
        ),
        (
            "name=bad&format=speedscope",
            br#"{"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": [{"name": "a"}]},
                "profiles": [{"type": "sampled", "name": "p", "unit": "seconds", "samples": [[0]], "weights": [-1]}]}"#
                .to_vec(),
            422,
        ),
        // The app-name suffix is the client's mistake: 400.
        ("name=bad.nope&format=tree", tree.clone(), 400),
        ("name=&format=trie", encode_trie_of_stacks(), 400),
    ];
    for (query, body, want) in cases {
        let (st, text) = s.ingest(query, None, body).await;
        assert_eq!(st, want, "{query}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        let code = if want == 400 { "invalid_argument" } else { "unknown" };
        assert_eq!(v["code"], json!(code), "{query}: {text}");
    }
    // Nothing of the refused uploads was stored.
    assert_eq!(s.flamegraph(CPU, r#"{service_name="bad"}"#).await.1, 0);
    assert_eq!(s.flamegraph(WALL, r#"{service_name="bad"}"#).await.1, 0);
}
