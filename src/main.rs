//! The `flamedb` binary: parses flags and config, starts the components `-target` names (the
//! monolith by default) and serves every protocol on one port. `flamedb export ...` is a client
//! command instead: it pulls samples over Arrow Flight into a Parquet file (see `export`).

mod app;
mod config;
mod export;
mod metrics;
mod server;

use anyhow::Result;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Flags};

fn init_logging(cfg: &Config) {
    let filter = EnvFilter::try_from_env("FLAMEDB_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.server.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if cfg.server.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("export") {
        return export::main(std::env::args().skip(2));
    }
    let flags = Flags::parse_go_style(std::env::args());
    let cfg = Config::load(&flags)?;
    init_logging(&cfg);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(app::run(cfg))
}
