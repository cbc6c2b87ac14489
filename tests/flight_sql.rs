//! Flight SQL with a real client from PyPI: `tests/sql/flight_client.py` runs the ten documented SQL
//! examples (docs/sql.md, `common::sql_data::doc_examples`) through `adbc-driver-flightsql`, lists the
//! catalog, reads a table schema, exports samples with a `pyarrow.flight` DoGet of a JSON ticket and
//! tries statements that must be refused. This test compares all of it with what the HTTP SQL
//! endpoint (`POST /api/v1/sql`, JSON) answers for the same tenant, with independently known data for
//! a second tenant to prove isolation, and the documented examples also with the rows
//! `common::sql_data` computes from the dataset itself.
//!
//! The Python comes from the environment: `FLAMEDB_SQL_PYTHON` names an interpreter that can import
//! `adbc_driver_flightsql` and `pyarrow` (`.ci/run` installs pinned versions into a cache folder).
//! Unset, every test prints a notice and passes, so a plain `cargo test --workspace` stays offline.
//!
//! One server and one client run serve all tests (a shared [`Outcome`]); the server is gone before
//! any assertion runs, so nothing leaks when one fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use common::sql_data::{Dataset, Example, compare_rows, doc_examples, push_dataset};
use common::*;
use serde_json::{Value, json};

const PYTHON_ENV: &str = "FLAMEDB_SQL_PYTHON";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sql/flight_client.py");
const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Tenant `a` gets the documentation dataset; tenant `b` only its [`B_SHARED_SERVICE`] profiles and
/// [`B_PROFILES`] of its own, which `a` must never see.
const TENANT_A: &str = "flight-sql-a";
const TENANT_B: &str = "flight-sql-b";
const B_SERVICE: &str = "flight-sql-tenant-b";
/// The one service of the documentation dataset tenant `b` also gets.
const B_SHARED_SERVICE: &str = "db";
/// A frame name only tenant `b`'s profiles hold.
const B_MARKER: &str = "flamedb_tenant_b_only";
/// Tenant `b`'s profiles: each one profile with these root-first stacks.
const B_PROFILES: usize = 3;
const B_STACKS: &[(&[&str], i64)] = &[(&["main", B_MARKER], 7), (&["main", "work", "loop"], 5)];

/// Statements that must fail with the read-only error, over Flight SQL as over HTTP.
const REFUSED: &[&str] = &[
    "CREATE TABLE flight_sql_probe (x INT)",
    "INSERT INTO profiles (service_name) VALUES ('x')",
    "DROP VIEW samples",
    "SET datafusion.execution.batch_size = 1",
];

/// Queries run for both tenants over both paths: what each tenant can see.
const ISOLATION: &[(&str, &str)] = &[
    ("profiles", "SELECT count(*) AS n FROM profiles"),
    ("samples", "SELECT count(*) AS n, sum(value) AS v FROM samples"),
    ("marker", "SELECT count(*) AS n FROM samples WHERE contains(stack, 'flamedb_tenant_b_only')"),
    ("services", "SELECT DISTINCT service_name FROM profiles ORDER BY service_name"),
    // Every column type of the tables (map, list, nullable uint64, timestamp) through both paths.
    ("raw_samples", "SELECT time, labels, stack, value, span_id FROM samples ORDER BY time, value LIMIT 20"),
    ("raw_profiles", "SELECT time, labels, duration_nanos, total, profile_id FROM profiles ORDER BY time LIMIT 20"),
];

/// The columns (name, pyarrow type string) of the `samples` table (docs/sql.md); `labels` and
/// `stack` are matched by prefix (pyarrow spells out nested field names).
const SAMPLES_SCHEMA: &[(&str, &str)] = &[
    ("time", "timestamp[ns, tz=UTC]"),
    ("profile_type", "string"),
    ("service_name", "string"),
    ("labels", "map<string, string"),
    ("stack", "list<item: string"),
    ("value", "int64"),
    ("span_id", "uint64"),
    ("partition", "uint64"),
    ("stacktrace_id", "uint32"),
];
/// The export columns: the samples view without partition and stacktrace_id.
const EXPORT_COLUMNS: &[&str] = &["time", "profile_type", "service_name", "labels", "stack", "value", "span_id"];

