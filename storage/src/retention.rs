//! Retention: deleting a tenant's blocks once all their data is older than the retention period.
//!
//! Deleting a block is many requests, and the process can die between any two. The order makes
//! every intermediate state safe and makes a rerun finish the job:
//!
//! 1. write `markers/<ULID>-deletion-mark.json`: from here readers skip the block;
//! 2. store the bucket index without the block;
//! 3. delete the block's `meta.json` first, so even a reader ignoring marks no longer sees a
//!    block (a directory without `meta.json` is not a block), then the rest of its files;
//! 4. remove the mark, and store the index without it.
//!
//! A rerun rebuilds the index from the bucket, so it sees the marks of an interrupted run: a
//! marked block whose `meta.json` is already gone is finished off whatever its age.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::bucket_index::{self, BucketIndex, DeletionMark, IndexError, RebuildReport, delete_if_exists, unix_seconds};

/// What [`apply_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Blocks past the retention period, deleted by this run (sorted).
    pub deleted: Vec<String>,
    /// Deletions an interrupted earlier run had started (marked, `meta.json` gone) and this run
    /// finished (sorted).
    pub resumed: Vec<String>,
    /// Blocks whose `meta.json` could not be parsed: their age is unknown, so they are kept.
    pub corrupt: Vec<String>,
    /// Objects removed, marks excluded.
    pub objects_deleted: usize,
}

/// Deletes the tenant's blocks whose newest profile (`max_time`) is older than `now - period`,
/// and finishes deletions an interrupted run left behind. A zero `period` disables retention
/// (Pyroscope's meaning of 0) and touches nothing. `now` is a parameter so tests and the caller's
/// scheduling decide what "now" is.
///
/// The tenant's index is rebuilt from the bucket rather than loaded, so blocks uploaded since the
/// index was last written are not missed, and it is stored afterwards.
pub async fn apply_retention(
    store: &dyn ObjectStore,
    tenant: &str,
    period: Duration,
    now: SystemTime,
) -> Result<RetentionReport, IndexError> {
    if period.is_zero() {
        return Ok(RetentionReport::default());
    }
    let cutoff_ms = unix_millis(now).saturating_sub(i64::try_from(period.as_millis()).unwrap_or(i64::MAX));
    let RebuildReport { mut index, corrupt } = BucketIndex::rebuild(store, tenant).await?;

    let expired: Vec<String> = index.blocks.iter().filter(|b| b.max_time < cutoff_ms).map(|b| b.ulid.clone()).collect();
    let resumed: Vec<String> = index
        .block_deletion_marks
        .iter()
        .filter(|m| !index.blocks.iter().any(|b| b.ulid == m.id))
        .map(|m| m.id.clone())
        .collect();
    let mut report = RetentionReport { corrupt, ..RetentionReport::default() };
    if expired.is_empty() && resumed.is_empty() {
        // Nothing to delete, but the fresh index is still worth keeping.
        index.store(store, tenant).await?;
        return Ok(report);
    }

    // 1. Marks first: once written, the blocks are invisible whatever happens next.
    let deletion_time = unix_seconds(now);
    for id in &expired {
        if index.deletion_mark(id).is_none() {
            let mark = DeletionMark { id: id.clone(), deletion_time };
            bucket_index::write_deletion_mark(store, tenant, &mark).await?;
            index.add_deletion_mark(mark);
        }
    }
    // 2. The index without them.
    for id in &expired {
        index.remove_block(id);
    }
    index.store(store, tenant).await?;

    // 3 and 4, block by block.
    for id in expired.iter().chain(&resumed) {
        tracing::info!(%tenant, block = %id, "retention: deleting block");
        report.objects_deleted += delete_block_objects(store, tenant, id).await?;
        bucket_index::remove_deletion_mark(store, tenant, id).await?;
        index.remove_deletion_mark(id);
    }
    index.store(store, tenant).await?;

    report.deleted = expired;
    report.deleted.sort();
    report.resumed = resumed;
    report.resumed.sort();
    Ok(report)
}

