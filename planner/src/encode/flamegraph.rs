//! The FlameGraph message (contract 3.3): the tree flattened into per-depth levels of
//! `[x delta, total, self, name index]`, which is what Grafana's flame graph panel decodes.

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::querier::v1::{FlameGraph, Level};

use super::shown::shown_children;

/// Name shown for the root, always at index 0 of `names`.
const ROOT_NAME: &str = "total";

/// A node waiting to be emitted, with its absolute x.
struct Pending {
    node: u32,
    depth: usize,
    x: i64,
    total: i64,
    self_value: i64,
    expand: bool,
}

/// Encodes `tree` cut to `max_nodes` (0 = no cut) as a FlameGraph.
///
/// Nodes are visited depth-first, last child first, because that order decides the indexes of
/// `names`, which clients (and golden tests) see. Each level therefore fills in descending x
/// and is reversed before the x offsets are delta-encoded.
pub fn flamegraph(tree: &FunctionTree, max_nodes: usize) -> FlameGraph {
    let tree = tree.truncated(max_nodes);
    let tree: &FunctionTree = &tree;
    let view = tree.view();
    let other = tree.other_id();
    let total = view.total(FunctionTree::ROOT);

    let mut names = vec![ROOT_NAME.to_owned()];
    // Index in `names` per tree name id; a function called "total" shares the root's entry so
    // that every name appears once.
    let mut name_index = vec![u32::MAX; tree.name_count()];
    if let Some(id) = tree.lookup(ROOT_NAME) {
        name_index[id as usize] = 0;
    }
    let mut levels: Vec<Vec<i64>> = Vec::new();
    let mut max_self = 0i64;

    let mut stack = vec![Pending { node: FunctionTree::ROOT, depth: 0, x: 0, total, self_value: 0, expand: true }];
    while let Some(p) = stack.pop() {
        max_self = max_self.max(p.self_value);
        let index = if p.node == FunctionTree::ROOT {
            0
        } else {
            let id = tree.name_id(p.node) as usize;
            if name_index[id] == u32::MAX {
                name_index[id] = names.len() as u32;
                names.push(tree.name(id as u32).to_owned());
            }
            name_index[id]
        };
        if p.depth == levels.len() {
            levels.push(Vec::new());
        }
        levels[p.depth].extend_from_slice(&[p.x, p.total, p.self_value, i64::from(index)]);

        if p.expand {
            let mut x = p.x + p.self_value;
            for child in shown_children(tree, &view, other, p.node) {
                stack.push(Pending {
                    node: child.node,
                    depth: p.depth + 1,
                    x,
                    total: child.total,
                    self_value: child.self_value,
                    expand: child.expand,
                });
                x += child.total;
            }
        }
    }

    let levels = levels
        .into_iter()
        .map(|mut values| {
            // Ascending x: reverse the order of the 4-int groups, in place.
            values.reverse();
            let mut end = 0i64;
            for node in values.chunks_exact_mut(4) {
                node.reverse();
                let x = node[0];
                node[0] = x - end;
                end = x + node[1];
            }
            Level { values }
        })
        .collect();

    FlameGraph { names, levels, total, max_self }
}
