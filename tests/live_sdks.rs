//! Live Pyroscope SDKs against the real binary: `tests/sdk/burn.py` under PyPI `pyroscope-io` and
//! `tests/sdk/burn.js` under npm `@pyroscope/nodejs` profile themselves while burning CPU mostly in a
//! known hot function, upload to a freshly started flamedb, and the test then reads the flame graph
//! back and checks the hot function's share. The recorded captures (tests/clients.rs) pin what old
//! SDK versions sent; this catches what the current ones send.
//!
//! The SDK runtimes come from the environment (`.ci/run` installs them into a cache folder):
//! `FLAMEDB_SDK_PYTHON` names a Python that can `import pyroscope`, `FLAMEDB_SDK_NODE_DIR` a folder
//! whose `node_modules` holds `@pyroscope/nodejs` (run with `node` from `PATH`). Unset, each test
//! prints a notice and passes, so a plain `cargo test --workspace` stays offline and fast. Every
//! failure message starts with the client's name and carries the program's output.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// How long each program burns CPU; the SDKs upload every second, so this is ~15 uploads.
const RUN_SECONDS: u64 = 15;
/// Start-up (interpreter, SDK import, native agent) and the final upload on top of the run.
const PROGRAM_SLACK: Duration = Duration::from_secs(60);
/// The hot function runs ~80% of the time; below this share something was lost or misattributed.
const MIN_HOT_SHARE: f64 = 0.5;

/// One SDK under test and what it is known to send.
struct Sdk {
    /// Prefix of every assertion message: which client broke.
    client: &'static str,
    /// The profile type the SDK's CPU data is stored under.
    profile_type: &'static str,
    hot: &'static str,
    cold: &'static str,
    /// The least CPU time, as a fraction of the run, the flame graph must hold (the program keeps
    /// one core busy throughout): less means uploads were lost.
    min_cpu_fraction: f64,
    /// What the SDK writes to stderr when an upload fails or the server answers an error status
    /// (followed by that status and body): any of these is a server or protocol bug to report.
    rejection_markers: &'static [&'static str],
}

const PYTHON: Sdk = Sdk {
    client: "python pyroscope-io",
    // py-spy based agent: Push with __name__=process_cpu and a cpu/nanoseconds pprof.
    profile_type: "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
    hot: "flamedb_hot_python",
    cold: "flamedb_cold_python",
    // py-spy samples at 100 Hz and counts 10 ms a sample: ~97% of the run arrives.
    min_cpu_fraction: 0.5,
    rejection_markers: &["Sending Session failed", "Failed to send session"],
};

const NODE: Sdk = Sdk {
    client: "node @pyroscope/nodejs",
    // /ingest pprof of the wall profiler with collectCpuTime: its `cpu` sample type (period
    // wall/nanoseconds) is relabelled from `wall` to `process_cpu` by the default ingest rules.
    profile_type: "process_cpu:cpu:nanoseconds:wall:nanoseconds",
    hot: "flamedbHotNode",
    cold: "flamedbColdNode",
    // The wall profiler's `cpu` values add up to only 50-80% of the process's CPU time (measured
    // on the raw uploads), and a profile cut while the previous upload is in flight is dropped by
    // the SDK, so the floor is lower.
    min_cpu_fraction: 0.25,
    rejection_markers: &["Server rejected data ingest", "Error sending data ingest"],
};

/// What the profiled program did, kept for failure messages.
struct Run {
    status: String,
    stdout: String,
    stderr: String,
}