/// Everything the assertions need, gathered while the server ran.
struct Outcome {
    /// flight_client.py's output for tenant a (examples, then the isolation queries).
    flight_a: Value,
    /// flight_client.py's output for tenant b (isolation queries and b's export only).
    flight_b: Value,
    /// The HTTP answer (JSON array, or the error) of every query the script ran for a, same order.
    http_a: Vec<Result<Value, String>>,
    /// The same for b.
    http_b: Vec<Result<Value, String>>,
    /// The documented examples (the first entries of `flight_a["examples"]`).
    examples: Vec<Example>,
    /// What tenant a holds.
    data: Dataset,
    /// The profiles and sample rows tenant b holds (its share of the dataset and its own).
    b_profiles: i64,
    b_samples: i64,
    /// What tenant a's export ticket selects, with its HTTP SQL expectation.
    export_a: ExportExpectation,
    /// HTTP status of each refused statement.
    http_refused: Vec<u16>,
}

struct ExportExpectation {
    service: String,
    /// The ticket's range (ms): the service's first and last profile, a second either side.
    start_ms: i64,
    end_ms: i64,
    rows: i64,
    total: i64,
}

fn outcome() -> Option<&'static Result<Outcome, String>> {
    static OUTCOME: OnceLock<Option<Result<Outcome, String>>> = OnceLock::new();
    OUTCOME
        .get_or_init(|| {
            let python = std::env::var_os(PYTHON_ENV)?;
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            Some(rt.block_on(gather(Path::new(&python))))
        })
        .as_ref()
}

/// The shared outcome, or `None` (after a notice) when no Python is configured.
fn run(test: &str) -> Option<&'static Outcome> {
    match outcome() {
        None => {
            eprintln!("notice: {PYTHON_ENV} is not set, {test} skipped (.ci/run sets it)");
            None
        }
        Some(Err(e)) => panic!("flight SQL run failed: {e}"),
        Some(Ok(o)) => Some(o),
    }
}

async fn gather(python: &Path) -> Result<Outcome, String> {
    let server = Server::start(&["-auth.multitenancy-enabled"]);
    let http = reqwest::Client::new();
    let data = push_dataset(&server, Some(TENANT_A)).await;
    let (b_profiles, b_samples) = push_tenant_b(&http, &server.url).await;

    let examples = doc_examples();
    let mut queries: Vec<(String, String)> =
        examples.iter().map(|e| (format!("{}. {}", e.number, e.title), e.sql.clone())).collect();
    queries.extend(ISOLATION.iter().map(|(n, q)| (format!("isolation:{n}"), q.to_string())));

    let export_a = export_expectation(&http, &server.url).await?;
    let now = now_nanos() / 1_000_000;
    let ticket_a = export_ticket(&export_a.service, export_a.start_ms, export_a.end_ms);
    let ticket_b = export_ticket(B_SERVICE, now - 3_600_000, now + 60_000);

    let address = format!("127.0.0.1:{}", server.port);
    let flight_a = run_client(python, &address, TENANT_A, &queries, &ticket_a)?;
    let iso: Vec<(String, String)> = queries[examples.len()..].to_vec();
    let flight_b = run_client(python, &address, TENANT_B, &iso, &ticket_b)?;

    let mut http_a = Vec::new();
    for (_, sql) in &queries {
        http_a.push(http_sql(&http, &server.url, TENANT_A, sql).await);
    }
    let mut http_b = Vec::new();
    for (_, sql) in &iso {
        http_b.push(http_sql(&http, &server.url, TENANT_B, sql).await);
    }
    let mut http_refused = Vec::new();
    for sql in REFUSED {
        http_refused.push(http_sql_status(&http, &server.url, TENANT_A, sql).await.0);
    }
    drop(server);
    Ok(Outcome { flight_a, flight_b, http_a, http_b, examples, data, b_profiles, b_samples, export_a, http_refused })
}

/// Tenant b's data: the [`B_SHARED_SERVICE`] profiles of a fresh dataset, then [`B_PROFILES`]
/// profiles of [`B_SERVICE`] stamped over the last minute. Returns its profile and sample counts.
async fn push_tenant_b(http: &reqwest::Client, url: &str) -> (i64, i64) {
    let now = now_nanos();
    let shared: Vec<_> = Dataset::new(now).profiles.into_iter().filter(|p| p.service == B_SHARED_SERVICE).collect();
    for p in &shared {
        let req = push_request(&p.labels(), &p.pprof());
        let (status, body) = connect_proto(http, url, "/push.v1.PusherService/Push", Some(TENANT_B), &req).await;
        assert_eq!(status, 200, "push tenant b: {}", String::from_utf8_lossy(&body));
    }
    for i in 0..B_PROFILES {
        let p = build_pprof(("cpu", "nanoseconds"), B_STACKS, now - (i as i64 + 1) * 10_000_000_000);
        let req = push_request(&[("__name__", "process_cpu"), ("service_name", B_SERVICE)], &p);
        let (status, body) = connect_proto(http, url, "/push.v1.PusherService/Push", Some(TENANT_B), &req).await;
        assert_eq!(status, 200, "push tenant b: {}", String::from_utf8_lossy(&body));
    }
    let shared_samples: usize = shared.iter().map(|p| p.samples.len()).sum();
    ((shared.len() + B_PROFILES) as i64, (shared_samples + B_PROFILES * B_STACKS.len()) as i64)
}

