//! (b) Flame-graph query throughput: sample rows/s merged through the DataFusion plan (head scan
//! with pushed-down matchers -> flame-graph aggregate) over the fixture profiles ingested many
//! times, beside a plain DataFusion `sum(value) GROUP BY stacktrace_id` over the same rows.

mod common;

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::prelude::SessionContext;
use flamedb_exec::{HeadTable, HeadTableProvider};
use flamedb_ingest::model::ProfileType;
use flamedb_planner::limits::TimeRange;
use flamedb_planner::{Engine, Selection};

const TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const ROUNDS: i64 = 300;

fn bench(c: &mut Criterion) {
    let inputs = common::pprofs();
    let (head, now, _) = common::fixture_head("bench", &inputs, ROUNDS);
    let engine = Engine::new(head.clone(), std::thread::available_parallelism().map_or(2, |n| n.get()));
    let sel = Selection {
        tenants: vec!["bench".into()],
        profile_type: ProfileType::parse(TYPE).expect("type"),
        matchers: vec![],
        range: TimeRange { start_ms: (now - 3_600_000_000_000) / 1_000_000, end_ms: now / 1_000_000 },
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let ctx = SessionContext::new_with_state(engine.state().clone());
    ctx.register_table(
        "samples",
        Arc::new(HeadTableProvider::new(head.clone(), vec!["bench".into()], HeadTable::Samples)),
    )
    .expect("register");
    let filter = format!("label(labels, '__profile_type__') = '{TYPE}'");
    let rows: i64 = rt.block_on(async {
        let b = ctx
            .sql(&format!("SELECT count(*) FROM samples WHERE {filter}"))
            .await
            .expect("sql")
            .collect()
            .await
            .expect("count");
        b[0].column(0).as_primitive::<Int64Type>().value(0)
    });
    let total = rt.block_on(engine.flamegraph_tree(&sel, 0)).expect("query").total();
    eprintln!("flamegraph bench: {rows} sample rows of {TYPE}, total value {total}");

    let mut g = c.benchmark_group("flamegraph");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(20);
    g.bench_function("datafusion_plan_flamegraph_udaf", |b| {
        b.iter(|| rt.block_on(engine.flamegraph_tree(&sel, 16384)).expect("query"))
    });
    let plain =
        format!("SELECT stacktrace_id, sum(value) FROM samples WHERE {filter} GROUP BY partition, stacktrace_id");
    g.bench_function("datafusion_plain_sum_by_stacktrace", |b| {
        b.iter(|| rt.block_on(async { ctx.sql(&plain).await.expect("sql").collect().await.expect("collect") }))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
