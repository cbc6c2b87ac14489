//! The per-tenant bucket index: `<tenant>/bucket-index.json`, a list of the tenant's blocks
//! (their `meta.json`s) and deletion marks in one object.
//!
//! Why: finding a tenant's blocks from the bucket itself takes a listing plus one GET per block,
//! which on S3 is slow and billed per request; queriers and the store-gateway would repeat it on
//! every sync. The index turns that into one GET. It is a cache of the bucket, never the truth:
//! [`BucketIndex::rebuild`] derives it from the bucket alone, so a lost or stale index is repaired
//! by rebuilding, and writers that race only cost a rebuild.
//!
//! Bucket layout read here (Pyroscope/Thanos conventions):
//!
//! ```text
//! <tenant>/bucket-index.json
//! <tenant>/<ULID>/meta.json                       # written last: no meta.json, no block
//! <tenant>/<ULID>/...                             # the block's other files
//! <tenant>/markers/<ULID>-deletion-mark.json      # {"id", "deletion_time", "version": 1}
//! ```

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::block::BlockMeta;
use crate::block::meta::META_FILE;

/// Object name of the index inside the tenant directory.
pub const INDEX_FILE: &str = "bucket-index.json";
/// Format version of [`BucketIndex`]; a reader refuses newer versions rather than misread them.
pub const INDEX_VERSION: u32 = 1;
/// Directory (inside the tenant) of the global markers, so marks are found with one listing
/// instead of a HEAD per block.
pub const MARKERS_DIR: &str = "markers";
/// `<ULID><suffix>` is a block's deletion mark in [`MARKERS_DIR`].
pub const DELETION_MARK_SUFFIX: &str = "-deletion-mark.json";
/// Version written into deletion-mark files (Thanos' format).
pub const DELETION_MARK_VERSION: u32 = 1;
/// Top-level names starting with this are bucket-wide objects, never tenants.
pub const RESERVED_PREFIX: &str = "__";

/// How many `meta.json`s a rebuild reads at once: enough to hide S3 latency, few enough not to
/// trip its request-rate limits.
const READ_CONCURRENCY: usize = 16;

/// A block queued for deletion. Marked blocks are invisible to readers from the moment the mark
/// is written, so deleting the block's files afterwards can never expose half a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    /// The block's ULID.
    pub id: String,
    /// When the block was marked, in Unix seconds.
    pub deletion_time: i64,
}

/// The body of `markers/<ULID>-deletion-mark.json`.
#[derive(Debug, Serialize, Deserialize)]
struct DeletionMarkFile {
    id: String,
    deletion_time: i64,
    version: u32,
}

/// One tenant's blocks and deletion marks; see the module docs for why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketIndex {
    pub version: u32,
    /// Every block with a readable `meta.json`, marked or not, sorted by (min_time, ULID).
    pub blocks: Vec<BlockMeta>,
    /// Sorted by block id.
    pub block_deletion_marks: Vec<DeletionMark>,
    /// When the content was last computed or changed, in Unix seconds; lets a reader judge how
    /// stale the index is.
    pub updated_at: i64,
}

/// What [`BucketIndex::rebuild`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub index: BucketIndex,
    /// Blocks whose `meta.json` exists but could not be parsed (or names another block). They
    /// are left out of the index and left alone in the bucket for an operator to look at.
    pub corrupt: Vec<String>,
}

/// Why reading or writing the index (or acting on the bucket through it) failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("invalid tenant id {0:?}: must be a single, non-empty object path segment")]
    InvalidTenant(String),
    #[error("{op} {path}: {source}")]
    Store { op: &'static str, path: String, source: object_store::Error },
    #[error("decoding {path}: {source}")]
    Decode { path: String, source: serde_json::Error },
    #[error("encoding {path}: {source}")]
    Encode { path: String, source: serde_json::Error },
    #[error("{path}: bucket index version {version} is newer than this build reads ({INDEX_VERSION})")]
    UnsupportedVersion { path: String, version: u32 },
}

fn store_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(object_store::Error) -> IndexError + 'a {
    move |source| IndexError::Store { op, path: path.to_string(), source }
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The tenant's directory, refusing ids that would escape it or span several segments.
pub fn tenant_dir(tenant: &str) -> Result<Path, IndexError> {
    match Path::parse(tenant) {
        Ok(p) if p.parts_count() == 1 && p.as_ref() == tenant => Ok(p),
        _ => Err(IndexError::InvalidTenant(tenant.to_string())),
    }
}

/// `<tenant>/bucket-index.json`.
pub fn index_path(tenant: &str) -> Result<Path, IndexError> {
    Ok(tenant_dir(tenant)?.join(INDEX_FILE))
}

