//! `flamegraph(partition, stacktrace_id, value [, max_nodes])`: the aggregate that merges samples
//! into a flame graph. Its partial state is an encoded function-name tree (one binary value per
//! group), so it merges Partial -> PartialReduce -> Final across processes; ids are summed with a
//! hash map while rows stream in and resolved to names only in `state`/`evaluate`.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Int64Array, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, TypeSignature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use hashbrown::HashMap;

use super::resolve::{SymbolSource, resolve_into, resolve_one};
use crate::tree::FunctionTree;

pub const NAME: &str = "flamegraph";

/// The aggregate, bound to the symbols of this process.
#[derive(Debug)]
pub struct FlameGraphUdaf {
    signature: Signature,
    symbols: Arc<dyn SymbolSource>,
}

impl FlameGraphUdaf {
    pub fn new(symbols: Arc<dyn SymbolSource>) -> Self {
        let base = vec![DataType::UInt64, DataType::UInt32, DataType::Int64];
        let mut with_max = base.clone();
        with_max.push(DataType::Int64);
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Exact(base), TypeSignature::Exact(with_max)],
                Volatility::Immutable,
            ),
            symbols,
        }
    }

    pub fn udaf(symbols: Arc<dyn SymbolSource>) -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self::new(symbols)))
    }
}

// Every instance computes the same function; which symbols it reads is a property of the process.
impl PartialEq for FlameGraphUdaf {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for FlameGraphUdaf {}

impl Hash for FlameGraphUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NAME.hash(state);
    }
}

impl AggregateUDFImpl for FlameGraphUdaf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[tree]", args.name), DataType::Binary, true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(FlameGraphAccumulator { inner: self.groups(&args)? }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups(&args)?))
    }
}

impl FlameGraphUdaf {
    fn groups(&self, args: &AccumulatorArgs) -> Result<FlameGraphGroups> {
        let max_nodes = match args.exprs.get(3) {
            None => 0,
            Some(e) => match (e.as_ref() as &dyn Any).downcast_ref::<Literal>().map(Literal::value) {
                Some(ScalarValue::Int64(Some(n))) if *n >= 0 => *n as usize,
                Some(ScalarValue::Int64(None)) => 0,
                _ => {
                    return exec_err!("flamegraph(): max_nodes must be a non-negative integer literal");
                }
            },
        };
        Ok(FlameGraphGroups { symbols: self.symbols.clone(), max_nodes, groups: Vec::new() })
    }
}

/// Per group: values summed per stack trace, per partition, and trees merged from other states.
#[derive(Debug, Default)]
struct GroupState {
    stacks: Vec<(u64, HashMap<u32, i64>)>,
    tree: Option<FunctionTree>,
}

impl GroupState {
    fn add(&mut self, partition: u64, stack: u32, value: i64) {
        let slot = match self.stacks.iter().rposition(|(p, _)| *p == partition) {
            Some(i) => i,
            None => {
                self.stacks.push((partition, HashMap::new()));
                self.stacks.len() - 1
            }
        };
        *self.stacks[slot].1.entry(stack).or_insert(0) += value;
    }

    fn merge_tree(&mut self, t: FunctionTree) {
        match &mut self.tree {
            Some(mine) => mine.merge(&t),
            None => self.tree = Some(t),
        }
    }

    /// Resolves the summed ids into the group's tree.
    fn into_tree(self, symbols: &dyn SymbolSource) -> Result<FunctionTree> {
        let mut tree = self.tree.unwrap_or_default();
        for (partition, values) in &self.stacks {
            let Some(part) = symbols.partition(*partition) else {
                return exec_err!("flamegraph(): symbols partition {partition} is not available here");
            };
            let sym = part.symbols.read();
            resolve_into(&mut tree, &sym, values);
        }
        Ok(tree)
    }

    fn size(&self) -> usize {
        self.stacks.iter().map(|(_, m)| m.capacity() * 16).sum::<usize>()
            + self.tree.as_ref().map_or(0, |t| t.node_count() * 24)
    }
}

#[derive(Debug)]
struct FlameGraphGroups {
    symbols: Arc<dyn SymbolSource>,
    max_nodes: usize,
    groups: Vec<GroupState>,
}

