//! Regression inputs found by the cargo-fuzz targets in `fuzz/` (see fuzz/README.md).
//!
//! Every file under `tests/fuzz_regressions/<target>/` once crashed, hung or exhausted memory in
//! that target. It is run through the same entry point as the target, and must now finish with
//! the outcome its name ends in: `*.err` must be refused with an error, `*.ok` must be accepted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flamedb_ingest::legacy::{ConvertLimits, IngestParams, convert};
use flamedb_ingest::normalize::normalize;
use flamedb_ingest::validate::Limits;
use flamedb_ingest::{otlp, pprof};
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use prost::Message;

const NOW: i64 = 1_700_000_000_000_000_000;
/// A fuzz "hang" was an input that took longer than the fuzzer's timeout; allow generous slack
/// for unoptimized test builds but still catch a regression to quadratic/unbounded work.
const SLOW: Duration = Duration::from_secs(20);

fn legacy(format: Option<&str>, content_type: Option<&str>, name: &str, body: &[u8]) -> Result<usize, String> {
    let params = IngestParams { name: name.to_string(), format: format.map(str::to_string), ..IngestParams::default() };
    let limits = ConvertLimits { max_profile_size: 1 << 20, max_form_size: 4 << 20 };
    convert(&params, content_type, body, NOW, &limits).map(|p| p.len()).map_err(|e| e.to_string())
}

/// Runs `data` through the entry point of fuzz target `target`; `Ok(n)` counts what came out.
fn run(target: &str, data: &[u8]) -> Result<usize, String> {
    match target {
        "pprof" => {
            let limits = Limits::default();
            let decoded = pprof::decode(data, limits.max_profile_size_bytes).map_err(|e| e.to_string())?;
            let labels = vec![("service_name".to_string(), "fuzz".to_string())];
            normalize(&labels, decoded.profile, None, &limits, NOW).map(|n| n.sample_rows()).map_err(|e| e.to_string())
        }
        "otlp" => {
            let req = ExportProfilesServiceRequest::decode(data).map_err(|e| e.to_string())?;
            let profiles = otlp::convert_request(&req, NOW).map_err(|e| e.to_string())?;
            let limits = Limits::default();
            let mut rows = 0;
            for p in profiles {
                rows += normalize(&p.labels, p.profile, None, &limits, NOW).map_err(|e| e.to_string())?.sample_rows();
            }
            Ok(rows)
        }
        "folded" => legacy(Some("folded"), Some("text/plain"), "app.cpu", data),
        "lines" => legacy(Some("lines"), Some("text/plain"), "app.cpu", data),
        "ingest_multipart" => legacy(None, Some("multipart/form-data; boundary=b"), "app{env=fuzz}", data),
        "jfr" | "speedscope" | "tree" | "trie" => legacy(Some(target), None, "app{env=fuzz}", data),
        other => panic!("no entry point for fuzz target directory {other:?}"),
    }
}

fn regression_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("tests/fuzz_regressions exists") {
        let dir = dir.expect("readable dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().and_then(|n| n.to_str()).expect("utf-8 dir name").to_string();
        for f in std::fs::read_dir(&dir).expect("readable target dir") {
            out.push((target.clone(), f.expect("readable file entry").path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_fuzz_regression_input_finishes_with_its_expected_outcome() {
    let files = regression_files();
    assert!(!files.is_empty(), "no regression inputs found");
    for (target, path) in files {
        let data = std::fs::read(&path).expect("readable regression input");
        let want_ok = match path.extension().and_then(|e| e.to_str()) {
            Some("ok") => true,
            Some("err") => false,
            _ => panic!("{}: name must end in .ok or .err", path.display()),
        };
        let start = Instant::now();
        let got = run(&target, &data);
        let took = start.elapsed();
        assert!(took < SLOW, "{}: took {took:?}", path.display());
        assert_eq!(got.is_ok(), want_ok, "{}: got {got:?}", path.display());
    }
}
