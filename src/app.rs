//! Wires the components of the monolith: the head with its WAL, the distributor that writes
//! into it, the bucket with the blocks flushed from it, the query engine that reads head and
//! blocks as one, the background flush and retention loops, and the server in front.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use flamedb_exec::Dataset;
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::overrides::{Overrides, Resolved};
use flamedb_ingest::wal::{Wal, WalOptions};
use flamedb_planner::{Engine, Querier};
use flamedb_storage::BlockSet;
use flamedb_storage::flush::Flusher;
use flamedb_storage::load::load_blocks;

use crate::config::{Config, load_runtime_config};
use crate::metrics::Metrics;
use crate::server::{self, services::Api};

/// Opens the bucket, loads its blocks, replays the WAL into a fresh head, and builds the
/// request handlers over them.
pub async fn build(cfg: &Config) -> Result<Api> {
    let data = &cfg.pyroscopedb.data_path;
    // First, so a broken runtime file stops the start before anything is opened.
    let overrides = Arc::new(Overrides::new(Arc::new(cfg.limits.ingest.clone())));
    if let Some(path) = &cfg.runtime_config.file {
        let resolved = load_runtime_config(path, overrides.defaults())
            .with_context(|| format!("loading the runtime configuration (-runtime-config.file={})", path.display()))?;
        apply_overrides(&overrides, resolved);
    }
    let metrics = Arc::new(Metrics::new());
    let store = flamedb_storage::open(&cfg.storage, data).context("opening the block storage")?;
    tracing::info!(bucket = %cfg.storage.location(data), "block storage ready");
    let head = Arc::new(Head::new());
    let blocks = Arc::new(BlockSet::new());
    let loaded = load_blocks(&store, &head, &blocks).await.context("loading blocks from the bucket")?;
    metrics.blocks_skipped.inc_by(loaded.skipped.len() as u64);
    tracing::info!(tenants = loaded.tenants, blocks = loaded.blocks, skipped = loaded.skipped.len(), "blocks loaded");

    let wal_dir = data.join("wal");
    let distributor =
        Distributor::new(head.clone(), overrides.defaults().clone()).with_tenant_limits(overrides.clone());
    let started = Instant::now();
    let replay = Wal::replay(&wal_dir, |_, tenant, p| {
        distributor.head().append(&tenant, &p);
    })
    .with_context(|| format!("replaying the WAL in {}", wal_dir.display()))?;
    tracing::info!(
        records = replay.records,
        segments = replay.segments,
        corrupt_segments = replay.corrupt_segments,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "WAL replayed"
    );
    let opts = WalOptions { fsync: cfg.pyroscopedb.wal_fsync, ..WalOptions::default() };
    let wal = Arc::new(Wal::open(&wal_dir, opts).with_context(|| format!("opening the WAL in {}", wal_dir.display()))?);
    let distributor = distributor.with_wal(wal);

    let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
    let engine = Engine::over(Dataset::new(head, blocks.clone(), store.clone()), partitions);
    let flusher = Flusher::new(distributor.clone(), store, blocks);
    Ok(Api {
        distributor,
        sql: flamedb_planner::sql::SqlEngine::new(engine.clone(), cfg.sql.limits()),
        querier: Querier::new(engine, cfg.limits.query.clone()),
        multitenancy: cfg.multitenancy_enabled,
        metrics,
        flusher: Some(flusher),
        settings: Arc::new(
            server::settings::SettingsStore::open(data.join("settings")).context("opening the settings store")?,
        ),
        config: Arc::new(cfg.clone()),
    })
}

/// Puts resolved overrides in force, logging keys that name no ingest limit.
fn apply_overrides(overrides: &Overrides, resolved: Resolved) {
    for (tenant, key) in &resolved.ignored {
        tracing::warn!(%tenant, limit = %key, "runtime config: not a per-tenant ingest limit, ignored");
    }
    let tenants = resolved.tenants.len();
    overrides.replace(resolved.tenants);
    tracing::info!(tenants, "runtime config: tenant overrides applied");
}

