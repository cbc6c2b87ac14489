//! (e) SQL and bulk export (issue 5), per core: every query runs in a DataFusion session with
//! `target_partitions` 1 on a current-thread tokio runtime.
//!
//! 1. Export throughput: `SqlEngine::export` of one profile type over the whole range, drained to
//!    the end, in sample rows/s and MB/s, where the bytes are both the batches' Arrow memory
//!    (`RecordBatch::get_array_memory_size`) and their Arrow IPC stream encoding (what Flight
//!    `DoGet` ships); also drained *and* IPC-encoded, the Flight path minus the network. Over the
//!    head, and over the same data flushed to a block in a local bucket.
//! 2. The top-10 functions by self value of one profile type, through SQL (`leaf(stack)`,
//!    `sum(value)`) and through the query API (`Querier::select_merge_stacktraces` flame graph,
//!    and the engine's flame-graph tree it is built from), asserted equal before timing, with the
//!    ratio printed from fixed-count timed loops.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use arrow::ipc::writer::StreamWriter;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::local::LocalFileSystem;
use flamedb_exec::Dataset;
use flamedb_ingest::head::Head;
use flamedb_ingest::model::ProfileType;
use flamedb_planner::limits::TimeRange;
use flamedb_planner::sql::{ExportRequest, SqlEngine, SqlLimits};
use flamedb_planner::{Engine, Querier, QueryLimits, RequestContext, Selection};
use flamedb_proto::querier::v1 as q;
use flamedb_storage::BlockSet;
use flamedb_storage::block::{build_block, open_block, upload_block};
use futures::StreamExt;

const TENANT: &str = "bench";
const TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// Copies of every fixture profile, one second apart, as in the flame-graph and storage benches.
const ROUNDS: i64 = 300;
/// Iterations of each timed loop the printed numbers and ratios come from (after one warm-up).
const RUNS: u32 = 10;

const TOP_SQL: &str = "SELECT leaf(stack) AS f, sum(value) AS self FROM samples WHERE profile_type = \
                       'process_cpu:cpu:nanoseconds:cpu:nanoseconds' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10";

/// The head's data flushed to one block in a local bucket and opened again over an empty head,
/// as a store-gateway-less process reads it after a restart.
fn flushed(rt: &tokio::runtime::Runtime, head: &Head) -> (tempfile::TempDir, Dataset) {
    let tenant = head.tenant(TENANT).expect("bench tenant");
    let block = build_block(&tenant).expect("build").expect("non-empty head");
    let bucket = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket.path()).expect("local bucket"));
    rt.block_on(upload_block(store.as_ref(), TENANT, &block)).expect("upload");
    let empty = Arc::new(Head::new());
    let open = rt
        .block_on(open_block(store.as_ref(), TENANT, block.meta.clone(), |(name, syms)| {
            empty.register_partition(TENANT, name, syms)
        }))
        .expect("open block");
    let blocks = Arc::new(BlockSet::new());
    blocks.add(Arc::new(open));
    (bucket, Dataset::new(empty, blocks, store))
}

/// Counts what is written to it.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one drained export held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Drained {
    rows: u64,
    value_sum: i64,
    /// Sum of `get_array_memory_size` over the batches.
    memory_bytes: u64,
    /// Length of the Arrow IPC stream (uncompressed) of the batches; 0 when not encoded.
    ipc_bytes: u64,
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// One reader of the data: the SQL engine and the query API over the same engine.
struct Side {
    what: &'static str,
    sql: SqlEngine,
    querier: Querier,
    engine: Engine,
    tenants: Vec<String>,
    export: ExportRequest,
    sel: Selection,
    /// The newest profile's time, in ms.
    end_ms: i64,
}

impl Side {
    fn new(what: &'static str, dataset: Dataset, now: i64) -> Self {
        let engine = Engine::over(dataset, 1);
        let sql = SqlEngine::new(engine.clone(), SqlLimits::default());
        // No node limit: the top functions are read from the whole tree, as SQL reads every row.
        let limits = QueryLimits { max_flamegraph_nodes_default: 0, ..QueryLimits::default() };
        let querier = Querier::new(engine.clone(), limits);
        let end_ms = now / 1_000_000;
        let start_ms = end_ms - 3_600_000;
        let export =
            ExportRequest { profile_type: TYPE.into(), label_selector: "{}".into(), start: start_ms, end: end_ms };
        let sel = Selection {
            tenants: vec![TENANT.into()],
            profile_type: ProfileType::parse(TYPE).expect("type"),
            matchers: vec![],
            range: TimeRange { start_ms, end_ms },
        };
        Self { what, sql, querier, engine, tenants: vec![TENANT.into()], export, sel, end_ms }
    }

