//! AnalyzeQuery: what a query over a time range would read, per storage component, named as
//! Pyroscope names them. "Short term storage" is the ingester head (one "block" per head
//! generation: the live one and any being flushed), "Long term storage" the blocks in the
//! bucket. As in Pyroscope, the counts and sizes are those of whole blocks overlapping the range
//! (what the query has to open), while `total_queried_series` counts the distinct series the
//! query's selector matches there.

use std::collections::HashSet;

use flamedb_ingest::model::labels::{METRIC_NAME, PROFILE_TYPE};
use flamedb_ingest::model::selector::parse_query;
use flamedb_ingest::model::{MatchOp, Matcher};
use flamedb_proto::querier::v1 as q;

use crate::api::{Querier, RequestContext, now_ms};
use crate::error::{QueryError, Result};

/// Block files by what they hold (docs/block-format.md).
const INDEX_FILE: &str = "index.parquet";
const PROFILES_FILE: &str = "profiles.parquet";
const SYMBOLS_DIR: &str = "symbols/";

/// Pyroscope's component names for the ingesters and the store gateways.
pub const SHORT_TERM: &str = "Short term storage";
pub const LONG_TERM: &str = "Long term storage";

/// The matchers of an AnalyzeQuery `query` (`<profile type>{selectors}`; empty = everything):
/// the metric-name part, or any `__name__` matcher, selects on `__profile_type__`.
pub fn analyze_matchers(query: &str) -> Result<Vec<Matcher>> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    let (id, mut matchers) = parse_query(query).map_err(|e| QueryError::invalid(e.to_string()))?;
    for m in &mut matchers {
        if m.name == METRIC_NAME {
            m.name = PROFILE_TYPE.to_string();
        }
    }
    if !id.is_empty() {
        matchers.push(Matcher::new(MatchOp::Equal, PROFILE_TYPE, id).map_err(|e| QueryError::invalid(e.to_string()))?);
    }
    Ok(matchers)
}

fn scope(name: &str) -> q::QueryScope {
    q::QueryScope { component_type: name.to_string(), ..Default::default() }
}

impl Querier {
    /// AnalyzeQuery: both scopes always (zeros where nothing is read), and the query impact.
    pub async fn analyze_query(
        &self,
        ctx: &RequestContext,
        req: q::AnalyzeQueryRequest,
    ) -> Result<q::AnalyzeQueryResponse> {
        let matchers = analyze_matchers(&req.query)?;
        let range = self.limits().check_range(req.start, req.end, now_ms())?;
        let mut short = scope(SHORT_TERM);
        let mut long = scope(LONG_TERM);
        // Series are told apart by the fingerprint of their labels, the same in heads and blocks.
        let mut series: HashSet<u64> = HashSet::new();
        if let Some(range) = range {
            let (min, max) = range.nanos();
            for tenant in &ctx.tenants {
                let snap = self.engine().dataset().snapshot(tenant);
                for h in &snap.heads {
                    let stats = h.stats();
                    let overlaps = matches!((stats.min_time_nanos, stats.max_time_nanos),
                        (Some(lo), Some(hi)) if hi >= min && lo <= max);
                    if !overlaps {
                        continue;
                    }
                    short.block_count += 1;
                    short.series_count += stats.series as u64;
                    short.profile_count += stats.profiles as u64;
                    short.sample_count += stats.samples as u64;
                    let chunks = h.profile_chunks().into_iter().chain(h.sample_chunks());
                    short.profile_bytes += chunks.map(|c| c.batch.get_array_memory_size() as u64).sum::<u64>();
                    short.symbol_bytes +=
                        h.partitions().iter().map(|p| p.symbols.read().approx_bytes() as u64).sum::<u64>();
                    h.with_series(|idx| {
                        short.index_bytes += idx
                            .entries()
                            .iter()
                            .map(|e| e.labels.iter().map(|l| (l.name.len() + l.value.len()) as u64).sum::<u64>())
                            .sum::<u64>();
                        let sel = idx.select(&matchers, min, max);
                        series.extend(sel.iter().filter_map(|id| idx.get(id).map(|e| e.fingerprint)));
                    });
                }
                for b in snap.blocks.iter().filter(|b| b.meta.overlaps_nanos(min, max)) {
                    long.block_count += 1;
                    long.series_count += b.meta.stats.num_series;
                    long.profile_count += b.meta.stats.num_profiles;
                    long.sample_count += b.meta.stats.num_samples;
                    for f in &b.meta.files {
                        if f.rel_path == INDEX_FILE {
                            long.index_bytes += f.size_bytes;
                        } else if f.rel_path == PROFILES_FILE {
                            long.profile_bytes += f.size_bytes;
                        } else if f.rel_path.starts_with(SYMBOLS_DIR) {
                            long.symbol_bytes += f.size_bytes;
                        }
                    }
                    let sel = b.index.select(&matchers, min, max);
                    series.extend(sel.iter().filter_map(|id| b.index.get(id).map(|e| e.fingerprint)));
                }
            }
        }
        // One process answers for each component it read.
        short.component_count = u64::from(short.block_count > 0);
        long.component_count = u64::from(long.block_count > 0);
        let total_bytes = [&short, &long].iter().map(|s| s.index_bytes + s.profile_bytes + s.symbol_bytes).sum();
        Ok(q::AnalyzeQueryResponse {
            query_scopes: vec![short, long],
            query_impact: Some(q::QueryImpact {
                total_bytes_in_time_range: total_bytes,
                total_queried_series: series.len() as u64,
                deduplication_needed: false,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_matchers() {
        assert!(analyze_matchers("").unwrap().is_empty());
        let m = analyze_matchers(r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="a"}"#).unwrap();
        assert_eq!(
            m,
            vec![
                Matcher::equal("service_name", "a"),
                Matcher::equal(PROFILE_TYPE, "process_cpu:cpu:nanoseconds:cpu:nanoseconds")
            ]
        );
        assert_eq!(analyze_matchers("{}").unwrap(), vec![]);
        assert!(analyze_matchers("{service_name=}").is_err());
    }
}
