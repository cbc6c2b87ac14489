//! The FlameGraphDiff message (contract 3.3): two merged trees laid over one shape and flattened
//! into levels of 7 int64 per node, `[left x, left total, left self, right x, right total,
//! right self, name index]`, both x columns delta-encoded independently. Grafana's diff view
//! decodes each side with the same range-containment rule as a single flame graph, so the two
//! sides must have identical node lists, with zeros where a side lacks a node.
//!
//! Layout follows Pyroscope's `NewFlamegraphDiff`: siblings in byte-wise name order (a node
//! called `other`, as the per-side cut leaves it, sorts among its siblings), nodes visited
//! depth-first with the last child first (which fixes the order of `names`, whose entry 0 is
//! `total`), and with `max_nodes` above the shape's size a threshold equal to the `max_nodes`-th
//! largest `max(left total, right total)` (root included): a child is kept if either side reaches
//! it, and the cut siblings of a node become one `other` leaf per side after the kept ones.

use std::collections::HashMap;

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::querier::v1::{FlameGraphDiff, Level};

use crate::error::{QueryError, Result};

/// Name shown for the root, always at index 0 of `names`.
const ROOT_NAME: &str = "total";
/// Values per node in a diff level.
const STRIDE: usize = 7;

/// Both trees over one shape: node ids are those of `shape`; `left`/`right` hold each side's
/// `(total, self)` per node (zero where the side lacks the node).
struct Combined {
    shape: FunctionTree,
    left: Vec<(i64, i64)>,
    right: Vec<(i64, i64)>,
    /// Children of every node, sorted by name bytes.
    children: Vec<Vec<u32>>,
}

/// Maps every node of `tree` onto `shape`, adding the nodes `shape` lacks; the result is indexed
/// by node id of `tree` (root included).
fn overlay(shape: &mut FunctionTree, tree: &FunctionTree) -> Vec<u32> {
    let names: Vec<u32> = (0..tree.name_count() as u32).map(|id| shape.intern(tree.name(id))).collect();
    let mut map = Vec::with_capacity(tree.node_count() + 1);
    map.push(FunctionTree::ROOT);
    for node in 1..=tree.node_count() as u32 {
        // Parents precede their children in a FunctionTree, so the parent is mapped already.
        let parent = map.get(tree.parent(node) as usize).copied().unwrap_or(FunctionTree::ROOT);
        let name = names.get(tree.name_id(node) as usize).copied().unwrap_or(0);
        map.push(shape.child(parent, name));
    }
    map
}

/// `(total, self)` of `tree`'s values on the nodes of `shape` (`map` from [`overlay`]).
fn side_values(shape: &FunctionTree, tree: &FunctionTree, map: &[u32]) -> Vec<(i64, i64)> {
    let n = shape.node_count() + 1;
    let mut values = vec![(0i64, 0i64); n];
    for (node, &to) in map.iter().enumerate().skip(1) {
        let v = tree.self_value(node as u32);
        let slot = &mut values[to as usize];
        slot.0 = slot.0.wrapping_add(v);
        slot.1 = slot.1.wrapping_add(v);
    }
    for node in (1..n).rev() {
        let parent = shape.parent(node as u32) as usize;
        values[parent].0 = values[parent].0.wrapping_add(values[node].0);
    }
    values
}

fn combine(left: &FunctionTree, right: &FunctionTree) -> Combined {
    let mut shape =
        FunctionTree::with_capacity(left.node_count() + right.node_count(), left.name_count() + right.name_count());
    let lmap = overlay(&mut shape, left);
    let rmap = overlay(&mut shape, right);
    let left_values = side_values(&shape, left, &lmap);
    let right_values = side_values(&shape, right, &rmap);
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); shape.node_count() + 1];
    for node in 1..=shape.node_count() as u32 {
        children[shape.parent(node) as usize].push(node);
    }
    for list in &mut children {
        if list.len() > 1 {
            list.sort_by(|&a, &b| shape.name(shape.name_id(a)).cmp(shape.name(shape.name_id(b))));
        }
    }
    Combined { shape, left: left_values, right: right_values, children }
}

