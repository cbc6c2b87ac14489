//! The ten worked examples of `docs/sql.md`, run over `POST /api/v1/sql` against a live server
//! holding the dataset of `common::sql_data`. Each answer must equal the rows computed in Rust
//! from the pushed profiles (never empty). Also checked: the CSV and Arrow IPC answers equal the
//! JSON one, the document's curl snippets work as written, and the tenant and read-only rules the
//! document states.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampNanosecondType, UInt64Type};
use common::sql_data::{self, Dataset, compare_rows, doc_examples, push_dataset, sql_http};
use common::*;
use serde_json::Value;

const JSON: &str = "application/json";
const CSV: &str = "text/csv";
const ARROW: &str = "application/vnd.apache.arrow.stream";

/// Runs example `number` of the document as JSON and compares it with the dataset's expectation.
async fn run_example(number: u32) {
    let examples = doc_examples();
    let ex = examples.iter().find(|e| e.number == number).unwrap_or_else(|| panic!("no example {number}"));
    let server = Server::start(&[]);
    let data = push_dataset(&server, None).await;
    let want = data.expected(number);
    assert!(!want.is_empty(), "example {number}: the expectation is empty, the dataset does not exercise it");
    let client = reqwest::Client::new();
    let (status, ct, body) = sql_http(&client, &server.url, None, JSON, &ex.sql).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "example {number} ({}): {text}", ex.title);
    assert!(ct.starts_with(JSON), "example {number}: Content-Type {ct}");
    let got: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("example {number}: {e}: {text}"));
    // `SQL_EXAMPLES_PRINT=1 cargo test ... -- --nocapture` shows the answers (e.g. to update the guide).
    if std::env::var_os("SQL_EXAMPLES_PRINT").is_some() {
        eprintln!("example {number}: {}", serde_json::to_string_pretty(&got).unwrap_or_default());
    }
    if let Err(e) = compare_rows(&got, &want) {
        panic!("example {number} ({}):\n{e}\nSQL:\n{}", ex.title, ex.sql);
    }
}

#[test]
fn the_document_has_ten_examples() {
    let examples = doc_examples();
    assert_eq!(examples.len(), 10);
    let titles: BTreeSet<&str> = examples.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles.len(), 10, "titles repeat");
    for e in &examples {
        assert!(e.sql.to_uppercase().starts_with("SELECT") || e.sql.to_uppercase().starts_with("WITH"), "{e:?}");
        assert!(e.sql.contains("now()"), "example {} does not bound time relative to now(): {}", e.number, e.sql);
        assert!(e.sql.contains("ORDER BY"), "example {} is not ordered: {}", e.number, e.sql);
    }
    // The parser refuses documents that are not exactly ten numbered examples.
    assert!(sql_data::parse_examples("### 1. One\n```sql\nSELECT 1\n```\n").is_err());
    let doubled = "### 1. One\n```sql\nSELECT 1\n```\n```sql\nSELECT 2\n```\n";
    assert!(sql_data::parse_examples(doubled).is_err());
}

#[test]
fn the_dataset_has_what_the_examples_need() {
    let d = Dataset::new(now_nanos());
    assert_eq!(d.profiles.len(), 3 * 2 * 2 * (4 + 2));
    assert!(d.profiles.iter().all(|p| p.time_nanos > d.now_nanos - 30 * 60_000_000_000 && p.time_nanos < d.now_nanos));
    let spans: BTreeSet<u64> = d.profiles.iter().flat_map(|p| &p.samples).filter_map(|s| s.span_id).collect();
    assert_eq!(spans.len(), 16, "one traced request per api CPU profile");
    // json.Marshal's self time grows in 1.1 (the regression example 6 finds).
    let self_of = |v: &str| -> i64 {
        d.profiles
            .iter()
            .filter(|p| p.profile_type == sql_data::CPU && p.version == v)
            .flat_map(|p| &p.samples)
            .filter(|s| s.stack.last().is_some_and(|f| f == "json.Marshal"))
            .map(|s| s.value)
            .sum()
    };
    assert!(self_of("1.1") > self_of("1.0") * 3 / 2);
    for n in 1..=10 {
        assert!(!d.expected(n).is_empty(), "example {n}");
    }
}

