//! Cuts a head generation of one tenant into a block: the series index sorted by labels, one
//! `profiles.parquet` row per profile (sorted by series, then time) with its samples as list
//! columns, and the symbols of every partition the rows use.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListBuilder, RecordBatch, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use bytes::Bytes;
use flamedb_ingest::head::TenantHead;
use flamedb_ingest::head::columns::{profile_col, sample_col};
use flamedb_ingest::head::symbols::SymbolPartition;
use hashbrown::HashMap;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::meta::{BLOCK_FORMAT_VERSION, BlockMeta, BlockStats, Compaction, FileMeta, META_FILE};
use super::schema::{self, files};
use super::symbols::symbols_batches;
use super::{BlockError, block_dir};

/// Profiles per row group: a row group is the unit of time/series pruning.
const ROW_GROUP_PROFILES: usize = 2048;

/// One profile row with its samples, gathered from the head's two tables.
struct ProfileRecord {
    series: u32,
    time: i64,
    duration: i64,
    total: i64,
    partition: u32,
    profile_id: Option<String>,
    samples: std::ops::Range<usize>,
}

/// Builders of the `profiles.parquet` columns.
struct ProfileColumns {
    rows: usize,
    series: UInt32Builder,
    time: arrow::array::TimestampNanosecondBuilder,
    duration: Int64Builder,
    total: Int64Builder,
    partition: UInt32Builder,
    id: StringBuilder,
    stacks: ListBuilder<UInt32Builder>,
    values: ListBuilder<Int64Builder>,
    spans: ListBuilder<UInt64Builder>,
}

impl ProfileColumns {
    fn new() -> Self {
        Self {
            rows: 0,
            series: UInt32Builder::new(),
            time: arrow::array::TimestampNanosecondBuilder::new()
                .with_timezone(flamedb_ingest::head::columns::TIME_ZONE),
            duration: Int64Builder::new(),
            total: Int64Builder::new(),
            partition: UInt32Builder::new(),
            id: StringBuilder::new(),
            stacks: ListBuilder::new(UInt32Builder::new()).with_field(schema::stacktrace_item()),
            values: ListBuilder::new(Int64Builder::new()).with_field(schema::value_item()),
            spans: ListBuilder::new(UInt64Builder::new()).with_field(schema::span_item()),
        }
    }

    fn append(&mut self, r: &ProfileRecord, stacks: &[u32], values: &[i64], spans: &[Option<u64>]) {
        self.rows += 1;
        self.series.append_value(r.series);
        self.time.append_value(r.time);
        self.duration.append_value(r.duration);
        self.total.append_value(r.total);
        self.partition.append_value(r.partition);
        self.id.append_option(r.profile_id.as_deref());
        self.stacks.values().append_slice(&stacks[r.samples.clone()]);
        self.stacks.append(true);
        self.values.values().append_slice(&values[r.samples.clone()]);
        self.values.append(true);
        let span = &spans[r.samples.clone()];
        if span.iter().any(Option::is_some) {
            for s in span {
                self.spans.values().append_value(s.unwrap_or(0));
            }
            self.spans.append(true);
        } else {
            self.spans.append(false);
        }
    }

    /// The rows appended since the last call, as one batch.
    fn finish(&mut self) -> Result<RecordBatch, BlockError> {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.series.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.total.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.stacks.finish()),
            Arc::new(self.values.finish()),
            Arc::new(self.spans.finish()),
        ];
        Ok(RecordBatch::try_new(schema::profiles_file_schema(), cols)?)
    }
}

/// A block built in memory, ready to upload.
#[derive(Debug)]
pub struct BuiltBlock {
    pub meta: BlockMeta,
    pub files: Vec<(String, Bytes)>,
    /// Block-local partition index -> the head partition it was written from, so the process
    /// that flushed can serve the block with the symbols it already holds.
    pub partitions: Vec<Arc<SymbolPartition>>,
}

impl BuiltBlock {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Bytes of the files whose name starts with `prefix`.
    pub fn bytes_of(&self, prefix: &str) -> u64 {
        self.files.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, b)| b.len() as u64).sum()
    }
}