/// `<tenant>/<block>/`: every object of the block is under it.
pub fn block_dir(tenant: &str, block: &str) -> Result<Path, IndexError> {
    Ok(tenant_dir(tenant)?.join(block))
}

/// `<tenant>/<block>/meta.json`.
pub fn meta_path(tenant: &str, block: &str) -> Result<Path, IndexError> {
    Ok(block_dir(tenant, block)?.join(META_FILE))
}

/// `<tenant>/markers/<block>-deletion-mark.json`.
pub fn deletion_mark_path(tenant: &str, block: &str) -> Result<Path, IndexError> {
    Ok(tenant_dir(tenant)?.join(MARKERS_DIR).join(format!("{block}{DELETION_MARK_SUFFIX}")))
}

/// Writes a block's deletion mark. Write it before touching any of the block's files: from then
/// on the block is invisible (see [`BucketIndex::visible_blocks`]) and a crash mid-delete leaves a
/// mark that tells the next run to finish the job.
pub async fn write_deletion_mark(store: &dyn ObjectStore, tenant: &str, mark: &DeletionMark) -> Result<(), IndexError> {
    let path = deletion_mark_path(tenant, &mark.id)?;
    let body =
        DeletionMarkFile { id: mark.id.clone(), deletion_time: mark.deletion_time, version: DELETION_MARK_VERSION };
    let json = serde_json::to_vec(&body).map_err(|source| IndexError::Encode { path: path.to_string(), source })?;
    store.put(&path, PutPayload::from(json)).await.map_err(store_err("writing", &path))?;
    Ok(())
}

/// Removes a block's deletion mark; a missing mark is fine, so that retrying is harmless.
pub async fn remove_deletion_mark(store: &dyn ObjectStore, tenant: &str, block: &str) -> Result<(), IndexError> {
    let path = deletion_mark_path(tenant, block)?;
    delete_if_exists(store, &path).await
}

/// Deletes one object, treating "already gone" as success (S3 does; the filesystem store does not).
pub(crate) async fn delete_if_exists(store: &dyn ObjectStore, path: &Path) -> Result<(), IndexError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_err("deleting", path)(e)),
    }
}

/// Lists the tenants in the bucket: the top-level "directories", minus reserved names.
pub async fn tenants(store: &dyn ObjectStore) -> Result<Vec<String>, IndexError> {
    let listing = store.list_with_delimiter(None).await.map_err(store_err("listing", &Path::ROOT))?;
    let mut out: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename())
        .filter(|name| !name.starts_with(RESERVED_PREFIX) && tenant_dir(name).is_ok())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads `<tenant>/<block>/meta.json`: `Ok(None)` when it does not exist (an upload in progress).