#[tokio::test]
async fn example_01_services_and_profile_types() {
    run_example(1).await;
}

#[tokio::test]
async fn example_02_cpu_per_service() {
    run_example(2).await;
}

#[tokio::test]
async fn example_03_cost_by_region() {
    run_example(3).await;
}

#[tokio::test]
async fn example_04_top_functions_by_self_time() {
    run_example(4).await;
}

#[tokio::test]
async fn example_05_inclusive_time_with_contains() {
    run_example(5).await;
}

#[tokio::test]
async fn example_06_regression_between_versions() {
    run_example(6).await;
}

#[tokio::test]
async fn example_07_flame_graph_from_sql() {
    run_example(7).await;
}

#[tokio::test]
async fn example_08_cpu_per_minute() {
    run_example(8).await;
}

#[tokio::test]
async fn example_09_heaviest_allocation_paths() {
    run_example(9).await;
}

#[tokio::test]
async fn example_10_traced_spans() {
    run_example(10).await;
}

/// One Arrow value as JSON: strings, integers, floats; timestamps as integer nanoseconds.
fn arrow_value(col: &ArrayRef, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Utf8 => Value::from(col.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(col.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(col.as_string_view().value(i)),
        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => Value::from(col.as_primitive::<UInt64Type>().value(i)),
        DataType::Float64 => Value::from(col.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Value::from(col.as_primitive::<TimestampNanosecondType>().value(i))
        }
        other => panic!("no comparison for Arrow type {other}"),
    }
}

/// Whether a JSON (or CSV, as a string) answer cell equals an Arrow cell of type `t`.
fn same_cell(t: &DataType, text: &Value, arrow: &Value) -> bool {
    let as_str = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    match t {
        DataType::Timestamp(..) => {
            let s = as_str(text);
            string_to_timestamp_nanos(&s).ok() == arrow.as_i64()
        }
        DataType::Int64 | DataType::UInt64 | DataType::Float64 => {
            let (Some(a), Ok(b)) = (arrow.as_f64(), as_str(text).parse::<f64>()) else { return false };
            (a - b).abs() <= 1e-12 * a.abs().max(1.0)
        }
        _ => as_str(text) == as_str(arrow),
    }
}

/// Splits one CSV line (fields may be quoted, `""` inside quotes is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

fn decode_ipc(body: &[u8]) -> Vec<RecordBatch> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body.to_vec()), None)
        .expect("an Arrow IPC stream");
    reader.collect::<Result<Vec<_>, _>>().expect("IPC batches")
}

#[tokio::test]
async fn csv_and_arrow_answers_equal_the_json_answer() {
    let server = Server::start(&[]);
    let data = push_dataset(&server, None).await;
    let client = reqwest::Client::new();
    let examples = doc_examples();
    // Strings and integers (4), floats (3), timestamps (8).
    for number in [3u32, 4, 8] {
        let ex = &examples[number as usize - 1];
        let (s, _, json) = sql_http(&client, &server.url, None, JSON, &ex.sql).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&json));
        let json: Value = serde_json::from_slice(&json).expect("json");
        compare_rows(&json, &data.expected(number)).unwrap_or_else(|e| panic!("example {number}: {e}"));
        let rows = json.as_array().expect("rows");

        let (s, ct, ipc) = sql_http(&client, &server.url, None, ARROW, &ex.sql).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&ipc));
        assert_eq!(ct, ARROW);
        let batches = decode_ipc(&ipc);
        let schema = batches.first().map(|b| b.schema()).expect("at least one batch");
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut arrow_rows: Vec<Vec<Value>> = Vec::new();
        for b in &batches {
            for i in 0..b.num_rows() {
                arrow_rows.push(b.columns().iter().map(|c| arrow_value(c, i)).collect());
            }
        }
        assert_eq!(arrow_rows.len(), rows.len(), "example {number}: Arrow rows");
        for (r, (a, j)) in arrow_rows.iter().zip(rows).enumerate() {
            let keys: BTreeSet<&str> = j.as_object().expect("object").keys().map(String::as_str).collect();
            assert_eq!(keys, names.iter().map(String::as_str).collect(), "example {number} row {r}: columns");
            for (k, (name, av)) in names.iter().zip(a).enumerate() {
                let t = schema.field(k).data_type();
                assert!(same_cell(t, &j[name], av), "example {number} row {r} {name}: JSON {} Arrow {av}", j[name]);
            }
        }

        let (s, ct, csv) = sql_http(&client, &server.url, None, CSV, &ex.sql).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&csv));
        assert!(ct.starts_with(CSV), "{ct}");
        let csv = String::from_utf8(csv.to_vec()).expect("utf-8 CSV");
        let mut lines = csv.lines();
        assert_eq!(lines.next().map(csv_fields), Some(names.clone()), "example {number}: CSV header");
        let csv_rows: Vec<Vec<String>> = lines.filter(|l| !l.is_empty()).map(csv_fields).collect();
        assert_eq!(csv_rows.len(), arrow_rows.len(), "example {number}: CSV rows");
        for (r, (c, a)) in csv_rows.iter().zip(&arrow_rows).enumerate() {
            for (k, (cv, av)) in c.iter().zip(a).enumerate() {
                let t = schema.field(k).data_type();
                assert!(
                    same_cell(t, &Value::from(cv.as_str()), av),
                    "example {number} row {r} col {k}: CSV {cv} Arrow {av}"
                );
            }
        }
    }
}

