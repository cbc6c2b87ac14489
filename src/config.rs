//! Configuration: defaults, then the YAML file (`-config.file`), then flags, as Pyroscope does.
//! Flags are written Go-style with one dash (`-server.http-listen-port=4040`); two dashes work too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flamedb_ingest::validate::Limits;
use flamedb_planner::QueryLimits;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// Components `-target` can name. Only the monolith (`all`) runs in this build; the others
/// arrive with the cluster.
pub const TARGETS: &[&str] =
    &["all", "distributor", "ingester", "querier", "query-frontend", "query-scheduler", "compactor", "store-gateway"];

#[derive(Debug, Parser)]
#[command(
    name = "flamedb",
    version,
    about = "flamedb: a continuous-profiling database that speaks Grafana Pyroscope's protocols",
    long_about = "flamedb: a continuous-profiling database that speaks Grafana Pyroscope's protocols.\n\n\
        Flags may be written with one dash, Go style (-server.http-listen-port=4040), or two.\n\
        Precedence: defaults, then the YAML file given by -config.file, then flags."
)]
pub struct Flags {
    /// Comma-separated components to run: all (monolith: every component in one process),
    /// distributor, ingester, querier, query-frontend, query-scheduler, compactor, store-gateway.
    #[arg(long = "target", value_name = "LIST")]
    pub target: Option<String>,

    /// YAML configuration file (Pyroscope's layout: server, limits, pyroscopedb, ...).
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Expand ${VAR} and ${VAR:default} in the configuration file from the environment.
    #[arg(long = "config.expand-env")]
    pub config_expand_env: bool,

    /// Address the HTTP server listens on (Connect, gRPC, gRPC-Web and HTTP share it).
    #[arg(long = "server.http-listen-address", value_name = "ADDR")]
    pub http_listen_address: Option<String>,

    /// Port of the HTTP server (default 4040).
    #[arg(long = "server.http-listen-port", value_name = "PORT")]
    pub http_listen_port: Option<u16>,

    /// Require X-Scope-OrgID on every request; when off, everything is tenant "anonymous".
    #[arg(long = "auth.multitenancy-enabled", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub multitenancy_enabled: Option<bool>,

    /// Local data directory (default ./data).
    #[arg(long = "pyroscopedb.data-path", alias = "storage.path", value_name = "DIR")]
    pub data_path: Option<PathBuf>,

    /// Cut the head into a block after this long (default 1h).
    #[arg(long = "pyroscopedb.max-block-duration", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_block_duration: Option<std::time::Duration>,

    /// Cut the head into a block once its sample rows exceed this many (default 20000000).
    #[arg(long = "pyroscopedb.max-head-samples", value_name = "N")]
    pub max_head_samples: Option<usize>,

    /// fsync the WAL before acknowledging a write (default true; false survives a process crash
    /// but not a machine crash).
    #[arg(long = "pyroscopedb.wal-fsync", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub wal_fsync: Option<bool>,

    /// Delete blocks whose newest profile is older than this (default 0: keep forever).
    #[arg(long = "compactor.blocks-retention-period", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub blocks_retention_period: Option<std::time::Duration>,

    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Per-tenant ingestion rate in MiB/s of decompressed profile and label bytes (default 4).
    #[arg(long = "distributor.ingestion-rate-limit-mb", value_name = "MB")]
    pub ingestion_rate_mb: Option<f64>,

    /// Per-tenant burst in MiB: the largest push ever accepted (default 2).
    #[arg(long = "distributor.ingestion-burst-size-mb", value_name = "MB")]
    pub ingestion_burst_size_mb: Option<f64>,

    /// Body size limit of /ingest and Push in MiB (default 256).
    #[arg(long = "distributor.ingestion-body-limit-mb", value_name = "MB")]
    pub ingestion_body_limit_mb: Option<f64>,

