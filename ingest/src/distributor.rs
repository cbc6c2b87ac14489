//! The distributor: takes pushed profiles, decodes and validates each one, and hands the normalized
//! series to the ingester head. In the monolith the ring has one member (this process); the
//! replication of a cluster sits behind the same `push` call.

use std::sync::Arc;

use bytes::Bytes;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::PushRequest;

use parking_lot::RwLock;

use crate::head::{AppendStats, Head};
use crate::normalize::normalize;
use crate::pprof::{self, PprofDecodeError};
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

/// Entry point of the write path.
#[derive(Debug, Clone)]
pub struct Distributor {
    head: Arc<Head>,
    limits: Arc<Limits>,
    wal: Option<Arc<Wal>>,
    /// Held shared by every (WAL write, head append) pair and exclusively by a cut, so a cut
    /// splits the WAL and the head at the same profile.
    cut_lock: Arc<RwLock<()>>,
}

impl Distributor {
    pub fn new(head: Arc<Head>, limits: Arc<Limits>) -> Self {
        Self { head, limits, wal: None, cut_lock: Arc::default() }
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

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// `push.v1.PusherService/Push`: every (series, sample) pair is decoded and stored on its own;
    /// the ones that succeed are kept even when others fail, and the error names every failure.
    pub fn push(&self, tenant: &str, req: &PushRequest, now_nanos: i64) -> Result<PushStats, IngestError> {
        if req.series.iter().all(|s| s.samples.is_empty()) {
            return Err(ValidationError::NoProfiles.into());
        }
        let total: usize = req.series.iter().flat_map(|s| &s.samples).map(|s| s.raw_profile.len()).sum();
        let body_limit = self.limits.body_limit_bytes();
        if total > body_limit {
            return Err(IngestError::Push {
                kind: ErrorKind::InvalidArgument,
                message: format!("request body too large: {total} bytes, limit {body_limit}"),
            });
        }
        let mut stats = PushStats::default();
        let mut failures: Vec<(ErrorKind, String)> = Vec::new();
        let mut decoded_total = 0usize;
        for (i, series) in req.series.iter().enumerate() {
            let labels: Vec<(String, String)> =
                series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            for sample in &series.samples {
                let res =
                    self.push_raw(tenant, &labels, &sample.raw_profile, &sample.id, now_nanos, &mut decoded_total);
                match res {
                    Ok(s) => stats.add(s),
                    Err(e) => failures
                        .push((e.kind(), format!("push series with index {i} and id {:?} failed: {e}", sample.id))),
                }
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

    fn push_raw(
        &self,
        tenant: &str,
        labels: &[(String, String)],
        raw: &Bytes,
        id: &str,
        now_nanos: i64,
        decoded_total: &mut usize,
    ) -> Result<PushStats, IngestError> {
        let decoded = pprof::decode(raw, self.limits.max_profile_size_bytes)?;
        *decoded_total += decoded.uncompressed_size;
        let body_limit = self.limits.body_limit_bytes();
        if *decoded_total > body_limit {
            return Err(IngestError::Push {
                kind: ErrorKind::InvalidArgument,
                message: format!("decompressed request size exceeds the limit of {body_limit} bytes"),
            });
        }
        let id = (!id.is_empty()).then(|| id.to_string());
        self.ingest_profile(tenant, labels, decoded.profile, decoded.uncompressed_size, id, now_nanos)
    }

    /// Stores one decoded profile pushed with `labels` (the `/ingest` path ends here too).
    pub fn ingest_profile(
        &self,
        tenant: &str,
        labels: &[(String, String)],
        profile: Profile,
        uncompressed_size: usize,
        profile_id: Option<String>,
        now_nanos: i64,
    ) -> Result<PushStats, IngestError> {
        let normalized = normalize(labels, profile, profile_id, &self.limits, now_nanos)?;
        let _g = self.cut_lock.read();
        if let Some(wal) = &self.wal {
            wal.append(tenant, &normalized)?;
        }
        let append = self.head.append(tenant, &normalized);
        Ok(PushStats { profiles: 1, decoded_bytes: uncompressed_size, append })
    }
}
