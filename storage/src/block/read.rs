//! Opening a block for queries: its series index and symbols are loaded into memory (they are
//! small next to the samples); `profiles.parquet` stays in the bucket and is scanned by
//! DataFusion's Parquet source with row-group pruning.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, UInt32Type, UInt64Type};
use bytes::Bytes;
use flamedb_ingest::head::series::SeriesIndex;
use flamedb_ingest::head::symbols::{SymbolPartition, Symbols};
use flamedb_ingest::model::{Label, Labels};
use hashbrown::HashMap;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaDataReader;

use super::meta::BlockMeta;
use super::schema::{files, index_file_schema};
use super::symbols::read_symbols;
use super::{BlockError, block_dir};

/// A block ready to be scanned.
#[derive(Debug)]
pub struct OpenBlock {
    pub tenant: String,
    pub meta: BlockMeta,
    pub index: SeriesIndex,
    /// Block-local partition index -> the process-wide partition holding its symbols.
    pub partitions: Vec<Arc<SymbolPartition>>,
    /// Bucket path and size of `profiles.parquet`.
    pub profiles_path: String,
    pub profiles_size: u64,
}

impl OpenBlock {
    /// Process-wide partition keys, indexed by the block-local partition column.
    pub fn partition_keys(&self) -> Vec<u64> {
        self.partitions.iter().map(|p| p.key).collect()
    }
}

fn read_index(bytes: Bytes, block: &str) -> Result<SeriesIndex, BlockError> {
    let corrupt = |reason: String| BlockError::Corrupt { block: block.to_string(), reason };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024).build()?;
    let expect = index_file_schema();
    let mut index = SeriesIndex::default();
    for b in reader {
        let b = b?;
        if b.schema().fields().len() != expect.fields().len()
            || b.schema().fields().iter().zip(expect.fields()).any(|(a, e)| a.data_type() != e.data_type())
        {
            return Err(corrupt("index.parquet: unexpected schema".into()));
        }
        let id = b.column(0).as_primitive::<UInt32Type>();
        let min = b.column(2).as_primitive::<Int64Type>();
        let max = b.column(3).as_primitive::<Int64Type>();
        let names = b.column(4).as_list::<i32>();
        let values = b.column(5).as_list::<i32>();
        let fp = b.column(1).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let (n, v) = (names.value(i), values.value(i));
            let (n, v) = (n.as_string::<i32>(), v.as_string::<i32>());
            if n.len() != v.len() {
                return Err(corrupt(format!("index.parquet: series {} has unpaired labels", id.value(i))));
            }
            let labels =
                Labels::from_sorted((0..n.len()).map(|k| Label::new(n.value(k), v.value(k))).collect::<Vec<_>>());
            let got = index.get_or_create(&labels, min.value(i));
            index.get_or_create(&labels, max.value(i));
            if got != id.value(i) || labels.fingerprint() != fp.value(i) {
                return Err(corrupt(format!("index.parquet: series {} is out of order or altered", id.value(i))));
            }
        }
    }
    Ok(index)
}

/// Opens a block from its files with its symbols already in memory as `partitions` (block-local
/// partition order): the flushing process passes the head's, `open_block` those it read.
pub fn open_from_files(
    tenant: &str,
    meta: BlockMeta,
    mut file: impl FnMut(&str) -> Option<Bytes>,
    partitions: Vec<Arc<SymbolPartition>>,
) -> Result<OpenBlock, BlockError> {
    let block = meta.ulid.clone();
    let index_bytes = file(files::INDEX)
        .ok_or_else(|| BlockError::Corrupt { block: block.clone(), reason: "index.parquet is missing".into() })?;
    let index = read_index(index_bytes, &block)?;
    if index.len() as u64 != meta.stats.num_series {
        return Err(BlockError::Corrupt {
            block,
            reason: format!("index holds {} series, meta.json says {}", index.len(), meta.stats.num_series),
        });
    }
    let profiles_size =
        meta.files.iter().find(|f| f.rel_path == files::PROFILES).map(|f| f.size_bytes).ok_or_else(|| {
            BlockError::Corrupt { block: block.clone(), reason: "meta.json lists no profiles.parquet".into() }
        })?;
    Ok(OpenBlock {
        tenant: tenant.to_string(),
        profiles_path: format!("{}/{}", block_dir(tenant, &block), files::PROFILES),
        profiles_size,
        meta,
        index,
        partitions,
    })
}

/// Opens a block stored in the bucket: downloads its index and symbols (not the profiles),
/// registers the symbols through `register`, and reads the Parquet footer of
/// `profiles.parquet` at the size meta.json records, so a damaged or half-written file is caught
/// here rather than by a query.
pub async fn open_block(
    store: &dyn ObjectStore,
    tenant: &str,
    meta: BlockMeta,
    register: impl FnMut((String, Symbols)) -> Arc<SymbolPartition>,
) -> Result<OpenBlock, BlockError> {
    let dir = block_dir(tenant, &meta.ulid);
    let mut fetched: HashMap<String, Bytes> = HashMap::new();
    for f in &meta.files {
        let path = Path::from(format!("{dir}/{}", f.rel_path));
        if f.rel_path == files::PROFILES {
            check_footer(store, &path, f.size_bytes, &meta.ulid).await?;
            continue;
        }
        let bytes = store.get(&path).await?.bytes().await?;
        if bytes.len() as u64 != f.size_bytes {
            return Err(BlockError::Corrupt {
                block: meta.ulid.clone(),
                reason: format!("{} has {} bytes, meta.json says {}", f.rel_path, bytes.len(), f.size_bytes),
            });
        }
        fetched.insert(f.rel_path.clone(), bytes);
    }
    let partitions = read_symbols(&meta.ulid, |name| fetched.get(name).cloned())?.into_iter().map(register).collect();
    open_from_files(tenant, meta, |name| fetched.get(name).cloned(), partitions)
}

/// Reads and decodes the Parquet footer of a `size`-byte file (a shorter file fails the read).
async fn check_footer(store: &dyn ObjectStore, path: &Path, size: u64, block: &str) -> Result<(), BlockError> {
    let corrupt = |reason: String| BlockError::Corrupt { block: block.to_string(), reason };
    if size < 12 {
        return Err(corrupt(format!("profiles.parquet is {size} bytes")));
    }
    let tail = store.get_range(path, size - 8..size).await?;
    if tail.len() != 8 || &tail[4..8] != b"PAR1" {
        return Err(corrupt("profiles.parquet has no Parquet footer".into()));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > size {
        return Err(corrupt(format!("profiles.parquet footer of {len} bytes in a {size}-byte file")));
    }
    let footer = store.get_range(path, size - 8 - len..size - 8).await?;
    ParquetMetaDataReader::decode_metadata(&footer)?;
    Ok(())
}