    /// Series a tenant's head may hold; profiles creating more are refused (default 5000; 0 disables).
    #[arg(
        long = "ingester.max-global-series-per-tenant",
        alias = "ingester.max-global-series-per-user",
        value_name = "N"
    )]
    pub max_global_series_per_tenant: Option<usize>,

    /// YAML file of per-tenant limit overrides (`overrides: {<tenant>: {<limit>: value}}`),
    /// reloaded while running.
    #[arg(long = "runtime-config.file", value_name = "PATH")]
    pub runtime_config_file: Option<PathBuf>,

    /// How often the runtime configuration file is re-read (default 10s).
    #[arg(long = "runtime-config.reload-period", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub runtime_config_reload_period: Option<std::time::Duration>,

    /// Maximum uncompressed size of one profile in bytes (default 4194304).
    #[arg(long = "validation.max-profile-size-bytes", value_name = "BYTES")]
    pub max_profile_size_bytes: Option<usize>,

    /// Maximum samples per profile (default 16000).
    #[arg(long = "validation.max-profile-stacktrace-samples", value_name = "N")]
    pub max_profile_stacktrace_samples: Option<usize>,

    /// Maximum label names per series (default 30).
    #[arg(long = "validation.max-label-names-per-series", value_name = "N")]
    pub max_label_names_per_series: Option<usize>,

    /// Maximum length of a label name in bytes (default 1024).
    #[arg(long = "validation.max-length-label-name", value_name = "N")]
    pub max_label_name_length: Option<usize>,

    /// Maximum length of a label value in bytes (default 2048).
    #[arg(long = "validation.max-length-label-value", value_name = "N")]
    pub max_label_value_length: Option<usize>,

    /// Refuse profiles older than this (default 1h; 0 disables).
    #[arg(long = "validation.reject-older-than", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub reject_older_than: Option<std::time::Duration>,

    /// Refuse profiles newer than this (default 10m; 0 disables).
    #[arg(long = "validation.reject-newer-than", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub reject_newer_than: Option<std::time::Duration>,

    /// Longest query range (default 24h; 0 disables).
    #[arg(long = "querier.max-query-length", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_query_length: Option<std::time::Duration>,

    /// How far back queries may reach (default 7d; 0 disables).
    #[arg(long = "querier.max-query-lookback", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_query_lookback: Option<std::time::Duration>,

    /// Flame-graph nodes when a query sets none (default 8192).
    #[arg(long = "querier.max-flamegraph-nodes-default", value_name = "N")]
    pub max_flamegraph_nodes_default: Option<i64>,

    /// Most flame-graph nodes a query may ask for (default 1048576; 0 = unlimited).
    #[arg(long = "querier.max-flamegraph-nodes-max", value_name = "N")]
    pub max_flamegraph_nodes_max: Option<i64>,

    /// Memory one SQL query (HTTP, Flight SQL, export) may reserve, in bytes (default 1 GiB).
    #[arg(long = "sql.max-memory-bytes", value_name = "BYTES")]
    pub sql_max_memory_bytes: Option<u64>,

    /// Longest a SQL query or export may run (default 60s).
    #[arg(long = "sql.timeout", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sql_timeout: Option<std::time::Duration>,
}

impl Flags {
    /// Parses Go-style arguments: `-name=value` becomes `--name=value` (single-letter flags and
    /// `--` forms are left alone).
    pub fn parse_go_style<I: IntoIterator<Item = String>>(args: I) -> Self {
        let mut args = args.into_iter();
        let program = args.next().into_iter();
        Flags::parse_from(program.chain(go_style_args(args)))
    }
}

/// Go-style arguments (not the program name) as clap reads them: `-name=value` becomes
/// `--name=value`; single-letter flags, `--` forms and everything after `--` are left alone.
pub fn go_style_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut verbatim = false;
    args.into_iter()
        .map(|a| {
            verbatim |= a == "--";
            let single_dash_long = !verbatim && a.len() > 2 && a.starts_with('-') && !a.starts_with("--");
            if single_dash_long { format!("-{a}") } else { a }
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerConfig {
    pub http_listen_address: String,
    pub http_listen_port: u16,
    pub log_level: String,
    pub log_format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen_address: "0.0.0.0".into(),
            http_listen_port: 4040,
            log_level: "info".into(),
            log_format: "logfmt".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DbConfig {
    pub data_path: PathBuf,
    #[serde(with = "humantime_serde")]
    pub max_block_duration: std::time::Duration,
    pub max_head_samples: usize,
    pub wal_fsync: bool,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            data_path: PathBuf::from("./data"),
            max_block_duration: std::time::Duration::from_secs(3600),
            max_head_samples: 20_000_000,
            wal_fsync: true,
        }
    }
}

/// The compactor's settings (today: retention).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CompactorConfig {
    #[serde(with = "humantime_serde")]
    pub blocks_retention_period: std::time::Duration,
}

