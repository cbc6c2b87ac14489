//! Span selectors: `span_selector` on SelectMergeStacktraces and SelectMergeSpanProfile keep only
//! the samples recorded in one of the given spans. The ids arrive as 16 hex digits and are read
//! the way ingest reads the `span_id` sample label (`normalize.rs`: the digits as a big-endian
//! u64), so a selector names exactly the ids the scans find in the `span_id` column.

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::querier::v1 as q;

use crate::api::{Querier, RequestContext};
use crate::encode;
use crate::error::{QueryError, Result};

/// Length of a span id in hex digits (8 bytes).
const SPAN_ID_DIGITS: usize = 16;

/// Parses a span selector into sorted, distinct ids; anything but 16 hex digits is a 400.
pub fn parse_span_ids(spans: &[String]) -> Result<Vec<u64>> {
    let mut ids = Vec::with_capacity(spans.len());
    for s in spans {
        if s.len() != SPAN_ID_DIGITS || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(QueryError::invalid(format!("invalid span id {s:?}: a span id is 16 hex digits")));
        }
        let id = u64::from_str_radix(s, 16).map_err(|e| QueryError::invalid(format!("invalid span id {s:?}: {e}")))?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The span filter of a select (`None` when no span selector is given) after checking the
/// selectors it cannot answer: `profile_id_selector` (answered by [`sample_selection`] for the
/// selects that pass profile ids on to the scans; the others, such as Diff, still refuse it) and
/// `trace_id_selector` (v2 only; the contract's v1 answer is unimplemented). Spans and traces
/// together are refused as Pyroscope does.
pub(crate) fn span_selection(profile_ids: &[String], spans: &[String], traces: &[String]) -> Result<Option<Vec<u64>>> {
    if !spans.is_empty() && !traces.is_empty() {
        return Err(QueryError::invalid("span_selector cannot be combined with trace_id_selector"));
    }
    if !profile_ids.is_empty() {
        return Err(QueryError::unimplemented("profile_id_selector is not supported yet"));
    }
    if !traces.is_empty() {
        return Err(QueryError::unimplemented("trace_id_selector is not supported yet"));
    }
    if spans.is_empty() {
        return Ok(None);
    }
    parse_span_ids(spans).map(Some)
}

/// Span and profile filters of a select (each `None` when not given).
pub(crate) type SampleFilters = (Option<Vec<u64>>, Option<Vec<String>>);

/// [`span_selection`] for the selects that answer `profile_id_selector` (SelectMergeStacktraces
/// and SelectMergeProfile): the ids are passed through as given (the scans compare them
/// lowercase, as UUIDs are written); an empty selector means no profile filter.
pub(crate) fn sample_selection(profile_ids: &[String], spans: &[String], traces: &[String]) -> Result<SampleFilters> {
    let spans = span_selection(&[], spans, traces)?;
    let profiles = (!profile_ids.is_empty()).then(|| profile_ids.to_vec());
    Ok((spans, profiles))
}

impl Querier {
    /// SelectMergeSpanProfile: the merged flame graph (or tree bytes) of the samples recorded
    /// in one of the selected spans. An empty selector selects nothing.
    pub async fn select_merge_span_profile(
        &self,
        ctx: &RequestContext,
        req: q::SelectMergeSpanProfileRequest,
    ) -> Result<q::SelectMergeSpanProfileResponse> {
        let max_nodes = self.limits().max_nodes(req.max_nodes)?;
        let sel = self.selection(ctx, &req.profile_type_id, &req.label_selector, req.start, req.end)?;
        let spans = parse_span_ids(&req.span_selector)?;
        let tree = match &sel {
            Some(sel) if !spans.is_empty() => self.span_merged_tree(sel, Some(&spans), &[], max_nodes).await?,
            _ => FunctionTree::new(),
        };
        let raw = req.max_nodes.unwrap_or(0).max(0) as usize;
        let mut resp = q::SelectMergeSpanProfileResponse::default();
        match q::ProfileFormat::try_from(req.format).unwrap_or(q::ProfileFormat::Unspecified) {
            q::ProfileFormat::Tree => resp.tree = encode::tree_bytes(&tree, raw).into(),
            q::ProfileFormat::Unspecified | q::ProfileFormat::Flamegraph => {
                resp.flamegraph = Some(encode::flamegraph(&tree, raw));
            }
            other => {
                return Err(QueryError::invalid(format!(
                    "SelectMergeSpanProfile answers flame graphs and trees, not {}",
                    other.as_str_name()
                )));
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_parse_like_ingest() {
        let ids =
            parse_span_ids(&["00000000000000ef".into(), "FFFFFFFFFFFFFFFF".into(), "00000000000000EF".into()]).unwrap();
        assert_eq!(ids, vec![0xef, u64::MAX]);
        for bad in ["ef", "00000000000000eg", "+0000000000000ef", "000000000000000ef0"] {
            let e = parse_span_ids(&[bad.to_string()]).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn selector_combinations() {
        assert_eq!(span_selection(&[], &[], &[]).unwrap(), None);
        assert_eq!(span_selection(&[], &["0000000000000001".into()], &[]).unwrap(), Some(vec![1]));
        let t = vec!["0123456789abcdef0123456789abcdef".to_string()];
        assert_eq!(span_selection(&[], &[], &t).unwrap_err().kind, crate::ErrorKind::Unimplemented);
        assert_eq!(
            span_selection(&[], &["0000000000000001".into()], &t).unwrap_err().kind,
            crate::ErrorKind::InvalidArgument
        );
        assert_eq!(span_selection(&["p".into()], &[], &[]).unwrap_err().kind, crate::ErrorKind::Unimplemented);
        let (s, p) = sample_selection(&["p".into()], &[], &[]).unwrap();
        assert_eq!((s, p), (None, Some(vec!["p".to_string()])));
    }
}
