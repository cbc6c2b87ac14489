//! `HeadTableProvider`: a flamedb table (samples or profiles) of a set of tenants as a DataFusion
//! table, over the head and the blocks. Label matchers and time bounds are pushed down exactly
//! (the scans answer them from the series indexes), so DataFusion adds no filter above them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::union::UnionExec;
use flamedb_ingest::head::Head;

use crate::block_scan::block_scan;
use crate::dataset::Dataset;
use crate::filter::ScanFilter;
use crate::scan::HeadScanExec;
use crate::schema::HeadTable;

#[derive(Debug)]
pub struct HeadTableProvider {
    dataset: Dataset,
    tenants: Vec<String>,
    table: HeadTable,
    /// Conditions the planner sets directly rather than as filter expressions (a profile id
    /// filter: the samples table has no profile id column to express it on).
    base: ScanFilter,
}

impl HeadTableProvider {
    /// A table over the head alone for `tenants` (a read of several tenants sees their union).
    pub fn new(head: Arc<Head>, tenants: Vec<String>, table: HeadTable) -> Self {
        Self::over(Dataset::in_memory(head), tenants, table)
    }

    /// A table over the head and the blocks of `dataset`: the scan is the union of one head
    /// scan and one Parquet scan per block that can hold selected rows.
    pub fn over(dataset: Dataset, tenants: Vec<String>, table: HeadTable) -> Self {
        Self { dataset, tenants, table, base: ScanFilter::default() }
    }

    /// The same table with every scan narrowed by `base` besides the pushed-down filters.
    pub fn with_filter(mut self, base: ScanFilter) -> Self {
        self.base = base;
        self
    }
}

#[async_trait]
impl TableProvider for HeadTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut filter = self.base.clone();
        for e in filters {
            filter.add(e);
        }
        let mut heads = Vec::new();
        let mut blocks = Vec::new();
        for t in &self.tenants {
            let snap = self.dataset.snapshot(t);
            heads.extend(snap.heads);
            blocks.extend(snap.blocks);
        }
        let head_scan = HeadScanExec::try_new(
            self.dataset.head.clone(),
            self.tenants.clone(),
            self.table,
            projection.cloned(),
            filter.clone(),
            limit,
            state.config().target_partitions(),
        )?
        .with_heads(heads);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![Arc::new(head_scan)];
        for b in blocks {
            if let Some(scan) = block_scan(b, self.table, projection.cloned(), &filter)? {
                inputs.push(scan);
            }
        }
        if inputs.len() == 1 {
            return Ok(inputs.remove(0));
        }
        let union = UnionExec::try_new(inputs)?;
        Ok(match limit {
            Some(l) => Arc::new(GlobalLimitExec::new(
                Arc::new(CoalescePartitionsExec::new(union)) as Arc<dyn ExecutionPlan>,
                0,
                Some(l),
            )),
            None => union,
        })
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|e| {
                if ScanFilter::understands(e) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}