/// The ```sh blocks of the document that call the SQL endpoint, one command each.
fn doc_curl_snippets() -> Vec<String> {
    let text = std::fs::read_to_string(sql_data::doc_path()).expect("docs/sql.md");
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```sh") => block = Some(Vec::new()),
            (Some(b), "```") => {
                let cmd = b.join("\n");
                if cmd.starts_with("curl ") && cmd.contains("/api/v1/sql") {
                    out.push(cmd);
                }
                block = None;
            }
            (Some(b), _) => b.push(line),
            (None, _) => {}
        }
    }
    out
}

/// The snippets run as written (through `sh`, with the server's address for localhost:4040) and
/// answer in the format their `Accept` asks for; answers whose shape is known are compared with
/// the dataset.
#[tokio::test]
async fn the_documents_curl_snippets_work() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("notice: curl absent, skipped");
        return;
    }
    let snippets = doc_curl_snippets();
    assert!(snippets.len() >= 4, "want curl snippets for text, JSON body, CSV and Arrow: {snippets:?}");
    let server = Server::start(&[]);
    let data = push_dataset(&server, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = BTreeSet::new();
    for snippet in &snippets {
        let cmd = snippet.replace("http://localhost:4040", &server.url);
        let out =
            std::process::Command::new("sh").arg("-c").arg(&cmd).current_dir(dir.path()).output().expect("run sh");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{cmd}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(file) = snippet.split_whitespace().skip_while(|w| *w != "-o").nth(1) {
            let bytes = std::fs::read(dir.path().join(file)).expect("the -o file");
            let batches = decode_ipc(&bytes);
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert!(rows > 0, "{cmd}: no rows");
            seen.insert("arrow");
        } else if snippet.contains("text/csv") {
            let mut lines = stdout.lines();
            let header = lines.next().map(csv_fields).unwrap_or_default();
            assert!(!header.is_empty() && lines.count() > 0, "{cmd}: {stdout}");
            seen.insert("csv");
        } else {
            let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{cmd}: {e}: {stdout}"));
            let rows = v.as_array().unwrap_or_else(|| panic!("{cmd}: not an array: {stdout}"));
            assert!(!rows.is_empty(), "{cmd}: no rows");
            assert!(rows[0].get("code").is_none(), "{cmd}: an error: {stdout}");
            check_known_shape(&data, &v);
            seen.insert(if snippet.contains("application/json") { "json body" } else { "text body" });
        }
    }
    assert_eq!(seen.len(), 4, "formats covered: {seen:?}");
}

