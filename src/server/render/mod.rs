//! The legacy HTTP query endpoints Pyroscope still serves (contract 6), all `GET`:
//! `/pyroscope/render` (flamebearer JSON with a timeline, or DOT text), `/pyroscope/render-diff`
//! (a "double" flamebearer) and `/pyroscope/label-values`. Grafana's apps, mcp-grafana and
//! scripts written for the OG Pyroscope call them. Each is a thin layer over the query API:
//! parameters in, `Querier` calls, Pyroscope's JSON shapes out, errors as Connect-style JSON.

pub mod flamebearer;
pub mod params;
pub mod step;
pub mod timeline;

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use flamedb_ingest::model::labels;
use flamedb_planner::{ErrorKind, QueryError, RequestContext};
use flamedb_proto::querier::v1 as q;
use flamedb_proto::types::v1 as t;
use http::{HeaderMap, HeaderValue, header};
use tonic::Code;

use super::connect::error_response;
use super::services::{Api, now_nanos, utf8_label_names};
use super::tenant::{self, ORG_ID_HEADER};
use params::{ParamError, Params};

/// A handler's failure, already in the status and code it answers with.
struct Failure(Code, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1)
    }
}

impl From<ParamError> for Failure {
    fn from(e: ParamError) -> Self {
        Failure(Code::InvalidArgument, e.to_string())
    }
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Self {
        let code = match e.kind {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::Unimplemented => Code::Unimplemented,
            ErrorKind::Internal => {
                tracing::error!(error = %e.message, "legacy query failed");
                Code::Internal
            }
        };
        Failure(code, e.message)
    }
}

/// The tenants (401 when multitenancy is on and the header is missing or invalid).
fn context(api: &Api, headers: &HeaderMap) -> Result<RequestContext, Failure> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tenants = tenant::read_tenants(header(ORG_ID_HEADER), api.multitenancy)
        .map_err(|e| Failure(Code::Unauthenticated, e.to_string()))?;
    Ok(RequestContext { tenants, utf8_label_names: utf8_label_names(header("accept")) })
}

fn json(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response(),
        Err(e) => Failure(Code::Internal, format!("encoding the response: {e}")).into_response(),
    }
}

/// `GET /pyroscope/render`.
pub async fn render(State(api): State<Api>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    render_inner(&api, query.as_deref(), &headers).await.unwrap_or_else(IntoResponse::into_response)
}

async fn render_inner(api: &Api, query: Option<&str>, headers: &HeaderMap) -> Result<Response, Failure> {
    let ctx = context(api, headers)?;
    let params = Params::parse(query)?;
    let sel = params::select(&params, params::SINGLE, now_nanos())?;
    let merge = |format: q::ProfileFormat| q::SelectMergeStacktracesRequest {
        profile_type_id: sel.profile_type_id.clone(),
        label_selector: sel.selector.clone(),
        start: sel.start_ms,
        end: sel.end_ms,
        max_nodes: Some(sel.max_nodes),
        format: format as i32,
        ..Default::default()
    };

    if params.get("format") == Some("dot") {
        let resp = api.querier.select_merge_stacktraces(&ctx, merge(q::ProfileFormat::Dot)).await?;
        let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
        return Ok(([(header::CONTENT_TYPE, content_type)], resp.dot).into_response());
    }

    let group_by = params.all("groupBy");
    let aggregation = match params.get("aggregation") {
        Some("avg") => t::TimeSeriesAggregationType::Average,
        _ => t::TimeSeriesAggregationType::Sum,
    };
    let step = step::point_interval_secs(sel.start_ms, sel.end_ms);
    let series = q::SelectSeriesRequest {
        profile_type_id: sel.profile_type_id.clone(),
        label_selector: sel.selector.clone(),
        start: sel.start_ms,
        end: sel.end_ms,
        group_by: group_by.clone(),
        step,
        aggregation: Some(aggregation as i32),
        ..Default::default()
    };
    let (flame, series) = tokio::try_join!(
        api.querier.select_merge_stacktraces(&ctx, merge(q::ProfileFormat::Flamegraph)),
        api.querier.select_series(&ctx, series),
    )?;

    let step_secs = step as i64;
    let line = |s: &t::Series| timeline::timeline(&s.points, sel.start_ms, sel.end_ms, step_secs);
    // The main timeline is the one series there is, or zeros when grouping split it.
    let main = match series.series.as_slice() {
        [only] => line(only),
        _ => timeline::timeline(&[], sel.start_ms, sel.end_ms, step_secs),
    };
    let groups = group_by.first().map(|first| {
        let mut groups: BTreeMap<String, timeline::Timeline> = BTreeMap::new();
        for s in &series.series {
            // Keyed by the first group-by label only, as Pyroscope does; series that share that
            // value (grouping by several labels) are summed.
            let key = s.labels.iter().find(|l| &l.name == first).map_or_else(|| "*".to_owned(), |l| l.value.clone());
            let tl = line(s);
            match groups.get_mut(&key) {
                Some(existing) => {
                    for (a, b) in existing.samples.iter_mut().zip(&tl.samples) {
                        *a = a.saturating_add(*b);
                    }
                }
                None => {
                    groups.insert(key, tl);
                }
            }
        }
        groups
    });
    let fg = flame.flamegraph.unwrap_or_default();
    Ok(json(&flamebearer::single(&fg, &sel.profile_type, main, groups)))
}

