//! Bulk export: the samples of one selection (profile type, label selector, time range) with
//! their stacks resolved, as the columns of the `samples` view a data team wants to keep.

use datafusion::logical_expr::utils::conjunction;
use datafusion::prelude::{DataFrame, SessionContext, col};
use flamedb_exec::filter;
use flamedb_exec::schema::col as c;
use flamedb_ingest::model::selector::parse_selector;
use flamedb_ingest::model::{Matcher, ProfileType, labels};
use serde::{Deserialize, Serialize};

use super::catalog::column;
use super::error::SqlError;

/// What an export reads; also the JSON of a Flight `DoGet` export ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// A profile type id, e.g. `process_cpu:cpu:nanoseconds:cpu:nanoseconds`.
    pub profile_type: String,
    /// A Prometheus-style selector; `{}` selects every series of the profile type.
    #[serde(default = "all_series")]
    pub label_selector: String,
    /// Start and end of the time range, milliseconds since the epoch (both inclusive).
    pub start: i64,
    pub end: i64,
}

fn all_series() -> String {
    "{}".into()
}

/// The columns an export streams, in order.
pub const EXPORT_COLUMNS: [&str; 7] =
    [c::TIME, column::PROFILE_TYPE, column::SERVICE_NAME, c::LABELS, column::STACK, c::VALUE, c::SPAN_ID];

impl ExportRequest {
    fn filters(&self) -> Result<Vec<datafusion::prelude::Expr>, SqlError> {
        let profile_type = ProfileType::parse(&self.profile_type)
            .map_err(|e| SqlError::invalid(format!("export: profile_type: {e}")))?;
        let selector = if self.label_selector.trim().is_empty() { "{}" } else { self.label_selector.as_str() };
        let matchers =
            parse_selector(selector).map_err(|e| SqlError::invalid(format!("export: label_selector: {e}")))?;
        if self.start > self.end {
            return Err(SqlError::invalid(format!("export: start {} is after end {}", self.start, self.end)));
        }
        let ms = |v: i64| v.saturating_mul(1_000_000);
        let mut out = vec![filter::matcher_expr(&Matcher::equal(labels::PROFILE_TYPE, profile_type.id()))];
        out.extend(matchers.iter().map(filter::matcher_expr));
        out.extend(filter::time_range_exprs(ms(self.start), ms(self.end).saturating_add(999_999)));
        Ok(out)
    }

    /// The export as a DataFrame over the session's `samples` view.
    pub(super) async fn frame(&self, ctx: &SessionContext) -> Result<DataFrame, SqlError> {
        let predicate = conjunction(self.filters()?).ok_or_else(|| SqlError::invalid("export: empty selection"))?;
        let df = ctx.table("samples").await.map_err(SqlError::from_datafusion)?;
        df.filter(predicate)
            .and_then(|df| df.select(EXPORT_COLUMNS.iter().map(|n| col(*n)).collect::<Vec<_>>()))
            .map_err(SqlError::from_datafusion)
    }
}
