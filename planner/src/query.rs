//! Query requests as DataFusion plans. A flame graph is
//! `samples |> filter(matchers, time) |> aggregate(flamegraph(partition, stacktrace_id, value))`;
//! a time series is `profiles |> filter |> aggregate(sum(total), count(*) by tenant, series, bucket)`.
//! The filters are pushed into the head scan; the aggregates run Partial per scan partition and
//! Final above them.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, utils::conjunction};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{cast, col, lit};
use flamedb_exec::schema::col as c;
use flamedb_exec::tree::FunctionTree;
use flamedb_exec::{Dataset, FlameGraphUdaf, HeadTable, HeadTableProvider, ScanFilter, filter};
use flamedb_ingest::head::Head;
use flamedb_ingest::model::{Matcher, ProfileType, labels};

use crate::error::{QueryError, Result};
use crate::limits::TimeRange;
use crate::session::session_state;

/// What a select reads: a profile type and label matchers over a time range, for some tenants.
#[derive(Debug, Clone)]
pub struct Selection {
    pub tenants: Vec<String>,
    pub profile_type: ProfileType,
    pub matchers: Vec<Matcher>,
    pub range: TimeRange,
}

impl Selection {
    /// The conjuncts of the select's filter: the profile type, the matchers and the time range.
    pub fn filter_exprs(&self) -> Vec<Expr> {
        let mut out = vec![filter::matcher_expr(&Matcher::equal(labels::PROFILE_TYPE, self.profile_type.id()))];
        out.extend(self.matchers.iter().map(filter::matcher_expr));
        let (min, max) = self.range.nanos();
        out.extend(filter::time_range_exprs(min, max));
        out
    }
}

/// One aggregated time-series cell: a series' profiles in one step bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesCell {
    /// Group-by label values of the cell's series (`None` or "" where a series lacks one).
    pub group: Vec<Option<String>>,
    pub timestamp_ms: i64,
    pub sum: i64,
    pub count: i64,
}

/// Plans and runs queries against this process's head.
#[derive(Debug, Clone)]
pub struct Engine {
    dataset: Dataset,
    state: SessionState,
}

impl Engine {
    /// An engine over the head alone.
    pub fn new(head: Arc<Head>, target_partitions: usize) -> Self {
        Self::over(Dataset::in_memory(head), target_partitions)
    }

    /// An engine over the head and blocks of `dataset` (its bucket registered in the session).
    pub fn over(dataset: Dataset, target_partitions: usize) -> Self {
        let state = session_state(dataset.head.clone(), target_partitions);
        if let Some(store) = &dataset.store {
            let url = flamedb_exec::dataset::bucket_url();
            state.runtime_env().register_object_store(url.as_ref(), store.clone());
        }
        Self { dataset, state }
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.dataset.head
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    fn scan(&self, tenants: &[String], table: HeadTable) -> Result<LogicalPlanBuilder> {
        self.scan_with(tenants, table, ScanFilter::default())
    }

    /// A scan whose every leaf also applies `base` (conditions without a column to express them).
    fn scan_with(&self, tenants: &[String], table: HeadTable, base: ScanFilter) -> Result<LogicalPlanBuilder> {
        let provider =
            Arc::new(HeadTableProvider::over(self.dataset.clone(), tenants.to_vec(), table).with_filter(base));
        Ok(LogicalPlanBuilder::scan(table.name(), provider_as_source(provider), None)?)
    }

    /// The logical plan of a flame-graph select (`max_nodes` 0 = no cut).
    pub fn flamegraph_plan(&self, sel: &Selection, max_nodes: usize) -> Result<LogicalPlan> {
        self.span_flamegraph_plan(sel, None, max_nodes)
    }

    /// The logical plan of a flame-graph select of the samples recorded in one of `spans`
    /// (span ids as ingest stores them; `None` = every sample). The span condition is one more
    /// conjunct, which the scans take over exactly like the matchers.
    pub fn span_flamegraph_plan(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        max_nodes: usize,
    ) -> Result<LogicalPlan> {
        self.selected_flamegraph_plan(sel, spans, None, max_nodes)
    }

    /// [`Engine::span_flamegraph_plan`] of the samples of the profiles with one of `profiles`'
    /// ids (`None` = every profile). The samples table has no profile id column, so the ids go
    /// to the scans as a base [`ScanFilter`]: the head scan keeps the samples of the matching
    /// profile rows, and block scans drop the other profile rows before unnesting samples.
    pub fn selected_flamegraph_plan(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        profiles: Option<&[String]>,
        max_nodes: usize,
    ) -> Result<LogicalPlan> {
        let udaf = FlameGraphUdaf::udaf(self.dataset.head.clone());
        let agg = udaf.call(vec![col(c::PARTITION), col(c::STACKTRACE_ID), col(c::VALUE), lit(max_nodes as i64)]);
        let mut conjuncts = sel.filter_exprs();
        conjuncts.extend(spans.map(filter::span_expr));
        let predicate = conjunction(conjuncts).ok_or_else(|| QueryError::internal("empty filter"))?;
        let mut base = ScanFilter::default();
        if let Some(ids) = profiles {
            base.keep_profiles(ids);
        }
        Ok(self
            .scan_with(&sel.tenants, HeadTable::Samples, base)?
            .filter(predicate)?
            .aggregate(Vec::<Expr>::new(), vec![agg.alias("tree")])?
            .build()?)
    }

    /// The physical plan of a logical plan in this session.
    pub async fn physical_plan(&self, plan: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self.state.create_physical_plan(plan).await?)
    }

