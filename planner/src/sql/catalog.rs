//! The tables a SQL session sees: `profiles` and `samples`, views over the raw head-and-block
//! tables of the request's tenants only. The raw tables are never registered, so nothing in the
//! session names another tenant's data; the views add the columns SQL users want (profile type,
//! service name, the stack as frame names) as expressions the optimizer pushes into the scans.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::Result;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, ScalarUDF};
use datafusion::prelude::col;
use flamedb_exec::schema::col as c;
use flamedb_exec::udf::label_udf;
use flamedb_exec::{Dataset, HeadTable, HeadTableProvider};
use flamedb_ingest::model::labels;

/// The view names, in the order catalog listings show them.
pub const TABLES: [&str; 2] = ["profiles", "samples"];

/// Column names the views add.
pub mod column {
    pub const PROFILE_TYPE: &str = "profile_type";
    pub const SERVICE_NAME: &str = "service_name";
    pub const STACK: &str = "stack";
}

fn label(name: &str) -> Expr {
    label_udf().call(vec![col(c::LABELS), datafusion::prelude::lit(name)])
}

/// The keys every row carries: time, profile type, service name and the series labels.
fn keys() -> Vec<Expr> {
    vec![
        col(c::TIME),
        label(labels::PROFILE_TYPE).alias(column::PROFILE_TYPE),
        label(labels::SERVICE_NAME).alias(column::SERVICE_NAME),
        col(c::LABELS),
    ]
}

/// The two views for `tenants`; `stack` resolves stack-trace ids through the tenants' symbols.
pub fn views(
    dataset: &Dataset,
    tenants: &[String],
    stack: Arc<ScalarUDF>,
) -> Result<Vec<(&'static str, Arc<dyn TableProvider>)>> {
    let raw = |table: HeadTable| -> Result<LogicalPlanBuilder> {
        let provider = Arc::new(HeadTableProvider::over(dataset.clone(), tenants.to_vec(), table));
        LogicalPlanBuilder::scan(format!("{}_raw", table.name()), provider_as_source(provider), None)
    };
    let mut profiles = keys();
    profiles.extend([col(c::DURATION), col(c::TOTAL), col(c::PROFILE_ID)]);
    let profiles = raw(HeadTable::Profiles)?.project(profiles)?.build()?;
    let mut samples = keys();
    samples.extend([
        stack.call(vec![col(c::PARTITION), col(c::STACKTRACE_ID)]).alias(column::STACK),
        col(c::VALUE),
        col(c::SPAN_ID),
        col(c::PARTITION),
        col(c::STACKTRACE_ID),
    ]);
    let samples = raw(HeadTable::Samples)?.project(samples)?.build()?;
    Ok(vec![
        ("profiles", Arc::new(ViewTable::new(profiles, None)) as Arc<dyn TableProvider>),
        ("samples", Arc::new(ViewTable::new(samples, None))),
    ])
}
