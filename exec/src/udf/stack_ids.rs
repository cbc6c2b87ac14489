//! What `stack()`, `stack_leaf()` and `stack_root()` share: their `(partition, stacktrace_id)`
//! arguments (any integers in SQL, `(UInt64, UInt32)` at run time) and the walk that resolves each
//! distinct id of a batch once, taking each partition's read lock once (never two at a time, so a
//! batch can not deadlock against a writer waiting on another partition).

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, UInt32Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};
use flamedb_ingest::head::symbols::Symbols;
use hashbrown::HashMap;

use crate::flamegraph::SymbolSource;

/// Any integers (SQL literals are Int64) are cast to the column types `(UInt64, UInt32)`.
pub fn coerce(name: &str, args: &[DataType]) -> Result<Vec<DataType>> {
    let integer = |t: &DataType| t.is_integer() || t.is_null();
    match args {
        [p, s] if integer(p) && integer(s) => Ok(vec![DataType::UInt64, DataType::UInt32]),
        _ => plan_err!("{name}() takes integer (partition, stacktrace_id), got {args:?}"),
    }
}

/// Runs `f` over the call's arguments as arrays and answers a scalar when every argument was one.
pub fn invoke(
    name: &str,
    args: ScalarFunctionArgs,
    f: impl FnOnce(&UInt64Array, &UInt32Array) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let [partition, stack] = arrays.as_slice() else {
        return exec_err!("{name}() takes (partition, stacktrace_id)");
    };
    let (Some(partition), Some(stack)) =
        (partition.as_primitive_opt::<UInt64Type>(), stack.as_primitive_opt::<UInt32Type>())
    else {
        return exec_err!("{name}() takes (UInt64, UInt32), got ({}, {})", partition.data_type(), stack.data_type());
    };
    let out = f(partition, stack)?;
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// The distinct `(partition, stacktrace_id)` keys of a batch, in order of first appearance, and
/// each row's key.
pub struct BatchKeys {
    keys: Vec<(u64, u32)>,
    /// Per row the index of its key in `keys`; `NULL_ROW` where an argument is NULL.
    rows: Vec<u32>,
}

const NULL_ROW: u32 = u32::MAX;

impl BatchKeys {
    pub fn new(partition: &UInt64Array, stack: &UInt32Array) -> Result<Self> {
        if partition.len() != stack.len() {
            return exec_err!("argument lengths differ ({} vs {})", partition.len(), stack.len());
        }
        let mut index: HashMap<(u64, u32), u32> = HashMap::new();
        let mut keys: Vec<(u64, u32)> = Vec::new();
        let mut rows: Vec<u32> = Vec::with_capacity(partition.len());
        let mut last: Option<((u64, u32), u32)> = None;
        let (p, s) = (partition.values(), stack.values());
        for i in 0..partition.len() {
            if partition.is_null(i) || stack.is_null(i) {
                rows.push(NULL_ROW);
                continue;
            }
            let key = (p[i], s[i]);
            let slot = match last {
                Some((k, slot)) if k == key => slot,
                _ => *index.entry(key).or_insert_with(|| {
                    keys.push(key);
                    (keys.len() - 1) as u32
                }),
            };
            last = Some((key, slot));
            rows.push(slot);
        }
        Ok(Self { keys, rows })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each row's key index (`None` for a row with a NULL argument).
    pub fn rows(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.rows.iter().map(|&r| (r != NULL_ROW).then_some(r as usize))
    }

    /// Calls `f(symbols, key index, stack id)` for each key whose partition `symbols` hands out
    /// and whose id lies inside it, one partition (one read lock) at a time; keys keep their
    /// first-appearance order within a partition.
    pub fn resolve(
        &self,
        symbols: &dyn SymbolSource,
        mut f: impl FnMut(&Symbols, usize, u32) -> Result<()>,
    ) -> Result<()> {
        let keys = &self.keys;
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_by_key(|&k| keys[k as usize].0);
        for group in order.chunk_by(|&a, &b| keys[a as usize].0 == keys[b as usize].0) {
            let Some(&first) = group.first() else { continue };
            let Some(part) = symbols.partition(keys[first as usize].0) else { continue };
            let sym = part.symbols.read();
            for &k in group {
                let id = keys[k as usize].1;
                if (id as usize) < sym.tree.len() {
                    f(&sym, k as usize, id)?;
                }
            }
        }
        Ok(())
    }
}
