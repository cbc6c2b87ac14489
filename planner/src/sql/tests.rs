//! The SQL session against a real head: the views' rows against the pushed stacks, tenancy
//! (nothing of another tenant is reachable, even by passing its partition keys by hand),
//! pushdown, and the guards (read-only, memory, timeout).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow::util::display::array_value_to_string;
use datafusion::physical_plan::common::collect;
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::validate::Limits;

use super::*;

const NOW: i64 = 1_800_000_000_000_000_000;

type Stacks<'a> = &'a [(&'a [&'a str], i64)];

const A: Stacks = &[(&["main", "work", "hash"], 30), (&["main", "work"], 5), (&["main", "idle"], 10)];
const B: Stacks = &[(&["start", "secret_b"], 7)];

fn sql_engine(limits: SqlLimits) -> SqlEngine {
    let head = Arc::new(Head::new());
    let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
    for (tenant, service, stacks) in [("a", "api", A), ("b", "billing", B)] {
        let p = flamedb_ingest::testing::cpu_pprof(stacks, NOW - 1_000_000_000);
        let labels = vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".into(), service.into())];
        d.ingest_profile(tenant, &labels, p, 0, None, NOW).unwrap();
    }
    SqlEngine::new(Engine::new(head, 2), limits)
}

async fn rows(engine: &SqlEngine, tenant: &str, sql: &str) -> Result<Vec<Vec<String>>, SqlError> {
    let q = engine.plan(&[tenant.to_string()], sql).await?;
    let batches: Vec<RecordBatch> = collect(q.execute().await?).await.map_err(SqlError::from_datafusion)?;
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect());
        }
    }
    Ok(out)
}

fn expected_self(stacks: Stacks) -> Vec<Vec<String>> {
    let mut by_leaf = std::collections::BTreeMap::<String, i64>::new();
    for (frames, v) in stacks {
        *by_leaf.entry(frames.last().unwrap().to_string()).or_default() += v;
    }
    by_leaf.into_iter().map(|(k, v)| vec![k, v.to_string()]).collect()
}