/// The limits of SQL queries (`POST /api/v1/sql`, Flight SQL, Flight export).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SqlConfig {
    pub max_memory_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub timeout: std::time::Duration,
}

impl Default for SqlConfig {
    fn default() -> Self {
        let d = flamedb_planner::sql::SqlLimits::default();
        Self { max_memory_bytes: d.max_memory_bytes as u64, timeout: d.timeout }
    }
}

impl SqlConfig {
    pub fn limits(&self) -> flamedb_planner::sql::SqlLimits {
        flamedb_planner::sql::SqlLimits {
            max_memory_bytes: usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX),
            timeout: self.timeout,
        }
    }
}

/// Per-tenant limits: ingest and query limits share Pyroscope's one `limits` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    #[serde(flatten)]
    pub ingest: Limits,
    #[serde(flatten)]
    pub query: QueryLimits,
}

/// What a secret shows as in a served configuration (dskit's `flagext.Secret`); an unset one
/// stays empty so an operator can tell the two apart.
pub const MASKED_SECRET: &str = "********";

fn masked(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { MASKED_SECRET }
}

impl Serialize for LimitsConfig {
    /// One flat `limits` block, as it is read: the ingest limits, then the query limits.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let ingest = match serde_json::to_value(&self.ingest).map_err(serde::ser::Error::custom)? {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let q = &self.query;
        let mut map = serializer.serialize_map(Some(ingest.len() + 4))?;
        for (k, v) in &ingest {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("max_query_lookback", &humantime::format_duration(q.max_query_lookback).to_string())?;
        map.serialize_entry("max_query_length", &humantime::format_duration(q.max_query_length).to_string())?;
        map.serialize_entry("max_flamegraph_nodes_default", &q.max_flamegraph_nodes_default)?;
        map.serialize_entry("max_flamegraph_nodes_max", &q.max_flamegraph_nodes_max)?;
        map.end()
    }
}

/// The `storage` block with its keys as read and every credential masked.
fn serialize_storage<S: Serializer>(
    c: &flamedb_storage::StorageConfig,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let dir = c.filesystem.dir.as_ref().map(|d| d.display().to_string());
    let v = serde_json::json!({
        "backend": c.backend.name(),
        "prefix": c.prefix,
        "filesystem": { "dir": dir },
        "s3": {
            "bucket_name": c.s3.bucket_name,
            "endpoint": c.s3.endpoint,
            "region": c.s3.region,
            "access_key_id": c.s3.access_key_id,
            "secret_access_key": masked(&c.s3.secret_access_key),
            "session_token": masked(&c.s3.session_token),
            "insecure": c.s3.insecure,
            "force_path_style": c.s3.force_path_style,
        },
        "gcs": {
            "bucket_name": c.gcs.bucket_name,
            "service_account": masked(&c.gcs.service_account),
        },
        "azure": {
            "account_name": c.azure.account_name,
            "account_key": masked(&c.azure.account_key),
            "container_name": c.azure.container_name,
            "endpoint_suffix": c.azure.endpoint_suffix,
        },
    });
    v.serialize(serializer)
}

/// The runtime configuration file (dskit's `runtime_config` block): per-tenant overrides that
/// are re-read while the process runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub period: std::time::Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { file: None, period: std::time::Duration::from_secs(10) }
    }
}

