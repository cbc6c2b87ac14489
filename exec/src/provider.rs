//! `HeadTableProvider`: a head table (samples or profiles) of a set of tenants as a DataFusion
//! table. Label matchers and time bounds are pushed down exactly (the scan answers them from the
//! series index), so DataFusion adds no filter above the scan for them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use flamedb_ingest::head::Head;

use crate::filter::ScanFilter;
use crate::scan::HeadScanExec;
use crate::schema::HeadTable;

#[derive(Debug)]
pub struct HeadTableProvider {
    head: Arc<Head>,
    tenants: Vec<String>,
    table: HeadTable,
}

impl HeadTableProvider {
    /// A table over `tenants` (a read of several tenants sees their union).
    pub fn new(head: Arc<Head>, tenants: Vec<String>, table: HeadTable) -> Self {
        Self { head, tenants, table }
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
        let mut filter = ScanFilter::default();
        for e in filters {
            filter.add(e);
        }
        Ok(Arc::new(HeadScanExec::try_new(
            self.head.clone(),
            self.tenants.clone(),
            self.table,
            projection.cloned(),
            filter,
            limit,
            state.config().target_partitions(),
        )?))
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