fn export_ticket(service: &str, start_ms: i64, end_ms: i64) -> Value {
    json!({
        "profile_type": CPU,
        "label_selector": format!("{{service_name=\"{service}\"}}"),
        "start": start_ms,
        "end": end_ms,
    })
}

/// Tenant a's CPU service with the most profiles, and what HTTP SQL says its samples add up to.
async fn export_expectation(http: &reqwest::Client, url: &str) -> Result<ExportExpectation, String> {
    let pick = format!(
        "SELECT service_name, count(*) AS n FROM profiles WHERE profile_type = '{CPU}' AND service_name <> '' \
         GROUP BY service_name ORDER BY n DESC, service_name LIMIT 1"
    );
    let rows = http_sql(http, url, TENANT_A, &pick).await?;
    let service = rows[0]["service_name"].as_str().ok_or(format!("no CPU service in tenant a: {rows}"))?.to_string();
    let sums = format!(
        "SELECT (SELECT sum(total) FROM profiles WHERE profile_type = '{CPU}' AND service_name = '{service}') AS total, \
         (SELECT count(*) FROM samples WHERE profile_type = '{CPU}' AND service_name = '{service}') AS n, \
         (SELECT min(time) FROM profiles WHERE profile_type = '{CPU}' AND service_name = '{service}') AS t0, \
         (SELECT max(time) FROM profiles WHERE profile_type = '{CPU}' AND service_name = '{service}') AS t1"
    );
    let rows = http_sql(http, url, TENANT_A, &sums).await?;
    let total = rows[0]["total"].as_i64().ok_or(format!("no total: {rows}"))?;
    let n = rows[0]["n"].as_i64().ok_or(format!("no count: {rows}"))?;
    let ms = |key: &str| -> Result<i64, String> {
        let s = rows[0][key].as_str().ok_or(format!("no {key}: {rows}"))?;
        Ok(string_to_timestamp_nanos(s).map_err(|e| format!("{key} {s:?}: {e}"))?.div_euclid(1_000_000))
    };
    Ok(ExportExpectation { service, start_ms: ms("t0")? - 1000, end_ms: ms("t1")? + 1000, rows: n, total })
}

/// `POST /api/v1/sql` with a JSON body; the row objects, or the status and body as the error.
async fn http_sql(http: &reqwest::Client, url: &str, tenant: &str, sql: &str) -> Result<Value, String> {
    let (status, body) = http_sql_status(http, url, tenant, sql).await;
    let value: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if status != 200 || !value.is_array() {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(value)
}

async fn http_sql_status(http: &reqwest::Client, url: &str, tenant: &str, sql: &str) -> (u16, String) {
    let resp = http
        .post(format!("{url}/api/v1/sql"))
        .header("X-Scope-OrgID", tenant)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(json!({ "query": sql }).to_string())
        .send()
        .await;
    match resp {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, format!("request failed: {e}")),
    }
}

/// Runs flight_client.py for one tenant; its parsed JSON output.
fn run_client(
    python: &Path,
    address: &str,
    tenant: &str,
    queries: &[(String, String)],
    ticket: &Value,
) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = dir.path().join("input.json");
    let examples: Vec<Value> = queries.iter().map(|(name, sql)| json!({"name": name, "sql": sql})).collect();
    let spec = json!({
        "examples": examples,
        "prepared": queries.first().map(|(_, sql)| sql.clone()),
        "export": ticket,
        "refused": REFUSED,
    });
    std::fs::write(&input, spec.to_string()).map_err(|e| e.to_string())?;
    let out = Command::new(python)
        .arg(SCRIPT)
        .arg(address)
        .arg(tenant)
        .arg(&input)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("flight_client.py for {tenant} {}:\n{stderr}\n{stdout}", out.status));
    }
    serde_json::from_str(&stdout).map_err(|e| format!("flight_client.py output for {tenant}: {e}:\n{stdout}\n{stderr}"))
}