/// The whole configuration. Serialized (for `/api/v1/status/config`) in the layout it is read
/// in, with every secret masked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub target: String,
    pub multitenancy_enabled: bool,
    pub server: ServerConfig,
    pub pyroscopedb: DbConfig,
    pub limits: LimitsConfig,
    #[serde(serialize_with = "serialize_storage")]
    pub storage: flamedb_storage::StorageConfig,
    pub compactor: CompactorConfig,
    pub runtime_config: RuntimeConfig,
    pub sql: SqlConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target: "all".into(),
            multitenancy_enabled: false,
            server: ServerConfig::default(),
            pyroscopedb: DbConfig::default(),
            limits: LimitsConfig::default(),
            storage: flamedb_storage::StorageConfig::default(),
            compactor: CompactorConfig::default(),
            runtime_config: RuntimeConfig::default(),
            sql: SqlConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file named by the flags, then the flags.
    pub fn load(flags: &Flags) -> Result<Self> {
        let mut cfg = match &flags.config_file {
            Some(path) => Self::from_file(path, flags.config_expand_env)?,
            None => Config::default(),
        };
        cfg.apply(flags);
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_file(path: &Path, expand_env: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let text = if expand_env { expand(&text) } else { text };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn apply(&mut self, f: &Flags) {
        if let Some(v) = &f.target {
            self.target = v.clone();
        }
        if let Some(v) = &f.http_listen_address {
            self.server.http_listen_address = v.clone();
        }
        if let Some(v) = f.http_listen_port {
            self.server.http_listen_port = v;
        }
        if let Some(v) = f.multitenancy_enabled {
            self.multitenancy_enabled = v;
        }
        if let Some(v) = &f.data_path {
            self.pyroscopedb.data_path = v.clone();
        }
        if let Some(v) = f.max_block_duration {
            self.pyroscopedb.max_block_duration = v;
        }
        if let Some(v) = f.max_head_samples {
            self.pyroscopedb.max_head_samples = v;
        }
        if let Some(v) = f.wal_fsync {
            self.pyroscopedb.wal_fsync = v;
        }
        if let Some(v) = f.blocks_retention_period {
            self.compactor.blocks_retention_period = v;
        }
        if let Some(v) = &f.log_level {
            self.server.log_level = v.clone();
        }
        if let Some(v) = &f.log_format {
            self.server.log_format = v.clone();
        }
        if let Some(v) = &f.runtime_config_file {
            self.runtime_config.file = Some(v.clone());
        }
        if let Some(v) = f.runtime_config_reload_period {
            self.runtime_config.period = v;
        }
        let l = &mut self.limits;
        if let Some(v) = f.ingestion_rate_mb {
            l.ingest.ingestion_rate_mb = v;
        }
        if let Some(v) = f.ingestion_burst_size_mb {
            l.ingest.ingestion_burst_size_mb = v;
        }
        if let Some(v) = f.ingestion_body_limit_mb {
            l.ingest.ingestion_body_limit_mb = v;
        }
        if let Some(v) = f.max_global_series_per_tenant {
            l.ingest.max_global_series_per_tenant = v;
        }
        if let Some(v) = f.max_label_name_length {
            l.ingest.max_label_name_length = v;
        }
        if let Some(v) = f.max_label_value_length {
            l.ingest.max_label_value_length = v;
        }
        if let Some(v) = f.max_profile_size_bytes {
            l.ingest.max_profile_size_bytes = v;
        }
        if let Some(v) = f.max_profile_stacktrace_samples {
            l.ingest.max_profile_stacktrace_samples = v;
        }
        if let Some(v) = f.max_label_names_per_series {
            l.ingest.max_label_names_per_series = v;
        }
        if let Some(v) = f.reject_older_than {
            l.ingest.reject_older_than = v;
        }
        if let Some(v) = f.reject_newer_than {
            l.ingest.reject_newer_than = v;
        }
        if let Some(v) = f.max_query_length {
            l.query.max_query_length = v;
        }
        if let Some(v) = f.max_query_lookback {
            l.query.max_query_lookback = v;
        }
        if let Some(v) = f.max_flamegraph_nodes_default {
            l.query.max_flamegraph_nodes_default = v;
        }
        if let Some(v) = f.max_flamegraph_nodes_max {
            l.query.max_flamegraph_nodes_max = v;
        }
        if let Some(v) = f.sql_max_memory_bytes {
            self.sql.max_memory_bytes = v;
        }
        if let Some(v) = f.sql_timeout {
            self.sql.timeout = v;
        }
    }

    fn validate(&self) -> Result<()> {
        for t in self.targets() {
            if !TARGETS.contains(&t.as_str()) {
                bail!("unknown target {t:?}; valid targets: {}", TARGETS.join(", "));
            }
        }
        if self.targets() != ["all"] {
            bail!(
                "target {:?} is not available in this build yet: run the monolith (-target=all); \
                 the separate components arrive with the cluster",
                self.target
            );
        }
        if !matches!(self.server.log_format.as_str(), "logfmt" | "json") {
            bail!("log format must be logfmt or json, got {:?}", self.server.log_format);
        }
        let l = &self.limits.ingest;
        for (name, v) in [
            ("ingestion_rate_mb", l.ingestion_rate_mb),
            ("ingestion_burst_size_mb", l.ingestion_burst_size_mb),
            ("ingestion_body_limit_mb", l.ingestion_body_limit_mb),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("limit {name} must be a non-negative number, got {v}");
            }
        }
        if self.runtime_config.file.is_some() && self.runtime_config.period.is_zero() {
            bail!("-runtime-config.reload-period must be positive");
        }
        Ok(())
    }

    /// The components named by `target`.
    pub fn targets(&self) -> Vec<String> {
        self.target.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
    }
}