    /// Runs the export to its end; with `ipc`, also encodes every batch as an Arrow IPC stream.
    async fn drain(&self, ipc: bool) -> Drained {
        let query = self.sql.export(&self.tenants, &self.export).await.expect("export");
        let schema = query.schema();
        let mut stream = query.execute().await.expect("execute export");
        let mut writer = ipc.then(|| StreamWriter::try_new(Counter::default(), &schema).expect("ipc writer"));
        let mut out = Drained::default();
        while let Some(batch) = stream.next().await {
            let batch = batch.expect("export batch");
            out.rows += batch.num_rows() as u64;
            out.memory_bytes += batch.get_array_memory_size() as u64;
            if let Some(values) = batch.column_by_name("value") {
                out.value_sum += values.as_primitive::<Int64Type>().iter().flatten().sum::<i64>();
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch).expect("ipc write");
            }
        }
        if let Some(mut w) = writer {
            w.finish().expect("ipc finish");
            out.ipc_bytes = w.get_ref().0;
        }
        out
    }

    async fn sql_batches(&self, sql: &str) -> Vec<RecordBatch> {
        let query = self.sql.plan(&self.tenants, sql).await.expect("plan");
        let stream = query.execute().await.expect("execute");
        stream.map(|b| b.expect("batch")).collect().await
    }

    /// Top functions through SQL.
    async fn top_sql(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for b in self.sql_batches(TOP_SQL).await {
            let names = arrow::compute::cast(b.column(0), &DataType::Utf8).expect("function names as utf8");
            let names = names.as_string::<i32>();
            let values = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let name = if names.is_null(i) { "<NULL>".to_string() } else { names.value(i).to_string() };
                out.push((name, values.value(i)));
            }
        }
        out
    }

    /// Top functions through the query API: a flame graph of the selection, self values summed
    /// per name over its levels (`[x offset, total, self, name index]` per node; level 0 is the
    /// synthetic root).
    async fn top_api(&self) -> Vec<(String, i64)> {
        let ctx = RequestContext { tenants: self.tenants.clone(), utf8_label_names: false };
        let req = q::SelectMergeStacktracesRequest {
            profile_type_id: TYPE.into(),
            label_selector: "{}".into(),
            start: self.sel.range.start_ms,
            end: self.end_ms,
            format: q::ProfileFormat::Flamegraph as i32,
            ..Default::default()
        };
        let fg = self.querier.select_merge_stacktraces(&ctx, req).await.expect("select").flamegraph.expect("graph");
        let mut selfs: HashMap<&str, i64> = HashMap::new();
        for level in fg.levels.iter().skip(1) {
            for node in level.values.chunks_exact(4) {
                let name = fg.names.get(node[3] as usize).expect("name index in range");
                *selfs.entry(name.as_str()).or_default() += node[2];
            }
        }
        top10(selfs)
    }

    /// Top functions from the engine's flame-graph tree (the plan the API runs, without encoding).
    async fn top_tree(&self) -> Vec<(String, i64)> {
        let tree = self.engine.flamegraph_tree(&self.sel, 0).await.expect("tree");
        let mut selfs: HashMap<&str, i64> = HashMap::new();
        for node in 1..=tree.node_count() as u32 {
            *selfs.entry(tree.name(tree.name_id(node))).or_default() += tree.self_value(node);
        }
        top10(selfs)
    }
}

