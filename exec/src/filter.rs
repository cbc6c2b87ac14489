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

/// What a head scan keeps: series matching every matcher, rows with time in `[min, max]` (ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFilter {
    pub matchers: Vec<Matcher>,
    pub min_time_nanos: i64,
    pub max_time_nanos: i64,
}

impl Default for ScanFilter {
    fn default() -> Self {
        Self { matchers: Vec::new(), min_time_nanos: i64::MIN, max_time_nanos: i64::MAX }
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

    fn add_binary(&mut self, b: &BinaryExpr) -> bool {
        let (l, op, r) = (&*b.left, b.op, &*b.right);
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
    matches!(e, Expr::Column(Column { name, .. }) if name == c::TIME)
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
    fn foreign_regex_is_a_substring_search() {
        let e = binary(label_udf().call(vec![col(c::LABELS), lit("a")]), Operator::RegexMatch, lit("oo"));
        let mut f = ScanFilter::default();
        assert!(f.add(&e));
        assert!(f.matchers[0].matches("foobar"));
        assert!(!f.matchers[0].matches("fbar"));
    }
}