#[tokio::test]
async fn samples_view_resolves_stacks_and_keys() {
    let e = sql_engine(SqlLimits::default());
    let got = rows(&e, "a", "SELECT leaf(stack) AS f, sum(value) FROM samples GROUP BY 1 ORDER BY 1").await.unwrap();
    assert_eq!(got, expected_self(A));
    let got = rows(
        &e,
        "a",
        "SELECT array_to_string(stack, ';'), value, service_name, profile_type, root(stack) FROM samples ORDER BY 1",
    )
    .await
    .unwrap();
    let mut want: Vec<Vec<String>> = A
        .iter()
        .map(|(f, v)| {
            vec![
                f.join(";"),
                v.to_string(),
                "api".into(),
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                "main".into(),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    let total = rows(&e, "a", "SELECT sum(total), count(*) FROM profiles WHERE service_name = 'api'").await.unwrap();
    assert_eq!(total, vec![vec![A.iter().map(|s| s.1).sum::<i64>().to_string(), "1".into()]]);
    let inclusive = rows(&e, "a", "SELECT sum(value) FROM samples WHERE contains(stack, 'work')").await.unwrap();
    assert_eq!(inclusive, vec![vec!["35".to_string()]]);
}

#[tokio::test]
async fn flamegraph_aggregate_from_sql() {
    let e = sql_engine(SqlLimits::default());
    let got = rows(
        &e,
        "a",
        "SELECT flamegraph_folded(flamegraph(partition, stacktrace_id, value)), flamegraph_total(flamegraph(partition, stacktrace_id, value)) FROM samples",
    )
    .await
    .unwrap();
    let mut lines: Vec<String> = A.iter().map(|(f, v)| format!("{} {v}", f.join(";"))).collect();
    lines.sort();
    assert_eq!(got, vec![vec![lines.join("\n"), A.iter().map(|s| s.1).sum::<i64>().to_string()]]);
}

#[tokio::test]
async fn another_tenants_data_and_symbols_are_unreachable() {
    let e = sql_engine(SqlLimits::default());
    let b_rows = rows(&e, "b", "SELECT DISTINCT partition, stacktrace_id FROM samples").await.unwrap();
    assert_eq!(b_rows.len(), 1, "tenant b has one stack");
    let (part, id) = (&b_rows[0][0], &b_rows[0][1]);
    // Tenant b resolves its own stack; tenant a, handed the same keys, gets nothing.
    let own = rows(&e, "b", &format!("SELECT array_to_string(stack({part}, {id}), ';')")).await.unwrap();
    assert_eq!(own, vec![vec!["start;secret_b".to_string()]]);
    let stolen = rows(&e, "a", &format!("SELECT stack({part}, {id}) IS NULL")).await.unwrap();
    assert_eq!(stolen, vec![vec!["true".to_string()]]);
    // The flame-graph aggregate refuses a partition that is not the caller's.
    let sql = format!(
        "SELECT flamegraph_folded(flamegraph(p, s, v)) FROM (VALUES (CAST({part} AS BIGINT UNSIGNED), CAST({id} AS INT UNSIGNED), CAST(7 AS BIGINT))) t(p, s, v)"
    );
    let own = rows(&e, "b", &sql).await.unwrap();
    assert_eq!(own, vec![vec!["start;secret_b 7".to_string()]]);
    let stolen = rows(&e, "a", &sql).await.unwrap_err();
    assert_eq!(stolen.kind, SqlErrorKind::Invalid, "{stolen}");
    assert!(!stolen.message.contains("secret_b"), "{stolen}");
    for sql in [
        "SELECT count(*) FROM samples WHERE service_name = 'billing'",
        "SELECT count(*) FROM profiles WHERE service_name = 'billing'",
    ] {
        assert_eq!(rows(&e, "a", sql).await.unwrap(), vec![vec!["0".to_string()]], "{sql}");
    }
    let tables = rows(&e, "a", "SELECT table_catalog, table_schema, table_name FROM information_schema.tables WHERE table_schema <> 'information_schema' ORDER BY 3")
        .await
        .unwrap();
    assert_eq!(
        tables,
        vec![
            vec!["flamedb".to_string(), "public".into(), "profiles".into()],
            vec!["flamedb".into(), "public".into(), "samples".into()]
        ]
    );
    for sql in ["SELECT * FROM samples_raw", "SELECT * FROM 'file:///etc/passwd'"] {
        assert_eq!(rows(&e, "a", sql).await.unwrap_err().kind, SqlErrorKind::Invalid, "{sql}");
    }
}

#[tokio::test]
async fn selections_are_pushed_into_the_scans() {
    let e = sql_engine(SqlLimits::default());
    let plan = rows(
        &e,
        "a",
        "EXPLAIN SELECT sum(value) FROM samples WHERE profile_type = 'process_cpu:cpu:nanoseconds:cpu:nanoseconds' AND service_name = 'api' AND time > now() - interval '1 hour'",
    )
    .await
    .unwrap();
    let physical: Vec<&Vec<String>> = plan.iter().filter(|r| r[0] == "physical_plan").collect();
    let shown = physical.iter().map(|r| r[1].clone()).collect::<String>();
    assert!(!shown.contains("FilterExec"), "the scans answer the selection exactly: {shown}");
    assert!(shown.contains("service_name"), "{shown}");
}

#[tokio::test]
async fn writes_are_refused() {
    let e = sql_engine(SqlLimits::default());
    for sql in ["CREATE TABLE x AS SELECT 1", "INSERT INTO samples SELECT * FROM samples", "DROP VIEW samples"] {
        let err = rows(&e, "a", sql).await.unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::ReadOnly, "{sql}: {err}");
        assert!(err.message.contains("read-only"), "{}", err.message);
    }
}

#[tokio::test]
async fn memory_limit_fails_the_query_not_the_process() {
    let e = sql_engine(SqlLimits { max_memory_bytes: 256 * 1024, timeout: Duration::from_secs(60) });
    let err = rows(&e, "a", "SELECT v % 1000000, count(*) FROM generate_series(1, 2000000) t(v) GROUP BY 1")
        .await
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::ResourcesExhausted, "{err}");
    // A small query still runs in the same engine.
    assert_eq!(rows(&e, "a", "SELECT count(*) FROM samples").await.unwrap(), vec![vec!["3".to_string()]]);
}

#[tokio::test]
async fn timeout_ends_a_long_query() {
    let e = sql_engine(SqlLimits { max_memory_bytes: 1 << 30, timeout: Duration::from_millis(200) });
    let started = std::time::Instant::now();
    let err = rows(&e, "a", "SELECT sum(v) FROM generate_series(1, 100000000000) t(v)").await.unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the deadline stops the query");
}

#[tokio::test]
async fn export_selects_resolved_samples() {
    let e = sql_engine(SqlLimits::default());
    let req = ExportRequest {
        profile_type: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
        label_selector: "{service_name=\"api\"}".into(),
        start: NOW / 1_000_000 - 60_000,
        end: NOW / 1_000_000,
    };
    let q = e.export(&["a".to_string()], &req).await.unwrap();
    let names: Vec<String> = q.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, EXPORT_COLUMNS.to_vec());
    let batches = collect(q.execute().await.unwrap()).await.unwrap();
    let mut got = Vec::new();
    for b in &batches {
        let stacks = b.column(4).as_list::<i32>();
        let values = b.column(5).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let frames = stacks.value(r);
            let frames = frames.as_string::<i32>();
            let path: Vec<&str> = (0..frames.len()).map(|i| frames.value(i)).collect();
            got.push((path.join(";"), values.value(r)));
        }
    }
    got.sort();
    let mut want: Vec<(String, i64)> = A.iter().map(|(f, v)| (f.join(";"), *v)).collect();
    want.sort();
    assert_eq!(got, want);
    // Tenant b exporting the same selection gets nothing of a's.
    let q = e.export(&["b".to_string()], &req).await.unwrap();
    let n: usize = collect(q.execute().await.unwrap()).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 0);
    let bad = ExportRequest { label_selector: "{service_name=".into(), ..req };
    assert_eq!(e.export(&["a".to_string()], &bad).await.unwrap_err().kind, SqlErrorKind::Invalid);
}

