//! The read path end to end inside one process: profiles go through the distributor into the
//! head, and the DataFusion plans (flame graph, time series, SQL over the same tables) are checked
//! against expectations computed here from the stacks that were ingested.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use flamedb_exec::tree::FunctionTree;
use flamedb_exec::{HeadTable, HeadTableProvider};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::model::{Matcher, ProfileType};
use flamedb_ingest::validate::Limits;
use flamedb_planner::limits::TimeRange;
use flamedb_planner::{Engine, Selection};
use flamedb_proto::google::v1::Profile;

const NOW: i64 = 1_800_000_000_000_000_000;
const TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn pprof(stacks: &[(&[&str], i64)], time_nanos: i64) -> Profile {
    flamedb_ingest::testing::cpu_pprof(stacks, time_nanos)
}

fn labels(service: &str, env: &str) -> Vec<(String, String)> {
    vec![("__name__".into(), "process_cpu".into()), ("service_name".into(), service.into()), ("env".into(), env.into())]
}

/// {path: total} of a tree, computed from its nodes.
fn tree_totals(t: &FunctionTree) -> BTreeMap<String, i64> {
    let view = t.view();
    (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), view.total(n))).collect()
}

/// {path: total} of stacks, computed independently.
fn expected(stacks: &[&[(&[&str], i64)]]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for set in stacks {
        for (frames, v) in set.iter() {
            for d in 1..=frames.len() {
                *out.entry(frames[..d].join(";")).or_insert(0) += v;
            }
        }
    }
    out
}

struct Fixture {
    head: Arc<Head>,
    engine: Engine,
}

const A1: &[(&[&str], i64)] = &[(&["main", "work", "fib"], 30), (&["main", "work"], 5), (&["main", "gc"], 7)];
const A2: &[(&[&str], i64)] = &[(&["main", "work", "fib"], 11), (&["main", "io"], 2)];
const B1: &[(&[&str], i64)] = &[(&["start", "serve"], 100)];

fn fixture() -> Fixture {
    let head = Arc::new(Head::new());
    let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
    d.ingest_profile("t1", &labels("a", "prod"), pprof(A1, NOW - 60_000_000_000), 0, None, NOW).unwrap();
    d.ingest_profile("t1", &labels("a", "dev"), pprof(A2, NOW - 30_000_000_000), 0, None, NOW).unwrap();
    d.ingest_profile("t1", &labels("b", "prod"), pprof(B1, NOW - 10_000_000_000), 0, None, NOW).unwrap();
    d.ingest_profile("t2", &labels("a", "prod"), pprof(B1, NOW - 10_000_000_000), 0, None, NOW).unwrap();
    let engine = Engine::new(head.clone(), 2);
    Fixture { head, engine }
}

fn selection(tenants: &[&str], matchers: Vec<Matcher>) -> Selection {
    Selection {
        tenants: tenants.iter().map(|s| s.to_string()).collect(),
        profile_type: ProfileType::parse(TYPE).unwrap(),
        matchers,
        range: TimeRange { start_ms: (NOW - 3_600_000_000_000) / 1_000_000, end_ms: NOW / 1_000_000 },
    }
}

#[tokio::test]
async fn flamegraph_of_one_service_equals_its_stacks() {
    let f = fixture();
    let tree =
        f.engine.flamegraph_tree(&selection(&["t1"], vec![Matcher::equal("service_name", "a")]), 0).await.unwrap();
    assert_eq!(tree_totals(&tree), expected(&[A1, A2]));
    assert_eq!(tree.total(), 30 + 5 + 7 + 11 + 2);
}

