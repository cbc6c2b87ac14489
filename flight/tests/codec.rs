//! Custom execs and the flame-graph aggregate round-trip through datafusion-proto with the one
//! `FlamedbCodec`: a decoded plan (in a session that never registered our functions) gives the
//! same answer as the original, and a Partial fragment's state merges into the same flame graph.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use flamedb_exec::FlamedbCodec;
use flamedb_exec::tree::FunctionTree;
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::model::{Matcher, ProfileType};
use flamedb_ingest::validate::Limits;
use flamedb_planner::limits::TimeRange;
use flamedb_planner::{Engine, Selection};
use flamedb_proto::google::v1::Profile;

const NOW: i64 = 1_800_000_000_000_000_000;

fn pprof(stacks: &[(&[&str], i64)]) -> Profile {
    flamedb_ingest::testing::cpu_pprof(stacks, NOW - 1_000_000_000)
}

fn setup() -> (Arc<Head>, Engine, Selection) {
    let head = Arc::new(Head::new());
    let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
    let labels = |svc: &str| {
        vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".to_string(), svc.to_string())]
    };
    d.ingest_profile("t", &labels("a"), pprof(&[(&["main", "f"], 10), (&["main", "g", "h"], 5)]), 0, None, NOW)
        .unwrap();
    d.ingest_profile("t", &labels("b"), pprof(&[(&["main", "f"], 7), (&["other"], 3)]), 0, None, NOW).unwrap();
    let engine = Engine::new(head.clone(), 2);
    let sel = Selection {
        tenants: vec!["t".into()],
        profile_type: ProfileType::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds").unwrap(),
        matchers: vec![Matcher::new(flamedb_ingest::model::MatchOp::Regex, "service_name", "a|b").unwrap()],
        range: TimeRange { start_ms: NOW / 1_000_000 - 60_000, end_ms: NOW / 1_000_000 },
    };
    (head, engine, sel)
}

async fn run_tree(plan: Arc<dyn ExecutionPlan>, ctx: &SessionContext) -> FunctionTree {
    let batches = collect(plan, ctx.task_ctx()).await.unwrap();
    let mut tree = FunctionTree::new();
    for b in &batches {
        let col = b.column(0).as_binary::<i32>();
        for i in 0..col.len() {
            tree.merge(&FunctionTree::decode(col.value(i)).unwrap());
        }
    }
    tree
}

fn paths(t: &FunctionTree) -> BTreeMap<String, i64> {
    let v = t.view();
    (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), v.total(n))).collect()
}

#[tokio::test]
async fn flamegraph_plan_round_trips() {
    let (head, engine, sel) = setup();
    let plan = engine.physical_plan(&engine.flamegraph_plan(&sel, 0).unwrap()).await.unwrap();
    let codec = FlamedbCodec::new(head.clone());
    let bytes = flamedb_flight::fragment::encode(plan.clone(), &codec).unwrap();
    // A session that knows nothing of flamedb: the codec supplies the scan and the aggregate.
    let fresh = SessionContext::new();
    let decoded = flamedb_flight::fragment::decode(&bytes, &fresh.task_ctx(), &codec).unwrap();
    let show = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(true).to_string();
    assert_eq!(show(&plan), show(&decoded));
    assert!(show(&decoded).contains("HeadScanExec: table=samples") && show(&decoded).contains("service_name=~\"a|b\""));

    let ctx = SessionContext::new_with_state(engine.state().clone());
    let original = run_tree(plan, &ctx).await;
    let replayed = run_tree(decoded, &fresh).await;
    assert_eq!(paths(&original), paths(&replayed));
    assert_eq!(replayed.total(), 25);
    assert_eq!(paths(&replayed).get("main;f"), Some(&17));
}

/// Finds the Partial aggregate of a plan.
fn partial(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.downcast_ref::<AggregateExec>().is_some_and(|a| *a.mode() == AggregateMode::Partial) {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(partial)
}

#[tokio::test]
async fn partial_state_travels_as_an_encoded_tree() {
    let (head, engine, sel) = setup();
    let plan = engine.physical_plan(&engine.flamegraph_plan(&sel, 0).unwrap()).await.unwrap();
    let partial = partial(&plan).expect("a Partial aggregate");
    let codec = FlamedbCodec::new(head);
    let bytes = flamedb_flight::fragment::encode(partial, &codec).unwrap();
    let fresh = SessionContext::new();
    let leaf = flamedb_flight::fragment::decode(&bytes, &fresh.task_ctx(), &codec).unwrap();
    // Run every partition of the leaf, as workers would, and merge their states here.
    let mut merged = FunctionTree::new();
    let mut states = 0;
    for p in 0..leaf.properties().output_partitioning().partition_count() {
        let stream = leaf.execute(p, fresh.task_ctx()).unwrap();
        let batches: Vec<_> = futures_collect(stream).await;
        for b in batches {
            let col = b.column(0).as_binary::<i32>();
            for i in 0..col.len() {
                if col.is_valid(i) {
                    merged.merge(&FunctionTree::decode(col.value(i)).unwrap());
                    states += 1;
                }
            }
        }
    }
    assert!(states >= 1);
    let ctx = SessionContext::new_with_state(engine.state().clone());
    let full = run_tree(plan, &ctx).await;
    assert_eq!(paths(&merged), paths(&full));
}

async fn futures_collect(s: datafusion::execution::SendableRecordBatchStream) -> Vec<arrow::record_batch::RecordBatch> {
    use futures::StreamExt;
    s.map(|b| b.unwrap()).collect().await
}

#[tokio::test]
async fn series_plan_round_trips() {
    let (head, engine, sel) = setup();
    let plan =
        engine.physical_plan(&engine.series_plan(&sel, 60_000, &["service_name".to_string()]).unwrap()).await.unwrap();
    let codec = FlamedbCodec::new(head);
    let bytes = flamedb_flight::fragment::encode(plan.clone(), &codec).unwrap();
    let fresh = SessionContext::new();
    let decoded = flamedb_flight::fragment::decode(&bytes, &fresh.task_ctx(), &codec).unwrap();
    let rows = |bs: Vec<arrow::record_batch::RecordBatch>| -> i64 {
        bs.iter()
            .map(|b| arrow::compute::sum(b.column(2).as_primitive::<arrow::datatypes::Int64Type>()).unwrap_or(0))
            .sum()
    };
    let ctx = SessionContext::new_with_state(engine.state().clone());
    let a = rows(collect(plan, ctx.task_ctx()).await.unwrap());
    let b = rows(collect(decoded, fresh.task_ctx()).await.unwrap());
    assert_eq!(a, 25);
    assert_eq!(a, b);
}