    /// Merges the selected samples into a function-name tree, cut to `max_nodes` (0 = no cut).
    pub async fn flamegraph_tree(&self, sel: &Selection, max_nodes: usize) -> Result<FunctionTree> {
        self.span_flamegraph_tree(sel, None, max_nodes).await
    }

    /// [`Engine::flamegraph_tree`] of the samples recorded in one of `spans` (`None` = all).
    pub async fn span_flamegraph_tree(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        max_nodes: usize,
    ) -> Result<FunctionTree> {
        self.selected_flamegraph_tree(sel, spans, None, max_nodes).await
    }

    /// [`Engine::span_flamegraph_tree`] of the samples of the profiles with one of `profiles`'
    /// ids (`None` = every profile).
    pub async fn selected_flamegraph_tree(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        profiles: Option<&[String]>,
        max_nodes: usize,
    ) -> Result<FunctionTree> {
        let plan = self.selected_flamegraph_plan(sel, spans, profiles, max_nodes)?;
        let physical = self.physical_plan(&plan).await?;
        let batches = collect(physical, self.state.task_ctx()).await?;
        let mut tree = FunctionTree::new();
        for b in &batches {
            let col = b.column(0).as_binary::<i32>();
            for i in 0..col.len() {
                if col.is_valid(i) {
                    let t = FunctionTree::decode(col.value(i))
                        .map_err(|e| QueryError::internal(format!("decoding flame graph: {e}")))?;
                    tree.merge(&t);
                }
            }
        }
        Ok(tree)
    }

    /// The logical plan of a time-series select: per group (one `label(labels, g)` column per
    /// group-by name; not series ids, which are local to a head generation or a block) and step
    /// bucket, the sum and count of profile totals. A profile at `t` lands in the first boundary
    /// `>= t` of the grid `start + k * step`.
    pub fn series_plan(&self, sel: &Selection, step_ms: i64, group_by: &[String]) -> Result<LogicalPlan> {
        let start = sel.range.start_ms;
        let step = step_ms.max(1);
        let t_ms = cast(col(c::TIME), DataType::Int64) / lit(1_000_000i64);
        let bucket = lit(start) + ((t_ms - lit(start) + lit(step - 1)) / lit(step)) * lit(step);
        let predicate = conjunction(sel.filter_exprs()).ok_or_else(|| QueryError::internal("empty filter"))?;
        let label = flamedb_exec::udf::label_udf();
        let mut keys: Vec<Expr> = group_by
            .iter()
            .enumerate()
            .map(|(i, g)| label.call(vec![col(c::LABELS), lit(g.as_str())]).alias(format!("g{i}")))
            .collect();
        keys.push(bucket.alias("ts"));
        Ok(self
            .scan(&sel.tenants, HeadTable::Profiles)?
            .filter(predicate)?
            .aggregate(keys, vec![sum(col(c::TOTAL)).alias("sum"), count(col(c::TOTAL)).alias("count")])?
            .build()?)
    }

