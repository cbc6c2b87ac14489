//! Stack-trace ids -> function-name tree. This is where stack traces stop being ids: the values
//! summed per id are pushed through the partition's stack-trace prefix tree once, so each shared
//! prefix is resolved once no matter how many stacks share it.

use std::fmt;
use std::sync::Arc;

use flamedb_ingest::head::Head;
use flamedb_ingest::head::symbols::{SymbolPartition, Symbols};
use hashbrown::HashMap;

use crate::tree::FunctionTree;

/// Where a flame-graph aggregate finds the symbols a `(partition, stacktrace_id)` refers to: the
/// local head in this process (and the local block symbols once blocks exist).
pub trait SymbolSource: fmt::Debug + Send + Sync {
    fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>>;
}

impl SymbolSource for Head {
    fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>> {
        Head::partition(self, key)
    }
}

const UNSET: u32 = u32::MAX;

/// Adds the stacks of `values` (stack-trace id -> value) into `tree`.
pub fn resolve_into(tree: &mut FunctionTree, symbols: &Symbols, values: &HashMap<u32, i64>) {
    let mut r = Resolver { symbols, names: vec![UNSET; symbols.strings.len()] };
    let n = symbols.tree.len();
    // Dense sweep when a large share of the tree is touched: one pass in node order (parents come
    // first) resolves every needed node once. Otherwise walk up from each leaf with a memo.
    if values.len().saturating_mul(8) >= n {
        r.dense(tree, values);
    } else {
        r.sparse(tree, values);
    }
}

struct Resolver<'a> {
    symbols: &'a Symbols,
    /// Partition string id -> tree name id.
    names: Vec<u32>,
}

impl Resolver<'_> {
    /// Appends the frames of partition location `loc` (caller first) under `parent`.
    fn descend(&mut self, tree: &mut FunctionTree, mut parent: u32, loc: u32) -> u32 {
        let s = self.symbols;
        let Some(location) = s.locations.get(loc as usize) else {
            return parent;
        };
        if location.lines.is_empty() {
            let name = tree.intern(&format!("0x{:x}", location.address));
            return tree.child(parent, name);
        }
        for line in location.lines.iter().rev() {
            let string = s.functions.get(line.function as usize).map_or(0, |f| f.name);
            let name = match self.names.get(string as usize) {
                Some(&n) if n != UNSET => n,
                _ => {
                    let n = tree.intern(s.strings.get(string));
                    if let Some(slot) = self.names.get_mut(string as usize) {
                        *slot = n;
                    }
                    n
                }
            };
            parent = tree.child(parent, name);
        }
        parent
    }

    fn dense(&mut self, tree: &mut FunctionTree, values: &HashMap<u32, i64>) {
        let parents = self.symbols.tree.parents();
        let locations = self.symbols.tree.locations();
        let n = parents.len();
        let mut needed = vec![false; n];
        for &id in values.keys() {
            let mut x = id as usize;
            while x != 0 && x < n && !needed[x] {
                needed[x] = true;
                x = parents[x] as usize;
            }
        }
        let mut node = vec![FunctionTree::ROOT; n];
        for i in 1..n {
            if needed[i] {
                let parent = node[parents[i] as usize];
                node[i] = self.descend(tree, parent, locations[i]);
            }
        }
        for (&id, &v) in values {
            if let Some(&f) = node.get(id as usize) {
                tree.add_self(f, v);
            }
        }
    }

    fn sparse(&mut self, tree: &mut FunctionTree, values: &HashMap<u32, i64>) {
        let parents = self.symbols.tree.parents();
        let locations = self.symbols.tree.locations();
        let n = parents.len() as u32;
        let mut memo: HashMap<u32, u32> = HashMap::with_capacity(values.len() * 4);
        let mut path: Vec<u32> = Vec::new();
        for (&id, &v) in values {
            if id >= n {
                continue;
            }
            path.clear();
            let mut x = id;
            let mut f = FunctionTree::ROOT;
            while x != 0 {
                if let Some(&m) = memo.get(&x) {
                    f = m;
                    break;
                }
                path.push(x);
                x = parents[x as usize];
            }
            for &p in path.iter().rev() {
                f = self.descend(tree, f, locations[p as usize]);
                memo.insert(p, f);
            }
            tree.add_self(f, v);
        }
    }
}

/// The tree of one stack (for rows that skip partial aggregation).
pub fn resolve_one(tree: &mut FunctionTree, symbols: &Symbols, id: u32, value: i64) {
    let mut values = HashMap::with_capacity(1);
    values.insert(id, value);
    // No name memo: it would cost a pass over every string of the partition for one stack.
    let mut r = Resolver { symbols, names: Vec::new() };
    r.sparse(tree, &values);
}