/// Deletes everything under `<tenant>/<block>/`, `meta.json` first; returns how many objects went.
async fn delete_block_objects(store: &dyn ObjectStore, tenant: &str, block: &str) -> Result<usize, IndexError> {
    let meta = bucket_index::meta_path(tenant, block)?;
    let had_meta = match store.head(&meta).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(source) => return Err(IndexError::Store { op: "checking", path: meta.to_string(), source }),
    };
    delete_if_exists(store, &meta).await?;

    let dir = bucket_index::block_dir(tenant, block)?;
    // The listing is collected before deleting: deleting while paging through a listing is
    // not something every backend promises to handle.
    let rest: Vec<Path> = store
        .list(Some(&dir))
        .map_ok(|o| o.location)
        .try_collect()
        .await
        .map_err(|source| IndexError::Store { op: "listing", path: dir.to_string(), source })?;
    let count = rest.len() + usize::from(had_meta);
    // delete_stream uses S3's batch DeleteObjects (up to 1000 keys a request) where available.
    let mut results = store.delete_stream(futures::stream::iter(rest.into_iter().map(Ok)).boxed());
    while let Some(result) = results.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(IndexError::Store { op: "deleting under", path: dir.to_string(), source }),
        }
    }
    Ok(count)
}

fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::block::{BlockMeta, BlockStats, Compaction, FileMeta};

    const DAY_MS: i64 = 86_400_000;
    const OLD: &str = "01J00000000000000000000001";
    const OLDER: &str = "01J00000000000000000000002";
    const FRESH: &str = "01J00000000000000000000003";

    fn meta(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            ulid: id.to_string(),
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            files: vec![FileMeta { rel_path: "profiles.parquet".into(), size_bytes: 4 }],
            compaction: Compaction { level: 1, sources: vec![id.to_string()], parents: vec![] },
            version: 1,
            labels: BTreeMap::new(),
        }
    }

    async fn put(store: &dyn ObjectStore, path: &str, body: &[u8]) {
        store.put(&Path::from(path), PutPayload::from(body.to_vec())).await.expect("put");
    }

    async fn exists(store: &dyn ObjectStore, path: &str) -> bool {
        store.head(&Path::from(path)).await.is_ok()
    }

    async fn put_block(store: &dyn ObjectStore, m: &BlockMeta) {
        put(store, &format!("t/{}/profiles.parquet", m.ulid), b"data").await;
        put(store, &format!("t/{}/index/tsdb", m.ulid), b"idx").await;
        put(store, &format!("t/{}/meta.json", m.ulid), &serde_json::to_vec(m).expect("json")).await;
    }

    fn stores() -> Vec<(Arc<dyn ObjectStore>, tempfile::TempDir)> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(tmp.path()).expect("local"));
        vec![(local, tmp), (Arc::new(InMemory::new()), tempfile::tempdir().expect("tempdir"))]
    }

    /// "now" = day 10; retention 3 days: blocks ending before day 7 go.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(10 * DAY_MS as u64)
    }
    const PERIOD: Duration = Duration::from_secs(3 * 86_400);

    #[tokio::test]
    async fn deletes_expired_blocks_and_keeps_the_rest() {
        for (store, _tmp) in stores() {
            let store = &*store;
            put_block(store, &meta(OLD, 5 * DAY_MS, 7 * DAY_MS - 1)).await;
            put_block(store, &meta(OLDER, DAY_MS, 2 * DAY_MS)).await;
            put_block(store, &meta(FRESH, 6 * DAY_MS, 7 * DAY_MS)).await; // straddles the cutoff: kept
            put(store, "t/01J00000000000000000000009/profiles.parquet", b"uploading").await;

            let report = apply_retention(store, "t", PERIOD, now()).await.expect("retention");
            assert_eq!(report.deleted, vec![OLD, OLDER]);
            assert!(report.resumed.is_empty() && report.corrupt.is_empty());
            assert_eq!(report.objects_deleted, 6);
            for id in [OLD, OLDER] {
                assert!(!exists(store, &format!("t/{id}/meta.json")).await);
                assert!(!exists(store, &format!("t/{id}/index/tsdb")).await);
                assert!(!exists(store, &format!("t/markers/{id}-deletion-mark.json")).await, "mark removed at the end");
            }
            assert!(exists(store, &format!("t/{FRESH}/profiles.parquet")).await);
            assert!(exists(store, "t/01J00000000000000000000009/profiles.parquet").await, "uploads are left alone");

            let index = BucketIndex::load(store, "t").await.expect("load").expect("stored");
            assert_eq!(index.blocks.iter().map(|b| b.ulid.as_str()).collect::<Vec<_>>(), vec![FRESH]);
            assert!(index.block_deletion_marks.is_empty());
            assert_eq!(
                index,
                BucketIndex {
                    updated_at: index.updated_at,
                    ..BucketIndex::rebuild(store, "t").await.expect("rebuild").index
                }
            );

            let again = apply_retention(store, "t", PERIOD, now()).await.expect("rerun");
            assert_eq!(again, RetentionReport::default(), "idempotent");
        }
    }

    #[tokio::test]
    async fn zero_period_disables_retention() {
        let store = InMemory::new();
        put_block(&store, &meta(OLD, 0, 1)).await;
        assert_eq!(apply_retention(&store, "t", Duration::ZERO, now()).await.expect("ok"), RetentionReport::default());
        assert!(exists(&store, &format!("t/{OLD}/meta.json")).await);
    }

    #[tokio::test]
    async fn crash_after_marking_is_finished_by_the_next_run() {
        for (store, _tmp) in stores() {
            let store = &*store;
            put_block(store, &meta(OLD, 0, DAY_MS)).await;
            // Step 1 done, then the process died.
            let mark = DeletionMark { id: OLD.into(), deletion_time: 123 };
            bucket_index::write_deletion_mark(store, "t", &mark).await.expect("mark");
            let index = BucketIndex::rebuild(store, "t").await.expect("rebuild").index;
            assert_eq!(index.visible_blocks().count(), 0, "marked block invisible before deletion");

            let report = apply_retention(store, "t", PERIOD, now()).await.expect("retention");
            assert_eq!(report.deleted, vec![OLD]);
            assert!(!exists(store, &format!("t/{OLD}/profiles.parquet")).await);
            assert!(!exists(store, &format!("t/markers/{OLD}-deletion-mark.json")).await);
        }
    }

    #[tokio::test]
    async fn crash_after_meta_deleted_is_resumed_whatever_the_age() {
        for (store, _tmp) in stores() {
            let store = &*store;
            // A block from the future would never expire: only the mark can get it deleted.
            put_block(store, &meta(FRESH, 100 * DAY_MS, 101 * DAY_MS)).await;
            let mark = DeletionMark { id: FRESH.into(), deletion_time: 123 };
            bucket_index::write_deletion_mark(store, "t", &mark).await.expect("mark");
            store.delete(&Path::from(format!("t/{FRESH}/meta.json"))).await.expect("delete meta");
            store.delete(&Path::from(format!("t/{FRESH}/index/tsdb"))).await.expect("delete one file");

            let index = BucketIndex::rebuild(store, "t").await.expect("rebuild").index;
            assert!(index.blocks.is_empty(), "half-deleted block is not a block");
            assert_eq!(index.block_deletion_marks.len(), 1);

            let report = apply_retention(store, "t", PERIOD, now()).await.expect("retention");
            assert_eq!(report.resumed, vec![FRESH]);
            assert!(report.deleted.is_empty());
            assert_eq!(report.objects_deleted, 1);
            assert!(!exists(store, &format!("t/{FRESH}/profiles.parquet")).await);
            assert!(!exists(store, &format!("t/markers/{FRESH}-deletion-mark.json")).await);
            let stored = BucketIndex::load(store, "t").await.expect("load").expect("stored");
            assert!(stored.blocks.is_empty() && stored.block_deletion_marks.is_empty());
        }
    }

    #[tokio::test]
    async fn corrupt_meta_is_kept_and_reported() {
        let store = InMemory::new();
        put(&store, &format!("t/{OLD}/meta.json"), b"{oops").await;
        put_block(&store, &meta(OLDER, 0, 1)).await;
        let report = apply_retention(&store, "t", PERIOD, now()).await.expect("retention");
        assert_eq!(report.corrupt, vec![OLD]);
        assert_eq!(report.deleted, vec![OLDER]);
        assert!(exists(&store, &format!("t/{OLD}/meta.json")).await);
    }
}