    /// The logical plan of a time-series select restricted to the samples whose stack starts
    /// (root first) with `call_site`: the `samples` table filtered by `call_site_match`, summed
    /// per profile (tenant, series, time), then aggregated per group and bucket like
    /// [`Engine::series_plan`] aggregates profile totals (a profile without a matching sample
    /// is not counted). An empty call site is [`Engine::series_plan`] itself.
    pub fn call_site_series_plan(
        &self,
        sel: &Selection,
        step_ms: i64,
        group_by: &[String],
        call_site: &[String],
    ) -> Result<LogicalPlan> {
        if call_site.is_empty() {
            return self.series_plan(sel, step_ms, group_by);
        }
        let start = sel.range.start_ms;
        let step = step_ms.max(1);
        let t_ms = cast(col(c::TIME), DataType::Int64) / lit(1_000_000i64);
        let bucket = lit(start) + ((t_ms - lit(start) + lit(step - 1)) / lit(step)) * lit(step);
        let udf = crate::call_site::CallSiteUdf::udf(self.dataset.head.clone(), call_site.to_vec());
        let mut conjuncts = sel.filter_exprs();
        conjuncts.push(udf.call(vec![col(c::PARTITION), col(c::STACKTRACE_ID)]));
        let predicate = conjunction(conjuncts).ok_or_else(|| QueryError::internal("empty filter"))?;
        let label = flamedb_exec::udf::label_udf();
        let groups: Vec<String> = (0..group_by.len()).map(|i| format!("g{i}")).collect();
        let mut profile_keys: Vec<Expr> = group_by
            .iter()
            .zip(&groups)
            .map(|(g, name)| label.call(vec![col(c::LABELS), lit(g.as_str())]).alias(name))
            .collect();
        profile_keys.push(bucket.alias("ts"));
        profile_keys.extend([col(c::TENANT), col(c::SERIES_ID), col(c::TIME)]);
        let mut keys: Vec<Expr> = groups.iter().map(|g| col(g.as_str())).collect();
        keys.push(col("ts"));
        Ok(self
            .scan(&sel.tenants, HeadTable::Samples)?
            .filter(predicate)?
            .aggregate(profile_keys, vec![sum(col(c::VALUE)).alias("v")])?
            .aggregate(keys, vec![sum(col("v")).alias("sum"), count(col("v")).alias("count")])?
            .build()?)
    }

    /// Runs [`Engine::series_plan`].
    pub async fn series_cells(&self, sel: &Selection, step_ms: i64, group_by: &[String]) -> Result<Vec<SeriesCell>> {
        self.call_site_series_cells(sel, step_ms, group_by, &[]).await
    }

