//! `stack(partition, stacktrace_id)`: the function names of a sample's stack, root first, as a
//! `List<Utf8>`. It is what the `samples.stack` column of SQL and the bulk export are computed
//! with, so it runs once per sample row and is built for that:
//!
//! - every distinct `(partition, stacktrace_id)` of a batch is resolved once, and repeated rows copy
//!   the already resolved frames;
//! - each partition's read lock is taken once per batch (never two at a time, so a batch can not
//!   deadlock against a writer waiting on another partition);
//! - frames follow the flame graph's rules exactly (a location without lines is one frame named
//!   `0x<address>`, inlined lines expand caller first), so `stack()` and `flamegraph()` agree.
//!
//! A partition the symbol source does not hand out (unknown, dropped, or another tenant's) and a
//! stack id outside its partition give NULL: the arguments are user input in SQL.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, ListArray, StringArray, UInt32Array, UInt64Array};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use flamedb_ingest::head::symbols::{Frame, Symbols};

use crate::flamegraph::SymbolSource;
use crate::udf::stack_ids::{self, BatchKeys};

pub const NAME: &str = "stack";

/// The item field of the returned lists (Arrow's conventional `item`, nullable), which is also
/// the item field of the `samples.stack` column.
pub fn stack_item_field() -> FieldRef {
    static F: LazyLock<FieldRef> = LazyLock::new(|| Arc::new(Field::new("item", DataType::Utf8, true)));
    F.clone()
}

/// The type `stack()` returns: a list of function names.
pub fn stack_type() -> DataType {
    DataType::List(stack_item_field())
}

/// `stack(partition, stacktrace_id)`, bound to the symbols it may read (in SQL: the session
/// tenants' partitions only).
#[derive(Debug)]
pub struct StackUdf {
    signature: Signature,
    symbols: Arc<dyn SymbolSource>,
}

impl StackUdf {
    pub fn new(symbols: Arc<dyn SymbolSource>) -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), symbols }
    }
}

/// The UDF, ready to register.
pub fn stack_udf(symbols: Arc<dyn SymbolSource>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(StackUdf::new(symbols)))
}

// Every instance computes the same function; which symbols it reads is a property of the session.
impl PartialEq for StackUdf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for StackUdf {}

impl Hash for StackUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NAME.hash(state);
    }
}

impl ScalarUDFImpl for StackUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(stack_type())
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        stack_ids::coerce(NAME, args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        stack_ids::invoke(NAME, args, |partition, stack| {
            Ok(Arc::new(resolve_stacks(self.symbols.as_ref(), partition, stack)?) as ArrayRef)
        })
    }
}

/// The stacks of `(partition, stack)` rows, root first; NULL where an argument is NULL or the
/// stack is not resolvable through `symbols`.
pub fn resolve_stacks(symbols: &dyn SymbolSource, partition: &UInt64Array, stack: &UInt32Array) -> Result<ListArray> {
    // 1. The distinct (partition, stack id) keys. 2. Each resolved once, one partition (and one
    // lock) at a time. Keys keep their first-appearance order within a partition, so a batch of
    // distinct stacks of one partition (the common case) is laid out exactly as the output and is
    // used as is.
    let keys = BatchKeys::new(partition, stack)?;
    let rows = partition.len();
    let mut arena = Arena::default();
    let mut ranges: Vec<Option<(u32, u32)>> = vec![None; keys.len()];
    let mut locations: Vec<u32> = Vec::new();
    keys.resolve(symbols, |sym, k, id| {
        sym.tree.stack(id, &mut locations);
        let start = arena.items();
        for &loc in locations.iter().rev() {
            arena.push_location(sym, loc)?;
        }
        ranges[k] = Some((start, arena.items()));
        Ok(())
    })?;
    let frames = arena.finish()?;

    // 3. The output lists, in row order.
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut valid: Vec<bool> = Vec::with_capacity(rows);
    let mut take: Vec<u32> = Vec::new();
    let mut identity = true;
    let mut items = 0usize;
    let mut bytes = 0usize;
    let value_offsets = frames.value_offsets();
    for slot in keys.rows() {
        let range = slot.and_then(|k| ranges.get(k).copied().flatten());
        valid.push(range.is_some());
        if let Some((a, b)) = range {
            // The item indices are only materialized once the lists stop being the arena itself.
            if identity && a as usize != items {
                identity = false;
                take.extend(0..items as u32);
            }
            if !identity {
                take.extend(a..b);
            }
            items += (b - a) as usize;
            bytes += (value_offsets[b as usize] - value_offsets[a as usize]) as usize;
        }
        let Ok(end) = i32::try_from(items) else {
            return exec_err!("stack(): more than {} frames in one batch", i32::MAX);
        };
        offsets.push(end);
    }
    if bytes > i32::MAX as usize {
        return exec_err!("stack(): more than {} bytes of frame names in one batch", i32::MAX);
    }
    let values: ArrayRef = if identity && items == frames.len() {
        Arc::new(frames)
    } else {
        arrow::compute::take(&frames, &UInt32Array::from(take), None)?
    };
    let nulls = NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(ListArray::try_new(stack_item_field(), OffsetBuffer::new(ScalarBuffer::from(offsets)), values, nulls)?)
}

