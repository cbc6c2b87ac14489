//! `querier.v1.QuerierService` semantics: request validation with the contract's 400s, the
//! label queries answered from the head's series index, and the selects run as DataFusion plans
//! and encoded in the format the client asked for. Transport (Connect, gRPC) lives elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use flamedb_exec::tree::FunctionTree;
use flamedb_ingest::model::labels::{self, is_legacy_label_name};
use flamedb_ingest::model::selector::parse_selector;
use flamedb_ingest::model::{Matcher, ProfileType};
use flamedb_proto::google::v1::Profile;
use flamedb_proto::querier::v1 as q;
use flamedb_proto::types::v1 as t;
use roaring::RoaringBitmap;

use crate::encode;
use crate::error::{QueryError, Result};
use crate::limits::{QueryLimits, TimeRange};
use crate::query::{Engine, Selection};
use crate::spans::sample_selection;

/// Who asks: the tenants whose data the request may read, and whether the client can handle
/// label names outside `[a-zA-Z_][a-zA-Z0-9_]*`.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenants: Vec<String>,
    pub utf8_label_names: bool,
}

/// The query API of one process.
#[derive(Debug, Clone)]
pub struct Querier {
    engine: Engine,
    limits: QueryLimits,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Parses the `matchers` of label requests; several selectors are ANDed (Pyroscope v2).
fn parse_matcher_sets(sets: &[String]) -> Result<Vec<Matcher>> {
    let mut out = Vec::new();
    for s in sets {
        if s.trim().is_empty() {
            continue;
        }
        out.extend(parse_selector(s).map_err(|e| QueryError::invalid(e.to_string()))?);
    }
    Ok(out)
}

fn parse_profile_type(id: &str) -> Result<ProfileType> {
    ProfileType::parse(id).map_err(|e| QueryError::invalid(e.to_string()))
}

fn parse_label_selector(s: &str) -> Result<Vec<Matcher>> {
    if s.is_empty() {
        return Err(QueryError::invalid("label selector is required (use {} for all series)"));
    }
    parse_selector(s).map_err(|e| QueryError::invalid(e.to_string()))
}

impl Querier {
    pub fn new(engine: Engine, limits: QueryLimits) -> Self {
        Self { engine, limits }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs `f` over the series index of every head generation and block of each tenant, with
    /// the ids there that match `matchers` in `range`.
    fn each_index(
        &self,
        tenants: &[String],
        matchers: &[Matcher],
        range: TimeRange,
        mut f: impl FnMut(&flamedb_ingest::head::series::SeriesIndex, &RoaringBitmap),
    ) {
        let (min, max) = range.nanos();
        for t in tenants {
            let snap = self.engine.dataset().snapshot(t);
            for h in &snap.heads {
                h.with_series(|idx| {
                    let sel = idx.select(matchers, min, max);
                    f(idx, &sel)
                });
            }
            for b in snap.blocks.iter().filter(|b| b.meta.overlaps_nanos(min, max)) {
                let sel = b.index.select(matchers, min, max);
                f(&b.index, &sel);
            }
        }
    }

    pub async fn profile_types(
        &self,
        ctx: &RequestContext,
        req: q::ProfileTypesRequest,
    ) -> Result<q::ProfileTypesResponse> {
        let now = now_ms();
        // Both ends missing: the last hour (Grafana's health check sends no range).
        let range = if req.start == 0 && req.end == 0 {
            Some(TimeRange { start_ms: now - 3_600_000, end_ms: now })
        } else {
            self.limits.check_range(req.start, req.end, now)?
        };
        let Some(range) = range else {
            return Ok(q::ProfileTypesResponse::default());
        };
        let mut ids = BTreeSet::new();
        self.each_index(&ctx.tenants, &[], range, |idx, sel| ids.extend(idx.label_values(labels::PROFILE_TYPE, sel)));
        let profile_types = ids
            .into_iter()
            .filter_map(|id| {
                let pt = ProfileType::parse(&id).ok()?;
                Some(t::ProfileType {
                    id,
                    name: pt.name,
                    sample_type: pt.sample_type,
                    sample_unit: pt.sample_unit,
                    period_type: pt.period_type,
                    period_unit: pt.period_unit,
                })
            })
            .collect();
        Ok(q::ProfileTypesResponse { profile_types })
    }

    pub async fn label_names(&self, ctx: &RequestContext, req: t::LabelNamesRequest) -> Result<t::LabelNamesResponse> {
        let matchers = parse_matcher_sets(&req.matchers)?;
        let Some(range) = self.limits.check_range(req.start, req.end, now_ms())? else {
            return Ok(t::LabelNamesResponse::default());
        };
        let mut names = BTreeSet::new();
        self.each_index(&ctx.tenants, &matchers, range, |idx, sel| names.extend(idx.label_names(sel)));
        let names = names.into_iter().filter(|n| ctx.utf8_label_names || is_legacy_label_name(n)).collect();
        Ok(t::LabelNamesResponse { names })
    }

    pub async fn label_values(
        &self,
        ctx: &RequestContext,
        req: t::LabelValuesRequest,
    ) -> Result<t::LabelValuesResponse> {
        if req.name.is_empty() {
            return Err(QueryError::invalid("name is required"));
        }
        let matchers = parse_matcher_sets(&req.matchers)?;
        let Some(range) = self.limits.check_range(req.start, req.end, now_ms())? else {
            return Ok(t::LabelValuesResponse::default());
        };
        let mut values = BTreeSet::new();
        self.each_index(&ctx.tenants, &matchers, range, |idx, sel| values.extend(idx.label_values(&req.name, sel)));
        Ok(t::LabelValuesResponse { names: values.into_iter().collect() })
    }

    pub async fn series(&self, ctx: &RequestContext, req: q::SeriesRequest) -> Result<q::SeriesResponse> {
        let matchers = parse_matcher_sets(&req.matchers)?;
        let Some(range) = self.limits.check_range(req.start, req.end, now_ms())? else {
            return Ok(q::SeriesResponse::default());
        };
        let wanted: BTreeSet<&str> = req.label_names.iter().map(String::as_str).collect();
        let mut sets: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
        self.each_index(&ctx.tenants, &matchers, range, |idx, sel| {
            for id in sel {
                let Some(e) = idx.get(id) else { continue };
                let set: Vec<(String, String)> = e
                    .labels
                    .iter()
                    .filter(|l| wanted.is_empty() || wanted.contains(l.name.as_str()))
                    .filter(|l| ctx.utf8_label_names || is_legacy_label_name(&l.name))
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                if !set.is_empty() {
                    sets.insert(set);
                }
            }
        });
        let labels_set = sets
            .into_iter()
            .map(|s| t::Labels { labels: s.into_iter().map(|(name, value)| t::LabelPair { name, value }).collect() })
            .collect();
        Ok(q::SeriesResponse { labels_set })
    }

    /// Validates a select and returns its selection, or `None` when the range lies wholly before
    /// the lookback (an empty, successful answer).
    pub(crate) fn selection(
        &self,
        ctx: &RequestContext,
        profile_type: &str,
        selector: &str,
        start: i64,
        end: i64,
    ) -> Result<Option<Selection>> {
        let profile_type = parse_profile_type(profile_type)?;
        let matchers = parse_label_selector(selector)?;
        Ok(self.limits.check_range(start, end, now_ms())?.map(|range| Selection {
            tenants: ctx.tenants.clone(),
            profile_type,
            matchers,
            range,
        }))
    }

    /// The merged tree of a select over the samples recorded in one of `spans` (`None` = all),
    /// filtered to a call site when asked, cut to `cut` nodes.
    pub(crate) async fn span_merged_tree(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        call_site: &[t::Location],
        cut: usize,
    ) -> Result<FunctionTree> {
        self.selected_merged_tree(sel, spans, None, call_site, cut).await
    }

    /// [`Querier::span_merged_tree`] of the samples of the profiles with one of `profiles`' ids
    /// (`None` = every profile).
    pub(crate) async fn selected_merged_tree(
        &self,
        sel: &Selection,
        spans: Option<&[u64]>,
        profiles: Option<&[String]>,
        call_site: &[t::Location],
        cut: usize,
    ) -> Result<FunctionTree> {
        if call_site.is_empty() {
            return self.engine.selected_flamegraph_tree(sel, spans, profiles, cut).await;
        }
        let tree = self.engine.selected_flamegraph_tree(sel, spans, profiles, 0).await?;
        let names: Vec<&str> = call_site.iter().map(|l| l.name.as_str()).collect();
        let filtered = crate::call_site::filter(&tree, &names);
        Ok(if cut > 0 { filtered.truncate(cut) } else { filtered })
    }

    pub async fn select_merge_stacktraces(
        &self,
        ctx: &RequestContext,
        req: q::SelectMergeStacktracesRequest,
    ) -> Result<q::SelectMergeStacktracesResponse> {
        let max_nodes = self.limits.max_nodes(req.max_nodes)?;
        let sel = self.selection(ctx, &req.profile_type_id, &req.label_selector, req.start, req.end)?;
        let (spans, profiles) = sample_selection(&req.profile_id_selector, &req.span_selector, &req.trace_id_selector)?;
        let call_site = req.stack_trace_selector.as_ref().map_or(&[][..], |s| &s.call_site[..]);
        let format = q::ProfileFormat::try_from(req.format).unwrap_or(q::ProfileFormat::Unspecified);
        // DOT is drawn from a source tree of max(512, max_nodes) nodes (Pyroscope's rule), so
        // the one tree read is cut to that size for it.
        let cut = match format {
            q::ProfileFormat::Dot => encode::dot_limits(req.max_nodes).0.max(max_nodes),
            _ => max_nodes,
        };
        let tree = match &sel {
            Some(sel) => self.selected_merged_tree(sel, spans.as_deref(), profiles.as_deref(), call_site, cut).await?,
            None => FunctionTree::new(),
        };
        // The tree is cut to the validated limit; the encoding then uses the raw request value
        // (0 = no further cut), as Pyroscope does.
        let raw = req.max_nodes.unwrap_or(0).max(0) as usize;
        let mut resp = q::SelectMergeStacktracesResponse::default();
        match format {
            q::ProfileFormat::Unspecified | q::ProfileFormat::Flamegraph => {
                resp.flamegraph = Some(encode::flamegraph(&tree, raw));
            }
            q::ProfileFormat::Tree => resp.tree = encode::tree_bytes(&tree, raw).into(),
            q::ProfileFormat::Pprof => {
                let pt = parse_profile_type(&req.profile_type_id)?;
                resp.pprof = Some(q::PprofProfile { profile: Some(self.pprof(&tree, &pt, req.start, req.end)) });
            }
            q::ProfileFormat::Dot => {
                let (source, shown) = encode::dot_limits(req.max_nodes);
                let pt = parse_profile_type(&req.profile_type_id)?;
                resp.dot = encode::dot(&tree.truncated(source), &pt.sample_type, &pt.sample_unit, shown);
            }
        }
        Ok(resp)
    }

    fn pprof(&self, tree: &FunctionTree, pt: &ProfileType, start_ms: i64, end_ms: i64) -> Profile {
        encode::to_pprof(
            tree,
            (&pt.sample_type, &pt.sample_unit),
            (&pt.period_type, &pt.period_unit),
            0,
            start_ms.saturating_mul(1_000_000),
            end_ms.saturating_sub(start_ms).saturating_mul(1_000_000),
        )
    }

    pub async fn select_merge_profile(
        &self,
        ctx: &RequestContext,
        req: q::SelectMergeProfileRequest,
    ) -> Result<Profile> {
        // Untruncated unless the client asks for a limit.
        let cut = match req.max_nodes {
            Some(n) if n != 0 => self.limits.max_nodes(Some(n))?,
            _ => 0,
        };
        let sel = self.selection(ctx, &req.profile_type_id, &req.label_selector, req.start, req.end)?;
        let (spans, profiles) = sample_selection(&req.profile_id_selector, &[], &req.trace_id_selector)?;
        if req.stack_trace_selector.as_ref().is_some_and(|s| s.go_pgo.is_some()) {
            return Err(QueryError::unimplemented("the Go PGO stack trace selector is not supported yet"));
        }
        let call_site = req.stack_trace_selector.as_ref().map_or(&[][..], |s| &s.call_site[..]);
        let pt = parse_profile_type(&req.profile_type_id)?;
        let tree = match &sel {
            Some(sel) => self.selected_merged_tree(sel, spans.as_deref(), profiles.as_deref(), call_site, cut).await?,
            None => return Ok(Profile::default()),
        };
        Ok(self.pprof(&tree, &pt, req.start, req.end))
    }

    pub async fn select_series(
        &self,
        ctx: &RequestContext,
        req: q::SelectSeriesRequest,
    ) -> Result<q::SelectSeriesResponse> {
        if !req.step.is_finite() || req.step < 0.001 {
            return Err(QueryError::invalid(format!("invalid step {}: it must be at least 0.001 seconds", req.step)));
        }
        let sel = self.selection(ctx, &req.profile_type_id, &req.label_selector, req.start, req.end)?;
        if req.stack_trace_selector.as_ref().is_some_and(|s| s.go_pgo.is_some()) {
            return Err(QueryError::unimplemented("the Go PGO stack trace selector is not supported yet"));
        }
        let call_site: Vec<String> =
            req.stack_trace_selector.iter().flat_map(|s| s.call_site.iter().map(|l| l.name.clone())).collect();
        let Some(sel) = sel else {
            return Ok(q::SelectSeriesResponse::default());
        };
        let average = req.aggregation == Some(t::TimeSeriesAggregationType::Average as i32);
        let step_ms = ((req.step * 1000.0).round() as i64).max(1);
        let cells = self.engine.call_site_series_cells(&sel, step_ms, &req.group_by, &call_site).await?;

        // A series without a group-by label has no pair for it (its value reads as "").
        let mut groups: BTreeMap<GroupKey, BTreeMap<i64, (i64, i64)>> = BTreeMap::new();
        for c in &cells {
            let key: GroupKey = req
                .group_by
                .iter()
                .zip(&c.group)
                .filter_map(|(g, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (g.clone(), v.clone())))
                .collect();
            let p = groups.entry(key).or_default().entry(c.timestamp_ms).or_insert((0, 0));
            p.0 += c.sum;
            p.1 += c.count;
        }
        let mut series: Vec<(f64, t::Series)> = groups
            .into_iter()
            .map(|(key, points)| {
                let points: Vec<t::Point> = points
                    .into_iter()
                    .map(|(ts, (s, n))| t::Point {
                        value: if average && n > 0 { s as f64 / n as f64 } else { s as f64 },
                        timestamp: ts,
                        ..Default::default()
                    })
                    .collect();
                let total = points.iter().map(|p| p.value).sum::<f64>();
                let labels = key.into_iter().map(|(name, value)| t::LabelPair { name, value }).collect();
                (total, t::Series { labels, points })
            })
            .collect();
        if let Some(limit) = req.limit.filter(|&l| l > 0)
            && series.len() > limit as usize
        {
            // Top-N by total; ties keep label order.
            let mut order: Vec<usize> = (0..series.len()).collect();
            order.sort_by(|&a, &b| series[b].0.total_cmp(&series[a].0).then(a.cmp(&b)));
            let keep: BTreeSet<usize> = order.into_iter().take(limit as usize).collect();
            series = series.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, s)| s).collect();
        }
        Ok(q::SelectSeriesResponse { series: series.into_iter().map(|(_, s)| s).collect() })
    }

    pub async fn get_profile_stats(
        &self,
        ctx: &RequestContext,
        _req: t::GetProfileStatsRequest,
    ) -> Result<t::GetProfileStatsResponse> {
        if ctx.tenants.len() != 1 {
            return Err(QueryError::invalid("GetProfileStats needs exactly one tenant"));
        }
        let mut resp = t::GetProfileStatsResponse::default();
        let snap = self.engine.dataset().snapshot(&ctx.tenants[0]);
        let mut range: Option<(i64, i64)> = None;
        let mut widen = |a: i64, b: i64| range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        for h in &snap.heads {
            let s = h.stats();
            if let (Some(min), Some(max)) = (s.min_time_nanos, s.max_time_nanos) {
                widen(min / 1_000_000, max / 1_000_000);
            }
        }
        for b in &snap.blocks {
            widen(b.meta.min_time, b.meta.max_time);
        }
        if let Some((min, max)) = range {
            resp.data_ingested = true;
            resp.oldest_profile_time = min;
            resp.newest_profile_time = max;
        }
        Ok(resp)
    }
}

/// Group-by label pairs of a time series.
type GroupKey = Vec<(String, String)>;