async fn read_meta(store: &dyn ObjectStore, tenant: &str, block: &str) -> Result<Option<BlockMeta>, IndexError> {
    let path = meta_path(tenant, block)?;
    let bytes = match store.get(&path).await {
        Ok(got) => got.bytes().await.map_err(store_err("reading", &path))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_err("reading", &path)(e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| IndexError::Decode { path: path.to_string(), source })
}

impl BucketIndex {
    /// An index with no blocks, stamped now.
    pub fn new() -> Self {
        BucketIndex {
            version: INDEX_VERSION,
            blocks: Vec::new(),
            block_deletion_marks: Vec::new(),
            updated_at: unix_seconds(SystemTime::now()),
        }
    }

    /// Reads the tenant's stored index; `Ok(None)` when there is none yet (call
    /// [`BucketIndex::rebuild`]).
    pub async fn load(store: &dyn ObjectStore, tenant: &str) -> Result<Option<BucketIndex>, IndexError> {
        let path = index_path(tenant)?;
        let bytes = match store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(store_err("reading", &path))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err("reading", &path)(e)),
        };
        let index: BucketIndex =
            serde_json::from_slice(&bytes).map_err(|source| IndexError::Decode { path: path.to_string(), source })?;
        if index.version > INDEX_VERSION {
            return Err(IndexError::UnsupportedVersion { path: path.to_string(), version: index.version });
        }
        Ok(Some(index))
    }

    /// Writes the index as `<tenant>/bucket-index.json`. A single PUT replaces the object
    /// atomically on every backend, so readers see the old index or the new one, never a mix.
    pub async fn store(&self, store: &dyn ObjectStore, tenant: &str) -> Result<(), IndexError> {
        let path = index_path(tenant)?;
        let json = serde_json::to_vec(self).map_err(|source| IndexError::Encode { path: path.to_string(), source })?;
        store.put(&path, PutPayload::from(json)).await.map_err(store_err("writing", &path))?;
        Ok(())
    }

    /// Derives the tenant's index from the bucket alone: every `<tenant>/<ULID>/` with a
    /// `meta.json` is a block (one without is still being uploaded and is skipped), every
    /// `markers/<ULID>-deletion-mark.json` a deletion mark. Unparseable `meta.json`s are skipped
    /// with a warning and reported, so one bad block cannot hide the tenant's others. The result
    /// is not stored; call [`BucketIndex::store`].
    pub async fn rebuild(store: &dyn ObjectStore, tenant: &str) -> Result<RebuildReport, IndexError> {
        let dir = tenant_dir(tenant)?;
        let listing = store.list_with_delimiter(Some(&dir)).await.map_err(store_err("listing", &dir))?;
        let ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .filter(|name| Ulid::from_string(name).is_ok())
            .map(str::to_string)
            .collect();

        let mut reads = futures::stream::iter(ids)
            .map(|id| async move {
                let meta = read_meta(store, tenant, &id).await;
                (id, meta)
            })
            .buffer_unordered(READ_CONCURRENCY);
        let mut index = BucketIndex::new();
        let mut corrupt = Vec::new();
        while let Some((id, meta)) = reads.next().await {
            match meta {
                Ok(Some(meta)) if meta.ulid == id => index.blocks.push(meta),
                Ok(Some(meta)) => {
                    tracing::warn!(%tenant, block = %id, names = %meta.ulid, "meta.json names another block; skipping it");
                    corrupt.push(id);
                }
                Ok(None) => tracing::debug!(%tenant, block = %id, "block without meta.json (upload in progress?)"),
                Err(IndexError::Decode { path, source }) => {
                    tracing::warn!(%tenant, block = %id, %path, error = %source, "unreadable meta.json; skipping block");
                    corrupt.push(id);
                }
                Err(e) => return Err(e),
            }
        }
        drop(reads);

        index.block_deletion_marks = read_deletion_marks(store, tenant).await?;
        index.sort();
        corrupt.sort();
        Ok(RebuildReport { index, corrupt })
    }

    /// Adds a block, replacing one with the same ULID (a re-upload).
    pub fn add_block(&mut self, meta: BlockMeta) {
        self.blocks.retain(|b| b.ulid != meta.ulid);
        self.blocks.push(meta);
        self.sort();
        self.touch();
    }

    /// Drops a block from the index, returning it if it was there.
    pub fn remove_block(&mut self, id: &str) -> Option<BlockMeta> {
        let pos = self.blocks.iter().position(|b| b.ulid == id)?;
        self.touch();
        Some(self.blocks.remove(pos))
    }

    /// Records a deletion mark (keeping an existing one's original time).
    pub fn add_deletion_mark(&mut self, mark: DeletionMark) {
        if self.deletion_mark(&mark.id).is_none() {
            self.block_deletion_marks.push(mark);
            self.sort();
            self.touch();
        }
    }

    /// Forgets a deletion mark, once the block it marked is gone.
    pub fn remove_deletion_mark(&mut self, id: &str) -> Option<DeletionMark> {
        let pos = self.block_deletion_marks.iter().position(|m| m.id == id)?;
        self.touch();
        Some(self.block_deletion_marks.remove(pos))
    }

    /// The block's deletion mark, if it has one.
    pub fn deletion_mark(&self, id: &str) -> Option<&DeletionMark> {
        self.block_deletion_marks.iter().find(|m| m.id == id)
    }

    /// Blocks readers may use: all indexed blocks except deletion-marked ones, which may be
    /// partly deleted already.
    pub fn visible_blocks(&self) -> impl Iterator<Item = &BlockMeta> + '_ {
        let marked: HashSet<&str> = self.block_deletion_marks.iter().map(|m| m.id.as_str()).collect();
        self.blocks.iter().filter(move |b| !marked.contains(b.ulid.as_str()))
    }

    /// Visible blocks that may hold profiles in `[min_ms, max_ms]` (milliseconds, inclusive, as
    /// in `meta.json`): the blocks a query over that range has to open.
    pub fn blocks_overlapping(&self, min_ms: i64, max_ms: i64) -> impl Iterator<Item = &BlockMeta> + '_ {
        self.visible_blocks().filter(move |b| b.min_time <= max_ms && b.max_time >= min_ms)
    }

    fn sort(&mut self) {
        self.blocks.sort_by(|a, b| (a.min_time, &a.ulid).cmp(&(b.min_time, &b.ulid)));
        self.block_deletion_marks.sort_by(|a, b| a.id.cmp(&b.id));
    }

    fn touch(&mut self) {
        self.updated_at = unix_seconds(SystemTime::now());
    }
}

