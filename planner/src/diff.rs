//! Diff: two SelectMergeStacktraces selections merged into one FlameGraphDiff, as Pyroscope's
//! query frontend does it: `max_nodes = max(left, right)` validated like a single select, each
//! side merged and cut to that many nodes, then both laid over one shape and cut again.

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::querier::v1 as q;

use crate::api::{Querier, RequestContext};
use crate::encode;
use crate::error::{QueryError, Result};
use crate::spans::span_selection;

impl Querier {
    /// Diff of two selections (their `format` is ignored). A missing side or profile type, a bad
    /// selector, time range or node limit is a 400.
    pub async fn diff(&self, ctx: &RequestContext, req: q::DiffRequest) -> Result<q::DiffResponse> {
        let (Some(left), Some(right)) = (req.left, req.right) else {
            return Err(QueryError::invalid("both left and right selections are required"));
        };
        let requested = left.max_nodes.unwrap_or(0).max(right.max_nodes.unwrap_or(0));
        let max_nodes = self.limits().max_nodes(Some(requested))?;
        // Validate both sides before reading either.
        let left_side = self.diff_side(ctx, &left)?;
        let right_side = self.diff_side(ctx, &right)?;
        let left_tree = self.side_tree(&left, left_side, max_nodes).await?;
        let right_tree = self.side_tree(&right, right_side, max_nodes).await?;
        let flamegraph = encode::flamegraph_diff(&left_tree, &right_tree, max_nodes)?;
        Ok(q::DiffResponse { flamegraph: Some(flamegraph) })
    }

    /// Validates one side: its selection (`None` when wholly before the lookback) and span ids.
    fn diff_side(
        &self,
        ctx: &RequestContext,
        req: &q::SelectMergeStacktracesRequest,
    ) -> Result<(Option<crate::Selection>, Option<Vec<u64>>)> {
        if req.profile_type_id.is_empty() {
            return Err(QueryError::invalid("profile type is required on both sides of a diff"));
        }
        let sel = self.selection(ctx, &req.profile_type_id, &req.label_selector, req.start, req.end)?;
        let spans = span_selection(&req.profile_id_selector, &req.span_selector, &req.trace_id_selector)?;
        Ok((sel, spans))
    }

    async fn side_tree(
        &self,
        req: &q::SelectMergeStacktracesRequest,
        (sel, spans): (Option<crate::Selection>, Option<Vec<u64>>),
        max_nodes: usize,
    ) -> Result<FunctionTree> {
        let call_site = req.stack_trace_selector.as_ref().map_or(&[][..], |s| &s.call_site[..]);
        match &sel {
            Some(sel) => self.span_merged_tree(sel, spans.as_deref(), call_site, max_nodes).await,
            None => Ok(FunctionTree::new()),
        }
    }
}
