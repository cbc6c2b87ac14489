//! Durability with the real binary: every acknowledged profile survives `kill -9` (WAL), a flush
//! moves data into blocks without losing or doubling it, a damaged block is skipped while the
//! rest is served, and the bucket can be S3 (s3s-fs in-process on loopback).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, decode_pprof, fixtures, now_nanos};
use serde_json::json;

/// A real profile: the first Node.js SDK capture (a gzip'd pprof sent to `/ingest?format=pprof`).
fn node_body() -> Vec<u8> {
    std::fs::read(fixtures().join("nodejs-0.6.4/req0001.body")).expect("node capture")
}

/// Totals per (sample type, unit) of a pprof, computed here from the raw messages.
fn pprof_totals(body: &[u8]) -> BTreeMap<(String, String), i64> {
    let p = decode_pprof(body);
    let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (k, st) in p.sample_type.iter().enumerate() {
        let total: i64 = p.sample.iter().map(|x| x.value.get(k).copied().unwrap_or(0)).sum();
        out.insert((s(st.r#type), s(st.unit)), total);
    }
    out
}

fn ingest_url(server: &str, app: &str, seq: usize) -> String {
    let now = now_nanos() / 1_000_000_000;
    format!("{server}/ingest?format=pprof&name={app}%7Bseq%3D{seq}%7D&from={}&until={now}&spyName=nodespy", now - 10)
}

/// POSTs profile `seq` (the capture with its timestamp moved to now); true when the server
/// acknowledged it.
async fn push(client: &reqwest::Client, server: &str, app: &str, seq: usize, body: &[u8]) -> bool {
    let mut p = decode_pprof(body);
    p.time_nanos = now_nanos();
    let body = common::gzip(&prost::Message::encode_to_vec(&p));
    match client.post(ingest_url(server, app, seq)).body(body).send().await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// Per profile type (sample type, unit): seq -> summed total, over the last hour.
async fn totals_by_seq(
    client: &reqwest::Client,
    server: &str,
    app: &str,
) -> BTreeMap<(String, String), BTreeMap<usize, f64>> {
    let end = now_nanos() / 1_000_000 + 60_000;
    let start = end - 3_600_000;
    let (status, types) =
        common::connect_json(client, server, "ProfileTypes", None, json!({"start": start, "end": end})).await;
    assert_eq!(status, 200, "{types}");
    let mut out = BTreeMap::new();
    for t in types["profileTypes"].as_array().cloned().unwrap_or_default() {
        let id = t["ID"].as_str().or_else(|| t["id"].as_str()).unwrap_or_default().to_string();
        let key =
            (t["sampleType"].as_str().unwrap_or("").to_string(), t["sampleUnit"].as_str().unwrap_or("").to_string());
        let (status, series) = common::connect_json(
            client,
            server,
            "SelectSeries",
            None,
            json!({"profileTypeID": id, "labelSelector": format!("{{service_name=\"{app}\"}}"), "start": start,
                   "end": end, "step": 7200.0, "groupBy": ["seq"]}),
        )
        .await;
        assert_eq!(status, 200, "{series}");
        let mut by_seq = BTreeMap::new();
        for s in series["series"].as_array().cloned().unwrap_or_default() {
            let seq: usize = s["labels"]
                .as_array()
                .and_then(|l| l.iter().find(|p| p["name"] == "seq"))
                .and_then(|p| p["value"].as_str())
                .and_then(|v| v.parse().ok())
                .expect("seq label");
            let total: f64 = s["points"]
                .as_array()
                .map(|p| p.iter().map(|x| x["value"].as_f64().unwrap_or(0.0)).sum())
                .unwrap_or(0.0);
            by_seq.insert(seq, total);
        }
        out.insert(key, by_seq);
    }
    out
}

/// Every seq in `expect` is present with exactly one profile's total for every sample type of
/// the pprof; no seq outside `allowed` appears.
fn check_once(
    got: &BTreeMap<(String, String), BTreeMap<usize, f64>>,
    totals: &BTreeMap<(String, String), i64>,
    expect: &[usize],
    allowed: &[usize],
) {
    let mut matched = 0;
    for (key, want) in totals {
        let Some(by_seq) = got.get(key) else { continue };
        matched += 1;
        for seq in expect {
            let v = by_seq.get(seq).copied();
            assert_eq!(v, Some(*want as f64), "{key:?} seq {seq}: want {want} once, got {v:?}");
        }
        for seq in by_seq.keys() {
            assert!(allowed.contains(seq), "{key:?}: seq {seq} was never sent");
        }
    }
    assert!(matched > 0, "no profile type of the pprof ({totals:?}) came back: {got:?}");
}

/// Every profile type's flame graph of `app` (all nodes), as {type id: (path -> total, total)}.
async fn flame_graphs(client: &reqwest::Client, server: &str, app: &str) -> BTreeMap<String, (common::Tree, i64)> {
    let end = now_nanos() / 1_000_000 + 60_000;
    let start = end - 3_600_000;
    let (_, types) =
        common::connect_json(client, server, "ProfileTypes", None, json!({"start": start, "end": end})).await;
    let mut out = BTreeMap::new();
    for t in types["profileTypes"].as_array().cloned().unwrap_or_default() {
        let id = t["ID"].as_str().or_else(|| t["id"].as_str()).unwrap_or_default().to_string();
        let (status, resp) = common::connect_json(
            client,
            server,
            "SelectMergeStacktraces",
            None,
            json!({"profileTypeID": id, "labelSelector": format!("{{service_name=\"{app}\"}}"), "start": start,
                   "end": end, "maxNodes": 1048576}),
        )
        .await;
        assert_eq!(status, 200, "{resp}");
        out.insert(id, common::json_flamegraph_tree(&resp["flamegraph"]));
    }
    out
}

fn block_dirs(bucket: &std::path::Path, tenant: &str) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(bucket.join(tenant)) else { return vec![] };
    let mut v: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("meta.json").exists()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_keeps_every_acknowledged_profile() {
    let body = Arc::new(node_body());
    let totals = pprof_totals(&body);
    let server = Server::start(&[]);
    let url = server.url.clone();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    // Four writers push in a loop; each remembers what was acknowledged.
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (client, url, body, stop) = (client.clone(), url.clone(), body.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut sent = Vec::new();
            let mut seq = w;
            while !stop.load(Ordering::Relaxed) {
                sent.push(seq);
                if push(&client, &url, "crash.app", seq, &body).await {
                    acked.push(seq);
                }
                seq += 4;
            }
            (acked, sent)
        }));
    }
    // Kill mid-stream, once a good number of writes were acknowledged.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let data = tokio::task::spawn_blocking(move || server.kill9()).await.expect("kill");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for w in writers {
        let (a, s) = w.await.expect("writer");
        acked.extend(a);
        sent.extend(s);
    }
    assert!(acked.len() >= 10, "only {} writes were acknowledged before the kill", acked.len());
    assert!(sent.len() > acked.len(), "the kill did not interrupt any write");

    let server = Server::start_in(data, &[]);
    let got = totals_by_seq(&client, &server.url, "crash.app").await;
    check_once(&got, &totals, &acked, &sent);
    eprintln!("kill -9: {} acknowledged, {} sent, all acknowledged ones present once", acked.len(), sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_across_a_flush_keeps_each_profile_once() {
    let body = node_body();
    let totals = pprof_totals(&body);
    let client = reqwest::Client::new();
    let server = Server::start(&[]);
    for seq in 0..5 {
        assert!(push(&client, &server.url, "flush.app", seq, &body).await);
    }
    let from_head = flame_graphs(&client, &server.url, "flush.app").await;
    let r = client.post(format!("{}/ingester/flush", server.url)).send().await.expect("flush");
    assert_eq!(r.status().as_u16(), 204);
    // The same profiles read back from the block give node-for-node the same flame graphs.
    let from_block = flame_graphs(&client, &server.url, "flush.app").await;
    assert!(!from_head.is_empty() && from_head.values().all(|(t, total)| !t.is_empty() && *total > 0));
    assert_eq!(from_head, from_block, "flame graphs from the head and from the block differ");
    let bucket = server.data.path().join("bucket");
    assert_eq!(block_dirs(&bucket, "anonymous").len(), 1, "one block after the flush");
    for seq in 5..10 {
        assert!(push(&client, &server.url, "flush.app", seq, &body).await);
    }
    let all: Vec<usize> = (0..10).collect();
    // Head and block together, before the restart.
    check_once(&totals_by_seq(&client, &server.url, "flush.app").await, &totals, &all, &all);

    let data = server.kill9();
    let server = Server::start_in(data, &[]);
    check_once(&totals_by_seq(&client, &server.url, "flush.app").await, &totals, &all, &all);
    // A second flush after the restart moves the replayed profiles into a second block, and
    // still nothing is doubled.
    let r = client.post(format!("{}/ingester/flush", server.url)).send().await.expect("flush");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(block_dirs(&server.data.path().join("bucket"), "anonymous").len(), 2);
    check_once(&totals_by_seq(&client, &server.url, "flush.app").await, &totals, &all, &all);
    let data = server.kill9();
    let server = Server::start_in(data, &[]);
    check_once(&totals_by_seq(&client, &server.url, "flush.app").await, &totals, &all, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_is_skipped_and_the_rest_served() {
    let body = node_body();
    let totals = pprof_totals(&body);
    let client = reqwest::Client::new();
    let server = Server::start(&[]);
    for (seq, _) in [(0, ()), (1, ())] {
        assert!(push(&client, &server.url, "corrupt.app", seq, &body).await);
        let r = client.post(format!("{}/ingester/flush", server.url)).send().await.expect("flush");
        assert_eq!(r.status().as_u16(), 204);
    }
    let bucket = server.data.path().join("bucket");
    let blocks = block_dirs(&bucket, "anonymous");
    assert_eq!(blocks.len(), 2);
    let data = server.kill9();
    // Damage the first block's profiles (as a half-written upload would).
    let victim = blocks[0].join("profiles.parquet");
    let bytes = std::fs::read(&victim).expect("read block");
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).expect("truncate");

    let server = Server::start_in(data, &[]);
    let got = totals_by_seq(&client, &server.url, "corrupt.app").await;
    // Which seq sat in the damaged block depends on ULID order; exactly one of them survives.
    let present: Vec<usize> =
        got.values().flat_map(|m| m.keys().copied()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(present.len(), 1, "one block skipped, one served: {got:?}");
    check_once(&got, &totals, &present, &[0, 1]);
    let metrics =
        client.get(format!("{}/metrics", server.url)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("flamedb_blocks_skipped_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_end_to_end() {
    let s3 = flamedb_storage::testing::S3Server::start("profiles").await;
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("flamedb.yaml");
    std::fs::write(&cfg, s3.yaml()).expect("config");
    let cfg_arg = format!("-config.file={}", cfg.display());
    let body = node_body();
    let totals = pprof_totals(&body);
    let client = reqwest::Client::new();
    let server = tokio::task::spawn_blocking({
        let a = cfg_arg.clone();
        move || Server::start(&[&a])
    })
    .await
    .expect("start");
    for seq in 0..3 {
        assert!(push(&client, &server.url, "s3.app", seq, &body).await);
    }
    let r = client.post(format!("{}/ingester/flush", server.url)).send().await.expect("flush");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(block_dirs(&s3.bucket_dir(), "anonymous").len(), 1, "the block is in the S3 bucket");
    drop(server);
    // A new process with an empty data directory (no WAL): everything comes from S3.
    let server = tokio::task::spawn_blocking(move || Server::start(&[&cfg_arg])).await.expect("start");
    let all: Vec<usize> = (0..3).collect();
    check_once(&totals_by_seq(&client, &server.url, "s3.app").await, &totals, &all, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_is_cut_into_a_block_on_its_interval() {
    let body = node_body();
    let client = reqwest::Client::new();
    let server = Server::start(&["-pyroscopedb.max-block-duration=1s"]);
    assert!(push(&client, &server.url, "interval.app", 0, &body).await);
    let bucket = server.data.path().join("bucket");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while block_dirs(&bucket, "anonymous").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no block was cut within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still queryable, once, now from the block.
    check_once(&totals_by_seq(&client, &server.url, "interval.app").await, &pprof_totals(&body), &[0], &[0]);
    // The WAL lets go of what the block holds (right after publishing it): only the segment
    // opened by the cut remains.
    let segments = || {
        std::fs::read_dir(server.data.path().join("wal"))
            .expect("wal dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
            .count()
    };
    while segments() != 1 {
        assert!(std::time::Instant::now() < deadline, "WAL segments were not truncated: {}", segments());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