impl Run {
    /// A failure message: the client, what is wrong, then the program's output.
    fn fail(&self, sdk: &Sdk, what: &str) -> String {
        format!(
            "{}: {what}\n--- program {}\n--- program stdout:\n{}\n--- program stderr (tail):\n{}\n--- server log: \
             flamedb's warnings and errors are on this test's stderr (FLAMEDB_LOG=warn)",
            sdk.client,
            self.status,
            tail(&self.stdout, 40),
            tail(&self.stderr, 60),
        )
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cmd` to completion (killed after `limit`), its output captured in files so a chatty
/// program can never block on a full pipe.
fn run_program(sdk: &Sdk, mut cmd: Command, limit: Duration) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: cannot start {cmd:?}: {e}", sdk.client));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break format!("exited with {status}"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("killed after {limit:?} (did not finish)");
            }
            Err(e) => break format!("wait failed: {e}"),
        }
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Run { status, stdout: read(&out_path), stderr: read(&err_path) }
}

/// A frame shows the function `func`: py-spy frames are the bare name, Node frames are
/// `file:name:line` (and `file name` after a scripting-spy rename).
fn frame_is(frame: &str, func: &str) -> bool {
    frame == func || frame.split([':', ' ']).any(|part| part == func)
}

/// The time spent in `func` and below: totals of its nodes not nested in another `func` node
/// (recursion or re-entry would otherwise count twice).
fn function_total(tree: &Tree, func: &str) -> i64 {
    tree.iter()
        .filter(|(path, _)| match path.split_last() {
            Some((last, above)) => frame_is(last, func) && !above.iter().any(|f| frame_is(f, func)),
            None => false,
        })
        .map(|(_, v)| *v)
        .sum()
}

/// An application name no other test run shares: `[A-Za-z0-9_]` only, legal in every ingest path.
fn app_name(tag: &str) -> String {
    format!("flamedb_live_{tag}_{}_{}", std::process::id(), now_nanos() % 1_000_000_000)
}

/// Polls the flame graph of the app until its total stops growing (the last upload landed) or a
/// deadline passes; returns the last (tree, total).
async fn settled_flamegraph(client: &reqwest::Client, url: &str, sdk: &Sdk, app: &str, start_ms: i64) -> (Tree, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last: Option<(Tree, i64)> = None;
    loop {
        let end_ms = now_nanos() / 1_000_000 + 60_000;
        let (status, body) = connect_json(
            client,
            url,
            "SelectMergeStacktraces",
            None,
            json!({
                "profileTypeID": sdk.profile_type,
                "labelSelector": format!("{{service_name=\"{app}\"}}"),
                "start": start_ms,
                "end": end_ms,
            }),
        )
        .await;
        let current = if status == 200 { Some(json_flamegraph_tree(&body["flamegraph"])) } else { None };
        if status != 200 {
            eprintln!("{}: SelectMergeStacktraces answered {status}: {body}", sdk.client);
        }
        if let (Some((_, prev)), Some((tree, total))) = (&last, &current)
            && *total > 0
            && total == prev
        {
            return (tree.clone(), *total);
        }
        if Instant::now() > deadline {
            return current.or(last).unwrap_or_default();
        }
        if current.is_some() {
            last = current;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// The whole check for one SDK: run the program against a fresh server, then read it back.
async fn check_sdk(sdk: &Sdk, tag: &str, program: impl FnOnce(&str, &str) -> Command) {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let app = app_name(tag);
    let start_ms = now_nanos() / 1_000_000 - 60_000;
    let cmd = program(&server.url, &app);
    let run = tokio::task::block_in_place(|| run_program(sdk, cmd, Duration::from_secs(RUN_SECONDS) + PROGRAM_SLACK));
    eprintln!("{}: program {}; stdout:\n{}", sdk.client, run.status, tail(&run.stdout, 10));
    assert!(run.status.contains("exit status: 0"), "{}", run.fail(sdk, "the profiled program failed"));
    let rejected: Vec<&str> =
        run.stderr.lines().filter(|l| sdk.rejection_markers.iter().any(|m| l.contains(m))).take(5).collect();
    assert!(rejected.is_empty(), "{}", run.fail(sdk, &format!("uploads failed or were rejected: {rejected:#?}")));

    let end_ms = now_nanos() / 1_000_000 + 60_000;
    let (status, types) =
        connect_json(&client, &server.url, "ProfileTypes", None, json!({"start": start_ms, "end": end_ms})).await;
    assert_eq!(status, 200, "{}", run.fail(sdk, &format!("ProfileTypes answered {status}: {types}")));
    let ids: Vec<&str> = types["profileTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["ID"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&sdk.profile_type),
        "{}",
        run.fail(sdk, &format!("profile type {} missing; the server has {ids:?}", sdk.profile_type))
    );

    let (tree, total) = settled_flamegraph(&client, &server.url, sdk, &app, start_ms).await;
    let hot = function_total(&tree, sdk.hot);
    let cold = function_total(&tree, sdk.cold);
    let hot_share = hot as f64 / total.max(1) as f64;
    let cold_share = cold as f64 / total.max(1) as f64;
    eprintln!(
        "{}: {} total {total} ns ({:.1} s of CPU over a {RUN_SECONDS} s run); {} {:.1}%, {} {:.1}%",
        sdk.client,
        sdk.profile_type,
        total as f64 / 1e9,
        sdk.hot,
        hot_share * 100.0,
        sdk.cold,
        cold_share * 100.0
    );
    let heaviest = heaviest_paths(&tree, 8);
    let min_total = (sdk.min_cpu_fraction * RUN_SECONDS as f64 * 1e9) as i64;
    assert!(
        total >= min_total,
        "{}",
        run.fail(
            sdk,
            &format!(
                "flame graph of {} {{service_name=\"{app}\"}} holds {total} ns of CPU, want at least {min_total} \
                 (uploads lost?); heaviest paths: {heaviest}",
                sdk.profile_type
            )
        )
    );
    assert!(
        hot > 0,
        "{}",
        run.fail(sdk, &format!("hot function {} not in the flame graph; heaviest paths: {heaviest}", sdk.hot))
    );
    assert!(
        hot_share > MIN_HOT_SHARE,
        "{}",
        run.fail(
            sdk,
            &format!(
                "hot function {} holds {:.1}% of {total}, want > {:.0}% (it runs ~80% of the time); heaviest paths: \
                 {heaviest}",
                sdk.hot,
                hot_share * 100.0,
                MIN_HOT_SHARE * 100.0
            )
        )
    );
    assert!(
        cold > 0 && cold < hot,
        "{}",
        run.fail(
            sdk,
            &format!("cold function {} holds {cold} (want > 0 and < hot {hot}); heaviest paths: {heaviest}", sdk.cold)
        )
    );
}

/// The `n` heaviest leaf-to-root paths, for failure messages.
fn heaviest_paths(tree: &Tree, n: usize) -> String {
    let mut leaves: Vec<(&Vec<String>, i64)> = tree
        .iter()
        .filter(|(path, total)| {
            let children: i64 = tree
                .range((*path).clone()..)
                .skip(1)
                .take_while(|(p, _)| p.starts_with(path))
                .filter(|(p, _)| p.len() == path.len() + 1)
                .map(|(_, v)| *v)
                .sum();
            **total > children
        })
        .map(|(p, v)| (p, *v))
        .collect();
    leaves.sort_by_key(|l| std::cmp::Reverse(l.1));
    leaves.iter().take(n).map(|(p, v)| format!("\n  {} {v}", p.join(";"))).collect()
}

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// The variable naming an SDK runtime, or `None` (with the skip notice) when it is unset.
fn sdk_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("notice: {var} not set, live {what} SDK test skipped");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pyroscope_io_hot_function() {
    let Some(python) = sdk_env("FLAMEDB_SDK_PYTHON", "python pyroscope-io") else { return };
    check_sdk(&PYTHON, "python", |url, app| {
        let mut cmd = Command::new(&python);
        cmd.arg(sdk_dir().join("burn.py")).args([url, app, &RUN_SECONDS.to_string(), "1"]);
        cmd
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_pyroscope_nodejs_hot_function() {
    let Some(dir) = sdk_env("FLAMEDB_SDK_NODE_DIR", "node @pyroscope/nodejs") else { return };
    check_sdk(&NODE, "node", |url, app| {
        let mut cmd = Command::new(std::env::var("FLAMEDB_SDK_NODE").unwrap_or_else(|_| "node".into()));
        cmd.arg(sdk_dir().join("burn.js"))
            .args([url, app, &RUN_SECONDS.to_string(), "1000"])
            .env("NODE_PATH", Path::new(&dir).join("node_modules"))
            // The SDK reports rejected uploads (status and body) only through `debug`.
            .env("DEBUG", "pyroscope");
        cmd
    })
    .await;
}
