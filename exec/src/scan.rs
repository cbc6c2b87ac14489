//! `HeadScanExec`: the leaf that reads an ingester head. It evaluates the pushed-down label
//! matchers against the series index once, prunes chunks by time range and series, filters rows
//! with a dense series mask, and materializes `tenant`/`labels` only when they are projected.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, MapBuilder, StringArray, StringBuilder};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{SchemaRef, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use flamedb_ingest::head::columns::{Chunk, profile_col, sample_col};
use flamedb_ingest::head::{Head, TenantHead};
use flamedb_ingest::model::Labels;
use futures::stream;
use hashbrown::{HashMap, HashSet};
use roaring::RoaringBitmap;

use crate::filter::ScanFilter;
use crate::schema::HeadTable;

/// Scan of one head table for a set of tenants.
#[derive(Debug)]
pub struct HeadScanExec {
    head: Arc<Head>,
    tenants: Vec<String>,
    table: HeadTable,
    projection: Option<Vec<usize>>,
    filter: ScanFilter,
    limit: Option<usize>,
    partitions: usize,
    /// Head generations pinned when the plan was made (consistent with the blocks planned
    /// beside them); `None` reads the tenants' current generations (a decoded fragment).
    heads: Option<Vec<Arc<TenantHead>>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl HeadScanExec {
    pub fn try_new(
        head: Arc<Head>,
        tenants: Vec<String>,
        table: HeadTable,
        projection: Option<Vec<usize>>,
        filter: ScanFilter,
        limit: Option<usize>,
        partitions: usize,
    ) -> Result<Self> {
        let full = table.schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let partitions = partitions.max(1);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self { head, tenants, table, projection, filter, limit, partitions, heads: None, schema, properties })
    }

    /// Pins the head generations to read.
    pub fn with_heads(mut self, heads: Vec<Arc<TenantHead>>) -> Self {
        self.heads = Some(heads);
        self
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    pub fn table(&self) -> HeadTable {
        self.table
    }

    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }

    pub fn filter(&self) -> &ScanFilter {
        &self.filter
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Chunks this partition reads: every chunk of the selected tenants gets a stable index and
    /// partition `p` takes those with `index % partitions == p`.
    fn work(&self, partition: usize) -> Vec<Work> {
        let (min, max) = (self.filter.min_time_nanos, self.filter.max_time_nanos);
        let mut out = Vec::new();
        let mut index = 0usize;
        let heads = match &self.heads {
            Some(h) => h.clone(),
            None => self.tenants.iter().flat_map(|t| self.head.snapshot(t, |heads| heads)).collect(),
        };
        for t in heads {
            let chunks = match self.table {
                HeadTable::Samples => t.sample_chunks(),
                HeadTable::Profiles => t.profile_chunks(),
            };
            let mine: Vec<Arc<Chunk>> = chunks
                .into_iter()
                .filter(|_| {
                    index += 1;
                    (index - 1) % self.partitions == partition
                })
                .filter(|c| c.overlaps(min, max))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let selected = t.select_series(&self.filter.matchers, min, max);
            if selected.is_empty() {
                continue;
            }
            let profiles = match (&self.filter.profile_ids, self.table) {
                (Some(_), HeadTable::Samples) => {
                    let keys = selected_profiles(&t, &self.filter, &selected);
                    if keys.is_empty() {
                        continue;
                    }
                    Some(keys)
                }
                _ => None,
            };
            let mut ctx = TenantScan::new(t, selected);
            ctx.profiles = profiles;
            let ctx = Arc::new(ctx);
            out.extend(
                mine.into_iter()
                    .filter(|c| !c.series.is_disjoint(&ctx.selected))
                    .map(|chunk| Work { tenant: ctx.clone(), chunk }),
            );
        }
        out
    }
}

/// Per-tenant state shared by the chunks of one partition.
struct TenantScan {
    head: Arc<TenantHead>,
    selected: RoaringBitmap,
    /// `mask[series_id]`: whether the series is selected (dense, for row filtering).
    mask: Vec<bool>,
    /// With a profile id filter on the samples table: the (series, time) of the selected
    /// profiles, which is how a head sample row names its profile.
    profiles: Option<HashSet<(u32, i64)>>,
}

impl TenantScan {
    fn new(head: Arc<TenantHead>, selected: RoaringBitmap) -> Self {
        let mask = series_mask(&selected);
        Self { head, selected, mask, profiles: None }
    }
}

/// The (series, time) keys of the head profile rows of selected series in the time range whose
/// profile id passes the filter.
fn selected_profiles(t: &TenantHead, filter: &ScanFilter, selected: &RoaringBitmap) -> HashSet<(u32, i64)> {
    let (min, max) = (filter.min_time_nanos, filter.max_time_nanos);
    let mut out = HashSet::new();
    for chunk in t.profile_chunks() {
        if !chunk.overlaps(min, max) || chunk.series.is_disjoint(selected) {
            continue;
        }
        let b = &chunk.batch;
        let series = b.column(profile_col::SERIES_ID).as_primitive::<UInt32Type>();
        let time = b.column(profile_col::TIME).as_primitive::<TimestampNanosecondType>();
        let Some(ids) = b.columns().get(profile_col::PROFILE_ID).and_then(|c| c.as_string_opt::<i32>()) else {
            continue;
        };
        for i in 0..b.num_rows() {
            let (s, t) = (series.value(i), time.value(i));
            if t >= min
                && t <= max
                && selected.contains(s)
                && filter.keeps_profile(ids.is_valid(i).then(|| ids.value(i)))
            {
                out.insert((s, t));
            }
        }
    }
    out
}
/// `mask[series_id]`: whether the series is in `selected` (dense, for filtering rows).
pub(crate) fn series_mask(selected: &RoaringBitmap) -> Vec<bool> {
    let mut mask = vec![false; selected.max().map_or(0, |m| m as usize + 1)];
    for id in selected {
        mask[id as usize] = true;
    }
    mask
}

struct Work {
    tenant: Arc<TenantScan>,
    chunk: Arc<Chunk>,
}

impl DisplayAs for HeadScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "HeadScanExec: table={}, tenants={:?}", self.table.name(), self.tenants)?;
        if !self.filter.matchers.is_empty() {
            let m: Vec<String> = self.filter.matchers.iter().map(ToString::to_string).collect();
            write!(f, ", matchers=[{}]", m.join(", "))?;
        }
        if self.filter.min_time_nanos > i64::MIN || self.filter.max_time_nanos < i64::MAX {
            write!(f, ", time=[{}, {}]", self.filter.min_time_nanos, self.filter.max_time_nanos)?;
        }
        if let Some(spans) = &self.filter.span_ids {
            let ids: Vec<String> = spans.iter().map(|s| format!("{s:016x}")).collect();
            write!(f, ", spans=[{}]", ids.join(", "))?;
        }
        if let Some(ids) = &self.filter.profile_ids {
            write!(f, ", profile_ids=[{}]", ids.join(", "))?;
        }
        if let Some(p) = &self.projection {
            write!(f, ", projection={p:?}")?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for HeadScanExec {
    fn name(&self) -> &str {
        "HeadScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let work = self.work(partition);
        let filter = self.filter.clone();
        // Only samples carry a span; the profiles table ignores a span filter.
        let spans = self.table == HeadTable::Samples && filter.span_ids.is_some();
        let projection: Vec<usize> =
            self.projection.clone().unwrap_or_else(|| (0..self.table.schema().fields().len()).collect());
        let schema = self.schema.clone();
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let batches = work.into_iter().filter_map(move |w| {
            if remaining == 0 {
                return None;
            }
            let out = scan_chunk(&w, &filter, spans, &projection, &schema);
            match out {
                Ok(Some(mut b)) => {
                    if b.num_rows() > remaining {
                        b = b.slice(0, remaining);
                    }
                    remaining -= b.num_rows();
                    Some(Ok(b))
                }
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream::iter(batches))))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        HeadScanExec::try_new(
            self.head.clone(),
            self.tenants.clone(),
            self.table,
            self.projection.clone(),
            self.filter.clone(),
            limit,
            self.partitions,
        )
        .ok()
        .map(|e| match &self.heads {
            Some(h) => e.with_heads(h.clone()),
            None => e,
        })
        .map(|e| Arc::new(e) as Arc<dyn ExecutionPlan>)
    }
}

/// The table column index of `tenant` and `labels`; every other table column `i` is column
/// `i - 2` of the head's chunk batches (`series_id` is 1 -> 0, see `schema.rs`).
pub(crate) const TENANT_COL: usize = 0;
pub(crate) const SERIES_COL: usize = 1;
pub(crate) const LABELS_COL: usize = 2;
/// `time`, the last column both tables share.
pub(crate) const TIME_COL: usize = 3;

/// Reads one chunk: rows of selected series in the time range (and, when `spans`, carrying one
/// of the filter's span ids), projected to the table columns.
fn scan_chunk(
    w: &Work,
    filter: &ScanFilter,
    spans: bool,
    projection: &[usize],
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>> {
    let (min, max) = (filter.min_time_nanos, filter.max_time_nanos);
    let batch = &w.chunk.batch;
    let all_series = w.chunk.series.is_subset(&w.tenant.selected);
    let all_time = w.chunk.min_time_nanos >= min && w.chunk.max_time_nanos <= max;
    // Profile rows carry their id; sample rows name their profile by (series, time).
    let profile_ids = match w.tenant.profiles.as_ref() {
        Some(keys) => Some(ProfileKeep::Samples(keys)),
        None if filter.profile_ids.is_some() => batch
            .columns()
            .get(profile_col::PROFILE_ID)
            .and_then(|c| c.as_string_opt::<i32>())
            .map(ProfileKeep::Profiles),
        None => None,
    };
    let batch = if all_series && all_time && !spans && profile_ids.is_none() {
        batch.clone()
    } else {
        let series = batch.column(0).as_primitive::<UInt32Type>();
        let time = batch.column(1).as_primitive::<TimestampNanosecondType>();
        let mask = &w.tenant.mask;
        let mut keep: Vec<bool> = series
            .values()
            .iter()
            .zip(time.values().iter())
            .map(|(&s, &t)| mask.get(s as usize).copied().unwrap_or(false) && t >= min && t <= max)
            .collect();
        if spans {
            let Some(span) = batch.columns().get(sample_col::SPAN_ID).and_then(|c| c.as_primitive_opt::<UInt64Type>())
            else {
                return internal_err!("head sample chunk lacks its span_id column");
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k = *k && filter.keeps_span(span.is_valid(i).then(|| span.value(i)));
            }
        }
        match profile_ids {
            Some(ProfileKeep::Samples(keys)) => {
                for (i, k) in keep.iter_mut().enumerate() {
                    *k = *k && keys.contains(&(series.value(i), time.value(i)));
                }
            }
            Some(ProfileKeep::Profiles(ids)) => {
                for (i, k) in keep.iter_mut().enumerate() {
                    *k = *k && filter.keeps_profile(ids.is_valid(i).then(|| ids.value(i)));
                }
            }
            None => {}
        }
        filter_record_batch(batch, &BooleanArray::from(keep))?
    };
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
    for &i in projection {
        columns.push(match i {
            TENANT_COL => Arc::new(StringArray::from(vec![w.tenant.head.id.as_str(); batch.num_rows()])),
            LABELS_COL => labels_column(&w.tenant.head, batch.column(0))?,
            SERIES_COL => batch.column(0).clone(),
            i => batch.column(i - 2).clone(),
        });
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(Some(RecordBatch::try_new_with_options(schema.clone(), columns, &opts)?))
}

/// How a chunk's rows are matched against a profile id filter.
enum ProfileKeep<'a> {
    /// Sample rows: by the (series, time) of the selected profiles.
    Samples(&'a HashSet<(u32, i64)>),
    /// Profile rows: by their own `profile_id` column.
    Profiles(&'a arrow::array::StringArray),
}

/// The `labels` map of every row, from the series index (looked up once per distinct series).
fn labels_column(t: &TenantHead, series: &ArrayRef) -> Result<ArrayRef> {
    let mut distinct: Vec<u32> = series.as_primitive::<UInt32Type>().values().to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let labels: HashMap<u32, _> = t.series_labels_many(distinct).into_iter().collect();
    labels_map(series, |s| labels.get(&s).map(|l| &**l))
}

/// A `labels` map column with `labels_of(series_id)` for each row (an empty map for an unknown
/// series); shared by the head and block scans.
pub(crate) fn labels_map<'a>(series: &ArrayRef, labels_of: impl Fn(u32) -> Option<&'a Labels>) -> Result<ArrayRef> {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for &s in series.as_primitive::<UInt32Type>().values() {
        if let Some(ls) = labels_of(s) {
            for l in ls.iter() {
                b.keys().append_value(&l.name);
                b.values().append_value(&l.value);
            }
        }
        b.append(true)?;
    }
    Ok(Arc::new(b.finish()))
}