/// Stacks with several roots and leaves, a leaf that is also a root, and repeated leaves.
const FUSE: Stacks = &[
    (&["main", "work", "hash"], 30),
    (&["main", "work"], 5),
    (&["main", "idle"], 10),
    (&["start", "loop", "hash"], 11),
    (&["hash"], 2),
    (&["start", "work"], 3),
    (&["gc", "mark", "scan", "scan"], 17),
];

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn fuse_engine() -> SqlEngine {
    let head = Arc::new(Head::new());
    let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
    let p = flamedb_ingest::testing::cpu_pprof(FUSE, NOW - 1_000_000_000);
    let labels = vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".into(), "api".into())];
    d.ingest_profile("a", &labels, p, 0, None, NOW).unwrap();
    SqlEngine::new(Engine::new(head, 2), SqlLimits::default())
}

/// The physical plan of `sql`, as EXPLAIN shows it.
async fn physical_plan(e: &SqlEngine, sql: &str) -> String {
    let plan = rows(e, "a", &format!("EXPLAIN {sql}")).await.unwrap();
    plan.iter().filter(|r| r[0] == "physical_plan").map(|r| r[1].clone()).collect()
}

/// (frame, summed value) by the leaf (`last`) or root of the pushed stacks, largest first.
fn by_end(last: bool) -> Vec<Vec<String>> {
    let mut sums = std::collections::BTreeMap::<&str, i64>::new();
    for (frames, v) in FUSE {
        let f = if last { frames.last() } else { frames.first() };
        *sums.entry(f.unwrap()).or_default() += v;
    }
    let mut out: Vec<(&str, i64)> = sums.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out.into_iter().map(|(f, v)| vec![f.to_string(), v.to_string()]).collect()
}

