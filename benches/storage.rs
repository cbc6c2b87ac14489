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
use common::Rng;
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
use prost::Message;

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

/// Fills a head with `ROUNDS` copies of every fixture profile, one second apart. With `jitter`,
/// every sample value of every copy is scaled by a pseudo-random factor in [0.5, 1.5), so copies
/// differ the way successive profiles of a service do (the bytes counted are then those of the
/// re-encoded pprofs); without it the copies differ only in time and labels.
fn fill(inputs: &[(String, Vec<u8>)], jitter: bool) -> Filled {
    let head = Arc::new(Head::new());
    let limits =
        Limits { reject_older_than: Default::default(), reject_newer_than: Default::default(), ..Limits::default() };
    let d = Distributor::new(head.clone(), Arc::new(limits));
    let gz: Vec<u64> = inputs.iter().map(|(_, raw)| gzip_len(raw)).collect();
    let now = common::now_nanos();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut profiles, mut pprof_bytes, mut gzip_bytes) = (0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        for (i, (name, raw)) in inputs.iter().enumerate() {
            let Ok(mut p) = pprof::decode(raw, usize::MAX) else { continue };
            p.profile.time_nanos = now - round * 1_000_000_000;
            let (raw_len, gz_len) = if jitter {
                for v in p.profile.sample.iter_mut().flat_map(|s| s.value.iter_mut()) {
                    let f = 512 + (rng.next_u64() % 1024) as i64;
                    *v = (*v * f / 1024).max(v.signum());
                }
                let encoded = p.profile.encode_to_vec();
                (encoded.len() as u64, gzip_len(&encoded))
            } else {
                (raw.len() as u64, gz[i])
            };
            let labels = vec![
                ("__name__".to_string(), name.clone()),
                ("service_name".to_string(), format!("svc-{}", i % 8)),
                ("pod".to_string(), format!("pod-{}", round % 16)),
            ];
            if d.ingest_profile(TENANT, &labels, p.profile, raw_len as usize, None, now).is_ok() {
                profiles += 1;
                pprof_bytes += raw_len;
                gzip_bytes += gz_len;
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

fn report_bytes(what: &str, filled: &Filled, block: &BuiltBlock) {
    let s = &block.meta.stats;
    let total = block.total_bytes();
    let parts = [
        ("profiles.parquet", block.bytes_of(files::PROFILES)),
        ("symbols/", block.bytes_of(files::SYMBOLS_DIR)),
        ("index.parquet", block.bytes_of(files::INDEX)),
    ];
    eprintln!(
        "[{what}] block of {} profile rows from {} pprofs pushed ({ROUNDS} copies of each fixture), {} series, {} \
         samples, {} symbol partitions",
        s.num_profiles, filled.profiles, s.num_series, s.num_samples, s.num_partitions
    );
    eprintln!(
        "[{what}] ingested {:.2} MB uncompressed pprof, {:.2} MB gzip'd",
        mb(filled.pprof_bytes),
        mb(filled.gzip_bytes)
    );
    eprintln!(
        "[{what}] bytes at rest: {total} B ({:.2} MB) = {:.3} B/sample, {:.4} B per gzip'd pprof byte (1:{:.0}), \
         {:.4} B per uncompressed pprof byte",
        mb(total),
        total as f64 / s.num_samples as f64,
        total as f64 / filled.gzip_bytes as f64,
        filled.gzip_bytes as f64 / total as f64,
        total as f64 / filled.pprof_bytes as f64
    );
    for (name, b) in parts {
        eprintln!(
            "[{what}] bytes at rest: {name:<16} {b:>10} B ({:5.1}%) = {:.3} B/sample, {:.4} B per gzip'd pprof byte",
            100.0 * b as f64 / total as f64,
            b as f64 / s.num_samples as f64,
            b as f64 / filled.gzip_bytes as f64
        );
    }
    let files: Vec<String> = block.files.iter().map(|(n, b)| format!("{n} {}", b.len())).collect();
    eprintln!("[{what}] files (B): {}", files.join(", "));
}

/// One build + upload into `dir`'s bucket; the block is deleted again. Returns (build, total).
fn flush_once(
    rt: &tokio::runtime::Runtime,
    tenant: &TenantHead,
    store: &dyn ObjectStore,
    dir: &std::path::Path,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    let b = build_block(tenant).expect("build").expect("non-empty head");
    let built = t0.elapsed();
    rt.block_on(upload_block(store, TENANT, &b)).expect("upload");
    let total = t0.elapsed();
    std::fs::remove_dir_all(dir.join(block_dir(TENANT, &b.meta.ulid))).expect("remove block");
    (built, total)
}

fn report_flush(what: &str, filled: &Filled, block: &BuiltBlock, mut once: impl FnMut() -> (Duration, Duration)) {
    once();
    let mut runs: Vec<(Duration, Duration)> = (0..3).map(|_| once()).collect();
    runs.sort_by_key(|r| r.1);
    let (built, total) = runs[runs.len() / 2];
    let secs = total.as_secs_f64();
    eprintln!(
        "[{what}] flush: build {:.0} ms + upload {:.0} ms = {:.0} ms for {:.2} MB uncompressed pprof: {:.1} MB/s per \
         core (build alone {:.1} MB/s), {:.0} profile rows/s, {:.2} M samples/s",
        built.as_secs_f64() * 1e3,
        (total - built).as_secs_f64() * 1e3,
        secs * 1e3,
        mb(filled.pprof_bytes),
        mb(filled.pprof_bytes) / secs,
        mb(filled.pprof_bytes) / built.as_secs_f64(),
        block.meta.stats.num_profiles as f64 / secs,
        block.meta.stats.num_samples as f64 / secs / 1e6
    );
}

const SUM_SQL: &str = "SELECT sum(v) FROM (SELECT unnest(\"values\") AS v FROM profiles)";
const GROUP_SQL: &str = "SELECT \"partition\", s, sum(v) FROM (SELECT \"partition\", unnest(stacktrace_ids) AS s, \
                         unnest(\"values\") AS v FROM profiles) GROUP BY \"partition\", s";

/// A block in a local bucket, opened into an engine over an otherwise empty head, and its
/// `profiles.parquet` registered in a plain DataFusion session.
struct Scan {
    _bucket: tempfile::TempDir,
    engine: Engine,
    plain: SessionContext,
    /// Flame graph of `TYPE`, and one per profile type of the block.
    one: Selection,
    all: Vec<Selection>,
    type_rows: i64,
    num_samples: i64,
}

impl Scan {
    fn new(rt: &tokio::runtime::Runtime, what: &str, block: &BuiltBlock, now: i64) -> Self {
        let bucket = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(bucket.path()).expect("local bucket"));
        rt.block_on(upload_block(store.as_ref(), TENANT, block)).expect("upload");
        let head = Arc::new(Head::new());
        let t0 = Instant::now();
        let open = rt
            .block_on(open_block(store.as_ref(), TENANT, block.meta.clone(), |(name, syms)| {
                head.register_partition(TENANT, name, syms)
            }))
            .expect("open block");
        let open_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut types: Vec<String> = open
            .index
            .entries()
            .iter()
            .filter_map(|e| e.labels.get(labels::PROFILE_TYPE).map(str::to_string))
            .collect();
        types.sort_unstable();
        types.dedup();
        let profiles_file = bucket.path().join(&open.profiles_path);
        let blocks = Arc::new(BlockSet::new());
        blocks.add(Arc::new(open));
        let dataset = Dataset::new(head, blocks, store);
        let engine = Engine::over(dataset.clone(), PARTITIONS);
        let selection = |ty: &str| Selection {
            tenants: vec![TENANT.into()],
            profile_type: ProfileType::parse(ty).expect("profile type"),
            matchers: vec![],
            range: TimeRange { start_ms: (now - 3_600_000_000_000) / 1_000_000, end_ms: now / 1_000_000 },
        };
        let one = selection(TYPE);
        let all: Vec<Selection> = types.iter().map(|t| selection(t)).collect();

        // Sample rows, counted through the same dataset.
        let ctx = SessionContext::new_with_state(engine.state().clone());
        let samples = HeadTableProvider::over(dataset, vec![TENANT.into()], HeadTable::Samples);
        ctx.register_table("samples", Arc::new(samples)).expect("register");
        let count = |sql: String| -> i64 {
            rt.block_on(async {
                let b = ctx.sql(&sql).await.expect("sql").collect().await.expect("count");
                b[0].column(0).as_primitive::<Int64Type>().value(0)
            })
        };
        let type_rows =
            count(format!("SELECT count(*) FROM samples WHERE label(labels, '__profile_type__') = '{TYPE}'"));
        let all_rows = count("SELECT count(*) FROM samples".to_string());
        let num_samples = block.meta.stats.num_samples as i64;
        assert_eq!(all_rows, num_samples, "the samples table over the block holds every stored sample");

        let plain = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(PARTITIONS));
        rt.block_on(plain.register_parquet(
            "profiles",
            profiles_file.to_str().expect("utf-8 path"),
            ParquetReadOptions::default(),
        ))
        .expect("register parquet");
        let scan = Self { _bucket: bucket, engine, plain, one, all, type_rows, num_samples };
        let total = scan.run_one(rt).total();
        let plain_total = scan.run_sql(rt, SUM_SQL)[0].column(0).as_primitive::<Int64Type>().value(0);
        eprintln!(
            "[{what}] block scan: open_block (index + symbols) {open_ms:.0} ms; {type_rows} sample rows of {TYPE} \
             (flame graph total {total}), {all_rows} rows in all {} profile types (sum of values {plain_total})",
            types.len()
        );
        scan
    }

    fn run_one(&self, rt: &tokio::runtime::Runtime) -> flamedb_exec::tree::FunctionTree {
        rt.block_on(self.engine.flamegraph_tree(&self.one, 8192)).expect("query")
    }

    fn run_all(&self, rt: &tokio::runtime::Runtime) {
        for s in &self.all {
            rt.block_on(self.engine.flamegraph_tree(s, 8192)).expect("query");
        }
    }

    fn run_sql(&self, rt: &tokio::runtime::Runtime, sql: &str) -> Vec<arrow::array::RecordBatch> {
        rt.block_on(async { self.plain.sql(sql).await.expect("sql").collect().await.expect("collect") })
    }

    /// Median times of each query, as sample rows/s, and the engine's cost over plain DataFusion.
    fn report(&self, rt: &tokio::runtime::Runtime, what: &str) {
        let rate = |rows: i64, d: Duration| rows as f64 / d.as_secs_f64() / 1e6;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let t_one = median(5, || drop(self.run_one(rt)));
        let t_all = median(5, || self.run_all(rt));
        let t_sum = median(5, || drop(self.run_sql(rt, SUM_SQL)));
        let t_group = median(5, || drop(self.run_sql(rt, GROUP_SQL)));
        eprintln!(
            "[{what}] block scan: engine flame graph of {TYPE}: {:.1} ms, {:.2} M sample rows/s",
            ms(t_one),
            rate(self.type_rows, t_one)
        );
        eprintln!(
            "[{what}] block scan: engine flame graphs of all {} types: {:.1} ms, {:.2} M sample rows/s",
            self.all.len(),
            ms(t_all),
            rate(self.num_samples, t_all)
        );
        eprintln!(
            "[{what}] block scan: plain DataFusion unnest(values) + sum: {:.1} ms, {:.2} M rows/s; engine (all types) \
             takes {:.2}x its time",
            ms(t_sum),
            rate(self.num_samples, t_sum),
            t_all.as_secs_f64() / t_sum.as_secs_f64()
        );
        eprintln!(
            "[{what}] block scan: plain DataFusion unnest(stacktrace_ids, values) + sum GROUP BY partition, stack: \
             {:.1} ms, {:.2} M rows/s; engine (all types) takes {:.2}x its time",
            ms(t_group),
            rate(self.num_samples, t_group),
            t_all.as_secs_f64() / t_group.as_secs_f64()
        );
    }
}

fn bench(c: &mut Criterion) {
    let inputs = common::pprofs();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(PARTITIONS).enable_all().build().expect("runtime");
    let flush_dir = tempfile::tempdir().expect("tempdir");
    let flush_store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(flush_dir.path()).expect("local bucket"));

    // Copies whose sample values vary: the same measurements without criterion, for realistic
    // bytes at rest (identical copies compress far better than real successive profiles).
    {
        let what = "jittered values";
        let filled = fill(&inputs, true);
        let block = build_block(&filled.tenant).expect("build").expect("non-empty head");
        report_bytes(what, &filled, &block);
        report_flush(what, &filled, &block, || flush_once(&rt, &filled.tenant, flush_store.as_ref(), flush_dir.path()));
        Scan::new(&rt, what, &block, filled.now).report(&rt, what);
    }

    // Identical copies (as the ingest and flame-graph benches push them).
    let what = "identical copies";
    let filled = fill(&inputs, false);
    let tenant = filled.tenant.clone();

    // 1. Bytes at rest.
    let block = build_block(&tenant).expect("build").expect("non-empty head");
    report_bytes(what, &filled, &block);

    // 2. Flush throughput: build + upload into a local bucket, on one core (the build is
    // single-threaded; the upload writes the files one after another).
    let once = || flush_once(&rt, &tenant, flush_store.as_ref(), flush_dir.path());
    report_flush(what, &filled, &block, once);
    let mut g = c.benchmark_group("storage_flush");
    g.throughput(Throughput::Bytes(filled.pprof_bytes));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("build_block", |b| b.iter(|| build_block(&tenant).expect("build")));
    g.bench_function("build_and_upload_local_fs", |b| b.iter_custom(|iters| (0..iters).map(|_| once().1).sum()));
    g.finish();

    // 3. Block scan rate.
    let scan = Scan::new(&rt, what, &block, filled.now);
    scan.report(&rt, what);
    let mut g = c.benchmark_group("storage_block_scan");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(scan.type_rows as u64));
    g.bench_function("engine_flamegraph_one_type", |b| b.iter(|| scan.run_one(&rt)));
    g.throughput(Throughput::Elements(scan.num_samples as u64));
    g.bench_function("engine_flamegraph_all_types", |b| b.iter(|| scan.run_all(&rt)));
    g.bench_function("plain_datafusion_unnest_sum", |b| b.iter(|| scan.run_sql(&rt, SUM_SQL)));
    g.bench_function("plain_datafusion_unnest_group_by_stack", |b| b.iter(|| scan.run_sql(&rt, GROUP_SQL)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