impl FlameGraphGroups {
    fn emit(&mut self, emit_to: EmitTo, truncate: bool) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let mut out = BinaryBuilder::with_capacity(groups.len(), 1024);
        let mut buf = Vec::new();
        for g in groups {
            let mut tree = g.into_tree(self.symbols.as_ref())?;
            if truncate && self.max_nodes > 0 {
                tree = tree.truncate(self.max_nodes);
            }
            buf.clear();
            tree.encode(&mut buf);
            out.append_value(&buf);
        }
        Ok(Arc::new(out.finish()))
    }
}

impl GroupsAccumulator for FlameGraphGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (partition, stack, value) = arguments(values)?;
        self.groups.resize_with(total_num_groups.max(self.groups.len()), GroupState::default);
        let has_nulls = partition.null_count() + stack.null_count() + value.null_count() > 0;
        let (p, s, v) = (partition.values(), stack.values(), value.values());
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
                || (has_nulls && (partition.is_null(i) || stack.is_null(i) || value.is_null(i)))
            {
                continue;
            }
            self.groups[g].add(p[i], s[i], v[i]);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to, true)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to, false)?])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let Some(states) = values.first() else {
            return exec_err!("flamegraph(): missing state column");
        };
        let states = states.as_binary::<i32>();
        self.groups.resize_with(total_num_groups.max(self.groups.len()), GroupState::default);
        for (i, &g) in group_indices.iter().enumerate() {
            if states.is_null(i) {
                continue;
            }
            match FunctionTree::decode(states.value(i)) {
                Ok(t) => self.groups[g].merge_tree(t),
                Err(e) => return exec_err!("flamegraph(): corrupt partial state: {e}"),
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let (partition, stack, value) = arguments(values)?;
        let mut out = BinaryBuilder::with_capacity(partition.len(), partition.len() * 32);
        let mut buf = Vec::new();
        let mut last: Option<(u64, Arc<flamedb_ingest::head::symbols::SymbolPartition>)> = None;
        for i in 0..partition.len() {
            let skip = opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
                || partition.is_null(i)
                || stack.is_null(i)
                || value.is_null(i);
            if skip {
                out.append_null();
                continue;
            }
            let key = partition.value(i);
            let part = match &last {
                Some((k, p)) if *k == key => p.clone(),
                _ => match self.symbols.partition(key) {
                    Some(p) => {
                        last = Some((key, p.clone()));
                        p
                    }
                    None => {
                        return exec_err!("flamegraph(): symbols partition {key} is not available here");
                    }
                },
            };
            let mut tree = FunctionTree::new();
            resolve_one(&mut tree, &part.symbols.read(), stack.value(i), value.value(i));
            buf.clear();
            tree.encode(&mut buf);
            out.append_value(&buf);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.groups.iter().map(GroupState::size).sum::<usize>() + self.groups.capacity() * 64
    }
}

type Arguments<'a> = (&'a UInt64Array, &'a UInt32Array, &'a Int64Array);

/// The (partition, stacktrace_id, value) columns of a batch.
fn arguments(values: &[ArrayRef]) -> Result<Arguments<'_>> {
    let [partition, stack, value, ..] = values else {
        return exec_err!("flamegraph() takes (partition, stacktrace_id, value [, max_nodes])");
    };
    Ok((partition.as_primitive::<UInt64Type>(), stack.as_primitive::<UInt32Type>(), value.as_primitive::<Int64Type>()))
}

/// The single-group form DataFusion uses where it cannot use the groups accumulator.
#[derive(Debug)]
struct FlameGraphAccumulator {
    inner: FlameGraphGroups,
}

impl FlameGraphAccumulator {
    fn indices(n: usize) -> Vec<usize> {
        vec![0; n]
    }

    fn one(&mut self, truncate: bool) -> Result<ScalarValue> {
        if self.inner.groups.is_empty() {
            self.inner.groups.push(GroupState::default());
        }
        let a = self.inner.emit(EmitTo::All, truncate)?;
        self.inner.groups.push(GroupState::default());
        ScalarValue::try_from_array(&a, 0)
    }
}

impl Accumulator for FlameGraphAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        self.inner.update_batch(values, &Self::indices(n), None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.one(true)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.one(false)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |a| a.len());
        self.inner.merge_batch(states, &Self::indices(n), 1)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}
