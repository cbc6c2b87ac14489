//! Label matchers and time ranges as DataFusion expressions, in both directions: the planner turns
//! a selector into `Expr`s, and the head scan turns the `Expr`s it is offered back into matchers
//! it answers from its series index. Keeping both here keeps the two in agreement.

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, expr::InList};
use datafusion::prelude::{col, lit};
use flamedb_ingest::head::columns::TIME_ZONE;
use flamedb_ingest::model::{MatchOp, Matcher};

use crate::schema::col as c;
use crate::udf::label::{self, label_udf};

/// What a head scan keeps: series matching every matcher, rows with time in `[min, max]` (ns),
/// and, for the samples table, only samples recorded in one of `span_ids` when that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFilter {
    pub matchers: Vec<Matcher>,
    pub min_time_nanos: i64,
    pub max_time_nanos: i64,
    /// Sorted, distinct span ids a sample must carry (`None`: no span filter). Span selectors
    /// (SelectMergeSpanProfile, `span_selector`) are pushed down here so the scans drop the other
    /// samples before they reach the flame-graph aggregate.
    pub span_ids: Option<Vec<u64>>,
    /// Sorted, distinct, lowercase profile ids whose rows are kept (`None`: no profile filter).
    /// `profile_id_selector` is set here by the planner (the samples table has no profile id
    /// column): the head scan keeps the samples of the selected profile rows, and a block scan
    /// drops the other profile rows before unnesting their samples.
    pub profile_ids: Option<Vec<String>>,
}

impl Default for ScanFilter {
    fn default() -> Self {
        Self {
            matchers: Vec::new(),
            min_time_nanos: i64::MIN,
            max_time_nanos: i64::MAX,
            span_ids: None,
            profile_ids: None,
        }
    }
}

/// The regex prefix and suffix that make a DataFusion (unanchored) regex match a whole value, as
/// Prometheus matchers do.
const ANCHOR_START: &str = "^(?s:";
const ANCHOR_END: &str = ")$";

/// `label(labels, name) <op> value`, with regexes anchored.
pub fn matcher_expr(m: &Matcher) -> Expr {
    let lhs = label_udf().call(vec![col(c::LABELS), lit(m.name.clone())]);
    match m.op {
        MatchOp::Equal => lhs.eq(lit(m.value.clone())),
        MatchOp::NotEqual => lhs.not_eq(lit(m.value.clone())),
        MatchOp::Regex => binary(lhs, Operator::RegexMatch, anchored(&m.value)),
        MatchOp::NotRegex => binary(lhs, Operator::RegexNotMatch, anchored(&m.value)),
    }
}

fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

fn anchored(re: &str) -> Expr {
    lit(format!("{ANCHOR_START}{re}{ANCHOR_END}"))
}

/// A nanosecond timestamp literal of the `time` columns' type.
pub fn time_lit(nanos: i64) -> Expr {
    Expr::Literal(ScalarValue::TimestampNanosecond(Some(nanos), Some(TIME_ZONE.into())), None)
}

/// `span_id IN (ids)`: keeps the samples recorded in one of the spans.
pub fn span_expr(ids: &[u64]) -> Expr {
    col(c::SPAN_ID).in_list(ids.iter().map(|&id| lit(id)).collect(), false)
}

/// `time >= min AND time <= max` as two conjuncts.
pub fn time_range_exprs(min_nanos: i64, max_nanos: i64) -> Vec<Expr> {
    vec![col(c::TIME).gt_eq(time_lit(min_nanos)), col(c::TIME).lt_eq(time_lit(max_nanos))]
}

impl ScanFilter {
    /// Whether the scan can evaluate `e` exactly.
    pub fn understands(e: &Expr) -> bool {
        ScanFilter::default().add(e)
    }

