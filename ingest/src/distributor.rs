//! The distributor: takes pushed profiles, decodes and validates each one, and hands the normalized
//! series to the ingester head. In the monolith the ring has one member (this process); the
//! replication of a cluster sits behind the same `push` call.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::PushRequest;

use parking_lot::{Mutex, RwLock};

use crate::head::{AppendStats, Head};
use crate::normalize::{NormalizedProfile, normalize};
use crate::overrides::Overrides;
use crate::pprof::{self, PprofDecodeError};
use crate::rate_limit::{RateLimiter, ibytes};
use crate::validate::{Limits, ValidationError};
use crate::wal::{Wal, WalError};

/// How a push failed, in the terms clients act on: `InvalidArgument` is dropped by SDKs, agents
/// retry `ResourceExhausted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    ResourceExhausted,
    /// The profile could not be made durable (WAL write failed): retryable, nothing stored.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Decode(#[from] PprofDecodeError),
    #[error("{message}")]
    Push { kind: ErrorKind, message: String },
    #[error("writing the WAL: {0}")]
    Wal(#[from] WalError),
}

impl IngestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IngestError::Validation(_) | IngestError::Decode(_) => ErrorKind::InvalidArgument,
            IngestError::Push { kind, .. } => *kind,
            IngestError::Wal(_) => ErrorKind::Unavailable,
        }
    }
}

/// What an accepted push stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Profiles accepted (one per raw sample).
    pub profiles: usize,
    /// Bytes of uncompressed pprof decoded.
    pub decoded_bytes: usize,
    pub append: AppendStats,
}

impl PushStats {
    fn add(&mut self, o: PushStats) {
        self.profiles += o.profiles;
        self.decoded_bytes += o.decoded_bytes;
        self.append.samples += o.append.samples;
        self.append.series_profiles += o.append.series_profiles;
        self.append.new_series += o.append.new_series;
    }
}

/// One decoded profile to store, with the series labels it was pushed with.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub labels: Vec<(String, String)>,
    pub profile: Profile,
    /// Size of the profile's uncompressed encoding (what the rate limit counts).
    pub uncompressed_size: usize,
    pub profile_id: Option<String>,
}

/// What `ingest_batch` stored, and the failure that stopped it, if any.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub stats: PushStats,
    pub error: Option<IngestError>,
}

/// The limits a server enforces beyond validation: per-tenant ingestion rate and active series.
#[derive(Debug, Default)]
struct Admission {
    rate: RateLimiter,
    /// Serializes the (count, append) of profiles that create series, so concurrent pushes
    /// cannot together overshoot the active-series limit.
    new_series: Mutex<()>,
}

/// Entry point of the write path.
#[derive(Debug, Clone)]
pub struct Distributor {
    head: Arc<Head>,
    overrides: Arc<Overrides>,
    /// `None` until `with_tenant_limits`: embedded uses (benches, tests) only validate.
    admission: Option<Arc<Admission>>,
    wal: Option<Arc<Wal>>,
    /// Held shared by every (WAL write, head append) pair and exclusively by a cut, so a cut
    /// splits the WAL and the head at the same profile.
    cut_lock: Arc<RwLock<()>>,
}

impl Distributor {
    /// A distributor that validates with `limits` for every tenant; the ingestion rate and
    /// active-series limits are only enforced after `with_tenant_limits`.
    pub fn new(head: Arc<Head>, limits: Arc<Limits>) -> Self {
        Self { head, overrides: Arc::new(Overrides::new(limits)), admission: None, wal: None, cut_lock: Arc::default() }
    }

    /// Switches on what the server enforces per tenant: the limits of `overrides` (reloadable),
    /// the ingestion rate and burst, and the active-series limit.
    pub fn with_tenant_limits(mut self, overrides: Arc<Overrides>) -> Self {
        self.overrides = overrides;
        self.admission = Some(Arc::default());
        self
    }

