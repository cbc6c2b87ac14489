//! Functions over a stack (a `List<Utf8>` of function names, root first, as `stack()` returns):
//! `leaf(stack)` and `root(stack)` (the last / first frame), and `contains(stack, 'fn')`, whether
//! any frame is exactly `fn`.
//!
//! `contains` shares its name with DataFusion's string function `contains(str, substr)`, which
//! this UDF replaces when registered; string arguments are therefore handed to the built-in, so
//! both meanings live under one name and string queries behave exactly as before.
//!
//! `stack_leaf(partition, stacktrace_id)` and `stack_root(partition, stacktrace_id)` are
//! `leaf(stack(..))` and `root(stack(..))` without the list in between: they resolve the one frame
//! they return (once per distinct key of a batch). The SQL planner rewrites `leaf(stack)` over the
//! `samples` view into them, since building every row's whole frame list to keep one frame is
//! most of the cost of a "top functions" query.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, GenericListArray, OffsetSizeTrait, StringArray,
    StringBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use flamedb_ingest::head::symbols::Symbols;

use arrow::array::{UInt32Array, UInt64Array};

use crate::flamegraph::SymbolSource;
use crate::udf::stack_ids::{self, BatchKeys};

pub const LEAF: &str = "leaf";
pub const ROOT: &str = "root";
pub const CONTAINS: &str = "contains";
pub const STACK_LEAF: &str = "stack_leaf";
pub const STACK_ROOT: &str = "stack_root";

/// `leaf`, `root` and `contains`, ready to register.
pub fn frames_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![leaf_udf(), root_udf(), contains_udf()]
}

/// `leaf(stack) -> Utf8`: the last frame, NULL for a NULL or empty stack.
pub fn leaf_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(EndUdf::new(End::Leaf)))
}

/// `root(stack) -> Utf8`: the first frame, NULL for a NULL or empty stack.
pub fn root_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(EndUdf::new(End::Root)))
}

/// `contains(stack, name) -> Boolean` (any frame equal) or `contains(str, substr)` (substring).
pub fn contains_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ContainsUdf::default()))
}

/// Which end of the stack a function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    Leaf,
    Root,
}

/// `leaf(stack)` or `root(stack)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EndUdf {
    end: End,
    signature: Signature,
}