/// The frames of the distinct stacks of a batch, back to back: the values and offsets of a
/// `StringArray`.
struct Arena {
    bytes: Vec<u8>,
    offsets: Vec<i32>,
    address: String,
}

impl Default for Arena {
    fn default() -> Self {
        Self { bytes: Vec::new(), offsets: vec![0], address: String::new() }
    }
}

/// The error of a batch whose frame names exceed what one `StringArray` holds.
fn too_large<T>() -> Result<T> {
    exec_err!("stack(): more than {} bytes of frame names in one batch", i32::MAX)
}

impl Arena {
    fn items(&self) -> u32 {
        (self.offsets.len() - 1) as u32
    }

    fn push(&mut self, name: &str) -> Result<()> {
        self.bytes.extend_from_slice(name.as_bytes());
        let Ok(end) = i32::try_from(self.bytes.len()) else { return too_large() };
        if self.offsets.len() > u32::MAX as usize {
            return too_large();
        }
        self.offsets.push(end);
        Ok(())
    }

    /// Appends the frames of partition location `loc`, caller first (the flame graph's rules).
    fn push_location(&mut self, sym: &Symbols, loc: u32) -> Result<()> {
        for frame in sym.frames(loc) {
            match frame {
                Frame::Function(string) => self.push(sym.strings.get(string))?,
                Frame::Address(a) => {
                    use std::fmt::Write;
                    let mut address = std::mem::take(&mut self.address);
                    address.clear();
                    let _ = write!(address, "0x{a:x}");
                    let pushed = self.push(&address);
                    self.address = address;
                    pushed?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<StringArray> {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        Ok(StringArray::try_new(offsets, self.bytes.into(), None)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{ArrayRef, AsArray, UInt32Array, UInt64Array};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use flamedb_ingest::distributor::Distributor;
    use flamedb_ingest::head::Head;
    use flamedb_ingest::head::columns::sample_col;
    use flamedb_ingest::head::symbols::{Function, Line, Location, SymbolPartition};
    use flamedb_ingest::validate::Limits;

    use arrow::datatypes::{UInt32Type, UInt64Type};
    use datafusion::common::ScalarValue;
    use hashbrown::HashMap;

    use super::*;
    use crate::flamegraph::resolve::resolve_into;
    use crate::tree::FunctionTree;

    const NOW: i64 = 1_800_000_000_000_000_000;

    /// A list array as rows of frames (None for NULL rows).
    fn rows(a: &ListArray) -> Vec<Option<Vec<String>>> {
        (0..a.len())
            .map(|i| {
                a.is_valid(i).then(|| {
                    let v = a.value(i);
                    v.as_string::<i32>().iter().map(|s| s.unwrap_or("<null>").to_string()).collect()
                })
            })
            .collect()
    }

    fn strings(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|s| s.to_string()).collect()
    }

    /// A head with one cpu profile of `stacks` for tenant `t`, service `svc`.
    fn head_with(head: &Arc<Head>, tenant: &str, svc: &str, stacks: &[(&[&str], i64)]) {
        let p = flamedb_ingest::testing::cpu_pprof(stacks, NOW - 1_000_000_000);
        let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
        let labels = vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".into(), svc.into())];
        d.ingest_profile(tenant, &labels, p, 0, None, NOW).unwrap();
    }

    /// (partition, stacktrace_id, value) of every sample row of a tenant.
    fn sample_rows(head: &Head, tenant: &str) -> (UInt64Array, UInt32Array, Vec<i64>) {
        let (mut p, mut s, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in head.tenant(tenant).unwrap().sample_chunks() {
            let b = &chunk.batch;
            p.extend(b.column(sample_col::PARTITION).as_primitive::<UInt64Type>().values().iter().copied());
            s.extend(b.column(sample_col::STACKTRACE_ID).as_primitive::<UInt32Type>().values().iter().copied());
            v.extend(b.column(sample_col::VALUE).as_primitive::<arrow::datatypes::Int64Type>().values().iter());
        }
        (UInt64Array::from(p), UInt32Array::from(s), v)
    }

    #[test]
    fn head_samples_resolve_to_the_pushed_stacks() {
        let head = Arc::new(Head::new());
        // Values are distinct, so each sample row names the stack it was pushed with.
        let pushed: &[(&[&str], i64)] = &[
            (&["main", "run", "work"], 10),
            (&["main", "run"], 20),
            (&["main", "idle"], 30),
            (&["other_root", "run", "work"], 40),
            (&["main", "run", "work", "deep", "deeper"], 50),
        ];
        head_with(&head, "t", "api", pushed);
        let (p, s, v) = sample_rows(&head, "t");
        assert_eq!(v.len(), pushed.len(), "one sample row per pushed stack");
        let got = resolve_stacks(head.as_ref(), &p, &s).unwrap();
        let by_value: BTreeMap<i64, Vec<String>> = pushed.iter().map(|(f, v)| (*v, strings(f))).collect();
        for (row, frames) in rows(&got).into_iter().enumerate() {
            assert_eq!(frames.as_ref(), Some(&by_value[&v[row]]), "row {row} (value {})", v[row]);
        }
    }

    /// A partition whose locations include an inlined (two-line) one and an address-only one.
    fn hand_made(head: &Head, tenant: &str) -> (Arc<SymbolPartition>, Vec<u32>) {
        let mut s = Symbols::default();
        let loc = |s: &mut Symbols, names: &[&str], address: u64| {
            // pprof order: callee (innermost inlined) first.
            let lines = names
                .iter()
                .map(|n| {
                    let name = s.strings.intern(n);
                    let function = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
                    Line { function, line: 1 }
                })
                .collect();
            s.add_location(Location { mapping: 0, address, lines })
        };
        let main = loc(&mut s, &["main"], 1);
        let inlined = loc(&mut s, &["inner", "outer"], 2);
        let raw = loc(&mut s, &[], 0xbeef);
        let leaf = loc(&mut s, &["leaf"], 3);
        let ids = vec![
            s.tree.insert([main, inlined, leaf]),
            s.tree.insert([main, raw]),
            s.tree.insert([main]),
            s.tree.insert([raw, inlined]),
        ];
        (head.register_partition(tenant, "svc".into(), s), ids)
    }

    #[test]
    fn inlined_and_address_frames_follow_the_flame_graph_rules() {
        let head = Head::new();
        let (part, ids) = hand_made(&head, "t");
        let p = UInt64Array::from(vec![part.key; ids.len()]);
        let got = resolve_stacks(&head, &p, &UInt32Array::from(ids)).unwrap();
        let want = vec![
            Some(strings(&["main", "outer", "inner", "leaf"])),
            Some(strings(&["main", "0xbeef"])),
            Some(strings(&["main"])),
            Some(strings(&["0xbeef", "outer", "inner"])),
        ];
        assert_eq!(rows(&got), want);
    }

    #[test]
    fn unknown_refused_null_and_empty_stacks() {
        let head = Arc::new(Head::new());
        let (part, ids) = hand_made(&head, "t");
        let (other, _) = hand_made(&head, "someone_else");

        /// A source that hands out one tenant's partition only, as SQL sessions do.
        #[derive(Debug)]
        struct Only(Arc<Head>, u64);
        impl SymbolSource for Only {
            fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>> {
                (key == self.1).then(|| self.0.partition(key)).flatten()
            }
        }
        let only = Only(head.clone(), part.key);
        let p =
            UInt64Array::from(vec![Some(part.key), Some(other.key), Some(999), None, Some(part.key), Some(part.key)]);
        let s = UInt32Array::from(vec![Some(ids[2]), Some(ids[2]), Some(ids[2]), Some(ids[2]), None, Some(1_000_000)]);
        let got = resolve_stacks(&only, &p, &s).unwrap();
        assert_eq!(rows(&got), vec![Some(strings(&["main"])), None, None, None, None, None]);
        assert_eq!(got.null_count(), 5);
        // Stack id 0 is the empty stack: known, with no frames.
        let got = resolve_stacks(&only, &UInt64Array::from(vec![part.key]), &UInt32Array::from(vec![0])).unwrap();
        assert_eq!(rows(&got), vec![Some(vec![])]);
    }

    #[test]
    fn repeated_and_interleaved_partitions_keep_row_order() {
        let head = Arc::new(Head::new());
        head_with(&head, "t", "api", &[(&["a", "b"], 1), (&["a", "c"], 2)]);
        head_with(&head, "t", "db", &[(&["x"], 3), (&["y", "z", "w"], 4)]);
        let (p, s, v) = sample_rows(&head, "t");
        assert_eq!(v.len(), 4);
        let expected: BTreeMap<i64, Vec<String>> = [
            (1, strings(&["a", "b"])),
            (2, strings(&["a", "c"])),
            (3, strings(&["x"])),
            (4, strings(&["y", "z", "w"])),
        ]
        .into();
        // Rows in an order that interleaves partitions and repeats keys.
        let order = [3usize, 0, 2, 0, 1, 3, 3, 2, 1, 0];
        let p2 = UInt64Array::from(order.iter().map(|&i| p.value(i)).collect::<Vec<_>>());
        let s2 = UInt32Array::from(order.iter().map(|&i| s.value(i)).collect::<Vec<_>>());
        let partitions: std::collections::BTreeSet<u64> = p.values().iter().copied().collect();
        assert_eq!(partitions.len(), 2, "two services, two partitions");
        let got = rows(&resolve_stacks(head.as_ref(), &p2, &s2).unwrap());
        let want: Vec<_> = order.iter().map(|&i| Some(expected[&v[i]].clone())).collect();
        assert_eq!(got, want);
    }

    /// Random stacks over a partition with inlined and address-only locations: the tree built
    /// from `stack()` equals the flame graph's tree of the same stacks.
    #[test]
    fn stacks_agree_with_the_flame_graph() {
        let mut s = Symbols::default();
        let mut locs = Vec::new();
        for f in 0..16u32 {
            let name = s.strings.intern(&format!("f{}", f % 11));
            let function = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
            let lines = [Line { function, line: i64::from(f) }].into_iter().collect();
            locs.push(s.add_location(Location { mapping: 0, address: u64::from(f), lines }));
        }
        let (a, b) = (s.functions.len() as u32 - 1, s.functions.len() as u32 - 3);
        let inlined = [Line { function: a, line: 1 }, Line { function: b, line: 2 }].into_iter().collect();
        locs.push(s.add_location(Location { mapping: 0, address: 999, lines: inlined }));
        locs.push(s.add_location(Location { mapping: 0, address: 0xabc, lines: Default::default() }));
        let mut x = 11u64;
        let mut values: HashMap<u32, i64> = HashMap::new();
        for _ in 0..300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let depth = 1 + (x >> 60) as usize;
            let path: Vec<u32> =
                (0..depth).map(|d| locs[((x >> ((d * 5) % 60)) % locs.len() as u64) as usize]).collect();
            let id = s.tree.insert(path);
            *values.entry(id).or_insert(0) += (x % 89) as i64 + 1;
        }
        let mut flame = FunctionTree::new();
        resolve_into(&mut flame, &s, &values);

        let head = Head::new();
        let part = head.register_partition("t", "svc".into(), s);
        let ids: Vec<u32> = values.keys().copied().collect();
        let got = resolve_stacks(&head, &UInt64Array::from(vec![part.key; ids.len()]), &UInt32Array::from(ids.clone()))
            .unwrap();
        let mut from_stacks = FunctionTree::new();
        for (row, id) in rows(&got).into_iter().zip(&ids) {
            from_stacks.insert_stack(&row.unwrap(), values[id]);
        }
        let folded = |t: &FunctionTree| -> BTreeMap<String, i64> {
            (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), t.self_value(n))).collect()
        };
        assert!(flame.node_count() > 50, "a non-trivial tree");
        assert_eq!(folded(&from_stacks), folded(&flame));
        assert!(folded(&flame).keys().any(|k| k.contains("0xabc")));
    }

    /// `stack_leaf`/`stack_root` equal `leaf`/`root` of `stack()` row by row: on pushed head
    /// stacks, hand-made inlined and address-only frames, and unknown, refused, NULL and empty keys.
    #[test]
    fn fused_ends_equal_the_ends_of_the_stacks() {
        use crate::udf::frames::{End, resolve_ends};
        let head = Arc::new(Head::new());
        head_with(&head, "t", "api", &[(&["a", "b"], 1), (&["a", "c", "d"], 2), (&["q"], 3)]);
        head_with(&head, "t", "db", &[(&["x"], 4), (&["y", "z", "w"], 5)]);
        let (part, ids) = hand_made(&head, "t");
        let (mut p, mut s, _) = sample_rows(&head, "t");
        let mut pv: Vec<Option<u64>> = p.iter().collect();
        let mut sv: Vec<Option<u32>> = s.iter().collect();
        for &id in &ids {
            pv.push(Some(part.key));
            sv.push(Some(id));
        }
        // Repeats, NULLs, an unknown partition, an id past the partition and the empty stack.
        pv.extend([pv[0], None, Some(part.key), Some(999), Some(part.key), Some(part.key), pv[3]]);
        sv.extend([sv[0], Some(ids[0]), None, Some(ids[0]), Some(1_000_000), Some(0), sv[3]]);
        (p, s) = (UInt64Array::from(pv), UInt32Array::from(sv));
        let stacks = rows(&resolve_stacks(head.as_ref(), &p, &s).unwrap());
        let leaf = resolve_ends(head.as_ref(), &p, &s, End::Leaf).unwrap();
        let root = resolve_ends(head.as_ref(), &p, &s, End::Root).unwrap();
        let got = |a: &ArrayRef| -> Vec<Option<String>> {
            a.as_string::<i32>().iter().map(|x| x.map(String::from)).collect()
        };
        let want_leaf: Vec<Option<String>> =
            stacks.iter().map(|r| r.as_ref().and_then(|f| f.last().cloned())).collect();
        let want_root: Vec<Option<String>> =
            stacks.iter().map(|r| r.as_ref().and_then(|f| f.first().cloned())).collect();
        assert_eq!(got(&leaf), want_leaf);
        assert_eq!(got(&root), want_root);
        // Independent of stack(): the hand-made stacks' ends written out.
        let n = 5;
        let sm = |x: &str| Some(x.to_string());
        assert_eq!(got(&leaf)[n..n + 4], [sm("leaf"), sm("0xbeef"), sm("main"), sm("inner")]);
        assert_eq!(got(&root)[n..n + 4], [sm("main"), sm("main"), sm("main"), sm("0xbeef")]);
        assert_eq!(want_leaf.iter().filter(|x| x.is_none()).count(), 5, "NULL, NULL, unknown, past the end, empty");
    }

    #[test]
    fn scalar_arguments_give_a_scalar() {
        let head = Arc::new(Head::new());
        let (part, ids) = hand_made(&head, "t");
        let udf = StackUdf::new(head.clone());
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::UInt64(Some(part.key))),
                ColumnarValue::Scalar(ScalarValue::UInt32(Some(ids[1]))),
            ],
            arg_fields: vec![
                Arc::new(Field::new("p", DataType::UInt64, false)),
                Arc::new(Field::new("s", DataType::UInt32, false)),
            ],
            number_rows: 1,
            return_field: Arc::new(Field::new("out", stack_type(), true)),
            config_options: Arc::default(),
        };
        let ColumnarValue::Scalar(ScalarValue::List(list)) = udf.invoke_with_args(args).unwrap() else {
            panic!("expected a scalar list");
        };
        assert_eq!(rows(&list), vec![Some(strings(&["main", "0xbeef"]))]);
    }

