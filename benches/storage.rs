//! (d) The block store: bytes at rest of a flushed head (per stored sample and per byte of gzip'd
//! pprof pushed), flush throughput (`build_block` + `upload_block` into a local bucket, MB/s of
//! uncompressed pprof), and the scan rate of a block through the engine's flame-graph plan beside
//! a plain DataFusion scan of the same `profiles.parquet`.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use flamedb_exec::{Dataset, HeadTable, HeadTableProvider};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::{Head, TenantHead};
use flamedb_ingest::model::{ProfileType, labels};
use flamedb_ingest::pprof;
use flamedb_ingest::validate::Limits;
use flamedb_planner::limits::TimeRange;
use flamedb_planner::{Engine, Selection};
use flamedb_storage::BlockSet;
use flamedb_storage::block::schema::files;
use flamedb_storage::block::{BuiltBlock, block_dir, build_block, open_block, upload_block};

const TENANT: &str = "bench";
const TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/// Copies of the fixture profiles, one second apart, as in the flame-graph bench.
const ROUNDS: i64 = 300;
/// Scan partitions of the engine and of the plain DataFusion session.
const PARTITIONS: usize = 2;

/// The head of the bench tenant, filled with `ROUNDS` copies of every fixture profile.
struct Filled {
    tenant: Arc<TenantHead>,
    now: i64,
    profiles: u64,
    /// Uncompressed pprof bytes of the profiles stored.
    pprof_bytes: u64,
    /// The same pprofs gzip'd (default level), as clients push them.
    gzip_bytes: u64,
}

fn gzip_len(raw: &[u8]) -> u64 {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(raw).expect("gzip");
    e.finish().expect("gzip").len() as u64
}

fn fill(inputs: &[(String, Vec<u8>)]) -> Filled {
    let head = Arc::new(Head::new());
    let limits =
        Limits { reject_older_than: Default::default(), reject_newer_than: Default::default(), ..Limits::default() };
    let d = Distributor::new(head.clone(), Arc::new(limits));
    let gz: Vec<u64> = inputs.iter().map(|(_, raw)| gzip_len(raw)).collect();
    let now = common::now_nanos();
    let (mut profiles, mut pprof_bytes, mut gzip_bytes) = (0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        for (i, (name, raw)) in inputs.iter().enumerate() {
            let Ok(mut p) = pprof::decode(raw, usize::MAX) else { continue };
            p.profile.time_nanos = now - round * 1_000_000_000;
            let labels = vec![
                ("__name__".to_string(), name.clone()),
                ("service_name".to_string(), format!("svc-{}", i % 8)),
                ("pod".to_string(), format!("pod-{}", round % 16)),
            ];
            if d.ingest_profile(TENANT, &labels, p.profile, raw.len(), None, now).is_ok() {
                profiles += 1;
                pprof_bytes += raw.len() as u64;
                gzip_bytes += gz[i];
            }
        }
    }
    let tenant = head.tenant(TENANT).expect("bench tenant");
    Filled { tenant, now, profiles, pprof_bytes, gzip_bytes }
}

/// Median wall time of `runs` calls of `f` (after one warm-up call).
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn report_bytes(filled: &Filled, block: &BuiltBlock) {
    let s = &block.meta.stats;
    let total = block.total_bytes();
    let parts = [
        ("profiles.parquet", block.bytes_of(files::PROFILES)),
        ("symbols/", block.bytes_of(files::SYMBOLS_DIR)),
        ("index.parquet", block.bytes_of(files::INDEX)),
    ];
    eprintln!(
        "storage bench: block of {} profiles ({} ingested), {} series, {} samples, {} partitions",
        s.num_profiles, filled.profiles, s.num_series, s.num_samples, s.num_partitions
    );
    eprintln!(
        "storage bench: ingested {:.2} MB uncompressed pprof, {:.2} MB gzip'd",
        mb(filled.pprof_bytes),
        mb(filled.gzip_bytes)
    );
    eprintln!(
        "bytes at rest: {total} B total ({:.2} MB) = {:.2} B/sample, {:.3} B per gzip'd pprof byte, {:.3} B per \
         uncompressed pprof byte",
        mb(total),
        total as f64 / s.num_samples as f64,
        total as f64 / filled.gzip_bytes as f64,
        total as f64 / filled.pprof_bytes as f64
    );
    for (name, b) in parts {
        eprintln!(
            "bytes at rest: {name:<16} {b:>10} B ({:5.1}%) = {:.2} B/sample, {:.3} B per gzip'd pprof byte",
            100.0 * b as f64 / total as f64,
            b as f64 / s.num_samples as f64,
            b as f64 / filled.gzip_bytes as f64
        );
    }
    for (name, b) in &block.files {
        eprintln!("bytes at rest:   {name:<28} {:>10} B", b.len());
    }
}