    /// Narrows the filter by `e`; false (and unchanged) when `e` is not a matcher or time bound.
    pub fn add(&mut self, e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(b) => self.add_binary(b),
            Expr::Between(bt) if !bt.negated && is_time_column(&bt.expr) => {
                match (timestamp(&bt.low), timestamp(&bt.high)) {
                    (Some(lo), Some(hi)) => {
                        self.min_time_nanos = self.min_time_nanos.max(lo);
                        self.max_time_nanos = self.max_time_nanos.min(hi);
                        true
                    }
                    _ => false,
                }
            }
            Expr::InList(InList { expr, list, negated: false }) if is_column(expr, c::SPAN_ID) => {
                match list.iter().map(span_literal).collect::<Option<Vec<_>>>() {
                    Some(ids) => {
                        self.keep_spans(ids);
                        true
                    }
                    None => false,
                }
            }
            Expr::InList(InList { expr, list, negated }) => {
                let (Some(name), Some(values)) =
                    (label_name(expr), list.iter().map(string).collect::<Option<Vec<_>>>())
                else {
                    return false;
                };
                let alternation = values.iter().map(|v| regex::escape(v)).collect::<Vec<_>>().join("|");
                let op = if *negated { MatchOp::NotRegex } else { MatchOp::Regex };
                match Matcher::new(op, name, alternation) {
                    Ok(m) => {
                        self.matchers.push(m);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    /// Narrows the span filter to `ids` (an intersection when one is already set).
    fn keep_spans(&mut self, mut ids: Vec<u64>) {
        ids.sort_unstable();
        ids.dedup();
        self.span_ids = Some(match self.span_ids.take() {
            Some(old) => ids.into_iter().filter(|id| old.binary_search(id).is_ok()).collect(),
            None => ids,
        });
    }

    /// Narrows the profile filter to `ids` (compared lowercase; an intersection when one is
    /// already set).
    pub fn keep_profiles(&mut self, ids: &[String]) {
        let mut ids: Vec<String> = ids.iter().map(|s| s.to_ascii_lowercase()).collect();
        ids.sort_unstable();
        ids.dedup();
        self.profile_ids = Some(match self.profile_ids.take() {
            Some(old) => ids.into_iter().filter(|id| old.binary_search(id).is_ok()).collect(),
            None => ids,
        });
    }

    /// Whether a row of the profile with id `id` (`None`: the profile has no id) passes.
    pub fn keeps_profile(&self, id: Option<&str>) -> bool {
        match &self.profile_ids {
            None => true,
            Some(ids) => id.is_some_and(|id| {
                if id.bytes().any(|b| b.is_ascii_uppercase()) {
                    ids.binary_search(&id.to_ascii_lowercase()).is_ok()
                } else {
                    ids.binary_search_by(|p| p.as_str().cmp(id)).is_ok()
                }
            }),
        }
    }

    /// Whether a sample with span `span` (`None`: recorded outside any span) passes the filter.
    pub fn keeps_span(&self, span: Option<u64>) -> bool {
        match &self.span_ids {
            None => true,
            Some(ids) => span.is_some_and(|s| ids.binary_search(&s).is_ok()),
        }
    }

    fn add_binary(&mut self, b: &BinaryExpr) -> bool {
        let (l, op, r) = (&*b.left, b.op, &*b.right);
        if op == Operator::Eq {
            let span = if is_column(l, c::SPAN_ID) {
                span_literal(r)
            } else if is_column(r, c::SPAN_ID) {
                span_literal(l)
            } else {
                None
            };
            if let Some(id) = span {
                self.keep_spans(vec![id]);
                return true;
            }
        }
        if let (Some(name), Some(value)) = (label_name(l), string(r)) {
            return self.add_matcher(name, op, value);
        }
        if let (Some(value), Some(name)) = (string(l), label_name(r))
            && matches!(op, Operator::Eq | Operator::NotEq)
        {
            return self.add_matcher(name, op, value);
        }
        let (op, t) = if is_time_column(l) {
            (op, timestamp(r))
        } else if is_time_column(r) {
            match op.swap() {
                Some(op) => (op, timestamp(l)),
                None => return false,
            }
        } else {
            return false;
        };
        let Some(t) = t else { return false };
        match op {
            Operator::GtEq => self.min_time_nanos = self.min_time_nanos.max(t),
            Operator::Gt => self.min_time_nanos = self.min_time_nanos.max(t.saturating_add(1)),
            Operator::LtEq => self.max_time_nanos = self.max_time_nanos.min(t),
            Operator::Lt => self.max_time_nanos = self.max_time_nanos.min(t.saturating_sub(1)),
            Operator::Eq => {
                self.min_time_nanos = self.min_time_nanos.max(t);
                self.max_time_nanos = self.max_time_nanos.min(t);
            }
            _ => return false,
        }
        true
    }

    fn add_matcher(&mut self, name: String, op: Operator, value: String) -> bool {
        let m = match op {
            Operator::Eq => Matcher::new(MatchOp::Equal, name, value),
            Operator::NotEq => Matcher::new(MatchOp::NotEqual, name, value),
            Operator::RegexMatch => Matcher::new(MatchOp::Regex, name, unanchor(&value)),
            Operator::RegexNotMatch => Matcher::new(MatchOp::NotRegex, name, unanchor(&value)),
            _ => return false,
        };
        match m {
            Ok(m) => {
                self.matchers.push(m);
                true
            }
            Err(_) => false,
        }
    }
}

/// The matcher pattern equivalent to a DataFusion regex: ours come back as they went in; any other
/// is a substring search, which an anchored matcher expresses as `.*(?:re).*`.
fn unanchor(re: &str) -> String {
    match re.strip_prefix(ANCHOR_START).and_then(|r| r.strip_suffix(ANCHOR_END)) {
        Some(inner) => inner.to_string(),
        None => format!(".*(?:{re}).*"),
    }
}

/// `label(labels, 'name')` -> `name`.
fn label_name(e: &Expr) -> Option<String> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    if f.func.name() != label::NAME {
        return None;
    }
    match f.args.as_slice() {
        [Expr::Column(Column { name, .. }), n] if name == c::LABELS => string(n),
        _ => None,
    }
}

fn string(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

fn is_time_column(e: &Expr) -> bool {
    is_column(e, c::TIME)
}

fn is_column(e: &Expr, column: &str) -> bool {
    matches!(e, Expr::Column(Column { name, .. }) if name == column)
}

/// A span id literal (`span_id` is UInt64; other integer literals are accepted when they fit).
fn span_literal(e: &Expr) -> Option<u64> {
    match e {
        Expr::Literal(ScalarValue::UInt64(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => u64::try_from(*v).ok(),
        _ => None,
    }
}

fn timestamp(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) => Some(*v),
        Expr::Literal(ScalarValue::TimestampMicrosecond(Some(v), _), _) => v.checked_mul(1_000),
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(v), _), _) => v.checked_mul(1_000_000),
        Expr::Literal(ScalarValue::TimestampSecond(Some(v), _), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_round_trip() {
        for (op, v) in
            [(MatchOp::Equal, "a"), (MatchOp::NotEqual, "b"), (MatchOp::Regex, "c.*"), (MatchOp::NotRegex, "d|e")]
        {
            let m = Matcher::new(op, "service_name", v).unwrap();
            let mut f = ScanFilter::default();
            assert!(f.add(&matcher_expr(&m)), "{m}");
            assert_eq!(f.matchers, vec![m]);
        }
    }

    #[test]
    fn time_bounds() {
        let mut f = ScanFilter::default();
        for e in time_range_exprs(10, 20) {
            assert!(f.add(&e));
        }
        assert_eq!((f.min_time_nanos, f.max_time_nanos), (10, 20));
        assert!(f.add(&col(c::TIME).lt(time_lit(15))));
        assert_eq!(f.max_time_nanos, 14);
        assert!(f.add(&time_lit(12).lt(col(c::TIME))), "flipped comparison");
        assert_eq!(f.min_time_nanos, 13);
        assert!(!f.add(&col(c::VALUE).gt(lit(1i64))));
        assert!(!ScanFilter::understands(&col(c::TIME).not_eq(time_lit(1))));
    }

    #[test]
    fn span_filter_round_trip() {
        let mut f = ScanFilter::default();
        assert!(f.keeps_span(None), "no span filter keeps everything");
        assert!(f.add(&span_expr(&[7, 3, 7])));
        assert_eq!(f.span_ids, Some(vec![3, 7]));
        assert!(f.keeps_span(Some(3)) && f.keeps_span(Some(7)));
        assert!(!f.keeps_span(Some(4)));
        assert!(!f.keeps_span(None), "samples outside any span are dropped");
        assert!(f.add(&col(c::SPAN_ID).eq(lit(7u64))), "a single-id list simplified to `=`");
        assert_eq!(f.span_ids, Some(vec![7]), "a second span filter intersects");
        assert!(!ScanFilter::understands(&col(c::SPAN_ID).in_list(vec![lit(1u64)], true)), "NOT IN is not pushed");
        assert!(!ScanFilter::understands(&col(c::VALUE).in_list(vec![lit(1i64)], false)));
    }

    #[test]
    fn profile_filter() {
        let mut f = ScanFilter::default();
        assert!(f.keeps_profile(None) && f.keeps_profile(Some("x")), "no profile filter keeps everything");
        f.keep_profiles(&["B".into(), "a".into(), "b".into()]);
        assert_eq!(f.profile_ids, Some(vec!["a".to_string(), "b".to_string()]));
        assert!(f.keeps_profile(Some("A")) && f.keeps_profile(Some("b")));
        assert!(!f.keeps_profile(Some("c")) && !f.keeps_profile(None));
        f.keep_profiles(&["b".into(), "c".into()]);
        assert_eq!(f.profile_ids, Some(vec!["b".to_string()]), "a second profile filter intersects");
    }

    #[test]
    fn foreign_regex_is_a_substring_search() {
        let e = binary(label_udf().call(vec![col(c::LABELS), lit("a")]), Operator::RegexMatch, lit("oo"));
        let mut f = ScanFilter::default();
        assert!(f.add(&e));
        assert!(f.matchers[0].matches("foobar"));
        assert!(!f.matchers[0].matches("fbar"));
    }
}