/// An HTTP JSON row array as rows of plain values in the Flight result's column order, with the
/// script's value rule: timestamps (ISO strings in arrow-json) become nanoseconds, a missing key
/// (arrow-json leaves out nulls) is null.
fn http_rows(rows: &Value, columns: &[String], types: &[String]) -> Result<Vec<Vec<Value>>, String> {
    let rows = rows.as_array().ok_or("not an array")?;
    rows.iter()
        .map(|row| {
            let obj = row.as_object().ok_or(format!("row is not an object: {row}"))?;
            columns
                .iter()
                .zip(types)
                .map(|(c, t)| {
                    let v = obj.get(c).cloned().unwrap_or(Value::Null);
                    match (&v, t.starts_with("timestamp")) {
                        (Value::String(s), true) => string_to_timestamp_nanos(s)
                            .map(Value::from)
                            .map_err(|e| format!("column {c}: timestamp {s:?}: {e}")),
                        _ => Ok(v),
                    }
                })
                .collect()
        })
        .collect()
}

/// Equal as plain values, numbers within a relative 1e-9 (floats pass through different printers).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
            }
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A sort key of a row that ignores float noise (floats rounded to 9 significant digits).
fn sort_key(row: &[Value]) -> String {
    fn canon(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => Value::String(format!("{:.8e}", n.as_f64().unwrap_or(0.0))),
            Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), canon(v))).collect()),
            other => other.clone(),
        }
    }
    Value::Array(row.iter().map(canon).collect()).to_string()
}

fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    let eq = |a: &[Vec<Value>], b: &[Vec<Value>]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(&Value::Array(x.clone()), &Value::Array(y.clone())))
    };
    if eq(a, b) {
        return true;
    }
    // Rows tied under the statement's ORDER BY may come in either order.
    let sorted = |rows: &[Vec<Value>]| {
        let mut rows = rows.to_vec();
        rows.sort_by_cached_key(|r| sort_key(r));
        rows
    };
    eq(&sorted(a), &sorted(b))
}

/// One Flight result's rows next to the HTTP rows of the same query, or what is wrong.
fn compare(flight: &Value, http: &Result<Value, String>) -> Result<usize, String> {
    let name = flight["name"].as_str().unwrap_or("?");
    if let Some(e) = flight.get("error") {
        return Err(format!("{name}: Flight SQL error: {e}"));
    }
    let http = http.as_ref().map_err(|e| format!("{name}: HTTP error: {e}"))?;
    let columns: Vec<String> = serde_json::from_value(flight["columns"].clone()).map_err(|e| format!("{name}: {e}"))?;
    let types: Vec<String> = serde_json::from_value(flight["types"].clone()).map_err(|e| format!("{name}: {e}"))?;
    let rows: Vec<Vec<Value>> = serde_json::from_value(flight["rows"].clone()).map_err(|e| format!("{name}: {e}"))?;
    let expected = http_rows(http, &columns, &types).map_err(|e| format!("{name}: {e}"))?;
    if !same_rows(&rows, &expected) {
        return Err(format!(
            "{name}: Flight SQL rows differ from HTTP rows\n  columns {columns:?} types {types:?}\n  flight: {}\n  \
             http:   {}",
            Value::from(rows.clone()),
            Value::from(expected)
        ));
    }
    Ok(rows.len())
}

/// A Flight result's rows as JSON objects (timestamps stay integer nanoseconds), the shape
/// `compare_rows` reads.
fn row_objects(flight: &Value) -> Value {
    let columns: Vec<String> = serde_json::from_value(flight["columns"].clone()).unwrap_or_default();
    let rows = flight["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|row| {
            let cells = row.as_array().cloned().unwrap_or_default();
            Value::Object(columns.iter().cloned().zip(cells).collect())
        })
        .collect()
}