impl EndUdf {
    pub fn new(end: End) -> Self {
        Self { end, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for EndUdf {
    fn name(&self) -> &str {
        match self.end {
            End::Leaf => LEAF,
            End::Root => ROOT,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [list] => match stack_coercion(list) {
                Some(t) => Ok(vec![t]),
                None => plan_err!("{}() takes a list of strings (a stack), got {list}", self.name()),
            },
            _ => plan_err!("{}() takes one argument (a stack)", self.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{}() takes one argument (a stack)", self.name());
        };
        match arg {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(self.ends(a)?)),
            ColumnarValue::Scalar(s) => {
                let out = self.ends(&s.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

impl EndUdf {
    fn ends(&self, lists: &ArrayRef) -> Result<ArrayRef> {
        match lists.data_type() {
            DataType::List(_) => self.ends_of(lists.as_list::<i32>()),
            DataType::LargeList(_) => self.ends_of(lists.as_list::<i64>()),
            DataType::Null => Ok(arrow::array::new_null_array(&DataType::Utf8, lists.len())),
            other => exec_err!("{}() takes a list of strings, got {other}", self.name()),
        }
    }

    fn ends_of<O: OffsetSizeTrait>(&self, lists: &GenericListArray<O>) -> Result<ArrayRef> {
        let values = list_strings(lists, self.name())?;
        let offsets = lists.value_offsets();
        let mut out = StringBuilder::with_capacity(lists.len(), lists.len() * 16);
        for row in 0..lists.len() {
            let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
            let item = match self.end {
                End::Leaf => end.checked_sub(1),
                End::Root => Some(start),
            };
            match item {
                Some(i) if lists.is_valid(row) && start < end && values.is_valid(i) => {
                    out.append_value(values.value(i))
                }
                _ => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

/// `stack_leaf(partition, stacktrace_id) -> Utf8`: `leaf(stack(partition, stacktrace_id))`,
/// resolving only the leaf frame.
pub fn stack_leaf_udf(symbols: Arc<dyn SymbolSource>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(StackEndUdf::new(End::Leaf, symbols)))
}

/// `stack_root(partition, stacktrace_id) -> Utf8`: `root(stack(partition, stacktrace_id))`,
/// resolving only the root frame.
pub fn stack_root_udf(symbols: Arc<dyn SymbolSource>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(StackEndUdf::new(End::Root, symbols)))
}

/// `stack_leaf` or `stack_root`, bound to the symbols `stack()` reads.
#[derive(Debug)]
pub struct StackEndUdf {
    end: End,
    signature: Signature,
    symbols: Arc<dyn SymbolSource>,
}

impl StackEndUdf {
    pub fn new(end: End, symbols: Arc<dyn SymbolSource>) -> Self {
        Self { end, signature: Signature::user_defined(Volatility::Immutable), symbols }
    }
}

// As for `stack()`: which symbols an instance reads is a property of the session.
impl PartialEq for StackEndUdf {
    fn eq(&self, other: &Self) -> bool {
        self.end == other.end
    }
}

impl Eq for StackEndUdf {}

impl std::hash::Hash for StackEndUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.end.hash(state);
    }
}

impl ScalarUDFImpl for StackEndUdf {
    fn name(&self) -> &str {
        match self.end {
            End::Leaf => STACK_LEAF,
            End::Root => STACK_ROOT,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    /// As `stack()`: any integers are cast to `(UInt64, UInt32)`.
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        stack_ids::coerce(self.name(), args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        stack_ids::invoke(self.name(), args, |partition, stack| {
            resolve_ends(self.symbols.as_ref(), partition, stack, self.end)
        })
    }
}

/// The leaf or root frame of `(partition, stack)` rows: exactly what `leaf`/`root` of
/// `stack::resolve_stacks` give (NULL for NULL arguments, unresolvable keys and the empty stack),
/// each distinct key resolved once and each partition locked once.
pub fn resolve_ends(
    symbols: &dyn SymbolSource,
    partition: &UInt64Array,
    stack: &UInt32Array,
    end: End,
) -> Result<ArrayRef> {
    let keys = BatchKeys::new(partition, stack)?;
    // Each distinct key's frame, one partition (one lock) at a time.
    let mut names: Vec<Option<String>> = vec![None; keys.len()];
    let mut locations: Vec<u32> = Vec::new();
    keys.resolve(symbols, |sym, k, id| {
        // Leaf first; `stack()` lists them reversed, each location's lines callee last.
        sym.tree.stack(id, &mut locations);
        let loc = match end {
            End::Leaf => locations.first(),
            End::Root => locations.last(),
        };
        if let Some(&loc) = loc {
            names[k] = end_frame(sym, loc, end);
        }
        Ok(())
    })?;

    let mut out = StringBuilder::with_capacity(partition.len(), partition.len() * 16);
    for slot in keys.rows() {
        match slot.and_then(|k| names.get(k)).and_then(Option::as_deref) {
            Some(name) => out.append_value(name),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The outermost (root) or innermost (leaf) frame of location `loc`, by the flame graph's rules.
fn end_frame(sym: &Symbols, loc: u32, end: End) -> Option<String> {
    let mut frames = sym.frames(loc);
    let frame = match end {
        End::Leaf => frames.next_back(),
        End::Root => frames.next(),
    };
    frame.map(|f| f.name(sym).into_owned())
}

/// `contains(stack, name)`; `contains(str, substr)` is DataFusion's built-in.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ContainsUdf {
    signature: Signature,
}

impl Default for ContainsUdf {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// DataFusion's string `contains`, which string arguments are handed to.
fn builtin_contains() -> &'static ScalarUDF {
    static F: LazyLock<Arc<ScalarUDF>> = LazyLock::new(datafusion::functions::string::contains);
    F.as_ref()
}

impl ScalarUDFImpl for ContainsUdf {
    fn name(&self) -> &str {
        CONTAINS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    /// A list first argument makes it the stack form (`(List<Utf8>, Utf8)`); anything else is
    /// coerced as the built-in string function coerces it (and rejected as it would be).
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if let [list, name] = args
            && is_list(list)
        {
            return match (stack_coercion(list), is_string_or_null(name)) {
                (Some(list), true) => Ok(vec![list, DataType::Utf8]),
                _ => plan_err!("contains() takes (stack, name) or (string, substring), got ({list}, {name})"),
            };
        }
        let fields: Vec<FieldRef> = args.iter().map(|t| Arc::new(Field::new("arg", t.clone(), true))).collect();
        Ok(fields_with_udf(&fields, builtin_contains())?.iter().map(|f| f.data_type().clone()).collect())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let list_form = args.args.first().is_some_and(|a| is_list(&a.data_type()));
        if !list_form {
            return builtin_contains().invoke_with_args(args);
        }
        let [lists, name] = args.args.as_slice() else {
            return exec_err!("contains() takes (stack, name)");
        };
        let scalar = matches!(lists, ColumnarValue::Scalar(_)) && matches!(name, ColumnarValue::Scalar(_));
        let out = match name {
            ColumnarValue::Scalar(s) => {
                let lists = lists.to_array(args.number_rows)?;
                match s {
                    ScalarValue::Utf8(n) | ScalarValue::LargeUtf8(n) | ScalarValue::Utf8View(n) => {
                        contains_one(&lists, n.as_deref())?
                    }
                    ScalarValue::Null => contains_one(&lists, None)?,
                    other => return exec_err!("contains(): the name must be a string, got {}", other.data_type()),
                }
            }
            ColumnarValue::Array(names) => {
                let lists = lists.to_array(args.number_rows)?;
                let names = arrow::compute::cast(names, &DataType::Utf8)?;
                contains_each(&lists, names.as_string::<i32>())?
            }
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Per row: whether the list has an item equal to `name`; NULL for a NULL list or name. NULL
/// items equal nothing.
fn contains_one(lists: &ArrayRef, name: Option<&str>) -> Result<ArrayRef> {
    let Some(name) = name else {
        return Ok(arrow::array::new_null_array(&DataType::Boolean, lists.len()));
    };
    match lists.data_type() {
        DataType::List(_) => contains_one_of(lists.as_list::<i32>(), name),
        DataType::LargeList(_) => contains_one_of(lists.as_list::<i64>(), name),
        other => exec_err!("contains() takes a list of strings, got {other}"),
    }
}

fn contains_one_of<O: OffsetSizeTrait>(lists: &GenericListArray<O>, name: &str) -> Result<ArrayRef> {
    let values = list_strings(lists, CONTAINS)?;
    // One comparison per item (a tight, vectorizable pass), then a range check per row.
    let mut equal = BooleanBufferBuilder::new(values.len());
    let value_offsets = values.value_offsets();
    let bytes = values.value_data();
    let needle = name.as_bytes();
    for i in 0..values.len() {
        let (a, b) = (value_offsets[i] as usize, value_offsets[i + 1] as usize);
        equal.append(b - a == needle.len() && bytes.get(a..b) == Some(needle) && values.is_valid(i));
    }
    let equal = equal.finish();
    let offsets = lists.value_offsets();
    let found = (0..lists.len()).map(|row| {
        let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        (start..end).any(|i| equal.value(i))
    });
    let found: arrow::buffer::BooleanBuffer = found.collect();
    Ok(Arc::new(BooleanArray::new(found, lists.nulls().cloned())))
}

/// `contains` with a name per row.
fn contains_each(lists: &ArrayRef, names: &StringArray) -> Result<ArrayRef> {
    match lists.data_type() {
        DataType::List(_) => contains_each_of(lists.as_list::<i32>(), names),
        DataType::LargeList(_) => contains_each_of(lists.as_list::<i64>(), names),
        other => exec_err!("contains() takes a list of strings, got {other}"),
    }
}

fn contains_each_of<O: OffsetSizeTrait>(lists: &GenericListArray<O>, names: &StringArray) -> Result<ArrayRef> {
    let values = list_strings(lists, CONTAINS)?;
    let offsets = lists.value_offsets();
    let found: arrow::buffer::BooleanBuffer = (0..lists.len())
        .map(|row| {
            let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
            let name = names.value(row);
            (start..end).any(|i| values.is_valid(i) && values.value(i) == name)
        })
        .collect();
    let nulls = NullBuffer::union(lists.nulls(), names.nulls());
    Ok(Arc::new(BooleanArray::new(found, nulls)))
}

/// The Utf8 items of a list (after coercion every stack argument has them).
fn list_strings<'a, O: OffsetSizeTrait>(lists: &'a GenericListArray<O>, function: &str) -> Result<&'a StringArray> {
    match lists.values().as_string_opt::<i32>() {
        Some(s) => Ok(s),
        None => exec_err!("{function}() takes a list of strings, got a list of {}", lists.values().data_type()),
    }
}

fn is_list(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
}

fn is_string_or_null(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => is_string_or_null(v),
        _ => false,
    }
}

/// What a stack argument is cast to: lists and large lists of Utf8 stay as they are; other lists
/// of strings (and NULL) become `List<Utf8>`.
fn stack_coercion(t: &DataType) -> Option<DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) if f.data_type() == &DataType::Utf8 => Some(t.clone()),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            is_string_or_null(f.data_type()).then(|| DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))))
        }
        DataType::Null => Some(DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ListBuilder, StringArray};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Lists: [a, b, c], NULL, [], [x, NULL], [NULL], [main].
    fn lists() -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        b.append_value([Some("a"), Some("b"), Some("c")]);
        b.append_null();
        b.append_value(Vec::<Option<&str>>::new());
        b.append_value([Some("x"), None]);
        b.append_value([None::<&str>]);
        b.append_value([Some("main")]);
        Arc::new(b.finish())
    }

    fn call(udf: &dyn ScalarUDFImpl, args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let arg_fields = args.iter().map(|a| Arc::new(Field::new("a", a.data_type(), true))).collect();
        udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
            config_options: Arc::default(),
        })
    }

    fn array(v: ColumnarValue) -> ArrayRef {
        match v {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(s) => panic!("expected an array, got {s:?}"),
        }
    }

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        a.as_string::<i32>().iter().map(|s| s.map(String::from)).collect()
    }

    fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
        a.as_boolean().iter().collect()
    }

    #[test]
    fn leaf_and_root_of_lists_with_nulls_and_empties() {
        let l = lists();
        let leaf = array(call(&EndUdf::new(End::Leaf), vec![ColumnarValue::Array(l.clone())], 6).unwrap());
        let root = array(call(&EndUdf::new(End::Root), vec![ColumnarValue::Array(l.clone())], 6).unwrap());
        let s = |x: &str| Some(x.to_string());
        assert_eq!(strings(&leaf), vec![s("c"), None, None, None, None, s("main")]);
        assert_eq!(strings(&root), vec![s("a"), None, None, s("x"), None, s("main")]);
        // A sliced array (non-zero first offset) and the large-list form.
        let sliced = l.slice(3, 3);
        let leaf = array(call(&EndUdf::new(End::Leaf), vec![ColumnarValue::Array(sliced)], 3).unwrap());
        assert_eq!(strings(&leaf), vec![None, None, s("main")]);
        let large =
            arrow::compute::cast(&l, &DataType::LargeList(Arc::new(Field::new("item", DataType::Utf8, true)))).unwrap();
        let root = array(call(&EndUdf::new(End::Root), vec![ColumnarValue::Array(large)], 6).unwrap());
        assert_eq!(strings(&root), vec![s("a"), None, None, s("x"), None, s("main")]);
    }

    #[test]
    fn contains_on_lists_is_exact_frame_equality() {
        let l = lists();
        let udf = ContainsUdf::default();
        let name = |n: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(n.into())));
        let got = bools(&array(call(&udf, vec![ColumnarValue::Array(l.clone()), name("b")], 6).unwrap()));
        assert_eq!(got, vec![Some(true), None, Some(false), Some(false), Some(false), Some(false)]);
        // Exact: a substring of a frame is no match.
        let got = bools(&array(call(&udf, vec![ColumnarValue::Array(l.clone()), name("mai")], 6).unwrap()));
        assert_eq!(got, vec![Some(false), None, Some(false), Some(false), Some(false), Some(false)]);
        let got = bools(&array(call(&udf, vec![ColumnarValue::Array(l.clone()), name("main")], 6).unwrap()));
        assert_eq!(got[5], Some(true));
        // A NULL name gives NULL.
        let null = ColumnarValue::Scalar(ScalarValue::Utf8(None));
        let got = bools(&array(call(&udf, vec![ColumnarValue::Array(l.clone()), null], 6).unwrap()));
        assert_eq!(got, vec![None; 6]);
        // One name per row.
        let names: ArrayRef =
            Arc::new(StringArray::from(vec![Some("c"), Some("x"), Some("x"), Some("x"), None, Some("z")]));
        let got = bools(&array(call(&udf, vec![ColumnarValue::Array(l), ColumnarValue::Array(names)], 6).unwrap()));
        assert_eq!(got, vec![Some(true), None, Some(false), Some(true), None, Some(false)]);
    }

    /// String arguments keep DataFusion's substring meaning, NULLs included: the results equal
    /// the built-in's on the same input, and the expected values written out.
    #[test]
    fn contains_on_strings_is_the_builtin_substring_test() {
        let udf = ContainsUdf::default();
        let hay: ArrayRef = Arc::new(StringArray::from(vec![Some("main.run"), Some("xyz"), None, Some("")]));
        let cases = [
            (
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("run".into()))),
                vec![Some(true), Some(false), None, Some(false)],
            ),
            (ColumnarValue::Scalar(ScalarValue::Utf8(Some("".into()))), vec![Some(true), Some(true), None, Some(true)]),
            (ColumnarValue::Scalar(ScalarValue::Utf8(None)), vec![None, None, None, None]),
        ];
        for (needle, want) in cases {
            let ours = bools(&array(call(&udf, vec![ColumnarValue::Array(hay.clone()), needle.clone()], 4).unwrap()));
            let theirs = bools(&array(
                builtin_contains()
                    .invoke_with_args(ScalarFunctionArgs {
                        args: vec![ColumnarValue::Array(hay.clone()), needle],
                        arg_fields: vec![
                            Arc::new(Field::new("a", DataType::Utf8, true)),
                            Arc::new(Field::new("b", DataType::Utf8, true)),
                        ],
                        number_rows: 4,
                        return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
                        config_options: Arc::default(),
                    })
                    .unwrap(),
            ));
            assert_eq!(ours, want);
            assert_eq!(ours, theirs);
        }
        // Coercion of string forms is the built-in's: view and large strings are kept.
        let t = udf.coerce_types(&[DataType::Utf8View, DataType::Utf8]).unwrap();
        let b = fields_with_udf(
            &[Arc::new(Field::new("a", DataType::Utf8View, true)), Arc::new(Field::new("b", DataType::Utf8, true))],
            builtin_contains(),
        )
        .unwrap();
        assert_eq!(t, b.iter().map(|f| f.data_type().clone()).collect::<Vec<_>>());
        assert!(udf.coerce_types(&[DataType::Int64, DataType::Utf8]).is_err(), "as the built-in, no numbers");
        let stack = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(udf.coerce_types(&[stack.clone(), DataType::Utf8View]).unwrap(), vec![stack, DataType::Utf8]);
    }

    #[test]
    fn sql_calls_coerce_as_users_write_them() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        for f in frames_udfs() {
            ctx.register_udf(f.as_ref().clone());
        }
        let run = |sql: &str| -> Vec<arrow::record_batch::RecordBatch> {
            futures::executor::block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() })
        };
        let b = run("SELECT leaf(s) AS l, root(s) AS r, contains(s, 'b') AS c, contains(s, 'bb') AS n \
             FROM (VALUES (make_array('a', 'b', 'c')), (make_array('x')), (NULL)) AS t(s)");
        let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(strings(b.column(0)), vec![s("c"), s("x"), None]);
        assert_eq!(strings(b.column(1)), vec![s("a"), s("x"), None]);
        assert_eq!(bools(b.column(2)), vec![Some(true), Some(false), None]);
        assert_eq!(bools(b.column(3)), vec![Some(false), Some(false), None]);
        // The string form still works on literals and columns, as the built-in did.
        let b = run(
            "SELECT contains('the quick brown fox', 'row'), contains(v, 'ab') FROM (VALUES ('xaby'), ('q')) AS t(v)",
        );
        let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
        assert_eq!(bools(b.column(0)), vec![Some(true), Some(true)]);
        assert_eq!(bools(b.column(1)), vec![Some(true), Some(false)]);
        let b = run("SELECT contains(arrow_cast('abc', 'Utf8View'), 'bc'), contains(NULL, 'a')");
        assert_eq!(bools(b[0].column(0)), vec![Some(true)]);
        assert_eq!(b[0].column(1).null_count(), 1);
        // An empty stack has neither leaf nor root.
        let b = run("SELECT leaf(arrow_cast(make_array('a'), 'List(Utf8)')[2:1]) IS NULL");
        assert_eq!(bools(b[0].column(0)), vec![Some(true)]);
    }
}