/// Re-reads the runtime configuration file every `period`; a change takes effect at once, a
/// broken file is logged and the last good overrides stay.
async fn reload_runtime_config(api: Api, cfg: Config) {
    let Some(path) = cfg.runtime_config.file.clone() else { return };
    let overrides = api.distributor.overrides().clone();
    // Compared with what each reload reads; `None` re-applies the file once (harmless) so a
    // change made while the process started is not missed.
    let mut last: Option<String> = None;
    let mut tick = tokio::time::interval(cfg.runtime_config.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: the file was just loaded
    loop {
        tick.tick().await;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) => {
                let path = path.display();
                tracing::warn!(%path, error = %e, "runtime config: reload failed, keeping the last good overrides");
                continue;
            }
        };
        if last.as_deref() == Some(text.as_str()) {
            continue;
        }
        let parsed = crate::config::parse_runtime_config(&text)
            .and_then(|entries| Ok(flamedb_ingest::overrides::resolve(overrides.defaults(), &entries)?));
        match parsed {
            Ok(resolved) => {
                apply_overrides(&overrides, resolved);
                last = Some(text);
            }
            Err(e) => {
                let (path, error) = (path.display(), format!("{e:#}"));
                tracing::error!(%path, %error, "runtime config: invalid file, keeping the last good overrides");
                // Remember it so the same broken content is reported once, not every period.
                last = Some(text);
            }
        }
    }
}

/// Flushes the head when it is older than the block duration or larger than the sample limit,
/// and applies retention once an hour.
async fn background(api: Api, cfg: Config) {
    let Some(flusher) = api.flusher.clone() else { return };
    let max_age = cfg.pyroscopedb.max_block_duration.max(Duration::from_secs(1));
    let retention = cfg.compactor.blocks_retention_period;
    let mut last_flush = Instant::now();
    let mut last_retention: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(max_age));
    loop {
        tick.tick().await;
        let head = api.distributor.head();
        let live = head.live();
        let samples: usize = live.iter().map(|h| h.stats().samples).sum();
        if live.is_empty() && head.flushing().is_empty() {
            // An empty head has no age: the block duration counts from its first profile.
            last_flush = Instant::now();
        } else if last_flush.elapsed() >= max_age || samples >= cfg.pyroscopedb.max_head_samples {
            last_flush = Instant::now();
            flush(&api, &flusher).await;
        }
        if !retention.is_zero() && last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_retention = Some(Instant::now());
            apply_retention(&api, &flusher, retention).await;
        }
    }
}

/// One flush round, with its outcome in the metrics.
pub async fn flush(api: &Api, flusher: &Flusher) -> bool {
    match flusher.flush().await {
        Ok(r) => {
            api.metrics.flushed_blocks.inc_by(r.blocks as u64);
            api.metrics.flushed_bytes.inc_by(r.bytes);
            api.metrics.flush_failures.inc_by(r.failed_attempts as u64);
            r.pending == 0
        }
        Err(e) => {
            api.metrics.flush_failures.inc();
            tracing::error!(error = %e, "flush failed");
            false
        }
    }
}

async fn apply_retention(api: &Api, flusher: &Flusher, period: Duration) {
    let store = flusher.store.clone();
    let tenants = match flamedb_storage::bucket_index::tenants(store.as_ref()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "retention: listing tenants failed");
            return;
        }
    };
    for tenant in tenants {
        match flamedb_storage::apply_retention(store.as_ref(), &tenant, period, SystemTime::now()).await {
            Ok(r) => {
                for id in r.deleted.iter().chain(&r.resumed) {
                    if let Some(b) = flusher.blocks.remove(&tenant, id) {
                        api.distributor.head().unregister_partitions(b.partition_keys());
                    }
                }
            }
            Err(e) => tracing::warn!(%tenant, error = %e, "retention failed"),
        }
    }
}

/// Runs until SIGINT/SIGTERM, then flushes the head.
pub async fn run(cfg: Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.pyroscopedb.data_path)
        .with_context(|| format!("creating data directory {}", cfg.pyroscopedb.data_path.display()))?;
    let api = build(&cfg).await?;
    let addr = format!("{}:{}", cfg.server.http_listen_address, cfg.server.http_listen_port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        target = %cfg.target,
        multitenancy = cfg.multitenancy_enabled,
        data_path = %cfg.pyroscopedb.data_path.display(),
        version = env!("CARGO_PKG_VERSION"),
        "starting flamedb"
    );
    let bg = tokio::spawn(background(api.clone(), cfg.clone()));
    let reload = tokio::spawn(reload_runtime_config(api.clone(), cfg.clone()));
    server::serve(server::router(api.clone()), listener, shutdown_signal()).await?;
    bg.abort();
    reload.abort();
    if let Some(f) = &api.flusher {
        tracing::info!("flushing the head before exit");
        flush(&api, f).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
