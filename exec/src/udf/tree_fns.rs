//! Functions over the encoded function tree the `flamegraph` aggregate returns, so a SQL user can
//! read a flame graph without decoding our binary format: `flamegraph_folded(tree)` renders it as
//! folded stacks (the text format flame-graph tools read) and `flamegraph_total(tree)` gives its
//! total.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::tree::FunctionTree;

pub const FOLDED: &str = "flamegraph_folded";
pub const TOTAL: &str = "flamegraph_total";

/// `flamegraph_folded` and `flamegraph_total`, ready to register.
pub fn tree_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![flamegraph_folded_udf(), flamegraph_total_udf()]
}

/// `flamegraph_folded(tree) -> Utf8`.
pub fn flamegraph_folded_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(TreeUdf::new(TreeFn::Folded)))
}

/// `flamegraph_total(tree) -> Int64`.
pub fn flamegraph_total_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(TreeUdf::new(TreeFn::Total)))
}

/// What a tree function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeFn {
    /// One `a;b;c <self>` line per node whose self value is positive, sorted, joined by `\n`.
    Folded,
    /// The sum of every value in the tree.
    Total,
}

/// A function of one encoded tree (NULL in, NULL out; undecodable bytes are an error).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TreeUdf {
    function: TreeFn,
    signature: Signature,
}