fn writer_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_PROFILES))
        .build()
}

/// Encodes record batches as one Parquet file.
pub(crate) fn parquet_bytes(batches: &[RecordBatch], schema: arrow::datatypes::SchemaRef) -> Result<Bytes, BlockError> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(writer_props()))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(Bytes::from(buf))
}

/// Builds the block of a head generation; `None` when it holds no profiles.
pub fn build_block(head: &TenantHead) -> Result<Option<BuiltBlock>, BlockError> {
    let profile_chunks = head.profile_chunks();
    let sample_chunks = head.sample_chunks();
    let profiles: usize = profile_chunks.iter().map(|c| c.num_rows()).sum();
    if profiles == 0 {
        return Ok(None);
    }
    // Samples of the head in one vector of (stack, value, span) per row, in append order.
    let mut stacks: Vec<u32> = Vec::new();
    let mut values: Vec<i64> = Vec::new();
    let mut spans: Vec<Option<u64>> = Vec::new();
    for c in &sample_chunks {
        let b = &c.batch;
        stacks.extend_from_slice(b.column(sample_col::STACKTRACE_ID).as_primitive::<UInt32Type>().values());
        values.extend_from_slice(b.column(sample_col::VALUE).as_primitive::<Int64Type>().values());
        spans.extend(b.column(sample_col::SPAN_ID).as_primitive::<UInt64Type>().iter());
    }

    // Partition keys -> block-local index, in first-use order.
    let mut part_index: HashMap<u64, u32> = HashMap::new();
    let mut partitions: Vec<Arc<SymbolPartition>> = Vec::new();
    let head_partitions: HashMap<u64, Arc<SymbolPartition>> =
        head.partitions().into_iter().map(|p| (p.key, p)).collect();

    // Profile rows in append order; each one's samples follow the previous one's.
    let mut records: Vec<ProfileRecord> = Vec::with_capacity(profiles);
    let mut next_sample = 0usize;
    for c in &profile_chunks {
        let b = &c.batch;
        let series = b.column(profile_col::SERIES_ID).as_primitive::<UInt32Type>();
        let time = b.column(profile_col::TIME).as_primitive::<TimestampNanosecondType>();
        let duration = b.column(profile_col::DURATION).as_primitive::<Int64Type>();
        let total = b.column(profile_col::TOTAL).as_primitive::<Int64Type>();
        let partition = b.column(profile_col::PARTITION).as_primitive::<UInt64Type>();
        let count = b.column(profile_col::SAMPLE_COUNT).as_primitive::<UInt32Type>();
        let id = b.column(profile_col::PROFILE_ID).as_string::<i32>();
        for i in 0..b.num_rows() {
            let key = partition.value(i);
            let local = match part_index.get(&key) {
                Some(&l) => l,
                None => {
                    let p = head_partitions.get(&key).cloned().ok_or(BlockError::MissingPartition(key))?;
                    partitions.push(p);
                    let l = (partitions.len() - 1) as u32;
                    part_index.insert(key, l);
                    l
                }
            };
            let n = count.value(i) as usize;
            let end = (next_sample + n).min(stacks.len());
            records.push(ProfileRecord {
                series: series.value(i),
                time: time.value(i),
                duration: duration.value(i),
                total: total.value(i),
                partition: local,
                profile_id: id.is_valid(i).then(|| id.value(i).to_string()),
                samples: next_sample..end,
            });
            next_sample = end;
        }
    }
    if next_sample != stacks.len() {
        return Err(BlockError::Inconsistent(format!(
            "profile rows account for {next_sample} samples, the head holds {}",
            stacks.len()
        )));
    }

    // Series renumbered in label order, so that rows of a service sit together.
    let entries = head.with_series(|idx| idx.entries().to_vec());
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (&entries[a as usize].labels, &entries[b as usize].labels);
        la.iter().map(|l| (&l.name, &l.value)).cmp(lb.iter().map(|l| (&l.name, &l.value)))
    });
    let mut new_id = vec![0u32; entries.len()];
    for (rank, &old) in order.iter().enumerate() {
        new_id[old as usize] = rank as u32;
    }
    for r in &mut records {
        r.series = new_id.get(r.series as usize).copied().ok_or_else(|| {
            BlockError::Inconsistent(format!("profile row names series {} of {}", r.series, entries.len()))
        })?;
    }
    records.sort_by_key(|r| (r.series, r.time));

    // profiles.parquet
    let mut cols = ProfileColumns::new();
    let mut batches = Vec::new();
    let mut min_time = i64::MAX;
    let mut max_time = i64::MIN;
    for r in &records {
        min_time = min_time.min(r.time);
        max_time = max_time.max(r.time);
        cols.append(r, &stacks, &values, &spans);
        if cols.rows == ROW_GROUP_PROFILES {
            batches.push(cols.finish()?);
        }
    }
    if cols.rows > 0 {
        batches.push(cols.finish()?);
    }
    let profiles_file = parquet_bytes(&batches, schema::profiles_file_schema())?;

    // index.parquet: series in their new order.
    let mut idx_id = UInt32Builder::new();
    let mut idx_fp = UInt64Builder::new();
    let mut idx_min = Int64Builder::new();
    let mut idx_max = Int64Builder::new();
    let mut idx_names = ListBuilder::new(StringBuilder::new()).with_field(schema::label_item("name"));
    let mut idx_values = ListBuilder::new(StringBuilder::new()).with_field(schema::label_item("value"));
    for (rank, &old) in order.iter().enumerate() {
        let e = &entries[old as usize];
        idx_id.append_value(rank as u32);
        idx_fp.append_value(e.fingerprint);
        idx_min.append_value(e.min_time_nanos);
        idx_max.append_value(e.max_time_nanos);
        for l in e.labels.iter() {
            idx_names.values().append_value(&l.name);
            idx_values.values().append_value(&l.value);
        }
        idx_names.append(true);
        idx_values.append(true);
    }
    let index_batch = RecordBatch::try_new(
        schema::index_file_schema(),
        vec![
            Arc::new(idx_id.finish()),
            Arc::new(idx_fp.finish()),
            Arc::new(idx_min.finish()),
            Arc::new(idx_max.finish()),
            Arc::new(idx_names.finish()),
            Arc::new(idx_values.finish()),
        ],
    )?;
    let index_file = parquet_bytes(&[index_batch], schema::index_file_schema())?;

    let symbol_files = symbols_batches(&partitions)?;

    let ulid = ulid::Ulid::generate().to_string();
    let mut files_out: Vec<(String, Bytes)> =
        vec![(files::INDEX.to_string(), index_file), (files::PROFILES.to_string(), profiles_file)];
    files_out.extend(symbol_files);
    let meta = BlockMeta {
        ulid: ulid.clone(),
        min_time: min_time.div_euclid(1_000_000),
        max_time: max_time.div_euclid(1_000_000),
        stats: BlockStats {
            num_series: entries.len() as u64,
            num_profiles: records.len() as u64,
            num_samples: stacks.len() as u64,
            num_partitions: partitions.len() as u64,
        },
        files: files_out.iter().map(|(n, b)| FileMeta { rel_path: n.clone(), size_bytes: b.len() as u64 }).collect(),
        compaction: Compaction { level: 1, sources: vec![ulid], parents: vec![] },
        version: BLOCK_FORMAT_VERSION,
        labels: Default::default(),
    };
    Ok(Some(BuiltBlock { meta, files: files_out, partitions }))
}

/// Uploads a built block; `meta.json` goes last, so readers never see a partial block.
pub async fn upload_block(store: &dyn ObjectStore, tenant: &str, block: &BuiltBlock) -> Result<(), BlockError> {
    let dir = block_dir(tenant, &block.meta.ulid);
    for (name, bytes) in &block.files {
        store.put(&Path::from(format!("{dir}/{name}")), PutPayload::from_bytes(bytes.clone())).await?;
    }
    let meta = serde_json::to_vec_pretty(&block.meta)?;
    store.put(&Path::from(format!("{dir}/{META_FILE}")), PutPayload::from(meta)).await?;
    Ok(())
}
