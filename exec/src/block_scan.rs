//! Reading a block: DataFusion's Parquet source scans `profiles.parquet` (row groups pruned by
//! the time range and the selected series' id range, rows filtered in the reader), and
//! `BlockRowsExec` above it keeps exactly the selected series, unnests the sample lists for the
//! `samples` table, maps block-local partitions to process-wide symbol keys, and adds `tenant`
//! and `labels`, so a block answers with the same schema as the head.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array, UInt64Array, UInt64Builder};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{SchemaRef, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatchOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use flamedb_ingest::head::columns::TIME_ZONE;
use flamedb_storage::block::OpenBlock;
use flamedb_storage::block::schema::{profiles_col, profiles_file_schema};
use futures::StreamExt;
use roaring::RoaringBitmap;

use crate::dataset::bucket_url;
use crate::filter::ScanFilter;
use crate::scan::{LABELS_COL, SERIES_COL, TENANT_COL, TIME_COL, labels_map, series_mask};
use crate::schema::HeadTable;

/// The scan of one block for one table, or `None` when the block has nothing selected.
pub fn block_scan(
    block: Arc<OpenBlock>,
    table: HeadTable,
    projection: Option<Vec<usize>>,
    filter: &ScanFilter,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let (min, max) = (filter.min_time_nanos, filter.max_time_nanos);
    if !block.meta.overlaps_nanos(min, max) {
        return Ok(None);
    }
    let selected = block.index.select(&filter.matchers, min, max);
    let (Some(lo), Some(hi)) = (selected.min(), selected.max()) else {
        return Ok(None);
    };
    let projection: Vec<usize> = projection.unwrap_or_else(|| (0..table.schema().fields().len()).collect());
    let wants = |c: usize| projection.contains(&c);
    // File columns to read: series and time always (for the exact filter), the rest as needed.
    let mut file_cols = vec![profiles_col::SERIES_ID, profiles_col::TIME];
    match table {
        HeadTable::Samples => {
            if wants(4) {
                file_cols.push(profiles_col::PARTITION);
            }
            file_cols.push(profiles_col::STACKTRACE_IDS);
            if wants(6) {
                file_cols.push(profiles_col::VALUES);
            }
            // Span ids are read for the span filter even when not projected.
            if wants(7) || filter.span_ids.is_some() {
                file_cols.push(profiles_col::SPAN_IDS);
            }
        }
        HeadTable::Profiles => {
            for (table_col, file_col) in [
                (4, profiles_col::DURATION),
                (5, profiles_col::TOTAL),
                (6, profiles_col::PARTITION),
                (7, profiles_col::STACKTRACE_IDS),
                (8, profiles_col::PROFILE_ID),
            ] {
                if wants(table_col) {
                    file_cols.push(file_col);
                }
            }
        }
    }
    // Profile ids are read for the profile filter even when not projected.
    if filter.profile_ids.is_some() && !file_cols.contains(&profiles_col::PROFILE_ID) {
        file_cols.push(profiles_col::PROFILE_ID);
    }
    let file_schema = profiles_file_schema();
    let ts = |v: i64| -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::TimestampNanosecond(Some(v), Some(TIME_ZONE.into()))))
    };
    let u32lit = |v: u32| -> Arc<dyn PhysicalExpr> { Arc::new(Literal::new(ScalarValue::UInt32(Some(v)))) };
    let time_col: Arc<dyn PhysicalExpr> = Arc::new(Column::new("time", profiles_col::TIME));
    let series_col: Arc<dyn PhysicalExpr> = Arc::new(Column::new("series_id", profiles_col::SERIES_ID));
    let and = |a: Arc<dyn PhysicalExpr>, b: Arc<dyn PhysicalExpr>| -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(a, Operator::And, b))
    };
    let cmp = |a: &Arc<dyn PhysicalExpr>, op: Operator, b: Arc<dyn PhysicalExpr>| -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(a.clone(), op, b))
    };
    let predicate = and(
        and(cmp(&time_col, Operator::GtEq, ts(min)), cmp(&time_col, Operator::LtEq, ts(max))),
        and(cmp(&series_col, Operator::GtEq, u32lit(lo)), cmp(&series_col, Operator::LtEq, u32lit(hi))),
    );
    let source = ParquetSource::new(file_schema)
        .with_predicate(predicate)
        .with_pushdown_filters(true)
        .with_enable_page_index(true);
    let config = FileScanConfigBuilder::new(bucket_url(), Arc::new(source))
        .with_file(PartitionedFile::new(block.profiles_path.clone(), block.profiles_size))
        .with_projection_indices(Some(file_cols.clone()))?
        .build();
    let parquet: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    Ok(Some(Arc::new(BlockRowsExec::try_new(block, table, projection, file_cols, filter.clone(), selected, parquet)?)))
}