/// The ten largest values, ties by name (the SQL's `ORDER BY 2 DESC, 1`).
fn top10(selfs: HashMap<&str, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = selfs.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

/// Mean wall time of `RUNS` calls of `f`, after one warm-up call.
fn mean<T>(mut f: impl FnMut() -> T) -> Duration {
    std::hint::black_box(f());
    let t = Instant::now();
    for _ in 0..RUNS {
        std::hint::black_box(f());
    }
    t.elapsed() / RUNS
}

fn bench(c: &mut Criterion) {
    let inputs = common::pprofs();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (head, now, profiles) = common::fixture_head(TENANT, &inputs, ROUNDS);
    let (_bucket, blocks) = flushed(&rt, &head);
    let sides = [Side::new("head", Dataset::in_memory(head), now), Side::new("block", blocks, now)];

    let mut rows = Vec::new();
    for s in &sides {
        let partitions = s.sql.context(&s.tenants).expect("context").state().config().target_partitions();
        assert_eq!(partitions, 1, "the SQL session runs on one core");
        // The export holds every sample of the type: the flame graph's total and the rows SQL
        // counts.
        let d = rt.block_on(s.drain(true));
        let total = rt.block_on(s.engine.flamegraph_tree(&s.sel, 0)).expect("tree").total();
        let counted =
            rt.block_on(s.sql_batches(&format!("SELECT count(*) FROM samples WHERE profile_type = '{TYPE}'")));
        let counted = counted[0].column(0).as_primitive::<Int64Type>().value(0) as u64;
        assert!(d.rows > 0, "[{}] the export is not empty", s.what);
        assert_eq!(d.rows, counted, "[{}] export rows = SQL count(*)", s.what);
        assert_eq!(d.value_sum, total, "[{}] export value sum = flame graph total", s.what);
        rows.push(d.rows);
        let t = mean(|| rt.block_on(s.drain(false)));
        let t_ipc = mean(|| rt.block_on(s.drain(true)));
        let secs = t.as_secs_f64();
        eprintln!(
            "[{}] export of {TYPE}: {} sample rows of {profiles} profiles (value sum {}), Arrow memory {:.1} MB, IPC \
             stream {:.1} MB ({:.1} B/row)",
            s.what,
            d.rows,
            d.value_sum,
            mb(d.memory_bytes),
            mb(d.ipc_bytes),
            d.ipc_bytes as f64 / d.rows as f64
        );
        eprintln!(
            "[{}] export drain, one core: {:.1} ms = {:.2} M rows/s, {:.1} MB/s of Arrow memory, {:.1} MB/s of IPC bytes",
            s.what,
            secs * 1e3,
            d.rows as f64 / secs / 1e6,
            mb(d.memory_bytes) / secs,
            mb(d.ipc_bytes) / secs
        );
        eprintln!(
            "[{}] export drain + IPC encode, one core: {:.1} ms = {:.2} M rows/s, {:.1} MB/s of IPC bytes",
            s.what,
            t_ipc.as_secs_f64() * 1e3,
            d.rows as f64 / t_ipc.as_secs_f64() / 1e6,
            mb(d.ipc_bytes) / t_ipc.as_secs_f64()
        );
    }

    let mut g = c.benchmark_group("sql_export");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for (s, &n) in sides.iter().zip(&rows) {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{}/drain", s.what), |b| b.iter(|| rt.block_on(s.drain(false))));
        g.bench_function(format!("{}/drain_ipc_encode", s.what), |b| b.iter(|| rt.block_on(s.drain(true))));
    }
    g.finish();

    for (s, n) in sides.iter().zip(&rows) {
        let sql = rt.block_on(s.top_sql());
        let api = rt.block_on(s.top_api());
        let tree = rt.block_on(s.top_tree());
        eprintln!("[{}] top functions of {TYPE} by self value: {sql:?}", s.what);
        assert_eq!(sql.len(), 10, "[{}] ten functions", s.what);
        assert_eq!(sql, api, "[{}] SQL and select_merge_stacktraces agree", s.what);
        assert_eq!(sql, tree, "[{}] SQL and the flame-graph tree agree", s.what);
        let t_sql = mean(|| rt.block_on(s.top_sql()));
        let t_api = mean(|| rt.block_on(s.top_api()));
        let t_tree = mean(|| rt.block_on(s.top_tree()));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "[{}] top-10 functions over {n} sample rows, one core, mean of {RUNS}: SQL {:.1} ms, API \
             select_merge_stacktraces {:.1} ms, engine flame-graph tree {:.1} ms; SQL/API = {:.2}x, SQL/tree = {:.2}x",
            s.what,
            ms(t_sql),
            ms(t_api),
            ms(t_tree),
            t_sql.as_secs_f64() / t_api.as_secs_f64(),
            t_sql.as_secs_f64() / t_tree.as_secs_f64()
        );
    }

    let mut g = c.benchmark_group("sql_top_functions");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for (s, &n) in sides.iter().zip(&rows) {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{}/sql", s.what), |b| b.iter(|| rt.block_on(s.top_sql())));
        g.bench_function(format!("{}/api_select_merge_stacktraces", s.what), |b| b.iter(|| rt.block_on(s.top_api())));
        g.bench_function(format!("{}/engine_flamegraph_tree", s.what), |b| b.iter(|| rt.block_on(s.top_tree())));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