/// The per-tenant entries of a runtime configuration file (Pyroscope's layout:
/// `overrides: { <tenant>: { <limit>: value, ... } }`; other top-level keys are ignored). An empty
/// file has no overrides. Tenant ids YAML reads as numbers (`123:`) are taken as written.
pub fn parse_runtime_config(text: &str) -> Result<BTreeMap<String, serde_json::Value>> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).context("invalid YAML")?;
    let overrides = match &doc {
        serde_yaml_ng::Value::Null => return Ok(BTreeMap::new()),
        serde_yaml_ng::Value::Mapping(m) => match m.get("overrides") {
            None | Some(serde_yaml_ng::Value::Null) => return Ok(BTreeMap::new()),
            Some(serde_yaml_ng::Value::Mapping(o)) => o,
            Some(_) => bail!("`overrides` must be a mapping of tenant ids to limits"),
        },
        _ => bail!("the runtime configuration must be a YAML mapping"),
    };
    let mut out = BTreeMap::new();
    for (k, v) in overrides {
        let tenant = match k {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            other => bail!("tenant id {other:?} in `overrides` is not a string"),
        };
        let value: serde_json::Value = serde_yaml_ng::from_value(v.clone())
            .with_context(|| format!("the overrides of tenant {tenant:?} cannot be read"))?;
        out.insert(tenant, value);
    }
    Ok(out)
}

/// Reads and resolves the runtime configuration file against the default limits.
pub fn load_runtime_config(path: &Path, defaults: &Limits) -> Result<flamedb_ingest::overrides::Resolved> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let entries = parse_runtime_config(&text).with_context(|| format!("parsing {}", path.display()))?;
    flamedb_ingest::overrides::resolve(defaults, &entries).with_context(|| format!("applying {}", path.display()))
}

