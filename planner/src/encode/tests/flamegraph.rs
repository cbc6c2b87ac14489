use std::collections::BTreeMap;

use flamedb_exec::tree::FunctionTree;
use flamedb_proto::querier::v1::FlameGraph;

use super::{Rng, node_map, random_tree, tree_of};
use crate::encode::flamegraph;

fn levels(fg: &FlameGraph) -> Vec<Vec<i64>> {
    fg.levels.iter().map(|l| l.values.clone()).collect()
}

/// Grafana-style decoding: absolute x = delta + end of the previous node on the level, and a
/// node's parent is the node of the level above whose `[x, x + total)` contains its x. Checks
/// the layout rules on the way (children after the parent's self, in name order, `other`
/// last, names de-duplicated) and returns `path -> (self, total)`.
fn decode(fg: &FlameGraph) -> BTreeMap<String, (i64, i64)> {
    let mut seen = std::collections::HashSet::new();
    assert!(fg.names.iter().all(|n| seen.insert(n)), "names repeat");
    assert_eq!(fg.names[0], "total");

    // Per level: (x, total, self, path)
    let mut above: Vec<(i64, i64, i64, String)> = Vec::new();
    let mut out = BTreeMap::new();
    for (depth, level) in fg.levels.iter().enumerate() {
        assert_eq!(level.values.len() % 4, 0);
        let mut end = 0;
        let mut here = Vec::new();
        let mut parent_at = 0usize;
        // (parent index, next free x within it, previous sibling name)
        let mut cursor: Option<(usize, i64, String)> = None;
        for node in level.values.chunks_exact(4) {
            let (x, total, own) = (node[0] + end, node[1], node[2]);
            assert!(node[0] >= 0, "x must not go backwards");
            end = x + total;
            let name = fg.names[node[3] as usize].clone();
            if depth == 0 {
                assert_eq!((x, own, node[3]), (0, 0, 0));
                assert_eq!(total, fg.total);
                here.push((x, total, own, String::new()));
                continue;
            }
            while !(above[parent_at].0 <= x && x < above[parent_at].0 + above[parent_at].1) {
                parent_at += 1;
            }
            let parent = &above[parent_at];
            match &mut cursor {
                Some((p, next, prev)) if *p == parent_at => {
                    assert_eq!(x, *next, "siblings are contiguous");
                    assert!(*prev != "other", "other must be the last child");
                    if name != "other" {
                        assert!(*prev < name, "{prev} before {name}");
                    }
                    *next = x + total;
                    *prev = name.clone();
                }
                _ => {
                    assert_eq!(x, parent.0 + parent.2, "first child starts after parent self");
                    cursor = Some((parent_at, x + total, name.clone()));
                }
            }
            let path = if parent.3.is_empty() { name } else { format!("{};{name}", parent.3) };
            assert!(out.insert(path.clone(), (own, total)).is_none());
            here.push((x, total, own, path));
        }
        above = here;
    }
    out
}

#[test]
fn flamegraph_small_tree_exact_levels() {
    let tree = tree_of(&[("a;b", 3), ("a;c", 2), ("d", 1)]);
    let fg = flamegraph(&tree, 0);
    // Visit order: root, d (last child first), a, c, b.
    assert_eq!(fg.names, ["total", "d", "a", "c", "b"]);
    assert_eq!(levels(&fg), vec![vec![0, 6, 0, 0], vec![0, 5, 0, 2, 0, 1, 1, 1], vec![0, 3, 3, 4, 0, 2, 2, 3],]);
    assert_eq!(fg.total, 6);
    assert_eq!(fg.max_self, 3);
}

#[test]
fn flamegraph_children_start_after_parent_self_and_x_is_delta_encoded() {
    // a: self 2, child b 3; c: self 1, child d 4. Absolute x: a 0, c 5; b 2, d 6.
    let tree = tree_of(&[("a", 2), ("a;b", 3), ("c;d", 4), ("c", 1)]);
    let fg = flamegraph(&tree, 0);
    assert_eq!(fg.names, ["total", "c", "d", "a", "b"]);
    assert_eq!(
        levels(&fg),
        vec![
            vec![0, 10, 0, 0],
            vec![0, 5, 2, 3, 0, 5, 1, 1],
            // b at 2 (delta 2 from 0), d at 6 (delta 1 from b's end at 5)
            vec![2, 3, 3, 4, 1, 4, 4, 2],
        ]
    );
    assert_eq!(fg.max_self, 4);
}