    /// Writes every accepted profile to `wal` before it reaches the head.
    pub fn with_wal(mut self, wal: Arc<Wal>) -> Self {
        self.wal = Some(wal);
        self
    }

    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.wal.as_ref()
    }

    /// Cuts the head into generations to flush (`Head::flushing`), atomically with a WAL
    /// rotation; returns the last WAL segment holding their data.
    pub fn cut(&self) -> Result<Option<u64>, WalError> {
        let _g = self.cut_lock.write();
        let wal_segment = self.wal.as_ref().map(|w| w.rotate()).transpose()?;
        self.head.cut();
        Ok(wal_segment)
    }

    /// The default limits (of tenants without an override).
    pub fn limits(&self) -> &Limits {
        self.overrides.defaults()
    }

    /// The effective limits of `tenant` (its override, or the defaults).
    pub fn tenant_limits(&self, tenant: &str) -> Arc<Limits> {
        self.overrides.for_tenant(tenant)
    }

    /// The per-tenant overrides in force.
    pub fn overrides(&self) -> &Arc<Overrides> {
        &self.overrides
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// Takes `bytes` from the tenant's ingestion-rate bucket, or refuses the whole request with
    /// Pyroscope's `resource_exhausted` error. Always passes before `with_tenant_limits`.
    pub fn check_rate(&self, tenant: &str, limits: &Limits, bytes: usize) -> Result<(), IngestError> {
        let Some(adm) = &self.admission else { return Ok(()) };
        let rate = limits.ingestion_rate_bytes();
        if adm.rate.allow(tenant, bytes, rate, limits.ingestion_burst_bytes(), Instant::now()) {
            return Ok(());
        }
        Err(IngestError::Push {
            kind: ErrorKind::ResourceExhausted,
            message: format!(
                "push rate limit ({}) exceeded while adding {}",
                ibytes(rate as u64),
                ibytes(bytes as u64)
            ),
        })
    }

    /// `push.v1.PusherService/Push`: every (series, sample) pair is decoded on its own; the
    /// request as a whole passes the rate limit (on decompressed profile and label bytes) or is
    /// refused before anything is stored; then each profile is stored, the ones that succeed
    /// are kept even when others fail, and the error names every failure.
    pub fn push(&self, tenant: &str, req: &PushRequest, now_nanos: i64) -> Result<PushStats, IngestError> {
        if req.series.iter().all(|s| s.samples.is_empty()) {
            return Err(ValidationError::NoProfiles.into());
        }
        let limits = self.tenant_limits(tenant);
        let total: usize = req.series.iter().flat_map(|s| &s.samples).map(|s| s.raw_profile.len()).sum();
        let body_limit = limits.body_limit_bytes();
        if total > body_limit {
            return Err(IngestError::Push {
                kind: ErrorKind::InvalidArgument,
                message: format!("request body too large: {total} bytes, limit {body_limit}"),
            });
        }
        let mut failures: Vec<(ErrorKind, String)> = Vec::new();
        let fail = |i: usize, id: &str, e: &IngestError| {
            (e.kind(), format!("push series with index {i} and id {id:?} failed: {e}"))
        };
        // Decode everything first: the rate limit is taken on the request's decompressed size.
        let mut decoded_total = 0usize;
        let mut request_bytes = 0usize;
        let mut decoded: Vec<(usize, &str, Profile, usize)> = Vec::new();
        for (i, series) in req.series.iter().enumerate() {
            let label_bytes: usize = series.labels.iter().map(|l| l.name.len() + l.value.len()).sum();
            for sample in &series.samples {
                match self.decode_raw(&limits, &sample.raw_profile, &mut decoded_total) {
                    Ok(d) => {
                        request_bytes = request_bytes.saturating_add(d.uncompressed_size + label_bytes);
                        decoded.push((i, sample.id.as_str(), d.profile, d.uncompressed_size));
                    }
                    Err(e) => failures.push(fail(i, &sample.id, &e)),
                }
            }
        }
        if !decoded.is_empty() {
            self.check_rate(tenant, &limits, request_bytes)?;
        }
        let mut stats = PushStats::default();
        for (i, id, profile, size) in decoded {
            let Some(series) = req.series.get(i) else { continue };
            let labels: Vec<(String, String)> =
                series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            let profile_id = (!id.is_empty()).then(|| id.to_string());
            match self.store(tenant, &limits, &labels, profile, size, profile_id, now_nanos) {
                Ok(s) => stats.add(s),
                Err(e) => failures.push(fail(i, id, &e)),
            }
        }
        if failures.is_empty() {
            return Ok(stats);
        }
        // One refused-for-rate failure makes the whole push retryable; otherwise it is the client's.
        let kind = if failures.iter().any(|(k, _)| *k == ErrorKind::Unavailable) {
            ErrorKind::Unavailable
        } else if failures.iter().any(|(k, _)| *k == ErrorKind::ResourceExhausted) {
            ErrorKind::ResourceExhausted
        } else {
            ErrorKind::InvalidArgument
        };
        let message = failures.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ");
        Err(IngestError::Push { kind, message })
    }

    /// Decodes one raw sample under the tenant's profile-size cap, and checks the request's
    /// running decompressed total against its body limit.
    fn decode_raw(
        &self,
        limits: &Limits,
        raw: &Bytes,
        decoded_total: &mut usize,
    ) -> Result<pprof::DecodedProfile, IngestError> {
        let decoded = pprof::decode(raw, limits.max_profile_size_bytes)?;
        *decoded_total = decoded_total.saturating_add(decoded.uncompressed_size);
        let body_limit = limits.body_limit_bytes();
        if *decoded_total > body_limit {
            return Err(IngestError::Push {
                kind: ErrorKind::InvalidArgument,
                message: format!("decompressed request size exceeds the limit of {body_limit} bytes"),
            });
        }
        Ok(decoded)
    }

    /// Stores one decoded profile pushed with `labels` (the `/ingest` and OTLP paths end here);
    /// with tenant limits on, the profile passes the rate limit on its own.
    pub fn ingest_profile(
        &self,
        tenant: &str,
        labels: &[(String, String)],
        profile: Profile,
        uncompressed_size: usize,
        profile_id: Option<String>,
        now_nanos: i64,
    ) -> Result<PushStats, IngestError> {
        let limits = self.tenant_limits(tenant);
        self.check_rate(tenant, &limits, uncompressed_size.saturating_add(label_bytes(labels)))?;
        self.store(tenant, &limits, labels, profile, uncompressed_size, profile_id, now_nanos)
    }

    /// Stores the profiles of one request (an `/ingest` upload) that passes the rate limit as a
    /// whole; stops at the first profile that fails.
    pub fn ingest_batch(&self, tenant: &str, profiles: Vec<ProfileInput>, now_nanos: i64) -> BatchOutcome {
        let limits = self.tenant_limits(tenant);
        let bytes = profiles
            .iter()
            .fold(0usize, |acc, p| acc.saturating_add(p.uncompressed_size).saturating_add(label_bytes(&p.labels)));
        let mut out = BatchOutcome::default();
        if profiles.is_empty() {
            return out;
        }
        if let Err(e) = self.check_rate(tenant, &limits, bytes) {
            out.error = Some(e);
            return out;
        }
        for p in profiles {
            match self.store(tenant, &limits, &p.labels, p.profile, p.uncompressed_size, p.profile_id, now_nanos) {
                Ok(s) => out.stats.add(s),
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
        out
    }

    /// Normalizes and validates under the tenant's limits, enforces the active-series limit,
    /// and writes WAL then head.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &self,
        tenant: &str,
        limits: &Limits,
        labels: &[(String, String)],
        profile: Profile,
        uncompressed_size: usize,
        profile_id: Option<String>,
        now_nanos: i64,
    ) -> Result<PushStats, IngestError> {
        let normalized = normalize(labels, profile, profile_id, limits, now_nanos)?;
        let _g = self.cut_lock.read();
        let series_limit = limits.max_global_series_per_tenant;
        let append = match &self.admission {
            Some(adm) if series_limit > 0 && self.new_series(tenant, &normalized).1 > 0 => {
                let _s = adm.new_series.lock();
                // Counted again under the lock: another push may have created them meanwhile.
                let (live, new) = self.new_series(tenant, &normalized);
                if new > 0 && live.saturating_add(new) > series_limit {
                    return Err(IngestError::Push {
                        kind: ErrorKind::ResourceExhausted,
                        message: format!(
                            "Maximum active series limit exceeded ({live}/{series_limit}), reduce the number of active \
                             streams (reduce labels or reduce label values), or contact your administrator to see if \
                             the limit can be increased"
                        ),
                    });
                }
                self.write(tenant, &normalized)?
            }
            _ => self.write(tenant, &normalized)?,
        };
        Ok(PushStats { profiles: 1, decoded_bytes: uncompressed_size, append })
    }

    /// WAL first, then the head (the caller holds the cut lock).
    fn write(&self, tenant: &str, normalized: &NormalizedProfile) -> Result<AppendStats, IngestError> {
        if let Some(wal) = &self.wal {
            wal.append(tenant, normalized)?;
        }
        Ok(self.head.append(tenant, normalized))
    }

    /// The tenant's live series count and how many distinct series of `p` it does not hold yet.
    fn new_series(&self, tenant: &str, p: &NormalizedProfile) -> (usize, usize) {
        let mut fresh: Vec<&crate::model::Labels> = Vec::new();
        let live = match self.head.tenant(tenant) {
            Some(t) => t.with_series(|idx| {
                fresh.extend(p.series.iter().map(|s| &s.labels).filter(|l| !idx.contains(l)));
                idx.len()
            }),
            None => {
                fresh.extend(p.series.iter().map(|s| &s.labels));
                0
            }
        };
        let mut distinct: Vec<&crate::model::Labels> = Vec::with_capacity(fresh.len());
        for l in fresh {
            if !distinct.contains(&l) {
                distinct.push(l);
            }
        }
        (live, distinct.len())
    }
}

/// Label bytes as Pyroscope counts them towards the rate limit: every name and value.
fn label_bytes(labels: &[(String, String)]) -> usize {
    labels.iter().map(|(n, v)| n.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use flamedb_proto::push::v1::{RawProfileSeries, RawSample};
    use flamedb_proto::types::v1::LabelPair;
    use prost::Message;

    use super::*;
    use crate::testing::cpu_pprof;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn labels(service: &str) -> Vec<(String, String)> {
        vec![("__name__".into(), "process_cpu".into()), ("service_name".into(), service.into())]
    }

    fn limited(limits: Limits) -> Distributor {
        let overrides = Arc::new(Overrides::new(Arc::new(limits)));
        Distributor::new(Arc::new(Head::new()), overrides.defaults().clone()).with_tenant_limits(overrides)
    }

    fn push_of(services: &[&str], pad: usize) -> PushRequest {
        let leaf = "x".repeat(pad);
        let raw: Bytes = cpu_pprof(&[(&["main", leaf.as_str()], 1)], NOW).encode_to_vec().into();
        PushRequest {
            series: services
                .iter()
                .map(|s| RawProfileSeries {
                    labels: labels(s).into_iter().map(|(name, value)| LabelPair { name, value }).collect(),
                    samples: vec![RawSample { raw_profile: raw.clone(), id: String::new() }],
                    annotations: vec![],
                })
                .collect(),
        }
    }

    fn live_series(d: &Distributor, tenant: &str) -> usize {
        d.head().tenant(tenant).map_or(0, |t| t.stats().series)
    }

    #[test]
    fn plain_distributors_only_validate() {
        // What benches and embedded tests build: no rate or series limit even at tiny settings.
        let limits = Limits { ingestion_burst_size_mb: 0.0, max_global_series_per_tenant: 1, ..Limits::default() };
        let d = Distributor::new(Arc::new(Head::new()), Arc::new(limits));
        for s in ["a", "b", "c"] {
            let p = cpu_pprof(&[(&["main"], 1)], NOW);
            d.ingest_profile("t", &labels(s), p, 1 << 20, None, NOW).unwrap();
        }
        assert_eq!(live_series(&d, "t"), 3);
    }

    #[test]
    fn a_push_over_the_rate_stores_nothing() {
        // 10 KiB bucket, no refill: two 4 KiB profiles fit once, a push of three never.
        let d = limited(Limits { ingestion_rate_mb: 0.0, ingestion_burst_size_mb: 10.0 / 1024.0, ..Limits::default() });
        let e = d.push("t", &push_of(&["a", "b", "c"], 4000), NOW).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        assert!(e.to_string().starts_with("push rate limit (0 B) exceeded while adding 1"), "{e}");
        assert_eq!(live_series(&d, "t"), 0, "nothing stored");
        assert_eq!(d.push("t", &push_of(&["a", "b"], 4000), NOW).unwrap().profiles, 2);
        assert_eq!(d.push("t", &push_of(&["a"], 4000), NOW).unwrap_err().kind(), ErrorKind::ResourceExhausted);
        assert!(d.push("other", &push_of(&["a", "b"], 4000), NOW).is_ok(), "buckets are per tenant");
    }

    #[test]
    fn series_limit_is_exact_under_concurrency() {
        let d = limited(Limits { max_global_series_per_tenant: 10, ..Limits::default() });
        let accepted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (d, accepted) = (&d, &accepted);
                s.spawn(move || {
                    for i in 0..5 {
                        let p = cpu_pprof(&[(&["main"], 1)], NOW);
                        match d.ingest_profile("t", &labels(&format!("s{t}-{i}")), p, 10, None, NOW) {
                            Ok(_) => {
                                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
                                assert!(e.to_string().contains("(10/10)"), "{e}");
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(accepted.into_inner(), 10);
        assert_eq!(live_series(&d, "t"), 10);
        // Existing series still take data; a cut starts a fresh head with room again.
        let p = cpu_pprof(&[(&["main"], 1)], NOW);
        let existing = d
            .head()
            .tenant("t")
            .unwrap()
            .with_series(|i| i.entries()[0].labels.get("service_name").map(str::to_string));
        d.ingest_profile("t", &labels(&existing.unwrap()), p.clone(), 10, None, NOW).unwrap();
        d.cut().unwrap();
        d.ingest_profile("t", &labels("new"), p, 10, None, NOW).unwrap();
    }
}