impl Default for BucketIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads every `markers/<ULID>-deletion-mark.json`. A mark's existence is what counts, so one
/// whose body cannot be parsed still marks the block named by its file name (timed by the
/// object's modification time) rather than letting a damaged marker resurrect a block.
async fn read_deletion_marks(store: &dyn ObjectStore, tenant: &str) -> Result<Vec<DeletionMark>, IndexError> {
    let dir = tenant_dir(tenant)?.join(MARKERS_DIR);
    let objects: Vec<_> = store.list(Some(&dir)).try_collect().await.map_err(store_err("listing", &dir))?;
    let mut marks = Vec::new();
    for obj in objects {
        let Some(id) = obj.location.filename().and_then(|f| f.strip_suffix(DELETION_MARK_SUFFIX)) else { continue };
        if Ulid::from_string(id).is_err() {
            continue;
        }
        let id = id.to_string();
        let fallback_time = obj.last_modified.timestamp();
        let body = match store.get(&obj.location).await {
            Ok(got) => got.bytes().await.map_err(store_err("reading", &obj.location))?,
            // Removed between listing and reading: the deletion finished.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_err("reading", &obj.location)(e)),
        };
        let deletion_time = match serde_json::from_slice::<DeletionMarkFile>(&body) {
            Ok(file) => file.deletion_time,
            Err(error) => {
                tracing::warn!(%tenant, block = %id, path = %obj.location, %error, "unreadable deletion mark; block stays marked");
                fallback_time
            }
        };
        marks.push(DeletionMark { id, deletion_time });
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::block::{BlockStats, Compaction, FileMeta};

    pub(crate) fn meta(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            ulid: id.to_string(),
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            files: vec![FileMeta { rel_path: "profiles.parquet".into(), size_bytes: 1 }],
            compaction: Compaction { level: 1, sources: vec![id.to_string()], parents: vec![] },
            version: 1,
            labels: BTreeMap::new(),
        }
    }

    async fn put(store: &dyn ObjectStore, path: &str, body: &[u8]) {
        store.put(&Path::from(path), PutPayload::from(body.to_vec())).await.expect("put");
    }

    async fn put_block(store: &dyn ObjectStore, tenant: &str, m: &BlockMeta) {
        put(store, &format!("{tenant}/{}/profiles.parquet", m.ulid), b"data").await;
        put(store, &format!("{tenant}/{}/meta.json", m.ulid), &serde_json::to_vec(m).expect("json")).await;
    }

    fn ids<'a>(it: impl Iterator<Item = &'a BlockMeta>) -> Vec<String> {
        it.map(|b| b.ulid.clone()).collect()
    }

    #[tokio::test]
    async fn rebuild_reads_blocks_marks_and_skips_the_rest() {
        let store = InMemory::new();
        let (a, b, c, d) = (Ulid::generate(), Ulid::generate(), Ulid::generate(), Ulid::generate());
        let (a, b, c, d) = (a.to_string(), b.to_string(), c.to_string(), d.to_string());
        put_block(&store, "t1", &meta(&a, 2_000, 3_000)).await;
        put_block(&store, "t1", &meta(&b, 1_000, 1_500)).await;
        put(&store, &format!("t1/{c}/profiles.parquet"), b"uploading").await; // no meta.json yet
        put(&store, &format!("t1/{d}/meta.json"), b"{not json").await;
        put(&store, "t1/not-a-ulid/meta.json", b"{}").await;
        put(&store, "t1/bucket-index.json", b"{}").await;
        write_deletion_mark(&store, "t1", &DeletionMark { id: a.clone(), deletion_time: 42 }).await.expect("mark");
        put(&store, "t2/x", b"").await;

        let RebuildReport { index, corrupt } = BucketIndex::rebuild(&store, "t1").await.expect("rebuild");
        assert_eq!(ids(index.blocks.iter()), vec![b.clone(), a.clone()], "sorted by min_time");
        assert_eq!(corrupt, vec![d]);
        assert_eq!(index.block_deletion_marks, vec![DeletionMark { id: a.clone(), deletion_time: 42 }]);
        assert_eq!(ids(index.visible_blocks()), vec![b.clone()], "a marked block is invisible");

        assert_eq!(BucketIndex::load(&store, "t2").await.expect("load"), None);
        index.store(&store, "t2").await.expect("store");
        assert_eq!(BucketIndex::load(&store, "t2").await.expect("load"), Some(index));
    }

    #[tokio::test]
    async fn damaged_deletion_mark_still_marks() {
        let store = InMemory::new();
        let a = Ulid::generate().to_string();
        put_block(&store, "t", &meta(&a, 0, 1)).await;
        put(&store, &format!("t/markers/{a}{DELETION_MARK_SUFFIX}"), b"garbage").await;
        put(&store, "t/markers/README", b"not a mark").await;
        let index = BucketIndex::rebuild(&store, "t").await.expect("rebuild").index;
        assert_eq!(index.block_deletion_marks.len(), 1);
        assert_eq!(index.visible_blocks().count(), 0);
    }

    #[tokio::test]
    async fn index_json_shape() {
        let mut index = BucketIndex::new();
        index.add_block(meta("01J00000000000000000000000", 1, 2));
        index.add_deletion_mark(DeletionMark { id: "01J00000000000000000000000".into(), deletion_time: 7 });
        let v: serde_json::Value = serde_json::to_value(&index).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["blocks"][0]["ulid"], "01J00000000000000000000000");
        assert_eq!(v["blocks"][0]["minTime"], 1);
        assert_eq!(
            v["block_deletion_marks"][0],
            serde_json::json!({"id": "01J00000000000000000000000", "deletion_time": 7})
        );
        assert!(v["updated_at"].as_i64().is_some_and(|t| t > 1_600_000_000));

        let store = InMemory::new();
        let newer = serde_json::json!({"version": 2, "blocks": [], "block_deletion_marks": [], "updated_at": 0});
        put(&store, "t/bucket-index.json", newer.to_string().as_bytes()).await;
        assert!(matches!(BucketIndex::load(&store, "t").await, Err(IndexError::UnsupportedVersion { version: 2, .. })));
        put(&store, "t/bucket-index.json", b"[").await;
        assert!(matches!(BucketIndex::load(&store, "t").await, Err(IndexError::Decode { .. })));
    }

    #[test]
    fn add_replace_remove_and_overlap() {
        let mut index = BucketIndex::new();
        index.add_block(meta("01J00000000000000000000002", 3_000, 4_000));
        index.add_block(meta("01J00000000000000000000001", 1_000, 2_000));
        index.add_block(meta("01J00000000000000000000001", 1_000, 2_500));
        assert_eq!(index.blocks.len(), 2, "same ULID replaces");
        assert_eq!(index.blocks[0].max_time, 2_500);
        assert_eq!(ids(index.blocks_overlapping(2_500, 2_999)), vec!["01J00000000000000000000001"]);
        assert_eq!(ids(index.blocks_overlapping(2_501, 2_999)), Vec::<String>::new());
        assert_eq!(index.blocks_overlapping(0, i64::MAX).count(), 2);
        index.add_deletion_mark(DeletionMark { id: "01J00000000000000000000002".into(), deletion_time: 1 });
        index.add_deletion_mark(DeletionMark { id: "01J00000000000000000000002".into(), deletion_time: 9 });
        assert_eq!(index.deletion_mark("01J00000000000000000000002").map(|m| m.deletion_time), Some(1));
        assert_eq!(ids(index.blocks_overlapping(0, i64::MAX)), vec!["01J00000000000000000000001"]);
        assert!(index.remove_block("01J00000000000000000000002").is_some());
        assert!(index.remove_block("01J00000000000000000000002").is_none());
        assert!(index.remove_deletion_mark("01J00000000000000000000002").is_some());
    }

    #[tokio::test]
    async fn tenants_are_top_level_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let local: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).expect("local"));
        for store in [local, Arc::new(InMemory::new()) as Arc<dyn ObjectStore>] {
            put(&*store, "beta/01J00000000000000000000001/meta.json", b"{}").await;
            put(&*store, "alpha/bucket-index.json", b"{}").await;
            put(&*store, "__flamedb/lock", b"").await;
            put(&*store, "top-level-object", b"").await;
            assert_eq!(tenants(&*store).await.expect("tenants"), vec!["alpha", "beta"]);
        }
    }

    #[test]
    fn tenant_ids_must_be_one_segment() {
        for bad in ["", "a/b", "..", ".", "/a"] {
            assert!(matches!(index_path(bad), Err(IndexError::InvalidTenant(_))), "{bad:?}");
        }
        assert_eq!(index_path("anonymous").expect("valid").as_ref(), "anonymous/bucket-index.json");
        assert_eq!(
            deletion_mark_path("t", "01J00000000000000000000001").expect("valid").as_ref(),
            "t/markers/01J00000000000000000000001-deletion-mark.json"
        );
    }

    #[test]
    fn rebuild_future_is_send() {
        fn assert_send<T: Send>(_: T) {}
        let store = InMemory::new();
        assert_send(BucketIndex::rebuild(&store, "t"));
    }
}
