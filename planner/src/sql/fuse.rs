//! An optimizer rule that computes `leaf(stack)` and `root(stack)` over the `samples` view
//! without building the stack: `stack(partition, stacktrace_id)` materializes every row's whole
//! frame list (one string copy per frame), and `leaf`/`root` keep one frame of it, so a "top
//! functions" query spent most of its time building lists it threw away.
//!
//! Two shapes are rewritten, each into `stack_leaf(P, S)` / `stack_root(P, S)`, which resolve
//! only the one frame and equal `leaf(stack(P, S))` / `root(stack(P, S))` by construction:
//!
//! - `leaf(X)` in an `Aggregate` or `Projection` whose input is (through any `SubqueryAlias`) a
//!   `Projection` defining column `X` as `stack(P, S)` over plain `UInt64`/`UInt32` columns (the
//!   `samples` view). `P` and `S` are added to that projection's output when missing; the next
//!   pass of `optimize_projections` drops the then unused `stack`.
//! - `leaf(stack(P, S))` written out, which is also what a filter on `leaf(stack)` becomes once it
//!   is pushed through the view.
//!
//! Anything else is left alone: the rule only ever replaces an expression by one with the same
//! value, name and type.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::logical_plan::{Projection, SubqueryAlias};
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use flamedb_exec::udf::frames::{LEAF, ROOT};
use flamedb_exec::udf::stack::NAME as STACK;

/// The rule, holding the session's `stack_leaf` and `stack_root` (bound to the same symbols as
/// its `stack`).
#[derive(Debug)]
pub struct FuseStackEnds {
    leaf: Arc<ScalarUDF>,
    root: Arc<ScalarUDF>,
}

impl FuseStackEnds {
    pub fn new(leaf: Arc<ScalarUDF>, root: Arc<ScalarUDF>) -> Self {
        Self { leaf, root }
    }