    /// Runs [`Engine::call_site_series_plan`].
    pub async fn call_site_series_cells(
        &self,
        sel: &Selection,
        step_ms: i64,
        group_by: &[String],
        call_site: &[String],
    ) -> Result<Vec<SeriesCell>> {
        let plan = self.call_site_series_plan(sel, step_ms, group_by, call_site)?;
        let physical = self.physical_plan(&plan).await?;
        let batches = collect(physical, self.state.task_ctx()).await?;
        let g = group_by.len();
        let mut out = Vec::new();
        for b in &batches {
            let groups: Vec<arrow::array::ArrayRef> = (0..g)
                .map(|i| arrow::compute::cast(b.column(i), &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?;
            let ts = b.column(g).as_primitive::<Int64Type>();
            let s = b.column(g + 1).as_primitive::<Int64Type>();
            let n = b.column(g + 2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let group = groups
                    .iter()
                    .map(|a| {
                        let a = a.as_string::<i32>();
                        a.is_valid(i).then(|| a.value(i).to_string())
                    })
                    .collect();
                out.push(SeriesCell { group, timestamp_ms: ts.value(i), sum: s.value(i), count: n.value(i) });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::displayable;
    use flamedb_ingest::distributor::Distributor;
    use flamedb_ingest::validate::Limits;
    use flamedb_proto::google::v1::Label;

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    /// A head holding one cpu profile whose samples carry `span_id` labels (or none).
    fn engine(samples: &[(&[&str], i64, Option<&str>)]) -> (Engine, Selection) {
        let head = Arc::new(Head::new());
        let stacks: Vec<(&[&str], i64)> = samples.iter().map(|(f, v, _)| (*f, *v)).collect();
        let mut p = flamedb_ingest::testing::cpu_pprof(&stacks, NOW - 1_000_000_000);
        for (sample, (_, _, span)) in p.sample.iter_mut().zip(samples) {
            if let Some(span) = span {
                p.string_table.push("span_id".into());
                p.string_table.push(span.to_string());
                let n = p.string_table.len() as i64;
                sample.label.push(Label { key: n - 2, str: n - 1, ..Default::default() });
            }
        }
        let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
        let labels = vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".into(), "a".into())];
        d.ingest_profile("t", &labels, p, 0, None, NOW).unwrap();
        let sel = Selection {
            tenants: vec!["t".into()],
            profile_type: ProfileType::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds").unwrap(),
            matchers: vec![],
            range: TimeRange { start_ms: NOW / 1_000_000 - 60_000, end_ms: NOW / 1_000_000 },
        };
        (Engine::new(head, 2), sel)
    }

    #[tokio::test]
    async fn span_filter_is_pushed_into_the_scan() {
        let samples: &[(&[&str], i64, Option<&str>)] = &[
            (&["main", "a"], 10, Some("00000000000000a1")),
            (&["main", "b"], 20, Some("00000000000000b2")),
            (&["main", "c"], 5, None),
        ];
        let (engine, sel) = engine(samples);
        let plan = engine.physical_plan(&engine.span_flamegraph_plan(&sel, Some(&[0xa1]), 0).unwrap()).await.unwrap();
        let shown = displayable(plan.as_ref()).indent(true).to_string();
        assert!(shown.contains("spans=[00000000000000a1]"), "{shown}");
        assert!(!shown.contains("FilterExec"), "the scan answers the span filter exactly: {shown}");

        let paths = |t: &FunctionTree| {
            let v = t.view();
            (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), v.total(n))).collect::<Vec<_>>()
        };
        let one = engine.span_flamegraph_tree(&sel, Some(&[0xa1]), 0).await.unwrap();
        assert_eq!(paths(&one), vec![("main".to_string(), 10), ("main;a".to_string(), 10)]);
        let two = engine.span_flamegraph_tree(&sel, Some(&[0xa1, 0xb2]), 0).await.unwrap();
        assert_eq!(two.total(), 30);
        let none = engine.span_flamegraph_tree(&sel, Some(&[0xc3]), 0).await.unwrap();
        assert!(none.is_empty());
        let all = engine.flamegraph_tree(&sel, 0).await.unwrap();
        assert_eq!(all.total(), 35, "no span filter keeps samples outside spans");
    }
}

#[cfg(test)]
mod call_site_tests {
    use super::*;

    #[tokio::test]
    async fn call_site_series_sum_the_matching_samples() {
        let head = Arc::new(Head::new());
        let now: i64 = 1_800_000_000_000_000_000;
        let stacks: &[(&[&str], i64)] =
            &[(&["main", "a", "x"], 10), (&["main", "a"], 1), (&["main", "b", "a"], 20), (&["a", "main"], 5)];
        let p = flamedb_ingest::testing::cpu_pprof(stacks, now - 1_000_000_000);
        let d = flamedb_ingest::distributor::Distributor::new(
            head.clone(),
            Arc::new(flamedb_ingest::validate::Limits::default()),
        );
        let labels = vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".into(), "a".into())];
        d.ingest_profile("t", &labels, p, 0, None, now).unwrap();
        let sel = Selection {
            tenants: vec!["t".into()],
            profile_type: ProfileType::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds").unwrap(),
            matchers: vec![],
            range: TimeRange { start_ms: now / 1_000_000 - 60_000, end_ms: now / 1_000_000 },
        };
        let engine = Engine::new(head, 2);
        let sums = |cells: Vec<SeriesCell>| cells.iter().map(|c| (c.sum, c.count)).collect::<Vec<_>>();
        for (call_site, want) in [
            (&["main", "a"][..], vec![(11, 1)]),
            (&["main"][..], vec![(31, 1)]),
            (&["a"][..], vec![(5, 1)]),
            (&["main", "a", "x", "y"][..], vec![]),
            (&["b"][..], vec![]),
        ] {
            let names: Vec<String> = call_site.iter().map(|s| s.to_string()).collect();
            let cells = engine.call_site_series_cells(&sel, 60_000, &[], &names).await.unwrap();
            assert_eq!(sums(cells), want, "{call_site:?}");
        }
        let all = engine.call_site_series_cells(&sel, 60_000, &[], &[]).await.unwrap();
        assert_eq!(sums(all), vec![(36, 1)], "no call site: the profile totals");
    }
}