/// Whether every self value of `tree` is non-negative (the layout cannot place negative widths).
fn non_negative(tree: &FunctionTree) -> bool {
    (1..=tree.node_count() as u32).all(|n| tree.self_value(n) >= 0)
}

/// The smallest total a node needs to be kept: 0 when the shape (root included) has at most
/// `max_nodes` nodes, else the `max_nodes`-th largest of `max(left, right)` over all nodes.
fn threshold(c: &Combined, max_nodes: usize) -> i64 {
    let n = c.left.len();
    if max_nodes == 0 || n <= max_nodes {
        return 0;
    }
    let mut values: Vec<i64> = c.left.iter().zip(&c.right).map(|(l, r)| l.0.max(r.0)).collect();
    let (_, nth, _) = values.select_nth_unstable_by(max_nodes - 1, |a, b| b.cmp(a));
    *nth
}

/// What the traversal emits next.
#[derive(Clone, Copy)]
enum Item {
    Node(u32),
    /// The cut children of a node: `(left total, right total)`, self = total on each side.
    Other(i64, i64),
}

struct Pending {
    item: Item,
    depth: usize,
    left_x: i64,
    right_x: i64,
}

/// Encodes the diff of `left` and `right` (each already cut to `max_nodes` by the caller, as
/// Pyroscope's frontend does), cut again to `max_nodes` over the combined shape (0 = no cut).
/// Negative self values are refused: the layout cannot place them.
pub fn flamegraph_diff(left: &FunctionTree, right: &FunctionTree, max_nodes: usize) -> Result<FlameGraphDiff> {
    match (non_negative(left), non_negative(right)) {
        (true, true) => {}
        (false, false) => return Err(QueryError::invalid("both trees require only positive values")),
        (false, true) => return Err(QueryError::invalid("left tree requires only positive values")),
        (true, false) => return Err(QueryError::invalid("right tree requires only positive values")),
    }
    let c = combine(left, right);
    let min = threshold(&c, max_nodes);
    let (left_ticks, right_ticks) = (c.left[0].0, c.right[0].0);

    let mut names: Vec<String> = Vec::new();
    // Index in `names` per name; the root is keyed by "" as it has no name of its own.
    let mut name_index: HashMap<&str, i64> = HashMap::new();
    let mut levels: Vec<Vec<i64>> = Vec::new();
    let mut max_self = 0i64;

    let mut stack = vec![Pending { item: Item::Node(FunctionTree::ROOT), depth: 0, left_x: 0, right_x: 0 }];
    while let Some(p) = stack.pop() {
        let (name, (lt, ls), (rt, rs)) = match p.item {
            Item::Node(FunctionTree::ROOT) => ("", c.left[0], c.right[0]),
            Item::Node(n) => (c.shape.name(c.shape.name_id(n)), c.left[n as usize], c.right[n as usize]),
            Item::Other(l, r) => (FunctionTree::OTHER, (l, l), (r, r)),
        };
        if !(lt >= min || rt >= min || name == FunctionTree::OTHER) {
            continue;
        }
        let index = *name_index.entry(name).or_insert_with(|| {
            names.push(if names.is_empty() { ROOT_NAME.to_owned() } else { name.to_owned() });
            names.len() as i64 - 1
        });
        if p.depth == levels.len() {
            levels.push(Vec::new());
        }
        max_self = max_self.max(ls).max(rs);
        levels[p.depth].extend_from_slice(&[p.left_x, lt, ls, p.right_x, rt, rs, index]);

        let Item::Node(node) = p.item else { continue };
        // Sums wrap rather than panic: decoded input must never abort a query.
        let (mut left_x, mut right_x) = (p.left_x.wrapping_add(ls), p.right_x.wrapping_add(rs));
        let (mut other_left, mut other_right) = (0i64, 0i64);
        for &child in &c.children[node as usize] {
            let (l, r) = (c.left[child as usize].0, c.right[child as usize].0);
            if l >= min || r >= min {
                stack.push(Pending { item: Item::Node(child), depth: p.depth + 1, left_x, right_x });
                left_x = left_x.wrapping_add(l);
                right_x = right_x.wrapping_add(r);
            } else {
                other_left = other_left.wrapping_add(l);
                other_right = other_right.wrapping_add(r);
            }
        }
        if other_left != 0 || other_right != 0 {
            stack.push(Pending { item: Item::Other(other_left, other_right), depth: p.depth + 1, left_x, right_x });
        }
    }

    let levels = levels
        .into_iter()
        .map(|mut values| {
            // Nodes were visited right to left: reverse the 7-int groups into ascending x.
            values.reverse();
            for node in values.chunks_exact_mut(STRIDE) {
                node.reverse();
            }
            delta_encode(&mut values, 0);
            delta_encode(&mut values, 3);
            Level { values }
        })
        .collect();

    Ok(FlameGraphDiff { names, levels, total: left_ticks.wrapping_add(right_ticks), max_self, left_ticks, right_ticks })
}