fn flight_examples(v: &Value) -> &[Value] {
    v["examples"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The value of `column` in the first row of the Flight result named `name` (Null when absent).
fn flight_value(v: &Value, name: &str, column: &str) -> Value {
    let Some(ex) = flight_examples(v).iter().find(|e| e["name"] == name) else { return Value::Null };
    let Some(i) = ex["columns"].as_array().and_then(|c| c.iter().position(|c| c == column)) else {
        return Value::Null;
    };
    ex["rows"][0][i].clone()
}

#[test]
fn documented_examples_over_flight_sql_equal_http() {
    let Some(o) = run("documented_examples_over_flight_sql_equal_http") else { return };
    let flight = flight_examples(&o.flight_a);
    assert_eq!(flight.len(), o.http_a.len(), "one Flight result per query: {}", o.flight_a);
    assert_eq!(o.examples.len(), 10, "docs/sql.md documents ten examples");
    let mut failures = Vec::new();
    for (i, (f, h)) in flight.iter().zip(&o.http_a).enumerate() {
        match compare(f, h) {
            Ok(0) if i < o.examples.len() => {
                failures.push(format!("{}: no rows (the dataset must exercise it)", f["name"]))
            }
            Ok(n) => eprintln!("{}: {n} rows equal over Flight SQL and HTTP", f["name"]),
            Err(e) => failures.push(e),
        }
    }
    // The Flight rows also against the answers computed from the dataset alone.
    for (ex, f) in o.examples.iter().zip(flight) {
        if f.get("error").is_some() {
            continue; // reported above
        }
        if let Err(e) = compare_rows(&row_objects(f), &o.data.expected(ex.number)) {
            failures.push(format!("{}: Flight SQL rows differ from the dataset's expectation: {e}", f["name"]));
        }
    }
    assert!(failures.is_empty(), "{} of {} queries failed:\n{}", failures.len(), flight.len(), failures.join("\n"));
}

#[test]
fn prepared_statement_answers_like_a_plain_statement() {
    let Some(o) = run("prepared_statement_answers_like_a_plain_statement") else { return };
    let prepared = &o.flight_a["prepared"];
    assert!(prepared.get("error").is_none(), "prepared statement failed: {prepared}");
    let plain = &flight_examples(&o.flight_a)[0];
    assert_eq!(prepared["columns"], plain["columns"], "prepared vs plain columns");
    let rows = |v: &Value| serde_json::from_value::<Vec<Vec<Value>>>(v["rows"].clone()).unwrap_or_default();
    assert!(!rows(plain).is_empty(), "the first example has rows: {plain}");
    assert!(same_rows(&rows(prepared), &rows(plain)), "prepared {prepared}\nplain {plain}");
}

#[test]
fn catalog_lists_exactly_profiles_and_samples() {
    let Some(o) = run("catalog_lists_exactly_profiles_and_samples") else { return };
    for key in ["objects", "objects_after"] {
        let objects = &o.flight_a[key];
        assert!(objects.get("error").is_none(), "adbc_get_objects ({key}) failed: {objects}");
        let tables: Vec<Vec<Value>> = serde_json::from_value(objects["tables"].clone()).unwrap_or_default();
        let public: Vec<&str> =
            tables.iter().filter(|t| t[0] == "flamedb" && t[1] == "public").filter_map(|t| t[2].as_str()).collect();
        assert_eq!(public, ["profiles", "samples"], "{key}: tables of flamedb.public in {objects}");
        let catalogs: Vec<&Value> = tables.iter().map(|t| &t[0]).filter(|c| *c != "flamedb").collect();
        assert!(catalogs.is_empty(), "{key}: only catalog flamedb: {objects}");
    }
    let info = &o.flight_a["info"];
    assert!(info.get("error").is_none(), "GetSqlInfo failed: {info}");
    eprintln!("adbc_get_objects: {}\nadbc_get_info: {info}", o.flight_a["objects"]);
}

#[test]
fn samples_schema_over_flight_sql() {
    let Some(o) = run("samples_schema_over_flight_sql") else { return };
    let schema = &o.flight_a["samples_schema"];
    assert!(schema.get("error").is_none(), "adbc_get_table_schema(samples) failed: {schema}");
    let fields: Vec<(String, String, bool)> = serde_json::from_value(schema["fields"].clone()).unwrap_or_default();
    let names: Vec<&str> = fields.iter().map(|f| f.0.as_str()).collect();
    let expected: Vec<&str> = SAMPLES_SCHEMA.iter().map(|f| f.0).collect();
    assert_eq!(names, expected, "samples columns: {schema}");
    for ((name, ty, _), (_, want)) in fields.iter().zip(SAMPLES_SCHEMA) {
        assert!(ty.starts_with(want), "samples.{name} is {ty}, want {want}");
    }
}

#[test]
fn export_ticket_total_equals_http_sql() {
    let Some(o) = run("export_ticket_total_equals_http_sql") else { return };
    let export = &o.flight_a["export"];
    assert!(export.get("error").is_none(), "DoGet export failed: {export}");
    let columns: Vec<&str> = export["columns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(columns, EXPORT_COLUMNS, "export columns: {export}");
    let want = &o.export_a;
    eprintln!("export of {}: {export}\ntenant b export: {}", want.service, o.flight_b["export"]);
    assert!(want.rows > 0 && want.total > 0, "the exported selection ({}) has data", want.service);
    assert_eq!(export["rows"], want.rows, "exported rows of {} vs HTTP SQL count of samples", want.service);
    assert_eq!(export["total"], want.total, "export sum(value) of {} vs HTTP SQL sum(total) of profiles", want.service);
    assert_eq!(export["services"], json!([want.service]), "the export holds only the selected service");

    // Tenant b's export: known independently (what this test pushed).
    let export_b = &o.flight_b["export"];
    let per_profile: i64 = B_STACKS.iter().map(|s| s.1).sum();
    assert_eq!(export_b["rows"], (B_PROFILES * B_STACKS.len()) as i64, "tenant b export rows: {export_b}");
    assert_eq!(export_b["total"], per_profile * B_PROFILES as i64, "tenant b export total: {export_b}");
}

#[test]
fn tenants_see_only_their_own_rows() {
    let Some(o) = run("tenants_see_only_their_own_rows") else { return };
    // Both paths agree for both tenants.
    let n = o.examples.len();
    let iso_a = flight_examples(&o.flight_a).get(n..).unwrap_or(&[]);
    assert_eq!(iso_a.len(), ISOLATION.len(), "tenant a's isolation queries: {}", o.flight_a);
    let pairs = iso_a.iter().zip(&o.http_a[n..]).chain(flight_examples(&o.flight_b).iter().zip(&o.http_b));
    for (f, h) in pairs {
        match compare(f, h) {
            Ok(0) => panic!("{}: no rows", f["name"]),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let services = |v: &Value| -> Vec<Value> {
        let ex = flight_examples(v).iter().find(|e| e["name"] == "isolation:services");
        ex.and_then(|e| e["rows"].as_array()).into_iter().flatten().map(|r| r[0].clone()).collect()
    };
    let b = &o.flight_b;
    assert_eq!(flight_value(b, "isolation:profiles", "n"), o.b_profiles, "tenant b sees its profiles only");
    assert_eq!(flight_value(b, "isolation:samples", "n"), o.b_samples, "tenant b's sample rows");
    assert_eq!(flight_value(b, "isolation:marker", "n"), B_PROFILES as i64, "tenant b's marker frame");
    assert_eq!(services(b), [B_SHARED_SERVICE, B_SERVICE], "tenant b's services");

    let a = &o.flight_a;
    let a_samples: usize = o.data.profiles.iter().map(|p| p.samples.len()).sum();
    assert_eq!(flight_value(a, "isolation:profiles", "n"), o.data.profiles.len() as i64, "tenant a's profiles");
    assert_eq!(flight_value(a, "isolation:samples", "n"), a_samples as i64, "tenant a's sample rows");
    assert_eq!(flight_value(a, "isolation:marker", "n"), 0, "tenant a must not see tenant b's frames");
    assert_eq!(services(a), ["api", "db", "worker"], "tenant a's services");
    assert_ne!(o.data.profiles.len() as i64, o.b_profiles, "the tenants' data differ");
    let text = a["examples"].to_string();
    assert!(!text.contains(B_MARKER) && !text.contains(B_SERVICE), "tenant b's data in tenant a's results");
}

#[test]
fn ddl_and_dml_are_refused() {
    let Some(o) = run("ddl_and_dml_are_refused") else { return };
    let refused = o.flight_a["refused"].as_array().cloned().unwrap_or_default();
    assert_eq!(refused.len(), REFUSED.len(), "one answer per refused statement: {}", o.flight_a["refused"]);
    eprintln!("refused over Flight SQL: {}", o.flight_a["refused"]);
    for r in &refused {
        let error = r["error"].as_str().unwrap_or_else(|| panic!("{} was accepted over Flight SQL", r["sql"]));
        assert!(error.contains("read-only"), "{}: the error names the read-only rule: {error}", r["sql"]);
    }
    assert!(o.http_refused.iter().all(|s| *s == 403), "HTTP refuses them with 403: {:?}", o.http_refused);
}