    #[test]
    fn sql_calls_coerce_and_resolve() {
        let head = Arc::new(Head::new());
        let (part, ids) = hand_made(&head, "t");
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.register_udf(stack_udf(head.clone()).as_ref().clone());
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            Field::new("partition", DataType::UInt64, false),
            Field::new("stacktrace_id", DataType::UInt32, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![part.key, part.key, part.key + 100])),
            Arc::new(UInt32Array::from(vec![ids[0], ids[3], ids[0]])),
        ];
        let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), columns).unwrap();
        ctx.register_table("samples", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let run = |sql: String| {
            futures::executor::block_on(async {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let mut out = Vec::new();
                for b in batches {
                    assert_eq!(b.schema().field(0).data_type(), &stack_type());
                    out.extend(rows(b.column(0).as_list::<i32>()));
                }
                out
            })
        };
        let got = run("SELECT stack(partition, stacktrace_id) FROM samples".into());
        assert_eq!(
            got,
            vec![
                Some(strings(&["main", "outer", "inner", "leaf"])),
                Some(strings(&["0xbeef", "outer", "inner"])),
                None
            ]
        );
        // Integer literals (Int64 in SQL) are accepted.
        let got = run(format!("SELECT stack({}, {})", part.key, ids[2]));
        assert_eq!(got, vec![Some(strings(&["main"]))]);
    }

    /// Throughput over synthetic batches of 8192 distinct 30-frame stacks: random frames (no
    /// shared prefixes) and a call tree with 3 callees per frame (prefixes shared as in real
    /// profiles). Run with `--ignored --nocapture` to see the numbers.
    #[test]
    #[ignore]
    fn measure_throughput() {
        for shape in ["random", "tree"] {
            let mut s = Symbols::default();
            let mut locs = Vec::new();
            for f in 0..2000u32 {
                let name = s.strings.intern(&format!("github.com/org/project/pkg{}.(*Type).Method{f}", f % 40));
                let function = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
                let lines = [Line { function, line: 1 }].into_iter().collect();
                locs.push(s.add_location(Location { mapping: 0, address: u64::from(f), lines }));
            }
            let mut x = 3u64;
            let mut ids = Vec::new();
            for _ in 0..20_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let mut h = 0usize;
                let path: Vec<u32> = (0..30)
                    .map(|d| {
                        h = if shape == "tree" {
                            h.wrapping_mul(31).wrapping_add(((x >> (2 * d)) % 3) as usize + 1)
                        } else {
                            (x >> (d % 40)) as usize + d * 7
                        };
                        locs[h % locs.len()]
                    })
                    .collect();
                ids.push(s.tree.insert(path));
            }
            ids.sort_unstable();
            ids.dedup();
            let head = Head::new();
            let part = head.register_partition("t", "svc".into(), s);
            let rows_n = 8192.min(ids.len());
            let batch_ids: Vec<u32> = (0..rows_n).map(|i| ids[(i * 7919) % ids.len()]).collect();
            let p = UInt64Array::from(vec![part.key; rows_n]);
            let st = UInt32Array::from(batch_ids);
            let start = std::time::Instant::now();
            let mut frames = 0;
            let reps = 30;
            for _ in 0..reps {
                frames += resolve_stacks(&head, &p, &st).unwrap().values().len();
            }
            let el = start.elapsed();
            eprintln!(
                "stack() {shape}: {rows_n} rows x{reps} in {el:?}: {:.0} rows/s, {:.0} frames/s",
                (rows_n * reps) as f64 / el.as_secs_f64(),
                frames as f64 / el.as_secs_f64()
            );
        }
    }
}