fn bench(c: &mut Criterion) {
    let inputs = common::pprofs();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(PARTITIONS).enable_all().build().expect("runtime");
    let filled = fill(&inputs);
    let tenant = filled.tenant.clone();

    // 1. Bytes at rest.
    let block = build_block(&tenant).expect("build").expect("non-empty head");
    report_bytes(&filled, &block);

    // 2. Flush throughput: build + upload into a local bucket, on one core (the build is
    // single-threaded; the upload writes the files one after another).
    let flush_dir = tempfile::tempdir().expect("tempdir");
    let flush_store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(flush_dir.path()).expect("local bucket"));
    let flush_once = || -> (Duration, Duration) {
        let t0 = Instant::now();
        let b = build_block(&tenant).expect("build").expect("non-empty head");
        let built = t0.elapsed();
        rt.block_on(upload_block(flush_store.as_ref(), TENANT, &b)).expect("upload");
        let total = t0.elapsed();
        std::fs::remove_dir_all(flush_dir.path().join(block_dir(TENANT, &b.meta.ulid))).expect("remove block");
        (built, total)
    };
    let mut runs: Vec<(Duration, Duration)> = (0..4).map(|_| flush_once()).skip(1).collect();
    runs.sort_by_key(|r| r.1);
    let (built, total) = runs[runs.len() / 2];
    eprintln!(
        "flush: build {:.0} ms + upload {:.0} ms = {:.0} ms for {:.2} MB uncompressed pprof: {:.1} MB/s per core \
         (build alone {:.1} MB/s), {:.0} profiles/s, {:.2} M samples/s",
        built.as_secs_f64() * 1e3,
        (total - built).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        mb(filled.pprof_bytes),
        mb(filled.pprof_bytes) / total.as_secs_f64(),
        mb(filled.pprof_bytes) / built.as_secs_f64(),
        block.meta.stats.num_profiles as f64 / total.as_secs_f64(),
        block.meta.stats.num_samples as f64 / total.as_secs_f64() / 1e6
    );
    let mut g = c.benchmark_group("storage_flush");
    g.throughput(Throughput::Bytes(filled.pprof_bytes));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("build_block", |b| b.iter(|| build_block(&tenant).expect("build")));
    g.bench_function("build_and_upload_local_fs", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| flush_once().1).sum());
    });
    g.finish();

    // 3. Block scan rate: the block in a local bucket, opened into an empty head's symbol registry.
    let bucket_dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(bucket_dir.path()).expect("local bucket"));
    rt.block_on(upload_block(store.as_ref(), TENANT, &block)).expect("upload");
    let qhead = Arc::new(Head::new());
    let t0 = Instant::now();
    let open = rt
        .block_on(open_block(store.as_ref(), TENANT, block.meta.clone(), |name, syms| {
            qhead.register_partition(name, syms)
        }))
        .expect("open block");
    eprintln!("block scan: open_block (index + symbols) took {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    let mut types: Vec<String> =
        open.index.entries().iter().filter_map(|e| e.labels.get(labels::PROFILE_TYPE).map(str::to_string)).collect();
    types.sort_unstable();
    types.dedup();
    let profiles_file = bucket_dir.path().join(&open.profiles_path);
    let blocks = Arc::new(BlockSet::new());
    blocks.add(Arc::new(open));
    let dataset = Dataset::new(qhead.clone(), blocks, store.clone());
    let engine = Engine::over(dataset.clone(), PARTITIONS);
    let now = filled.now;
    let selection = |ty: &str| Selection {
        tenants: vec![TENANT.into()],
        profile_type: ProfileType::parse(ty).expect("profile type"),
        matchers: vec![],
        range: TimeRange { start_ms: (now - 3_600_000_000_000) / 1_000_000, end_ms: now / 1_000_000 },
    };
    let one = selection(TYPE);
    let all: Vec<Selection> = types.iter().map(|t| selection(t)).collect();

    // Sample rows of the selected type, counted through the same dataset.
    let ctx = SessionContext::new_with_state(engine.state().clone());
    ctx.register_table("samples", Arc::new(HeadTableProvider::over(dataset, vec![TENANT.into()], HeadTable::Samples)))
        .expect("register");
    let count = |sql: String| -> i64 {
        rt.block_on(async {
            let b = ctx.sql(&sql).await.expect("sql").collect().await.expect("count");
            b[0].column(0).as_primitive::<Int64Type>().value(0)
        })
    };
    let type_rows = count(format!("SELECT count(*) FROM samples WHERE label(labels, '__profile_type__') = '{TYPE}'"));
    let all_rows = count("SELECT count(*) FROM samples".to_string());
    let num_samples = block.meta.stats.num_samples as i64;
    let one_total = rt.block_on(engine.flamegraph_tree(&one, 8192)).expect("query").total();
    eprintln!(
        "block scan: {type_rows} sample rows of {TYPE} (flame graph total {one_total}); {all_rows} rows in all \
         {} profile types (block num_samples {num_samples})",
        types.len()
    );
    assert_eq!(all_rows, num_samples, "the samples table over the block holds every stored sample");

    // Plain DataFusion over the same file, same partitions.
    let plain = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(PARTITIONS));
    rt.block_on(plain.register_parquet(
        "profiles",
        profiles_file.to_str().expect("utf-8 path"),
        ParquetReadOptions::default(),
    ))
    .expect("register parquet");
    let sum_sql = "SELECT sum(v) FROM (SELECT unnest(\"values\") AS v FROM profiles)";
    let group_sql = "SELECT \"partition\", s, sum(v) FROM (SELECT \"partition\", unnest(stacktrace_ids) AS s, \
                     unnest(\"values\") AS v FROM profiles) GROUP BY \"partition\", s";
    let run_sql =
        |sql: &str| rt.block_on(async { plain.sql(sql).await.expect("sql").collect().await.expect("collect") });
    let run_one = || rt.block_on(engine.flamegraph_tree(&one, 8192)).expect("query");
    let run_all = || {
        for s in &all {
            rt.block_on(engine.flamegraph_tree(s, 8192)).expect("query");
        }
    };
    let rate = |rows: i64, d: Duration| rows as f64 / d.as_secs_f64() / 1e6;
    let t_one = median(5, || drop(run_one()));
    let t_all = median(5, run_all);
    let t_sum = median(5, || drop(run_sql(sum_sql)));
    let t_group = median(5, || drop(run_sql(group_sql)));
    eprintln!(
        "block scan: engine flame graph of {TYPE}: {:.1} ms, {:.2} M sample rows/s",
        t_one.as_secs_f64() * 1e3,
        rate(type_rows, t_one)
    );
    eprintln!(
        "block scan: engine flame graphs of all {} types: {:.1} ms, {:.2} M sample rows/s",
        types.len(),
        t_all.as_secs_f64() * 1e3,
        rate(num_samples, t_all)
    );
    eprintln!(
        "block scan: plain DataFusion unnest(values) + sum: {:.1} ms, {:.2} M rows/s (engine all types / plain = \
         {:.2}x the time)",
        t_sum.as_secs_f64() * 1e3,
        rate(num_samples, t_sum),
        t_all.as_secs_f64() / t_sum.as_secs_f64()
    );
    eprintln!(
        "block scan: plain DataFusion unnest(stacktrace_ids, values) + sum GROUP BY partition, stack: {:.1} ms, \
         {:.2} M rows/s (engine all types / plain = {:.2}x the time)",
        t_group.as_secs_f64() * 1e3,
        rate(num_samples, t_group),
        t_all.as_secs_f64() / t_group.as_secs_f64()
    );

    let mut g = c.benchmark_group("storage_block_scan");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(type_rows as u64));
    g.bench_function("engine_flamegraph_one_type", |b| b.iter(run_one));
    g.throughput(Throughput::Elements(num_samples as u64));
    g.bench_function("engine_flamegraph_all_types", |b| b.iter(run_all));
    g.bench_function("plain_datafusion_unnest_sum", |b| b.iter(|| run_sql(sum_sql)));
    g.bench_function("plain_datafusion_unnest_group_by_stack", |b| b.iter(|| run_sql(group_sql)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