#[tokio::test]
async fn matchers_time_and_tenants_are_exact() {
    let f = fixture();
    let prod = selection(&["t1"], vec![Matcher::equal("env", "prod")]);
    assert_eq!(tree_totals(&f.engine.flamegraph_tree(&prod, 0).await.unwrap()), expected(&[A1, B1]));
    // Time: only the last 20 s holds B1.
    let mut recent = selection(&["t1"], vec![]);
    recent.range.start_ms = (NOW - 20_000_000_000) / 1_000_000;
    assert_eq!(tree_totals(&f.engine.flamegraph_tree(&recent, 0).await.unwrap()), expected(&[B1]));
    // Tenants: t2 alone never sees t1's data; the union sees both.
    let t2 = selection(&["t2"], vec![Matcher::equal("service_name", "a")]);
    assert_eq!(tree_totals(&f.engine.flamegraph_tree(&t2, 0).await.unwrap()), expected(&[B1]));
    let both = selection(&["t1", "t2"], vec![Matcher::equal("service_name", "a")]);
    assert_eq!(tree_totals(&f.engine.flamegraph_tree(&both, 0).await.unwrap()), expected(&[A1, A2, B1]));
    // Nothing matches: an empty tree, not an error.
    let none = selection(&["t1"], vec![Matcher::equal("service_name", "zzz")]);
    assert!(f.engine.flamegraph_tree(&none, 0).await.unwrap().is_empty());
    let unknown_tenant = selection(&["nobody"], vec![]);
    assert!(f.engine.flamegraph_tree(&unknown_tenant, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn filters_are_pushed_into_the_scan() {
    let f = fixture();
    let sel =
        selection(&["t1"], vec![Matcher::new(flamedb_ingest::model::MatchOp::Regex, "service_name", "a|b").unwrap()]);
    let plan = f.engine.flamegraph_plan(&sel, 0).unwrap();
    let physical = f.engine.physical_plan(&plan).await.unwrap();
    let text = displayable(physical.as_ref()).indent(true).to_string();
    assert!(text.contains("HeadScanExec: table=samples"), "{text}");
    assert!(text.contains("__profile_type__=\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\""), "{text}");
    assert!(text.contains("service_name=~\"a|b\""), "{text}");
    assert!(text.contains("time=["), "{text}");
    assert!(!text.contains("FilterExec"), "matchers and time are answered by the scan: {text}");
    assert!(text.contains("mode=Partial") && text.contains("mode=Final"), "{text}");
}

#[tokio::test]
async fn max_nodes_cuts_in_the_aggregate() {
    let f = fixture();
    let sel = selection(&["t1"], vec![]);
    let full = f.engine.flamegraph_tree(&sel, 0).await.unwrap();
    let cut = f.engine.flamegraph_tree(&sel, 2).await.unwrap();
    assert!(cut.node_count() < full.node_count());
    assert_eq!(cut.total(), full.total(), "a cut keeps the total in 'other' nodes");
}

#[tokio::test]
async fn time_series_buckets_sum_profile_totals() {
    let f = fixture();
    let sel = selection(&["t1"], vec![]);
    let step = 60_000;
    let cells = f.engine.series_cells(&sel, step, &[]).await.unwrap();
    let total: i64 = cells.iter().map(|c| c.sum).sum();
    assert_eq!(total, 42 + 13 + 100);
    assert_eq!(cells.iter().map(|c| c.count).sum::<i64>(), 3);
    for c in &cells {
        let off = c.timestamp_ms - sel.range.start_ms;
        assert_eq!(off % step, 0, "buckets lie on the grid start + k*step");
    }
    // The profile 60 s before NOW lands on the first boundary at or after it.
    let t = (NOW - 60_000_000_000) / 1_000_000;
    let b = sel.range.start_ms + (t - sel.range.start_ms + step - 1) / step * step;
    assert!(cells.iter().any(|c| c.timestamp_ms == b && c.sum == 42), "{cells:?}");
}

#[tokio::test]
async fn sql_over_the_same_tables_groups_by_labels() {
    let f = fixture();
    let ctx = SessionContext::new_with_state(f.engine.state().clone());
    let samples = HeadTableProvider::new(f.head.clone(), vec!["t1".into()], HeadTable::Samples);
    ctx.register_table("samples", Arc::new(samples)).unwrap();
    let df = ctx
        .sql(
            "SELECT label(labels, 'service_name') AS s, sum(value) AS v, flamegraph(partition, stacktrace_id, value) AS fg \
             FROM samples GROUP BY s ORDER BY s",
        )
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let b = &batches[0];
    let names: Vec<&str> = b.column(0).as_string::<i32>().iter().map(|s| s.unwrap()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let v: &Int64Array = b.column(1).as_primitive::<Int64Type>();
    assert_eq!(v.values().to_vec(), vec![55, 100]);
    let fg = b.column(2).as_binary::<i32>();
    let a = FunctionTree::decode(fg.value(0)).unwrap();
    let bt = FunctionTree::decode(fg.value(1)).unwrap();
    assert_eq!(tree_totals(&a), expected(&[A1, A2]));
    assert_eq!(tree_totals(&bt), expected(&[B1]));
}