    /// The fused function for `leaf`/`root` calls of one argument.
    fn fused_for<'a>(&'a self, expr: &'a Expr) -> Option<(&'a Arc<ScalarUDF>, &'a Expr)> {
        let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else { return None };
        let [arg] = args.as_slice() else { return None };
        match func.name() {
            LEAF => Some((&self.leaf, arg)),
            ROOT => Some((&self.root, arg)),
            _ => None,
        }
    }

    /// `leaf(stack(P, S))` -> `stack_leaf(P, S)` in the expressions of `plan`, names kept.
    fn fuse_nested(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        if !matches!(
            plan,
            LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_) | LogicalPlan::Filter(_) | LogicalPlan::Sort(_)
        ) {
            return Ok(Transformed::no(plan));
        }
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|e| {
                let Some((fused, arg)) = self.fused_for(&e) else { return Ok(Transformed::no(e)) };
                match stack_args(arg) {
                    Some((p, s)) => Ok(Transformed::yes(fused.call(vec![p.clone(), s.clone()]))),
                    None => Ok(Transformed::no(e)),
                }
            })?;
            Ok(if t.transformed { t.update_data(|e| saved.restore(e)) } else { t })
        })
    }

    /// `leaf(X)` over a view column `X = stack(P, S)`: the rewritten node, or None to leave it.
    fn fuse_view_columns(&self, plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
        match plan {
            LogicalPlan::Aggregate(a) if !a.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) => {}
            LogicalPlan::Projection(_) => {}
            _ => return Ok(None),
        }
        let [input] = plan.inputs()[..] else { return Ok(None) };
        // The columns `leaf`/`root` are called on.
        let mut targets: Vec<Column> = Vec::new();
        for e in plan.expressions() {
            e.apply(|e| {
                if let Some((_, Expr::Column(c))) = self.fused_for(e)
                    && !targets.contains(c)
                {
                    targets.push(c.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        if targets.is_empty() {
            return Ok(None);
        }
        // Through the aliases to the projection defining the columns.
        let mut aliases: Vec<&SubqueryAlias> = Vec::new();
        let mut below = input;
        while let LogicalPlan::SubqueryAlias(a) = below {
            aliases.push(a);
            below = a.input.as_ref();
        }
        let LogicalPlan::Projection(view) = below else { return Ok(None) };
        let mut exprs = view.expr.clone();
        // Target column -> output indices of (P, S) in the view projection.
        let mut fused: Vec<(Column, usize, usize)> = Vec::new();
        for target in targets {
            // Aliases and projections keep their fields in expression order.
            let Some(index) = input.schema().maybe_index_of_column(&target) else { continue };
            let Some(Expr::ScalarFunction(ScalarFunction { func, args })) = view.expr.get(index).map(unaliased) else {
                continue;
            };
            let [Expr::Column(p), Expr::Column(s)] = args.as_slice() else { continue };
            let input_type = |c: &Column| {
                view.input.schema().qualified_field_from_column(c).ok().map(|(_, f)| f).map(|f| f.data_type().clone())
            };
            if func.name() != STACK
                || input_type(p) != Some(DataType::UInt64)
                || input_type(s) != Some(DataType::UInt32)
            {
                continue;
            }
            let (Some(pi), Some(si)) = (output_of(&mut exprs, p), output_of(&mut exprs, s)) else { continue };
            fused.push((target, pi, si));
        }
        if fused.is_empty() {
            return Ok(None);
        }
        // The view with P and S in its output, under the same aliases.
        let Ok(projection) = Projection::try_new(exprs, view.input.clone()) else { return Ok(None) };
        let mut new_input = LogicalPlan::Projection(projection);
        for alias in aliases.iter().rev() {
            let Ok(a) = SubqueryAlias::try_new(Arc::new(new_input), alias.alias.clone()) else { return Ok(None) };
            new_input = LogicalPlan::SubqueryAlias(a);
        }
        let schema = new_input.schema().clone();
        let column = |i: usize| Expr::Column(Column::from(schema.qualified_field(i)));
        let names = NamePreserver::new(plan);
        let mut new_exprs = Vec::new();
        for e in plan.expressions() {
            let saved = names.save(&e);
            let t = e.transform_up(|e| {
                let Some((udf, Expr::Column(c))) = self.fused_for(&e) else { return Ok(Transformed::no(e)) };
                match fused.iter().find(|(t, _, _)| t == c) {
                    Some(&(_, pi, si)) => Ok(Transformed::yes(udf.call(vec![column(pi), column(si)]))),
                    None => Ok(Transformed::no(e)),
                }
            })?;
            new_exprs.push(if t.transformed { saved.restore(t.data) } else { t.data });
        }
        match plan.with_new_exprs(new_exprs, vec![new_input]) {
            Ok(new) if new.schema().fields() == plan.schema().fields() => Ok(Some(new)),
            _ => Ok(None),
        }
    }
}

/// `(P, S)` of `stack(P, S)`.
fn stack_args(e: &Expr) -> Option<(&Expr, &Expr)> {
    match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == STACK => match args.as_slice() {
            [p, s] => Some((p, s)),
            _ => None,
        },
        _ => None,
    }
}

fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unaliased(&a.expr),
        other => other,
    }
}

/// The output index of input column `c` in projection `exprs`, appending it when absent; None
/// when another output already has its name (the view's aliases would make it ambiguous).
fn output_of(exprs: &mut Vec<Expr>, c: &Column) -> Option<usize> {
    if let Some(i) = exprs.iter().position(|e| matches!(unaliased(e), Expr::Column(x) if x == c)) {
        return Some(i);
    }
    if exprs.iter().any(|e| e.qualified_name().1 == c.name) {
        return None;
    }
    exprs.push(Expr::Column(c.clone()));
    Some(exprs.len() - 1)
}

impl OptimizerRule for FuseStackEnds {
    fn name(&self) -> &str {
        "fuse_stack_ends"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let (plan, changed) = match self.fuse_view_columns(&plan)? {
            Some(new) => (new, true),
            None => (plan, false),
        };
        let t = self.fuse_nested(plan)?;
        Ok(if changed { Transformed::yes(t.data) } else { t })
    }
}
