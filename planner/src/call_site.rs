//! The `call_site` stack-trace selector: keep only the stacks whose root-most frames are the given
//! names, whole (prefix included), as Profiles Drilldown asks when it focuses on a function.
//!
//! Flame graphs apply it to the merged tree ([`filter`]); time series apply it to sample rows
//! with the `call_site_match(partition, stacktrace_id)` predicate ([`CallSiteUdf`]), which
//! resolves each stack of a symbol partition once per query, sharing the work of common prefixes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, UInt32Type, UInt64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use flamedb_exec::SymbolSource;
use flamedb_exec::tree::FunctionTree;
use flamedb_ingest::head::symbols::Symbols;

/// Name of the call-site predicate.
pub const UDF_NAME: &str = "call_site_match";

/// State of a stack-trace node: how many call-site names its root-first frames matched so far
/// (`names.len()` = the whole call site, so every deeper node matches too), or [`MISMATCH`].
const MISMATCH: u32 = u32::MAX;
const UNSET: u32 = u32::MAX - 1;

/// `call_site_match(partition, stacktrace_id)`: whether a sample's stack starts (root first)
/// with the call-site names. Node states are memoized per symbol partition for the query.
#[derive(Debug)]
pub struct CallSiteUdf {
    names: Vec<String>,
    symbols: Arc<dyn SymbolSource>,
    signature: Signature,
    /// Partition key -> state of each stack-trace node resolved so far.
    memo: Mutex<HashMap<u64, Vec<u32>>>,
}

impl PartialEq for CallSiteUdf {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Eq for CallSiteUdf {}

impl Hash for CallSiteUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.names.hash(state);
    }
}

impl CallSiteUdf {
    /// The predicate for the root-first `names`, resolving stacks through `symbols`.
    pub fn udf(symbols: Arc<dyn SymbolSource>, names: Vec<String>) -> Arc<ScalarUDF> {
        let signature =
            Signature::new(TypeSignature::Exact(vec![DataType::UInt64, DataType::UInt32]), Volatility::Immutable);
        Arc::new(ScalarUDF::new_from_impl(Self { names, symbols, signature, memo: Mutex::new(HashMap::new()) }))
    }

    /// Whether stack `id` of a partition with `symbols` matches, filling `states` on the way.
    fn matches(&self, symbols: &Symbols, states: &mut Vec<u32>, id: u32) -> bool {
        let parents = symbols.tree.parents();
        let locations = symbols.tree.locations();
        if (id as usize) >= parents.len() {
            return false;
        }
        if states.len() < parents.len() {
            states.resize(parents.len(), UNSET);
            states[0] = 0;
        }
        // Walk up to the first resolved node, then resolve back down.
        let mut path = Vec::new();
        let mut node = id;
        while states[node as usize] == UNSET {
            path.push(node);
            node = parents[node as usize];
        }
        let want = self.names.len() as u32;
        let mut state = states[node as usize];
        for &n in path.iter().rev() {
            if state != MISMATCH && state < want {
                state = self.advance(symbols, locations[n as usize], state);
            }
            states[n as usize] = state;
        }
        state == want
    }

    /// The state after the frames (caller first) of location `loc`, from state `state`.
    fn advance(&self, symbols: &Symbols, loc: u32, mut state: u32) -> u32 {
        let want = self.names.len() as u32;
        let step = |state: u32, frame: &str| match self.names.get(state as usize) {
            _ if state >= want => state,
            Some(n) if n == frame => state + 1,
            _ => MISMATCH,
        };
        for frame in symbols.frames(loc) {
            state = step(state, &frame.name(symbols));
            if state == MISMATCH {
                break;
            }
        }
        state
    }
}

impl ScalarUDFImpl for CallSiteUdf {
    fn name(&self) -> &str {
        UDF_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [partition, stack] = args.args.as_slice() else {
            return exec_err!("{UDF_NAME}() takes (partition, stacktrace_id)");
        };
        let partition = partition.to_array(rows)?;
        let stack = stack.to_array(rows)?;
        let (Some(partition), Some(stack)) =
            (partition.as_primitive_opt::<UInt64Type>(), stack.as_primitive_opt::<UInt32Type>())
        else {
            return exec_err!("{UDF_NAME}() takes (UInt64, UInt32)");
        };
        let mut memo = match self.memo.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = vec![false; partition.len()];
        // Rows come in runs of one partition (a profile's samples): its symbols are looked up
        // and read-locked once per run.
        let mut i = 0;
        while i < partition.len() {
            let key = partition.value(i);
            let mut end = i + 1;
            while end < partition.len() && partition.value(end) == key {
                end += 1;
            }
            if let Some(part) = self.symbols.partition(key) {
                let states = memo.entry(key).or_default();
                let sym = part.symbols.read();
                for (k, o) in out.iter_mut().enumerate().take(end).skip(i) {
                    *o = partition.is_valid(k) && stack.is_valid(k) && self.matches(&sym, states, stack.value(k));
                }
            }
            i = end;
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

/// The part of `tree` under the root-first path `call_site` (an empty tree when there is none).
pub fn filter(tree: &FunctionTree, call_site: &[&str]) -> FunctionTree {
    let view = tree.view();
    let mut node = FunctionTree::ROOT;
    for name in call_site {
        let Some(id) = tree.lookup(name) else {
            return FunctionTree::new();
        };
        match view.children(node).iter().find(|&&c| tree.name_id(c) == id) {
            Some(&c) => node = c,
            None => return FunctionTree::new(),
        }
    }
    let mut out = FunctionTree::new();
    let mut dst = FunctionTree::ROOT;
    for name in call_site {
        let n = out.intern(name);
        dst = out.child(dst, n);
    }
    out.add_self(dst, tree.self_value(node));
    let mut stack = vec![(node, dst)];
    while let Some((src, dst)) = stack.pop() {
        for &c in view.children(src) {
            let name = out.intern(tree.name(tree.name_id(c)));
            let n = out.child(dst, name);
            out.add_self(n, tree.self_value(c));
            stack.push((c, n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(t: &FunctionTree) -> Vec<(String, i64)> {
        let view = t.view();
        let mut out: Vec<(String, i64)> =
            (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), view.total(n))).collect();
        out.sort();
        out
    }

    #[test]
    fn keeps_whole_stacks_under_the_prefix() {
        let mut t = FunctionTree::new();
        t.insert_stack(&["main", "a", "x"], 3);
        t.insert_stack(&["main", "a"], 1);
        t.insert_stack(&["main", "b", "x"], 5);
        t.insert_stack(&["other_root", "a"], 7);
        let f = filter(&t, &["main", "a"]);
        assert_eq!(f.total(), 4);
        assert_eq!(totals(&f), vec![("main".into(), 4), ("main;a".into(), 4), ("main;a;x".into(), 3)]);
        assert!(filter(&t, &["main", "c"]).is_empty());
        assert!(filter(&t, &["nope"]).is_empty());
        assert_eq!(filter(&t, &[]).total(), t.total());
    }
}