impl TreeUdf {
    pub fn new(function: TreeFn) -> Self {
        Self { function, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for TreeUdf {
    fn name(&self) -> &str {
        match self.function {
            TreeFn::Folded => FOLDED,
            TreeFn::Total => TOTAL,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            TreeFn::Folded => DataType::Utf8,
            TreeFn::Total => DataType::Int64,
        })
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null] => {
                Ok(vec![DataType::Binary])
            }
            _ => plan_err!("{}() takes one flame graph (the binary `flamegraph(...)` returns)", self.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{}() takes one argument", self.name());
        };
        match arg {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(self.apply(a)?)),
            ColumnarValue::Scalar(s) => {
                let out = self.apply(&s.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

impl TreeUdf {
    fn apply(&self, trees: &ArrayRef) -> Result<ArrayRef> {
        let trees = match trees.data_type() {
            DataType::Binary => trees.clone(),
            DataType::LargeBinary | DataType::BinaryView | DataType::Null => {
                arrow::compute::cast(trees, &DataType::Binary)?
            }
            other => return exec_err!("{}() takes a binary flame graph, got {other}", self.name()),
        };
        let trees = trees.as_binary::<i32>();
        match self.function {
            TreeFn::Folded => self.folded(trees),
            TreeFn::Total => self.total(trees),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<FunctionTree> {
        match FunctionTree::decode(bytes) {
            Ok(t) => Ok(t),
            Err(e) => exec_err!("{}(): not a flame graph: {e}", self.name()),
        }
    }

    fn folded(&self, trees: &BinaryArray) -> Result<ArrayRef> {
        let mut out = StringBuilder::with_capacity(trees.len(), 1024);
        for i in 0..trees.len() {
            if trees.is_null(i) {
                out.append_null();
                continue;
            }
            out.append_value(folded(&self.decode(trees.value(i))?));
        }
        Ok(Arc::new(out.finish()))
    }

    fn total(&self, trees: &BinaryArray) -> Result<ArrayRef> {
        let mut out = Int64Builder::with_capacity(trees.len());
        for i in 0..trees.len() {
            if trees.is_null(i) {
                out.append_null();
                continue;
            }
            out.append_value(self.decode(trees.value(i))?.total());
        }
        Ok(Arc::new(out.finish()))
    }
}

/// The tree as folded stacks: one `a;b;c <self>` line per node with a positive self value (path
/// from the top-level frame, names joined by `;`), lines sorted by their text, joined by `\n`.
pub fn folded(tree: &FunctionTree) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut path: Vec<&str> = Vec::new();
    for node in 1..=tree.node_count() as u32 {
        let value = tree.self_value(node);
        if value <= 0 {
            continue;
        }
        path.clear();
        let mut n = node;
        while n != FunctionTree::ROOT {
            path.push(tree.name(tree.name_id(n)));
            n = tree.parent(n);
        }
        let mut line = String::with_capacity(path.iter().map(|p| p.len() + 1).sum::<usize>() + 20);
        for (i, name) in path.iter().rev().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(name);
        }
        line.push(' ');
        line.push_str(&value.to_string());
        lines.push(line);
    }
    lines.sort_unstable();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, BinaryArray, LargeBinaryArray, UInt32Array, UInt64Array};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use flamedb_ingest::head::Head;
    use flamedb_ingest::head::symbols::{Function, Line, Location, Symbols};

    use super::*;
    use crate::flamegraph::FlameGraphUdaf;

    fn encoded(t: &FunctionTree) -> Vec<u8> {
        let mut buf = Vec::new();
        t.encode(&mut buf);
        buf
    }

    fn call(f: TreeFn, arg: ColumnarValue, rows: usize) -> Result<ColumnarValue> {
        let udf = TreeUdf::new(f);
        let ret = udf.return_type(&[])?;
        udf.invoke_with_args(ScalarFunctionArgs {
            arg_fields: vec![Arc::new(Field::new("t", arg.data_type(), true))],
            args: vec![arg],
            number_rows: rows,
            return_field: Arc::new(Field::new("out", ret, true)),
            config_options: Arc::default(),
        })
    }

    fn array(v: ColumnarValue) -> ArrayRef {
        match v {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(s) => panic!("expected an array, got {s:?}"),
        }
    }

    #[test]
    fn folded_lines_are_the_inserted_stacks() {
        let stacks: &[(&[&str], i64)] = &[
            (&["main", "run", "work"], 7),
            (&["main", "run"], 3),
            (&["main", "idle"], 5),
            (&["b_root", "x"], 2),
            (&["main", "run", "work"], 1), // the same stack again sums
            (&["main", "zero"], 0),        // no self value: no line
        ];
        let mut t = FunctionTree::new();
        for (s, v) in stacks {
            t.insert_stack(s, *v);
        }
        let want = "b_root;x 2\nmain;idle 5\nmain;run 3\nmain;run;work 8";
        assert_eq!(folded(&t), want);

        let mut other = FunctionTree::new();
        other.insert_stack(&["only"], 4);
        let bytes = BinaryArray::from(vec![Some(encoded(&t).as_slice()), None, Some(encoded(&other).as_slice())]);
        let a: ArrayRef = Arc::new(bytes);
        let f = array(call(TreeFn::Folded, ColumnarValue::Array(a.clone()), 3).unwrap());
        let f: Vec<Option<&str>> = f.as_string::<i32>().iter().collect();
        assert_eq!(f, vec![Some(want), None, Some("only 4")]);
        let total = array(call(TreeFn::Total, ColumnarValue::Array(a), 3).unwrap());
        let total: Vec<Option<i64>> = total.as_primitive::<arrow::datatypes::Int64Type>().iter().collect();
        let want_total: i64 = stacks.iter().map(|(_, v)| v).sum();
        assert_eq!(total, vec![Some(want_total), None, Some(4)]);
    }

    #[test]
    fn empty_null_large_and_corrupt_inputs() {
        let empty = encoded(&FunctionTree::new());
        let out = call(TreeFn::Folded, ColumnarValue::Scalar(ScalarValue::Binary(Some(empty.clone()))), 1).unwrap();
        assert_eq!(out.data_type(), DataType::Utf8);
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) = out else { panic!("scalar in, scalar out") };
        assert_eq!(s, "");
        let ColumnarValue::Scalar(ScalarValue::Int64(None)) =
            call(TreeFn::Total, ColumnarValue::Scalar(ScalarValue::Binary(None)), 1).unwrap()
        else {
            panic!("NULL in, NULL out");
        };
        let mut t = FunctionTree::new();
        t.insert_stack(&["a", "b"], -3);
        t.insert_stack(&["a"], 5);
        let large: ArrayRef = Arc::new(LargeBinaryArray::from(vec![Some(encoded(&t).as_slice())]));
        let total = array(call(TreeFn::Total, ColumnarValue::Array(large.clone()), 1).unwrap());
        assert_eq!(total.as_primitive::<arrow::datatypes::Int64Type>().value(0), 2);
        let f = array(call(TreeFn::Folded, ColumnarValue::Array(large), 1).unwrap());
        assert_eq!(f.as_string::<i32>().value(0), "a 5", "negative self values print no line");
        let err = call(TreeFn::Total, ColumnarValue::Scalar(ScalarValue::Binary(Some(vec![1, 9]))), 1);
        assert!(err.is_err(), "corrupt bytes are an error, not a crash");
    }

    #[test]
    fn sql_over_the_flamegraph_aggregate() {
        let mut s = Symbols::default();
        let loc = |s: &mut Symbols, n: &str| {
            let name = s.strings.intern(n);
            let function = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
            s.add_location(Location {
                mapping: 0,
                address: 0,
                lines: [Line { function, line: 1 }].into_iter().collect(),
            })
        };
        let (main, run, idle) = (loc(&mut s, "main"), loc(&mut s, "run"), loc(&mut s, "idle"));
        let a = s.tree.insert([main, run]);
        let b = s.tree.insert([main, idle]);
        let c = s.tree.insert([main]);
        let head = Arc::new(Head::new());
        let part = head.register_partition("t", "svc".into(), s);

        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        for f in tree_udfs() {
            ctx.register_udf(f.as_ref().clone());
        }
        ctx.register_udaf(FlameGraphUdaf::udaf(head.clone()).as_ref().clone());
        let schema = Arc::new(Schema::new(vec![
            Field::new("partition", DataType::UInt64, false),
            Field::new("stacktrace_id", DataType::UInt32, false),
            Field::new("value", DataType::Int64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![part.key; 4])),
            Arc::new(UInt32Array::from(vec![a, b, a, c])),
            Arc::new(arrow::array::Int64Array::from(vec![10, 20, 5, 1])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        ctx.register_table("samples", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let batches = futures::executor::block_on(async {
            let sql = "SELECT flamegraph_folded(fg) AS folded, flamegraph_total(fg) AS total FROM \
                       (SELECT flamegraph(partition, stacktrace_id, value) AS fg FROM samples)";
            ctx.sql(sql).await.unwrap().collect().await.unwrap()
        });
        let b = &batches[0];
        assert_eq!(b.column(0).as_string::<i32>().value(0), "main 1\nmain;idle 20\nmain;run 15");
        assert_eq!(b.column(1).as_primitive::<arrow::datatypes::Int64Type>().value(0), 36);
        // NULL and a literal binary that is not a tree.
        let r = futures::executor::block_on(async {
            ctx.sql("SELECT flamegraph_total(NULL)").await.unwrap().collect().await.unwrap()
        });
        assert_eq!(r[0].column(0).null_count(), 1);
        let r = futures::executor::block_on(async {
            match ctx.sql("SELECT flamegraph_folded(X'0102')").await {
                Ok(df) => df.collect().await.map(|_| ()),
                Err(e) => Err(e),
            }
        });
        assert!(r.is_err());
    }
}
