//! Ingest limits end to end, against the real binary: the per-tenant ingestion rate (429 on Push
//! and /ingest, nothing stored or logged to the WAL), per-tenant overrides from a runtime file
//! reloaded without a restart (and shown by `/api/v1/tenant_limits`), the active-series limit,
//! gzip bombs, the body limit, and the validation limits of contract §9.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::PushRequest;
use prost::Message;
use serde_json::{Value, json};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const PUSH: &str = "/push.v1.PusherService/Push";

/// Writes the runtime file atomically (a reload never reads half a file).
fn write_runtime(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write runtime config");
    std::fs::rename(&tmp, path).expect("rename runtime config");
}

/// A CPU profile of one stack whose leaf name is `pad` bytes long: about `pad` bytes encoded.
fn padded_profile(pad: usize, value: i64) -> Profile {
    let leaf = "f".repeat(pad);
    build_pprof(("cpu", "nanoseconds"), &[(&["main", leaf.as_str()], value)], now_nanos())
}

fn cpu_push(service: &str, p: &Profile) -> PushRequest {
    push_request(&[("__name__", "process_cpu"), ("service_name", service)], p)
}

/// Pushes over Connect (binary proto); returns the status and the JSON error body (or Null).
async fn push(c: &reqwest::Client, url: &str, tenant: Option<&str>, req: &PushRequest) -> (u16, Value) {
    let (st, body) = connect_proto(c, url, PUSH, tenant, req).await;
    (st, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `POST /ingest?<query>`; returns the status and the JSON error body (or Null).
async fn ingest(
    c: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = c.post(format!("{url}/ingest?{query}")).body(body);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("send");
    let st = resp.status().as_u16();
    (st, serde_json::from_slice(&resp.bytes().await.expect("body")).unwrap_or(Value::Null))
}

async fn tenant_limits(c: &reqwest::Client, url: &str, tenant: Option<&str>) -> (u16, Value) {
    let mut req = c.get(format!("{url}/api/v1/tenant_limits"));
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.expect("send");
    let st = resp.status().as_u16();
    (st, serde_json::from_slice(&resp.bytes().await.expect("body")).unwrap_or(Value::Null))
}

/// Polls the tenant's limits until `field` equals `want`; returns how long that took.
async fn await_limit(c: &reqwest::Client, url: &str, tenant: &str, field: &str, want: Value) -> Duration {
    let start = Instant::now();
    loop {
        let (st, v) = tenant_limits(c, url, Some(tenant)).await;
        assert_eq!(st, 200, "{v}");
        if v[field] == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{field} of {tenant} never became {want}: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Total of the tenant's CPU profiles of `service` in the last hour (0 when there are none).
async fn cpu_total(c: &reqwest::Client, url: &str, tenant: Option<&str>, service: &str) -> i64 {
    let now_ms = now_nanos() / 1_000_000;
    let selector = format!("{{service_name=\"{service}\"}}");
    select_flamegraph(c, url, tenant, CPU, &selector, (now_ms - 3_600_000, now_ms + 60_000), None).await.1
}

fn assert_error(got: &(u16, Value), status: u16, code: &str, fragment: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    let msg = got.1["message"].as_str().unwrap_or("");
    assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
}

#[tokio::test]
async fn rate_limit_per_tenant_from_runtime_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = dir.path().join("runtime.yaml");
    // `slow`: 1 KiB/s and a 50 KiB bucket; everyone else keeps Pyroscope's 4 MiB/s, 2 MiB.
    let slow = "overrides:\n  slow:\n    ingestion_rate_mb: 0.001\n    ingestion_burst_size_mb: 0.05\n";
    write_runtime(&rt, slow);
    let rt_flag = format!("-runtime-config.file={}", rt.display());
    let args = ["-auth.multitenancy-enabled", rt_flag.as_str(), "-runtime-config.reload-period=100ms"];
    let server = Server::start(&args);
    let c = reqwest::Client::new();
    let url = server.url.clone();

    let (st, v) = tenant_limits(&c, &url, Some("slow")).await;
    assert_eq!(st, 200);
    assert_eq!((v["ingestion_rate_mb"].as_f64(), v["ingestion_burst_size_mb"].as_f64()), (Some(0.001), Some(0.05)));
    let (_, v) = tenant_limits(&c, &url, Some("fast")).await;
    assert_eq!((v["ingestion_rate"].clone(), v["ingestion_burst_size"].clone()), (json!(4), json!(2)), "{v}");
    assert_eq!(v["max_global_series_per_user"], json!(5000));

    // ~20 KB each once decompressed: two fit in the 51,200-byte bucket, the third does not.
    let p = padded_profile(20_000, 10);
    let size = p.encoded_len();
    assert!((20_000..21_000).contains(&size), "{size}");
    let req = cpu_push("svc", &p);
    assert_eq!(push(&c, &url, Some("slow"), &req).await.0, 200);
    assert_eq!(push(&c, &url, Some("slow"), &req).await.0, 200);
    let refused = push(&c, &url, Some("slow"), &req).await;
    assert_error(&refused, 429, "resource_exhausted", "push rate limit (1.0 KiB) exceeded while adding 20 KiB");

    // /ingest: the text path and the pprof path answer 429 too.
    let folded = format!("main;{} 5\n", "g".repeat(15_000)).into_bytes();
    let r = ingest(&c, &url, Some("slow"), "name=legacy.cpu", &[], folded.clone()).await;
    assert_error(&r, 429, "resource_exhausted", "push rate limit");
    let r = ingest(&c, &url, Some("slow"), "name=legacy&format=pprof", &[], p.encode_to_vec()).await;
    assert_error(&r, 429, "resource_exhausted", "push rate limit");

    // Another tenant is not affected: the same pushes all pass.
    for _ in 0..5 {
        assert_eq!(push(&c, &url, Some("fast"), &req).await.0, 200);
    }
    assert_eq!(ingest(&c, &url, Some("fast"), "name=legacy.cpu", &[], folded.clone()).await.0, 200);

    // Refused profiles were not stored.
    assert_eq!(cpu_total(&c, &url, Some("slow"), "svc").await, 20, "two of three pushes stored");
    assert_eq!(cpu_total(&c, &url, Some("slow"), "legacy").await, 0);
    assert_eq!(cpu_total(&c, &url, Some("fast"), "svc").await, 50);

    // Raising the limit in the file takes effect without a restart.
    write_runtime(&rt, "overrides:\n  slow:\n    ingestion_rate_mb: 100\n    ingestion_burst_size_mb: 100\n");
    let took = await_limit(&c, &url, "slow", "ingestion_rate", json!(100)).await;
    eprintln!("raised rate visible after {took:?}");
    // As in Go's rate limiter, tokens accrue at the new rate from the change on (here 100 MiB/s,
    // so within a millisecond or two): poll until the first push passes, then all do.
    let start = Instant::now();
    while push(&c, &url, Some("slow"), &req).await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(2), "the raised rate was not applied");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..2 {
        assert_eq!(push(&c, &url, Some("slow"), &req).await.0, 200);
    }
    assert_eq!(cpu_total(&c, &url, Some("slow"), "svc").await, 50);

    // After a crash the WAL replays exactly the accepted profiles: refused ones were never logged.
    let data = server.kill9();
    let server = Server::start_in(data, &args);
    assert_eq!(cpu_total(&c, &server.url, Some("slow"), "svc").await, 50);
    assert_eq!(cpu_total(&c, &server.url, Some("slow"), "legacy").await, 0);
    assert_eq!(cpu_total(&c, &server.url, Some("fast"), "svc").await, 50);
}

#[tokio::test]
async fn default_burst_refuses_a_larger_push() {
    // Pyroscope's default bucket is 2 MiB: one push of more than that is always refused, and a
    // flag raises it.
    let c = reqwest::Client::new();
    let p = padded_profile(1 << 20, 1);
    let mut req = cpu_push("svc", &p);
    let sample = req.series[0].samples[0].clone();
    req.series[0].samples.extend([sample.clone(), sample]);
    let server = Server::start(&[]);
    let r = push(&c, &server.url, None, &req).await;
    assert_error(&r, 429, "resource_exhausted", "push rate limit (4.0 MiB) exceeded while adding 3.0 MiB");
    assert_eq!(cpu_total(&c, &server.url, None, "svc").await, 0, "a refused push stores nothing");
    let server = Server::start(&["-distributor.ingestion-burst-size-mb=8"]);
    assert_eq!(push(&c, &server.url, None, &req).await.0, 200);
    assert_eq!(cpu_total(&c, &server.url, None, "svc").await, 3);
}

#[tokio::test]
async fn runtime_overrides_reload_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = dir.path().join("runtime.yaml");
    let limit = |n: usize| format!("overrides:\n  t:\n    max_label_names_per_series: {n}\n");
    write_runtime(&rt, &limit(3));
    let rt_flag = format!("-runtime-config.file={}", rt.display());
    let server = Server::start(&["-auth.multitenancy-enabled", &rt_flag, "-runtime-config.reload-period=200ms"]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main", "work"], 7)], now_nanos());
    let four = push_request(&[("__name__", "process_cpu"), ("service_name", "svc"), ("a", "1"), ("b", "2")], &p);
    let three = push_request(&[("__name__", "process_cpu"), ("service_name", "svc"), ("a", "1")], &p);

    let (st, v) = tenant_limits(&c, &url, Some("t")).await;
    assert_eq!((st, v["max_label_names_per_series"].clone()), (200, json!(3)));
    assert_eq!(tenant_limits(&c, &url, Some("other")).await.1["max_label_names_per_series"], json!(30));
    assert_eq!(tenant_limits(&c, &url, None).await.0, 401, "the tenant is required with multitenancy on");
    assert_error(&push(&c, &url, Some("t"), &four).await, 400, "invalid_argument", "has 4 label names; limit 3");
    assert_eq!(push(&c, &url, Some("other"), &four).await.0, 200, "other tenants keep the default");

    // Raise: visible in tenant_limits within the reload period, then enforced.
    write_runtime(&rt, &limit(10));
    let took = await_limit(&c, &url, "t", "max_label_names_per_series", json!(10)).await;
    assert!(took < Duration::from_secs(5), "reload took {took:?}");
    assert_eq!(push(&c, &url, Some("t"), &four).await.0, 200);

    // Lower below what was accepted before.
    write_runtime(&rt, &limit(2));
    await_limit(&c, &url, "t", "max_label_names_per_series", json!(2)).await;
    assert_error(&push(&c, &url, Some("t"), &three).await, 400, "invalid_argument", "has 3 label names; limit 2");

    // A broken file keeps the last good overrides; the process stays up and reloads a fixed one.
    write_runtime(&rt, "overrides: [this is not\n");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(tenant_limits(&c, &url, Some("t")).await.1["max_label_names_per_series"], json!(2));
    write_runtime(&rt, "overrides:\n  t:\n    max_label_names_per_series: lots\n");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(tenant_limits(&c, &url, Some("t")).await.1["max_label_names_per_series"], json!(2));
    write_runtime(&rt, &limit(5));
    await_limit(&c, &url, "t", "max_label_names_per_series", json!(5)).await;
    assert_eq!(push(&c, &url, Some("t"), &four).await.0, 200);

    // Removing the tenant's entry returns it to the defaults.
    write_runtime(&rt, "overrides: {}\n");
    await_limit(&c, &url, "t", "max_label_names_per_series", json!(30)).await;
    assert_eq!(cpu_total(&c, &url, Some("t"), "svc").await, 14, "the two accepted pushes");
}

#[test]
fn startup_with_a_broken_runtime_file_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = dir.path().join("runtime.yaml");
    write_runtime(&rt, "overrides:\n  t:\n    ingestion_rate_mb: fast\n");
    let out = Command::new(env!("CARGO_BIN_EXE_flamedb"))
        .arg("-server.http-listen-address=127.0.0.1")
        .arg("-server.http-listen-port=0")
        .arg(format!("-pyroscopedb.data-path={}", dir.path().join("data").display()))
        .arg(format!("-runtime-config.file={}", rt.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run flamedb");
    assert!(!out.status.success(), "must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runtime configuration") && err.contains("\"t\""), "unclear error: {err}");
    let missing = dir.path().join("nope.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_flamedb"))
        .arg("-server.http-listen-port=0")
        .arg(format!("-pyroscopedb.data-path={}", dir.path().join("data").display()))
        .arg(format!("-runtime-config.file={}", missing.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run flamedb");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml"));
}

#[tokio::test]
async fn active_series_limit() {
    let server = Server::start(&["-ingester.max-global-series-per-tenant=3"]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    assert_eq!(tenant_limits(&c, &url, None).await.1["max_global_series_per_user"], json!(3));
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main", "work"], 4)], now_nanos());
    for i in 0..3 {
        assert_eq!(push(&c, &url, None, &cpu_push(&format!("svc-{i}"), &p)).await.0, 200);
    }
    let r = push(&c, &url, None, &cpu_push("svc-3", &p)).await;
    assert_error(&r, 429, "resource_exhausted", "Maximum active series limit exceeded (3/3)");
    // Existing series still accept data, on both paths.
    assert_eq!(push(&c, &url, None, &cpu_push("svc-1", &p)).await.0, 200);
    let r = ingest(&c, &url, None, "name=svc-9.cpu", &[], b"main;work 3\n".to_vec()).await;
    assert_error(&r, 429, "resource_exhausted", "Maximum active series limit exceeded");
    assert_eq!(cpu_total(&c, &url, None, "svc-1").await, 8);
    assert_eq!(cpu_total(&c, &url, None, "svc-3").await, 0, "the refused series was not created");
    assert_eq!(cpu_total(&c, &url, None, "svc-9").await, 0);
}

/// `len` zero bytes gzip'd by streaming (never holding them): about len/1000 bytes.
fn gzip_zeros(len: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        e.write_all(&chunk[..n]).expect("gzip");
        left -= n;
    }
    e.finish().expect("gzip")
}

#[tokio::test]
async fn gzip_bombs_are_refused() {
    let server = Server::start(&[]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    let small = gzip_zeros(10 << 20);
    assert!(small.len() < 32 << 10, "{}", small.len());
    let huge = gzip_zeros(1 << 30);
    assert!(huge.len() < 2 << 20, "{}", huge.len());
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main"], 1)], now_nanos());

    for (what, bomb) in [("10 MiB", &small), ("1 GiB", &huge)] {
        // Push raw_profile: over max_profile_size_bytes once decompressed -> invalid_argument.
        let mut req = cpu_push("svc", &p);
        req.series[0].samples[0].raw_profile = bomb.clone().into();
        let r = push(&c, &url, None, &req).await;
        assert_error(&r, 400, "invalid_argument", "exceeds limit of 4194304 bytes");
        // /ingest pprof body and multipart part: the pprof path answers 422.
        let r = ingest(&c, &url, None, "name=svc&format=pprof", &[], bomb.clone()).await;
        assert_eq!(r.0, 422, "{what} pprof body: {}", r.1);
        let (ct, body) = multipart_form(&[("profile", bomb)]);
        let r = ingest(&c, &url, None, "name=svc", &[("Content-Type", &ct)], body).await;
        assert_eq!(r.0, 422, "{what} multipart part: {}", r.1);
    }
    // Content-Encoding: gzip over the 256 MiB body limit once decompressed: /ingest 413 ...
    let r = ingest(&c, &url, None, "name=svc.cpu", &[("Content-Encoding", "gzip")], huge.clone()).await;
    assert_error(&r, 413, "invalid_argument", "exceeds");
    // ... and Connect's read limit on Push: resource_exhausted.
    let resp = c
        .post(format!("{url}{PUSH}"))
        .header("Content-Type", "application/proto")
        .header("Content-Encoding", "gzip")
        .body(huge)
        .send()
        .await
        .expect("send");
    let st = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).unwrap_or(Value::Null);
    assert_error(&(st, v), 429, "resource_exhausted", "exceeds");

    // The process is still up and still ingests.
    assert_eq!(c.get(format!("{url}/ready")).send().await.expect("ready").status().as_u16(), 200);
    assert_eq!(push(&c, &url, None, &cpu_push("svc", &p)).await.0, 200);
    assert_eq!(cpu_total(&c, &url, None, "svc").await, 1);
}

#[tokio::test]
async fn body_limit_per_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = dir.path().join("runtime.yaml");
    write_runtime(&rt, "overrides:\n  tiny:\n    ingestion_body_limit_mb: 1\n");
    let rt_flag = format!("-runtime-config.file={}", rt.display());
    let server = Server::start(&["-auth.multitenancy-enabled", &rt_flag]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    // 1.5 MiB of folded lines: over tiny's 1 MiB, under everyone's 2 MiB rate burst.
    let line = b"main;work 1\n";
    let lines = (3 << 19) / line.len();
    let body: Vec<u8> = line.iter().copied().cycle().take(lines * line.len()).collect();
    let r = ingest(&c, &url, Some("tiny"), "name=big.cpu", &[], body.clone()).await;
    assert_error(&r, 413, "invalid_argument", "request body too large");
    assert_eq!(ingest(&c, &url, Some("roomy"), "name=big.cpu", &[], body).await.0, 200);
    // Push: raw profiles summing over the tenant's body limit -> invalid_argument.
    let p = padded_profile(600 << 10, 1);
    let mut req = cpu_push("svc", &p);
    let s = req.series[0].samples[0].clone();
    req.series[0].samples.push(s);
    let r = push(&c, &url, Some("tiny"), &req).await;
    assert_error(&r, 400, "invalid_argument", "too large");
    assert_eq!(push(&c, &url, Some("roomy-2"), &req).await.0, 200);
}

#[tokio::test]
async fn validation_limits_answer_as_the_contract_says() {
    let server = Server::start(&[]);
    let c = reqwest::Client::new();
    let url = server.url.clone();
    let now = now_nanos();
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main"], 1)], now);
    let with = |labels: &[(&str, &str)]| push_request(labels, &p);

    let names: Vec<(String, String)> = (0..29).map(|i| (format!("l{i}"), "v".to_string())).collect();
    let mut labels: Vec<(&str, &str)> = vec![("__name__", "process_cpu"), ("service_name", "s")];
    labels.extend(names.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_error(&push(&c, &url, None, &with(&labels)).await, 400, "invalid_argument", "has 31 label names; limit 30");
    labels.pop();
    assert_eq!(push(&c, &url, None, &with(&labels)).await.0, 200, "30 label names are fine");

    let long_name = "n".repeat(1025);
    let r =
        push(&c, &url, None, &with(&[("__name__", "process_cpu"), ("service_name", "s"), (long_name.as_str(), "v")]))
            .await;
    assert_error(&r, 400, "invalid_argument", "label name too long");
    let long_value = "v".repeat(2049);
    let r = push(&c, &url, None, &with(&[("__name__", "process_cpu"), ("service_name", long_value.as_str())])).await;
    assert_error(&r, 400, "invalid_argument", "label value too long");

    let frames: Vec<String> = (0..16_001).map(|i| format!("f{i}")).collect();
    let stacks: Vec<([&str; 1], i64)> = frames.iter().map(|f| ([f.as_str()], 1)).collect();
    let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|(s, v)| (&s[..], *v)).collect();
    let many = build_pprof(("cpu", "nanoseconds"), &stacks, now);
    assert_eq!(many.sample.len(), 16_001);
    let r = push(&c, &url, None, &cpu_push("s", &many)).await;
    assert_error(&r, 400, "invalid_argument", "exceeds the samples count limit");

    let future = build_pprof(("cpu", "nanoseconds"), &[(&["main"], 1)], now + 3_600_000_000_000);
    let r = push(&c, &url, None, &cpu_push("s", &future)).await;
    assert_error(&r, 400, "invalid_argument", "outside of ingestion window");

    // Over max_profile_size_bytes (4 MiB): Push 400, /ingest's pprof path 422.
    let big = padded_profile(4 << 20, 1);
    let r = push(&c, &url, None, &cpu_push("s", &big)).await;
    assert_error(&r, 400, "invalid_argument", "exceeds limit");
    let r = ingest(&c, &url, None, "name=s&format=pprof", &[], gzip(&big.encode_to_vec())).await;
    assert_eq!(r.0, 422, "{}", r.1);
    // Labels over the limit on /ingest's text path: 400.
    let name: String = (0..31).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    let r = ingest(&c, &url, None, &format!("name=s.cpu{{{name}}}"), &[], b"main 1\n".to_vec()).await;
    assert_error(&r, 400, "invalid_argument", "label names; limit 30");
    assert_eq!(cpu_total(&c, &url, None, "s").await, 1, "only the 30-label push was stored");
}
