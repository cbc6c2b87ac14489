//! Opening the bucket's blocks at startup. A block that cannot be read (corrupt or
//! half-written files) is skipped with a log line and reported, never fatal: the rest is served.

use std::sync::Arc;

use flamedb_ingest::head::Head;
use object_store::ObjectStore;

use crate::BlockSet;
use crate::block::{BlockError, open_block};
use crate::bucket_index::{self, BucketIndex, IndexError};

/// What `load_blocks` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub tenants: usize,
    pub blocks: usize,
    /// (tenant, block, why) of every block skipped.
    pub skipped: Vec<(String, String, String)>,
}

/// Rebuilds every tenant's bucket index from the bucket and opens its visible blocks into
/// `blocks`, registering their symbols in `head`.
pub async fn load_blocks(
    store: &Arc<dyn ObjectStore>,
    head: &Arc<Head>,
    blocks: &BlockSet,
) -> Result<LoadReport, IndexError> {
    let mut report = LoadReport::default();
    for tenant in bucket_index::tenants(store.as_ref()).await? {
        let rebuilt = BucketIndex::rebuild(store.as_ref(), &tenant).await?;
        for id in &rebuilt.corrupt {
            tracing::warn!(%tenant, block = %id, "skipping block: unreadable meta.json");
            report.skipped.push((tenant.clone(), id.clone(), "unreadable meta.json".into()));
        }
        if let Err(e) = rebuilt.index.store(store.as_ref(), &tenant).await {
            tracing::warn!(%tenant, error = %e, "could not store the rebuilt bucket index");
        }
        report.tenants += 1;
        for meta in rebuilt.index.visible_blocks() {
            if blocks.contains(&tenant, &meta.ulid) {
                continue;
            }
            match open_checked(store, head, &tenant, meta.clone()).await {
                Ok(b) => {
                    blocks.add(Arc::new(b));
                    report.blocks += 1;
                }
                Err(e) => {
                    tracing::warn!(%tenant, block = %meta.ulid, error = %e, "skipping unreadable block");
                    report.skipped.push((tenant.clone(), meta.ulid.clone(), e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

/// Opens a block, registering its symbols in `head` (and forgetting them if it fails).
async fn open_checked(
    store: &Arc<dyn ObjectStore>,
    head: &Arc<Head>,
    tenant: &str,
    meta: crate::block::BlockMeta,
) -> Result<crate::block::OpenBlock, BlockError> {
    let mut registered = Vec::new();
    let opened = open_block(store.as_ref(), tenant, meta, |(name, symbols)| {
        let p = head.register_partition(tenant, name, symbols);
        registered.push(p.key);
        p
    })
    .await;
    if opened.is_err() {
        head.unregister_partitions(registered);
    }
    opened
}
