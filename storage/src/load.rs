//! Opening the bucket's blocks at startup. A block that cannot be read (corrupt or
//! half-written files) is skipped with a log line and reported, never fatal: the rest is served.

use std::sync::Arc;

use flamedb_ingest::head::Head;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::ParquetMetaDataReader;

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

/// Opens a block and reads the footer of its `profiles.parquet`, so a damaged file is caught
/// here rather than failing queries later.
async fn open_checked(
    store: &Arc<dyn ObjectStore>,
    head: &Arc<Head>,
    tenant: &str,
    meta: crate::block::BlockMeta,
) -> Result<crate::block::OpenBlock, BlockError> {
    let mut registered = Vec::new();
    let opened = open_block(store.as_ref(), tenant, meta, |name, symbols| {
        let p = head.register_partition(name, symbols);
        registered.push(p.key);
        p
    })
    .await;
    let checked = match opened {
        Ok(b) => match check_footer(store.as_ref(), &b).await {
            Ok(()) => Ok(b),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if checked.is_err() {
        head.unregister_partitions(registered);
    }
    checked
}

/// Reads and decodes the Parquet footer of the block's `profiles.parquet`.
async fn check_footer(store: &dyn ObjectStore, b: &crate::block::OpenBlock) -> Result<(), BlockError> {
    let corrupt = |reason: String| BlockError::Corrupt { block: b.meta.ulid.clone(), reason };
    let path = Path::from(b.profiles_path.clone());
    let size = b.profiles_size;
    if size < 12 {
        return Err(corrupt(format!("profiles.parquet is {size} bytes")));
    }
    let tail = store.get_range(&path, size - 8..size).await?;
    if &tail[4..8] != b"PAR1" {
        return Err(corrupt("profiles.parquet has no Parquet footer".into()));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > size {
        return Err(corrupt(format!("profiles.parquet footer of {len} bytes in a {size}-byte file")));
    }
    let footer = store.get_range(&path, size - 8 - len..size - 8).await?;
    ParquetMetaDataReader::decode_metadata(&footer)?;
    Ok(())
}