/// Turns `profiles.parquet` rows of one block into rows of a flamedb table.
#[derive(Debug)]
pub struct BlockRowsExec {
    block: Arc<OpenBlock>,
    table: HeadTable,
    projection: Vec<usize>,
    /// File columns the input carries, in order.
    file_cols: Vec<usize>,
    filter: ScanFilter,
    selected: Arc<RoaringBitmap>,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl BlockRowsExec {
    fn try_new(
        block: Arc<OpenBlock>,
        table: HeadTable,
        projection: Vec<usize>,
        file_cols: Vec<usize>,
        filter: ScanFilter,
        selected: RoaringBitmap,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Self> {
        let schema: SchemaRef = Arc::new(table.schema().project(&projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.properties().partitioning.clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            block,
            table,
            projection,
            file_cols,
            filter,
            selected: Arc::new(selected),
            input,
            schema,
            properties,
        })
    }

    pub fn block(&self) -> &Arc<OpenBlock> {
        &self.block
    }

    pub fn table(&self) -> HeadTable {
        self.table
    }
}

impl DisplayAs for BlockRowsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "BlockRowsExec: tenant={} block={} table={} series={}",
            self.block.tenant,
            self.block.meta.ulid,
            self.table.name(),
            self.selected.len()
        )
    }
}

impl ExecutionPlan for BlockRowsExec {
    fn name(&self) -> &str {
        "BlockRowsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = children
            .try_into()
            .map_err(|_| datafusion::common::DataFusionError::Internal("BlockRowsExec takes one input".to_string()))?;
        Ok(Arc::new(Self::try_new(
            self.block.clone(),
            self.table,
            self.projection.clone(),
            self.file_cols.clone(),
            self.filter.clone(),
            (*self.selected).clone(),
            input,
        )?))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, ctx)?;
        let rows = Arc::new(RowMapper::new(self)?);
        let schema = self.schema.clone();
        let out = input.map(move |b| b.and_then(|b| rows.map(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, out)))
    }
}

/// The per-batch work of `BlockRowsExec`, prepared once per partition.
struct RowMapper {
    block: Arc<OpenBlock>,
    table: HeadTable,
    projection: Vec<usize>,
    schema: SchemaRef,
    /// Input column of each file column (by file column index).
    input_col: [Option<usize>; 9],
    mask: Vec<bool>,
    keys: Vec<u64>,
    min: i64,
    max: i64,
    /// The scan's filter, for its span ids.
    filter: ScanFilter,
}

impl RowMapper {
    fn new(e: &BlockRowsExec) -> Result<Self> {
        let mut input_col = [None; 9];
        for (i, &c) in e.file_cols.iter().enumerate() {
            if c < 9 {
                input_col[c] = Some(i);
            }
        }
        let mask = series_mask(&e.selected);
        Ok(Self {
            block: e.block.clone(),
            table: e.table,
            projection: e.projection.clone(),
            schema: e.schema.clone(),
            input_col,
            mask,
            keys: e.block.partition_keys(),
            min: e.filter.min_time_nanos,
            max: e.filter.max_time_nanos,
            filter: e.filter.clone(),
        })
    }