/// `${VAR}` and `${VAR:default}` from the environment; unknown variables without a default become
/// empty, as Pyroscope's `-config.expand-env` does.
fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let spec = &after[..j];
                let (name, default) = match spec.split_once(':') {
                    Some((n, d)) => (n, Some(d)),
                    None => (spec, None),
                };
                match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => out.push_str(default.unwrap_or("")),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::parse_go_style(std::iter::once("flamedb").chain(args.iter().copied()).map(String::from))
    }

    #[test]
    fn go_style_flags_and_defaults() {
        let c = Config::load(&flags(&["-server.http-listen-port=4141", "-auth.multitenancy-enabled"])).unwrap();
        assert_eq!(c.server.http_listen_port, 4141);
        assert!(c.multitenancy_enabled);
        assert_eq!(c.pyroscopedb.data_path, PathBuf::from("./data"));
        assert_eq!(c.limits.query.max_flamegraph_nodes_default, 8192);
        let c = Config::load(&flags(&["--auth.multitenancy-enabled=false", "-querier.max-query-length=48h"])).unwrap();
        assert!(!c.multitenancy_enabled);
        assert_eq!(c.limits.query.max_query_length, Duration::from_secs(48 * 3600));
    }

    #[test]
    fn yaml_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "server:\n  http_listen_port: ${FLAMEDB_TEST_PORT:5050}\nmultitenancy_enabled: true\nlimits:\n  max_query_length: 2h\n  max_label_names_per_series: 12\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = Config::load(&flags(&["-config.file", p, "-config.expand-env"])).unwrap();
        assert_eq!(c.server.http_listen_port, 5050);
        assert!(c.multitenancy_enabled);
        assert_eq!(c.limits.query.max_query_length, Duration::from_secs(7200));
        assert_eq!(c.limits.ingest.max_label_names_per_series, 12);
        let c =
            Config::load(&flags(&["-config.file", p, "-config.expand-env", "-server.http-listen-port=6060"])).unwrap();
        assert_eq!(c.server.http_listen_port, 6060, "flags win over the file");
    }

    #[test]
    fn limit_flags_and_runtime_config_flags() {
        let c = Config::load(&flags(&[])).unwrap();
        assert_eq!(c.limits.ingest.ingestion_rate_mb, 4.0);
        assert_eq!(c.limits.ingest.ingestion_burst_size_mb, 2.0);
        assert_eq!(c.limits.ingest.max_global_series_per_tenant, 5000);
        assert_eq!(c.runtime_config.period, Duration::from_secs(10));
        assert!(c.runtime_config.file.is_none());
        let c = Config::load(&flags(&[
            "-distributor.ingestion-rate-limit-mb=64",
            "-distributor.ingestion-burst-size-mb=32.5",
            "-ingester.max-global-series-per-user=7",
            "-runtime-config.file=/tmp/x.yaml",
            "-runtime-config.reload-period=250ms",
            "-validation.max-length-label-value=99",
        ]))
        .unwrap();
        assert_eq!(c.limits.ingest.ingestion_rate_mb, 64.0);
        assert_eq!(c.limits.ingest.ingestion_burst_size_mb, 32.5);
        assert_eq!(c.limits.ingest.max_global_series_per_tenant, 7);
        assert_eq!(c.limits.ingest.max_label_value_length, 99);
        assert_eq!(c.runtime_config.file, Some(PathBuf::from("/tmp/x.yaml")));
        assert_eq!(c.runtime_config.period, Duration::from_millis(250));
        let c = Config::load(&flags(&["-ingester.max-global-series-per-tenant=9"])).unwrap();
        assert_eq!(c.limits.ingest.max_global_series_per_tenant, 9);
        let e = Config::load(&flags(&["-distributor.ingestion-rate-limit-mb=-1"])).unwrap_err().to_string();
        assert!(e.contains("ingestion_rate_mb"), "{e}");
    }

    #[test]
    fn runtime_config_parsing_and_fallback() {
        let text = "overrides:\n  team-a:\n    ingestion_rate_mb: 1\n    max_label_names_per_series: 10\n  \
                    123:\n    reject_older_than: 30m\n  empty:\nmulti_kv_config: {}\n";
        let entries = parse_runtime_config(text).unwrap();
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["123", "empty", "team-a"]);
        let defaults = Limits { max_label_value_length: 77, ..Limits::default() };
        let r = flamedb_ingest::overrides::resolve(&defaults, &entries).unwrap();
        let a = &r.tenants["team-a"];
        assert_eq!((a.ingestion_rate_mb, a.max_label_names_per_series), (1.0, 10));
        assert_eq!(a.max_label_value_length, 77, "unset fields come from the defaults");
        assert_eq!(r.tenants["123"].reject_older_than, Duration::from_secs(1800));
        assert_eq!(r.tenants["empty"], defaults);
        assert!(parse_runtime_config("").unwrap().is_empty());
        assert!(parse_runtime_config("overrides:\n").unwrap().is_empty());
        assert!(parse_runtime_config("overrides: [1]").is_err());
        assert!(parse_runtime_config("overrides: {a: {x: [}").is_err());
        let bad = parse_runtime_config("overrides:\n  a:\n    ingestion_rate_mb: lots\n").unwrap();
        assert!(flamedb_ingest::overrides::resolve(&defaults, &bad).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.yaml");
        std::fs::write(&path, "overrides:\n  t:\n    max_global_series_per_tenant: 3\n").unwrap();
        let r = load_runtime_config(&path, &defaults).unwrap();
        assert_eq!(r.tenants["t"].max_global_series_per_tenant, 3);
        let e = load_runtime_config(&dir.path().join("missing.yaml"), &defaults).unwrap_err();
        assert!(format!("{e:#}").contains("missing.yaml"), "{e:#}");
    }

    #[test]
    fn targets() {
        assert!(Config::load(&flags(&["-target=all"])).is_ok());
        let e = Config::load(&flags(&["-target=nope"])).unwrap_err().to_string();
        assert!(e.contains("unknown target"), "{e}");
        let e = Config::load(&flags(&["-target=querier"])).unwrap_err().to_string();
        assert!(e.contains("not available"), "{e}");
    }
}