/// Turns the absolute x at `offset` of every node into the distance from the end of the previous
/// node of the level (the total sits right after the x).
fn delta_encode(values: &mut [i64], offset: usize) {
    let mut end = 0i64;
    for node in values.chunks_exact_mut(STRIDE) {
        let x = node[offset];
        node[offset] = x.wrapping_sub(end);
        end = x.wrapping_add(node[offset + 1]);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tree(stacks: &[(&str, i64)]) -> FunctionTree {
        let mut t = FunctionTree::new();
        for (stack, v) in stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            t.insert_stack(&frames, *v);
        }
        t
    }

    /// `path -> (total, self)` of every node of a tree.
    fn paths(t: &FunctionTree) -> BTreeMap<String, (i64, i64)> {
        let v = t.view();
        (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), (v.total(n), t.self_value(n)))).collect()
    }

    /// Decodes one side of a diff (`side` 0 = left, 1 = right) the way Grafana does: absolute x
    /// from the deltas, a node's parent is the node of the level above whose range holds its x.
    /// Nodes with a zero total on that side are absent from it.
    fn decode_side(fg: &FlameGraphDiff, side: usize) -> BTreeMap<String, (i64, i64)> {
        let off = side * 3;
        let mut out = BTreeMap::new();
        // (x, total, path) of the previous level's nodes.
        let mut above: Vec<(i64, i64, String)> = Vec::new();
        for (depth, level) in fg.levels.iter().enumerate() {
            assert_eq!(level.values.len() % STRIDE, 0);
            let mut here = Vec::new();
            let mut end = 0;
            for node in level.values.chunks_exact(STRIDE) {
                let x = end + node[off];
                let (total, self_value) = (node[off + 1], node[off + 2]);
                end = x + total;
                let name = &fg.names[node[6] as usize];
                if depth == 0 {
                    assert_eq!(name, "total");
                    here.push((x, total, String::new()));
                    continue;
                }
                if total == 0 {
                    continue;
                }
                let parent = above
                    .iter()
                    .find(|(px, pt, _)| *pt > 0 && x >= *px && x + total <= px + pt)
                    .unwrap_or_else(|| panic!("no parent for {name} at depth {depth}"));
                let path = if parent.2.is_empty() { name.clone() } else { format!("{};{name}", parent.2) };
                assert!(out.insert(path.clone(), (total, self_value)).is_none(), "{path} twice");
                here.push((x, total, path));
            }
            above = here;
        }
        out
    }

    /// Pyroscope's own expectation for two same-shaped trees (`Test_Diff_Tree`).
    #[test]
    fn same_shape_matches_pyroscope() {
        let l = tree(&[("a;b", 1), ("a;c", 2)]);
        let r = tree(&[("a;b", 4), ("a;c", 8)]);
        let fg = flamegraph_diff(&l, &r, 1024).unwrap();
        assert_eq!(fg.names, ["total", "a", "c", "b"]);
        assert_eq!((fg.total, fg.max_self, fg.left_ticks, fg.right_ticks), (15, 8, 3, 12));
        assert_eq!(fg.levels.len(), 3);
        assert_eq!(fg.levels[0].values, [0, 3, 0, 0, 12, 0, 0]);
        assert_eq!(fg.levels[1].values, [0, 3, 0, 0, 12, 0, 1]);
        assert_eq!(fg.levels[2].values, [0, 1, 1, 0, 4, 4, 3, 0, 2, 2, 0, 8, 8, 2]);
    }

    /// Nodes present on one side only get zeros on the other; each side decodes to its input.
    #[test]
    fn shapes_merge_and_sides_decode_back() {
        let l = tree(&[("a;b", 1), ("a;c", 2), ("a;e", 3), ("x;y;z", 5), ("a", 2)]);
        let r = tree(&[("a;b", 4), ("a;d", 8), ("a;e", 12), ("q", 1)]);
        let fg = flamegraph_diff(&l, &r, 0).unwrap();
        assert_eq!(decode_side(&fg, 0), paths(&l));
        assert_eq!(decode_side(&fg, 1), paths(&r));
        assert_eq!((fg.left_ticks, fg.right_ticks, fg.total), (l.total(), r.total(), l.total() + r.total()));
        // Every level has the same node list on both sides.
        let nodes: usize = fg.levels.iter().map(|lv| lv.values.len() / STRIDE).sum();
        assert_eq!(
            nodes,
            1 + paths(&l).keys().chain(paths(&r).keys()).collect::<std::collections::BTreeSet<_>>().len()
        );
        // Names are distinct and `total` comes first.
        let mut sorted = fg.names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), fg.names.len());
        assert_eq!(fg.names[0], "total");
        assert_eq!(fg.max_self, 12);
    }

    /// A child below the threshold on both sides goes to `other`; one that reaches it on either
    /// side is kept on both.
    #[test]
    fn other_is_cut_by_either_side() {
        let l = tree(&[("m;big", 100), ("m;left_big", 50), ("m;s1", 1), ("m;s2", 2)]);
        let r = tree(&[("m;big", 80), ("m;s1", 3), ("m;s2", 1), ("m;right_big", 60)]);
        // 7 nodes with the root; max(left, right) per node: 153, 153, 100, 50, 3, 2, 60, so the
        // 5th largest is 50: big, left_big (50/0) and right_big (0/60) stay; s1 (1/3) and s2
        // (2/1) do not reach it on either side.
        let fg = flamegraph_diff(&l, &r, 5).unwrap();
        let left = decode_side(&fg, 0);
        let right = decode_side(&fg, 1);
        assert_eq!(left.get("m;other"), Some(&(3, 3)));
        assert_eq!(right.get("m;other"), Some(&(4, 4)));
        assert_eq!(left.get("m;left_big"), Some(&(50, 50)));
        assert_eq!(right.get("m;right_big"), Some(&(60, 60)), "kept because the right side reaches it");
        assert!(!left.contains_key("m;s1") && !right.contains_key("m;s2"));
        assert_eq!(left.get("m"), Some(&(153, 0)), "totals are unchanged by the cut");
        assert_eq!(right.get("m"), Some(&(144, 0)));
        assert_eq!(
            fg.names,
            ["total", "m", "other", "right_big", "left_big", "big"],
            "last child first, other first of all"
        );
    }

    #[test]
    fn empty_and_negative() {
        let fg = flamegraph_diff(&FunctionTree::new(), &FunctionTree::new(), 10).unwrap();
        assert_eq!(fg.names, ["total"]);
        assert_eq!(fg.levels.len(), 1);
        assert_eq!(fg.levels[0].values, [0; 7]);
        let neg = tree(&[("a", -1)]);
        assert!(flamegraph_diff(&neg, &FunctionTree::new(), 0).unwrap_err().message.contains("left"));
        assert!(flamegraph_diff(&FunctionTree::new(), &neg, 0).unwrap_err().message.contains("right"));
    }
}