/// Compares the answers of the document's small snippets with the dataset when their columns say
/// which one they are.
fn check_known_shape(data: &Dataset, got: &Value) {
    use sql_data::Cell;
    let Some(first) = got.as_array().and_then(|r| r.first()).and_then(Value::as_object) else { return };
    let cols: BTreeSet<&str> = first.keys().map(String::as_str).collect();
    let want: Vec<sql_data::Row> = if cols == BTreeSet::from(["service_name", "profiles"]) {
        let mut m: BTreeMap<&str, i64> = BTreeMap::new();
        for p in &data.profiles {
            *m.entry(p.service).or_default() += 1;
        }
        m.into_iter().map(|(s, n)| vec![("service_name", Cell::Str(s.into())), ("profiles", Cell::Int(n))]).collect()
    } else if cols == BTreeSet::from(["profile_type"]) {
        let types: BTreeSet<&str> = data.profiles.iter().map(|p| p.profile_type).collect();
        types.into_iter().map(|t| vec![("profile_type", Cell::Str(t.into()))]).collect()
    } else if cols == BTreeSet::from(["profiles"]) {
        vec![vec![("profiles", Cell::Int(data.profiles.len() as i64))]]
    } else {
        return;
    };
    compare_rows(got, &want).unwrap_or_else(|e| panic!("snippet answer: {e}"));
}

/// What the document says about tenants: the header picks the tenant's data, another tenant sees
/// none of it, and with multitenancy on a request without the header is refused.
#[tokio::test]
async fn tenants_see_only_their_own_profiles() {
    let server = Server::start(&["-auth.multitenancy-enabled"]);
    let data = push_dataset(&server, Some("team-a")).await;
    let client = reqwest::Client::new();
    let ex = &doc_examples()[1];
    let (s, _, body) = sql_http(&client, &server.url, Some("team-a"), JSON, &ex.sql).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let got: Value = serde_json::from_slice(&body).expect("json");
    compare_rows(&got, &data.expected(2)).unwrap_or_else(|e| panic!("team-a: {e}"));
    let (s, _, body) = sql_http(&client, &server.url, Some("team-b"), JSON, &ex.sql).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json"), serde_json::json!([]), "team-b sees team-a");
    let (s, _, body) = sql_http(&client, &server.url, None, JSON, &ex.sql).await;
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&body));
    let err: Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(err["code"], "unauthenticated");
}

/// The error table of the document: writes are 403, bad SQL 400, an unknown `Accept` 406, each
/// with a JSON `{code, message}`.
#[tokio::test]
async fn documented_errors() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let cases: [(&str, &str, u16, &str); 4] = [
        ("CREATE TABLE t AS SELECT 1", JSON, 403, "permission_denied"),
        ("SELECT nope FROM profiles", JSON, 400, "invalid_argument"),
        ("SELECT 1; SELECT 2", JSON, 400, "invalid_argument"),
        ("SELECT 1", "image/png", 406, "invalid_argument"),
    ];
    for (sql, accept, status, code) in cases {
        let (s, _, body) = sql_http(&client, &server.url, None, accept, sql).await;
        let err: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!((s, err["code"].as_str()), (status, Some(code)), "{sql}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{sql}: {err}");
    }
}

/// The per-query limits, set by flag: a query over the memory limit answers 422, one past the
/// timeout 504, and the server goes on answering.
#[tokio::test]
async fn limits_answer_422_and_504() {
    let client = reqwest::Client::new();
    let cases: [(&str, &str, u16, &str, &str); 2] = [
        (
            "-sql.max-memory-bytes=262144",
            "SELECT v % 1000000 AS k, count(*) FROM generate_series(1, 2000000) t(v) GROUP BY 1",
            422,
            "resource_exhausted",
            "memory",
        ),
        (
            "-sql.timeout=500ms",
            "SELECT sum(v) FROM generate_series(1, 100000000000) t(v)",
            504,
            "deadline_exceeded",
            "-sql.timeout",
        ),
    ];
    for (flag, sql, status, code, mention) in cases {
        let server = Server::start(&[flag]);
        let started = std::time::Instant::now();
        let (s, _, body) = sql_http(&client, &server.url, None, JSON, sql).await;
        let err: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!((s, err["code"].as_str()), (status, Some(code)), "{flag} {sql}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(mention)), "{sql}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{sql} took {:?}", started.elapsed());
        let (s, _, body) = sql_http(&client, &server.url, None, JSON, "SELECT 40 + 2 AS answer").await;
        assert_eq!((s, serde_json::from_slice::<Value>(&body).unwrap()), (200, serde_json::json!([{"answer": 42}])));
    }
}