/// `GET /pyroscope/render-diff`.
pub async fn render_diff(State(api): State<Api>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    render_diff_inner(&api, query.as_deref(), &headers).await.unwrap_or_else(IntoResponse::into_response)
}

async fn render_diff_inner(api: &Api, query: Option<&str>, headers: &HeaderMap) -> Result<Response, Failure> {
    let ctx = context(api, headers)?;
    let params = Params::parse(query)?;
    let now = now_nanos();
    let left = params::select(&params, params::LEFT, now)?;
    let right = params::select(&params, params::RIGHT, now)?;
    if left.profile_type_id != right.profile_type_id {
        return Err(ParamError::TypesDiffer.into());
    }
    let side = |s: &params::Select| q::SelectMergeStacktracesRequest {
        profile_type_id: s.profile_type_id.clone(),
        label_selector: s.selector.clone(),
        start: s.start_ms,
        end: s.end_ms,
        max_nodes: Some(s.max_nodes),
        ..Default::default()
    };
    let req = q::DiffRequest { left: Some(side(&left)), right: Some(side(&right)) };
    let resp = api.querier.diff(&ctx, req).await?;
    let fg = resp.flamegraph.unwrap_or_default();
    Ok(json(&flamebearer::diff(&fg, &left.profile_type)))
}

/// `GET /pyroscope/label-values?label=...`.
///
/// `label=__name__` lists the profile type ids (ProfileTypes), as in Pyroscope. For any other
/// label Pyroscope calls LabelValues without the label name and answers its error (a bug); this
/// serves the label's values instead, within the `from`/`until` range (default: the last hour)
/// and the optional `query` selector, which is what a caller of this URL expects.
pub async fn label_values(State(api): State<Api>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    label_values_inner(&api, query.as_deref(), &headers).await.unwrap_or_else(IntoResponse::into_response)
}

async fn label_values_inner(api: &Api, query: Option<&str>, headers: &HeaderMap) -> Result<Response, Failure> {
    let ctx = context(api, headers)?;
    let params = Params::parse(query)?;
    let label = params.get("label").filter(|l| !l.is_empty()).ok_or(ParamError::Missing("label"))?;
    let now = now_nanos();
    let (from, until) = (params.get("from"), params.get("until"));
    let range = (from.is_some() || until.is_some())
        .then(|| (params::time_ms(from.or(Some("now-1h")), now), params::time_ms(until, now)));

    let values: Vec<String> = if label == labels::METRIC_NAME {
        // No range: ProfileTypes' own default, the last hour.
        let (start, end) = range.unwrap_or((0, 0));
        let resp = api.querier.profile_types(&ctx, q::ProfileTypesRequest { start, end }).await?;
        resp.profile_types.into_iter().map(|p| p.id).collect()
    } else {
        let (start, end) = range.unwrap_or_else(|| {
            let now_ms = now / 1_000_000;
            (now_ms - 3_600_000, now_ms)
        });
        let matchers = match params.get("query").filter(|q| !q.is_empty()) {
            Some(_) => vec![label_values_selector(&params)?],
            None => Vec::new(),
        };
        let req = t::LabelValuesRequest { name: label.to_owned(), matchers, start, end };
        api.querier.label_values(&ctx, req).await?.names
    };
    Ok(json(&values))
}

/// The `query` of label-values as a selector: a leading profile type id (optional here)
/// becomes a `__profile_type__` matcher.
fn label_values_selector(params: &Params) -> Result<String, ParamError> {
    let q = params.get("query").unwrap_or("");
    let (id, mut matchers) = flamedb_ingest::model::selector::parse_query(q)
        .map_err(|e| ParamError::Invalid { field: "query", reason: e.to_string() })?;
    if !id.is_empty() {
        let pt = flamedb_ingest::model::ProfileType::parse(&id)
            .map_err(|e| ParamError::Invalid { field: "query", reason: e.to_string() })?;
        matchers.push(flamedb_ingest::model::Matcher::equal(labels::PROFILE_TYPE, pt.id()));
    }
    Ok(params::selector_string(&matchers))
}
