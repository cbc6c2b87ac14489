//! Wires the components of the monolith: one head, the distributor that writes into it, the
//! query engine that reads it, and the server in front of both.

use std::sync::Arc;

use anyhow::{Context, Result};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_planner::{Engine, Querier};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::{self, services::Api};

/// Builds the request handlers of a monolith over a fresh head.
pub fn build(cfg: &Config) -> Api {
    let head = Arc::new(Head::new());
    let distributor = Distributor::new(head.clone(), Arc::new(cfg.limits.ingest.clone()));
    let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
    let engine = Engine::new(head, partitions);
    Api {
        distributor,
        querier: Querier::new(engine, cfg.limits.query.clone()),
        multitenancy: cfg.multitenancy_enabled,
        metrics: Arc::new(Metrics::new()),
    }
}

/// Runs until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.pyroscopedb.data_path)
        .with_context(|| format!("creating data directory {}", cfg.pyroscopedb.data_path.display()))?;
    let data = &cfg.pyroscopedb.data_path;
    flamedb_storage::open(&cfg.storage, data).context("opening the block storage")?;
    tracing::info!(bucket = %cfg.storage.filesystem_dir(data).display(), "block storage ready");
    let api = build(&cfg);
    let addr = format!("{}:{}", cfg.server.http_listen_address, cfg.server.http_listen_port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        target = %cfg.target,
        multitenancy = cfg.multitenancy_enabled,
        data_path = %cfg.pyroscopedb.data_path.display(),
        version = env!("CARGO_PKG_VERSION"),
        "starting flamedb"
    );
    server::serve(server::router(api), listener, shutdown_signal()).await?;
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
