//! Prometheus metrics of the process (text exposition at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status_code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// Every metric flamedb exports.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Histogram>,
    pub received_compressed_bytes: Counter,
    pub received_decompressed_bytes: Counter,
    pub received_profiles: Counter,
    pub received_samples: Counter,
    pub discarded_profiles: Family<ReasonLabels, Counter>,
    pub head_series: Gauge,
    pub head_profiles: Gauge,
    pub head_samples: Gauge,
    pub head_tenants: Gauge,
    pub flushed_blocks: Counter,
    pub flushed_bytes: Counter,
    pub flush_failures: Counter,
    pub blocks_skipped: Counter,
    pub blocks_loaded: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flamedb");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        registry.register(
            "request_duration_seconds",
            "Time to answer HTTP, Connect and gRPC requests",
            requests.clone(),
        );
        let received_compressed_bytes = Counter::default();
        registry.register(
            "distributor_received_compressed_bytes",
            "Bytes of request bodies received on the ingest endpoints",
            received_compressed_bytes.clone(),
        );
        let received_decompressed_bytes = Counter::default();
        registry.register(
            "distributor_received_decompressed_bytes",
            "Bytes of uncompressed profiles accepted",
            received_decompressed_bytes.clone(),
        );
        let received_profiles = Counter::default();
        registry.register("distributor_received_profiles", "Profiles accepted", received_profiles.clone());
        let received_samples = Counter::default();
        registry.register("distributor_received_samples", "Sample rows stored", received_samples.clone());
        let discarded_profiles = Family::<ReasonLabels, Counter>::default();
        registry.register("discarded_profiles", "Profiles refused, by reason", discarded_profiles.clone());
        let head_series = Gauge::default();
        registry.register("head_series", "Series in the ingester head", head_series.clone());
        let head_profiles = Gauge::default();
        registry.register("head_profiles", "Profile rows in the ingester head", head_profiles.clone());
        let head_samples = Gauge::default();
        registry.register("head_samples", "Sample rows in the ingester head", head_samples.clone());
        let head_tenants = Gauge::default();
        registry.register("head_tenants", "Tenants with data in the ingester head", head_tenants.clone());
        let flushed_blocks = Counter::default();
        registry.register(
            "ingester_flushed_blocks",
            "Blocks flushed from the head to the bucket",
            flushed_blocks.clone(),
        );
        let flushed_bytes = Counter::default();
        registry.register("ingester_flushed_bytes", "Bytes of blocks flushed to the bucket", flushed_bytes.clone());
        let flush_failures = Counter::default();
        registry.register(
            "ingester_flush_failures",
            "Failed flush attempts (retried; the data stays in the head and the WAL)",
            flush_failures.clone(),
        );
        let blocks_skipped = Counter::default();
        registry.register(
            "blocks_skipped",
            "Blocks skipped because they could not be read (corrupt or half-written)",
            blocks_skipped.clone(),
        );
        let blocks_loaded = Gauge::default();
        registry.register("blocks_loaded", "Blocks open for queries", blocks_loaded.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("build_info", "Build information", build);
        Self {
            registry,
            requests,
            received_compressed_bytes,
            received_decompressed_bytes,
            received_profiles,
            received_samples,
            discarded_profiles,
            head_series,
            head_profiles,
            head_samples,
            head_tenants,
            flushed_blocks,
            flushed_bytes,
            flush_failures,
            blocks_skipped,
            blocks_loaded,
        }
    }

    /// Counts a refused profile.
    pub fn discard(&self, reason: &str) {
        self.discarded_profiles.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
