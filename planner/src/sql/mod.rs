//! SQL over profiles: a read-only DataFusion session per request over the request's tenants'
//! `profiles` and `samples` (head and blocks, the same scans the query API plans), with the
//! flame-graph aggregate and the stack functions registered, a memory pool of its own and a
//! deadline. HTTP (`POST /api/v1/sql`), Flight SQL and the Flight export all come through here,
//! so they answer a statement the same way.

mod catalog;
mod error;
mod export;
mod fuse;
mod guard;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use flamedb_exec::dataset::TenantSymbols;
use flamedb_exec::{FlameGraphUdaf, SymbolSource, udf};

pub use catalog::{TABLES, column};
pub use error::{SqlError, SqlErrorKind};
pub use export::{EXPORT_COLUMNS, ExportRequest};

use crate::query::Engine;

/// The catalog and schema the views live in (what Flight SQL clients list).
pub const CATALOG: &str = "flamedb";
pub const SCHEMA: &str = "public";

/// What one SQL query may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Memory the query's operators may reserve (hash tables, sorts); past it the query fails
    /// rather than the process.
    pub max_memory_bytes: usize,
    /// Wall time from planning to the last batch.
    pub timeout: Duration,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self { max_memory_bytes: 1 << 30, timeout: Duration::from_secs(60) }
    }
}

/// Plans SQL for tenants over this process's data.
#[derive(Debug, Clone)]
pub struct SqlEngine {
    engine: Engine,
    limits: SqlLimits,
}

/// A planned statement, ready to run.
pub struct SqlQuery {
    frame: DataFrame,
    timeout: Duration,
    started: tokio::time::Instant,
}

impl SqlEngine {
    pub fn new(engine: Engine, limits: SqlLimits) -> Self {
        Self { engine, limits }
    }

    pub fn limits(&self) -> SqlLimits {
        self.limits
    }

    /// The tenants' session: the two views, our functions bound to the tenants' symbols, a fresh
    /// memory pool of `max_memory_bytes` and no spilling to disk.
    pub fn context(&self, tenants: &[String]) -> Result<SessionContext, SqlError> {
        let base = self.engine.state();
        let runtime = RuntimeEnvBuilder::from_runtime_env(base.runtime_env())
            .with_memory_pool(Arc::new(TrackConsumersPool::new(
                GreedyMemoryPool::new(self.limits.max_memory_bytes),
                NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            )))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .map_err(SqlError::from_datafusion)?;
        let config = SessionConfig::new()
            .with_target_partitions(base.config().target_partitions())
            .with_batch_size(base.config().batch_size())
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_create_default_catalog_and_schema(true);
        let state =
            SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
        let ctx = SessionContext::new_with_state(state);
        let symbols: Arc<dyn SymbolSource> = Arc::new(TenantSymbols::new(self.engine.head().clone(), tenants.to_vec()));
        let stack = udf::stack_udf(symbols.clone());
        ctx.register_udf(udf::label_udf().as_ref().clone());
        ctx.register_udf(stack.as_ref().clone());
        for f in udf::frames_udfs().into_iter().chain(udf::tree_udfs()) {
            ctx.register_udf(f.as_ref().clone());
        }
        let (stack_leaf, stack_root) =
            (udf::frames::stack_leaf_udf(symbols.clone()), udf::frames::stack_root_udf(symbols.clone()));
        ctx.register_udf(stack_leaf.as_ref().clone());
        ctx.register_udf(stack_root.as_ref().clone());
        ctx.add_optimizer_rule(Arc::new(fuse::FuseStackEnds::new(stack_leaf, stack_root)));
        ctx.register_udaf(FlameGraphUdaf::udaf(symbols).as_ref().clone());
        for (name, view) in catalog::views(self.engine.dataset(), tenants, stack).map_err(SqlError::from_datafusion)? {
            ctx.register_table(name, view).map_err(SqlError::from_datafusion)?;
        }
        Ok(ctx)
    }

    /// Plans one read-only statement for `tenants`.
    pub async fn plan(&self, tenants: &[String], sql: &str) -> Result<SqlQuery, SqlError> {
        let statement = guard::read_only_statement(sql)?;
        let started = tokio::time::Instant::now();
        let ctx = self.context(tenants)?;
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let planning = async {
            let plan = ctx.state().statement_to_plan(statement).await?;
            options.verify_plan(&plan)?;
            ctx.execute_logical_plan(plan).await
        };
        let planned = tokio::time::timeout(self.limits.timeout, planning)
            .await
            .map_err(|_| guard::timeout_error(self.limits.timeout))?;
        let frame = planned.map_err(SqlError::from_datafusion)?;
        Ok(SqlQuery { frame, timeout: self.limits.timeout, started })
    }

    /// The samples of one selection with their stacks resolved (the columns of
    /// [`EXPORT_COLUMNS`]), under the same limits as a statement.
    pub async fn export(&self, tenants: &[String], request: &ExportRequest) -> Result<SqlQuery, SqlError> {
        let started = tokio::time::Instant::now();
        let ctx = self.context(tenants)?;
        let frame = request.frame(&ctx).await?;
        Ok(SqlQuery { frame, timeout: self.limits.timeout, started })
    }
}

impl SqlQuery {
    /// The schema of the rows the query returns.
    pub fn schema(&self) -> SchemaRef {
        self.frame.schema().inner().clone()
    }

    /// Runs the query. The stream ends with a [`SqlErrorKind::Timeout`] error once the timeout
    /// (counted from planning) passes.
    pub async fn execute(self) -> Result<SendableRecordBatchStream, SqlError> {
        let left = self.timeout.saturating_sub(self.started.elapsed());
        let stream = tokio::time::timeout(left, self.frame.execute_stream())
            .await
            .map_err(|_| guard::timeout_error(self.timeout))?
            .map_err(SqlError::from_datafusion)?;
        Ok(Box::pin(guard::Deadline::new(stream, left)))
    }
}

impl std::fmt::Debug for SqlQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlQuery").field("schema", &self.frame.schema()).field("timeout", &self.timeout).finish()
    }
}

#[cfg(test)]
mod tests;