    fn col<'a>(&self, b: &'a RecordBatch, file_col: usize) -> Result<&'a ArrayRef> {
        match self.input_col[file_col] {
            Some(i) if i < b.num_columns() => Ok(b.column(i)),
            _ => internal_err!("BlockRowsExec input lacks file column {file_col}"),
        }
    }

    fn map(&self, b: &RecordBatch) -> Result<RecordBatch> {
        let series = self.col(b, profiles_col::SERIES_ID)?.as_primitive::<UInt32Type>();
        let time = self.col(b, profiles_col::TIME)?.as_primitive::<TimestampNanosecondType>();
        let mut keep: Vec<bool> = series
            .values()
            .iter()
            .zip(time.values())
            .map(|(&s, &t)| self.mask.get(s as usize).copied().unwrap_or(false) && t >= self.min && t <= self.max)
            .collect();
        if self.filter.profile_ids.is_some() {
            // Whole profile rows are dropped here, before their samples are unnested.
            let Some(ids) = self.col(b, profiles_col::PROFILE_ID)?.as_string_opt::<i32>() else {
                return internal_err!("block {} profile_id column is not a string column", self.block.meta.ulid);
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k = *k && self.filter.keeps_profile(ids.is_valid(i).then(|| ids.value(i)));
            }
        }
        let keep = arrow::array::BooleanArray::from(keep);
        let b = filter_record_batch(b, &keep)?;
        match self.table {
            HeadTable::Profiles => self.profiles(&b),
            HeadTable::Samples => self.samples(&b),
        }
    }

    fn partition_keys(&self, local: &ArrayRef) -> Result<ArrayRef> {
        let local = local.as_primitive::<UInt32Type>();
        let mut out = UInt64Builder::with_capacity(local.len());
        for &p in local.values() {
            match self.keys.get(p as usize) {
                Some(&k) => out.append_value(k),
                None => return internal_err!("block {} names unknown partition {p}", self.block.meta.ulid),
            }
        }
        Ok(Arc::new(out.finish()))
    }

    fn finish(&self, rows: usize, mut column: impl FnMut(usize) -> Result<ArrayRef>) -> Result<RecordBatch> {
        let mut cols = Vec::with_capacity(self.projection.len());
        for &c in &self.projection {
            cols.push(column(c)?);
        }
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts)?)
    }

    fn common(&self, c: usize, rows: usize, series: &ArrayRef, time: &ArrayRef) -> Result<Option<ArrayRef>> {
        Ok(Some(match c {
            TENANT_COL => Arc::new(StringArray::from(vec![self.block.tenant.as_str(); rows])),
            SERIES_COL => series.clone(),
            LABELS_COL => labels_map(series, |s| self.block.index.get(s).map(|e| &*e.labels))?,
            TIME_COL => time.clone(),
            _ => return Ok(None),
        }))
    }

    fn profiles(&self, b: &RecordBatch) -> Result<RecordBatch> {
        let series = self.col(b, profiles_col::SERIES_ID)?.clone();
        let time = self.col(b, profiles_col::TIME)?.clone();
        self.finish(b.num_rows(), |c| {
            if let Some(a) = self.common(c, b.num_rows(), &series, &time)? {
                return Ok(a);
            }
            Ok(match c {
                4 => self.col(b, profiles_col::DURATION)?.clone(),
                5 => self.col(b, profiles_col::TOTAL)?.clone(),
                6 => self.partition_keys(self.col(b, profiles_col::PARTITION)?)?,
                7 => {
                    let l = self.col(b, profiles_col::STACKTRACE_IDS)?.as_list::<i32>();
                    let o = l.value_offsets();
                    Arc::new(UInt32Array::from_iter_values(o.windows(2).map(|w| (w[1] - w[0]) as u32)))
                }
                8 => self.col(b, profiles_col::PROFILE_ID)?.clone(),
                _ => return internal_err!("profiles table has no column {c}"),
            })
        })
    }

    fn samples(&self, b: &RecordBatch) -> Result<RecordBatch> {
        let stacks = self.col(b, profiles_col::STACKTRACE_IDS)?.as_list::<i32>();
        let offsets = stacks.value_offsets();
        // Row of each sample, and the index of each sample in the flattened lists.
        let total = (offsets[b.num_rows()] - offsets[0]) as usize;
        let mut row = Vec::with_capacity(total);
        let mut flat = Vec::with_capacity(total);
        for r in 0..b.num_rows() {
            let (a, z) = (offsets[r] as u32, offsets[r + 1] as u32);
            row.extend(std::iter::repeat_n(r as u32, (z - a) as usize));
            flat.extend(a..z);
        }
        let wants_spans = self.projection.contains(&7);
        let mut spans =
            if wants_spans || self.filter.span_ids.is_some() { Some(self.span_column(b, offsets)?) } else { None };
        if let (Some(span), Some(_)) = (&spans, &self.filter.span_ids) {
            // Keep the samples of the selected spans only.
            let keep: Vec<u32> = (0..span.len() as u32)
                .filter(|&k| self.filter.keeps_span(span.is_valid(k as usize).then(|| span.value(k as usize))))
                .collect();
            row = keep.iter().map(|&k| row[k as usize]).collect();
            flat = keep.iter().map(|&k| flat[k as usize]).collect();
            let kept = take(span, &UInt32Array::from(keep), None)?;
            spans = Some(kept.as_primitive::<UInt64Type>().clone());
        }
        let row = UInt32Array::from(row);
        let flat = UInt32Array::from(flat);
        let series = take(self.col(b, profiles_col::SERIES_ID)?, &row, None)?;
        let time = take(self.col(b, profiles_col::TIME)?, &row, None)?;
        let n = row.len();
        self.finish(n, |c| {
            if let Some(a) = self.common(c, n, &series, &time)? {
                return Ok(a);
            }
            Ok(match c {
                4 => self.partition_keys(&take(self.col(b, profiles_col::PARTITION)?, &row, None)?)?,
                5 => take(stacks.values(), &flat, None)?,
                6 => {
                    let v = self.col(b, profiles_col::VALUES)?.as_list::<i32>();
                    take(v.values(), &flat, None)?
                }
                7 => match &spans {
                    Some(s) => Arc::new(s.clone()),
                    None => return internal_err!("BlockRowsExec did not read span ids"),
                },
                _ => return internal_err!("samples table has no column {c}"),
            })
        })
    }

    /// The span of every sample of `b` (flattened like the stack trace lists): null where a
    /// profile has no span list of the right length or the span id is 0 (no span).
    fn span_column(&self, b: &RecordBatch, offsets: &[i32]) -> Result<UInt64Array> {
        let spans = self.col(b, profiles_col::SPAN_IDS)?.as_list::<i32>();
        let so = spans.value_offsets();
        let sv = spans.values().as_primitive::<UInt64Type>();
        let n = (offsets[b.num_rows()] - offsets[0]) as usize;
        let mut out = UInt64Builder::with_capacity(n);
        for r in 0..b.num_rows() {
            let len = (offsets[r + 1] - offsets[r]) as usize;
            if spans.is_valid(r) && (so[r + 1] - so[r]) as usize == len {
                for k in so[r] as usize..so[r + 1] as usize {
                    let v = sv.value(k);
                    if v == 0 { out.append_null() } else { out.append_value(v) }
                }
            } else {
                out.append_nulls(len);
            }
        }
        Ok(out.finish())
    }
}