#[test]
fn flamegraph_cut_puts_other_last_and_counts_it_in_max_self() {
    // Totals: a 11, a;b 5, e 3, a;c 2, a;d 2, a;other 2, a;other;x 2, f 1, f;g 1, h 1.
    // Root total 16. max_nodes 4 -> threshold 2: f and h fold into the root's `other` (2), a;other stays the
    // `other` of a (as a leaf).
    let tree = tree_of(&[("a;b", 5), ("a;c", 2), ("a;d", 2), ("a;other;x", 2), ("e", 3), ("f;g", 1), ("h", 1)]);
    let fg = flamegraph(&tree, 4);
    assert_eq!(fg.names, ["total", "other", "e", "a", "d", "c", "b"]);
    assert_eq!(
        levels(&fg),
        vec![
            vec![0, 16, 0, 0],
            vec![0, 11, 0, 3, 0, 3, 3, 2, 0, 2, 2, 1],
            vec![0, 5, 5, 6, 0, 2, 2, 5, 0, 2, 2, 4, 0, 2, 2, 1],
        ]
    );
    assert_eq!(fg.total, 16);
    assert_eq!(fg.max_self, 5);

    // A big enough `other` sets max_self: max_nodes 1 leaves a (11) with `other` 11 below it.
    let fg = flamegraph(&tree, 1);
    assert_eq!(fg.names, ["total", "other", "a"]);
    assert_eq!(levels(&fg), vec![vec![0, 16, 0, 0], vec![0, 11, 0, 2, 0, 5, 5, 1], vec![0, 11, 11, 1],]);
    assert_eq!(fg.max_self, 11);

    // Without a cut, a real `other` frame is still shown as a leaf after its siblings.
    let decoded = decode(&flamegraph(&tree, 0));
    assert_eq!(decoded.get("a;other"), Some(&(2, 2)));
    assert!(!decoded.contains_key("a;other;x"));
    assert_eq!(decoded.get("f;g"), Some(&(1, 1)));
}

#[test]
fn flamegraph_empty_tree() {
    let fg = flamegraph(&FunctionTree::new(), 0);
    assert_eq!(fg.names, ["total"]);
    assert_eq!(levels(&fg), vec![vec![0, 0, 0, 0]]);
    assert_eq!((fg.total, fg.max_self), (0, 0));
    assert_eq!(flamegraph(&FunctionTree::new(), 10), fg);
}

#[test]
fn flamegraph_function_called_total_reuses_index_zero() {
    let tree = tree_of(&[("total;x", 1), ("y;total", 2)]);
    let fg = flamegraph(&tree, 0);
    assert_eq!(fg.names, ["total", "y", "x"]);
    assert_eq!(levels(&fg), vec![vec![0, 3, 0, 0], vec![0, 1, 0, 0, 0, 2, 0, 1], vec![0, 1, 1, 2, 0, 2, 2, 0],]);
}

#[test]
fn flamegraph_decodes_to_the_tree_on_random_input() {
    let tree = random_tree(17, 4000, 30);
    let fg = flamegraph(&tree, 0);
    assert_eq!(decode(&fg), node_map(&tree));
    assert_eq!(fg.total, tree.total());
    let max_self = node_map(&tree).values().map(|v| v.0).max();
    assert_eq!(Some(fg.max_self), max_self);

    for max_nodes in [1, 10, 500, 5000] {
        let fg = flamegraph(&tree, max_nodes);
        assert_eq!(decode(&fg), node_map(&tree.truncate(max_nodes)), "{max_nodes}");
        assert_eq!(fg.total, tree.total());
    }
    // Encoding a tree the aggregate already cut, with no further cut, is the same as cutting
    // while encoding.
    let cut = tree.truncate(500);
    assert_eq!(flamegraph(&cut, 0), flamegraph(&tree, 500));

    let mut rng = Rng(5);
    for _ in 0..20 {
        let small = random_tree(rng.next(), 1 + rng.below(50) as usize, 1 + rng.below(6));
        let n = rng.below(20) as usize;
        assert_eq!(decode(&flamegraph(&small, n)), node_map(&small.truncate(n)));
    }
}

/// Timing at benchmark scale; run with
/// `cargo test --release -p flamedb-planner encode_scale -- --ignored --nocapture`.
#[test]
#[ignore]
fn encode_scale_ten_million_nodes() {
    let started = std::time::Instant::now();
    let mut tree = FunctionTree::new();
    let names: Vec<u32> = (0..200_000).map(|i| tree.intern(&format!("fn_{i}"))).collect();
    let mut rng = Rng(42);
    let mut node = FunctionTree::ROOT;
    while tree.node_count() < 10_000_000 {
        if rng.below(16) == 0 {
            node = FunctionTree::ROOT;
        }
        node = tree.child(node, names[rng.below(names.len() as u64) as usize]);
        tree.add_self(node, 1 + rng.below(10) as i64);
    }
    let built = started.elapsed();
    let fg = flamegraph(&tree, 16_384);
    let encoded = started.elapsed() - built;
    eprintln!(
        "built {} nodes in {built:?}; cut to 16384 + flamegraph ({} levels) in {encoded:?}",
        tree.node_count(),
        fg.levels.len()
    );
}
