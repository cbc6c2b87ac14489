//! Moving the head into the bucket. A flush cuts the head (atomically with a WAL rotation),
//! builds one block per tenant generation, uploads it (meta.json last), records it in the
//! tenant's bucket index, and then swaps the generation for the block in what queries read.
//! Only when every generation of a tenant is in the bucket does the WAL forget that tenant's
//! records; a failed upload leaves the generation readable and in the WAL for the next round.

use std::sync::Arc;
use std::time::Duration;

use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::{Head, TenantHead};
use flamedb_ingest::wal::WalError;
use object_store::ObjectStore;

use crate::BlockSet;
use crate::block::{BlockError, BuiltBlock, build_block, read::open_from_files, upload_block};
use crate::bucket_index::{BucketIndex, IndexError};

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("cutting the head: {0}")]
    Wal(#[from] WalError),
    #[error("building block of tenant {tenant}: {source}")]
    Build { tenant: String, source: BlockError },
    #[error("uploading block {block} of tenant {tenant}: {source}")]
    Upload { tenant: String, block: String, source: BlockError },
    #[error("updating the bucket index of tenant {tenant}: {source}")]
    Index { tenant: String, source: IndexError },
    #[error("block builder task failed: {0}")]
    Join(String),
}

/// What a flush round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub blocks: usize,
    pub profiles: u64,
    pub samples: u64,
    pub bytes: u64,
    /// Generations left for the next round after their upload kept failing.
    pub pending: usize,
    /// Upload or index attempts that failed (and were retried).
    pub failed_attempts: usize,
    /// Blocks written, with their tenants.
    pub written: Vec<(String, String)>,
}

/// The write side of the bucket: what a flush needs to publish blocks.
#[derive(Debug, Clone)]
pub struct Flusher {
    pub distributor: Distributor,
    pub store: Arc<dyn ObjectStore>,
    pub blocks: Arc<BlockSet>,
    /// Attempts per generation and round before it waits for the next round.
    pub attempts: usize,
    /// Pause before the first retry; doubled after each failure.
    pub backoff: Duration,
    /// One round at a time.
    round: Arc<tokio::sync::Mutex<()>>,
}

impl Flusher {
    pub fn new(distributor: Distributor, store: Arc<dyn ObjectStore>, blocks: Arc<BlockSet>) -> Self {
        Self { distributor, store, blocks, attempts: 5, backoff: Duration::from_millis(200), round: Arc::default() }
    }

    fn head(&self) -> &Arc<Head> {
        self.distributor.head()
    }

    /// Cuts the head and flushes every generation awaiting a block (this cut's and any an
    /// earlier round could not upload).
    pub async fn flush(&self) -> Result<FlushReport, FlushError> {
        let _round = self.round.lock().await;
        let cut_segment = self.distributor.cut()?;
        let mut report = FlushReport::default();
        let pending = self.head().flushing();
        for generation in &pending {
            match self.flush_generation(generation, &mut report).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(tenant = %generation.id, error = %e, "flush failed; the data stays in the head and the WAL");
                    report.pending += 1;
                }
            }
        }
        if let (Some(wal), Some(segment)) = (self.distributor.wal(), cut_segment) {
            let left = self.head().flushing();
            // Tenants flushed by an earlier, incomplete round are marked again: a new cut starts
            // a new list in the checkpoint.
            let earlier = wal.checkpoint().flushed_tenants;
            let mut tenants: Vec<&str> =
                pending.iter().map(|g| g.id.as_str()).chain(earlier.iter().map(String::as_str)).collect();
            tenants.sort_unstable();
            tenants.dedup();
            for t in tenants {
                if !left.iter().any(|g| g.id == t) {
                    wal.mark_flushed(segment, t)?;
                }
            }
            if left.is_empty() {
                wal.truncate_through(segment)?;
            }
        }
        Ok(report)
    }

    async fn flush_generation(&self, generation: &Arc<TenantHead>, report: &mut FlushReport) -> Result<(), FlushError> {
        let tenant = generation.id.clone();
        let g = generation.clone();
        let built = tokio::task::spawn_blocking(move || build_block(&g))
            .await
            .map_err(|e| FlushError::Join(e.to_string()))?
            .map_err(|source| FlushError::Build { tenant: tenant.clone(), source })?;
        let Some(built) = built else {
            self.head().finish_flush(generation, || {});
            return Ok(());
        };
        self.with_retries(report, || async {
            upload_block(self.store.as_ref(), &tenant, &built).await.map_err(|source| FlushError::Upload {
                tenant: tenant.clone(),
                block: built.meta.ulid.clone(),
                source,
            })
        })
        .await?;
        self.with_retries(report, || async {
            let mut index = BucketIndex::load(self.store.as_ref(), &tenant)
                .await
                .map_err(|source| FlushError::Index { tenant: tenant.clone(), source })?
                .unwrap_or_else(BucketIndex::new);
            index.add_block(built.meta.clone());
            index
                .store(self.store.as_ref(), &tenant)
                .await
                .map_err(|source| FlushError::Index { tenant: tenant.clone(), source })
        })
        .await?;
        let open =
            open_built(&tenant, &built).map_err(|source| FlushError::Build { tenant: tenant.clone(), source })?;
        self.head().finish_flush(generation, || {
            self.blocks.add(Arc::new(open));
        });
        tracing::info!(
            %tenant,
            block = %built.meta.ulid,
            profiles = built.meta.stats.num_profiles,
            samples = built.meta.stats.num_samples,
            bytes = built.total_bytes(),
            "flushed block"
        );
        report.blocks += 1;
        report.profiles += built.meta.stats.num_profiles;
        report.samples += built.meta.stats.num_samples;
        report.bytes += built.total_bytes();
        report.written.push((tenant, built.meta.ulid.clone()));
        Ok(())
    }

    async fn with_retries<F, Fut>(&self, report: &mut FlushReport, mut f: F) -> Result<(), FlushError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), FlushError>>,
    {
        let mut pause = self.backoff;
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < self.attempts => {
                    report.failed_attempts += 1;
                    tracing::warn!(error = %e, attempt, "flush step failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => {
                    report.failed_attempts += 1;
                    return Err(e);
                }
            }
        }
    }
}

/// Opens a block this process just built, reusing the head's symbols.
fn open_built(tenant: &str, built: &BuiltBlock) -> Result<crate::block::OpenBlock, BlockError> {
    open_from_files(
        tenant,
        built.meta.clone(),
        |name| built.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()),
        built.partitions.clone(),
    )
}