#[tokio::test]
async fn leaf_and_root_of_the_view_stack_skip_building_it() {
    let e = fuse_engine();
    for (function, last) in [("leaf", true), ("root", false)] {
        let sql = format!(
            "SELECT {function}(stack) AS f, sum(value) AS v FROM samples WHERE profile_type = '{CPU}' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        );
        let plan = physical_plan(&e, &sql).await;
        assert!(plan.contains(&format!("stack_{function}(")), "{plan}");
        assert!(!plan.contains("stack("), "no stack list is built: {plan}");
        let fused = rows(&e, "a", &sql).await.unwrap();
        assert_eq!(fused, by_end(last), "{function}");
        // The same through a subquery the rule does not look through (a sort and limit between).
        let unfused_sql = format!(
            "SELECT {function}(s) AS f, sum(value) AS v FROM (SELECT stack AS s, value FROM samples ORDER BY 1 NULLS LAST LIMIT 1000000) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        );
        assert!(physical_plan(&e, &unfused_sql).await.contains("stack("), "the comparison really is unfused");
        assert_eq!(rows(&e, "a", &unfused_sql).await.unwrap(), fused, "{function}");
    }
}

#[tokio::test]
async fn fused_ends_in_projections_filters_and_next_to_the_stack() {
    let e = fuse_engine();
    // A projection of both ends per row.
    let sql = "SELECT leaf(stack), root(stack), value FROM samples ORDER BY 3";
    let plan = physical_plan(&e, sql).await;
    assert!(plan.contains("stack_leaf(") && plan.contains("stack_root(") && !plan.contains("stack("), "{plan}");
    let mut want: Vec<Vec<String>> = FUSE
        .iter()
        .map(|(f, v)| vec![f.last().unwrap().to_string(), f.first().unwrap().to_string(), v.to_string()])
        .collect();
    want.sort_by_key(|r| r[2].parse::<i64>().unwrap());
    assert_eq!(rows(&e, "a", sql).await.unwrap(), want);
    // A filter on the leaf.
    let sql = "SELECT sum(value) FROM samples WHERE leaf(stack) = 'hash'";
    let plan = physical_plan(&e, sql).await;
    assert!(!plan.contains("stack("), "{plan}");
    assert_eq!(rows(&e, "a", sql).await.unwrap(), vec![vec!["43".to_string()]]);
    // The stack itself and its leaf in one query: the stack stays, the leaf agrees with it.
    let got = rows(&e, "a", "SELECT array_to_string(stack, ';'), leaf(stack), root(stack) FROM samples ORDER BY 1")
        .await
        .unwrap();
    let mut want: Vec<Vec<String>> = FUSE
        .iter()
        .map(|(f, _)| vec![f.join(";"), f.last().unwrap().to_string(), f.first().unwrap().to_string()])
        .collect();
    want.sort();
    assert_eq!(got, want);
    // Written out over the raw ids, and with the stack in the group keys too.
    let got = rows(
        &e,
        "a",
        "SELECT leaf(stack(partition, stacktrace_id)) AS l, sum(value) FROM samples GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .await
    .unwrap();
    assert_eq!(got, by_end(true));
    let got = rows(&e, "a", "SELECT count(*) FROM (SELECT stack, leaf(stack), sum(value) FROM samples GROUP BY 1, 2)")
        .await
        .unwrap();
    assert_eq!(got, vec![vec![FUSE.len().to_string()]]);
}
