//! Encoder tests: hand-written expectations for small trees, and independent decoders that
//! rebuild `path -> (self, total)` from each wire form for generated trees.

mod flamegraph;
mod pprof;
mod tree_bytes;

use std::collections::BTreeMap;

use flamedb_exec::tree::FunctionTree;

/// `path -> (self, total)` for every node of `tree`, root excluded, paths `;`-joined.
pub(super) fn node_map(tree: &FunctionTree) -> BTreeMap<String, (i64, i64)> {
    let totals = tree.totals();
    (1..=tree.node_count() as u32)
        .map(|node| {
            let path = tree.path(node).join(";");
            (path, (tree.self_value(node), totals[node as usize]))
        })
        .collect()
}

pub(super) fn tree_of(stacks: &[(&str, i64)]) -> FunctionTree {
    let mut tree = FunctionTree::new();
    for (stack, value) in stacks {
        let frames: Vec<&str> = stack.split(';').collect();
        tree.insert_stack(&frames, *value);
    }
    tree
}

/// xorshift64*: deterministic, dependency-free randomness for generated trees.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A tree of `count` random stacks (depth 1..=10 over `names` names, values 1..=1000).
pub(super) fn random_tree(seed: u64, count: usize, names: u64) -> FunctionTree {
    let mut rng = Rng(seed);
    let mut tree = FunctionTree::new();
    for _ in 0..count {
        let depth = 1 + rng.below(10) as usize;
        let stack: Vec<String> = (0..depth).map(|_| format!("f{}", rng.below(names))).collect();
        tree.insert_stack(&stack, 1 + rng.below(1000) as i64);
    }
    tree
}
