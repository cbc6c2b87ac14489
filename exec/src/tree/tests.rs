//! Tests of the function tree against expectations computed independently of its internals
//! (path maps built from the input stacks, hand-worked truncations).

use std::collections::BTreeMap;

use super::{FunctionTree, TreeDecodeError};

/// `path -> (self, total)` for every node, root excluded, paths `;`-joined.
fn node_map(tree: &FunctionTree) -> BTreeMap<String, (i64, i64)> {
    let totals = tree.totals();
    (1..=tree.node_count() as u32)
        .map(|node| {
            let path = tree.path(node).join(";");
            (path, (tree.self_value(node), totals[node as usize]))
        })
        .collect()
}

/// `path -> (self, total)` computed straight from stacks, without any tree.
fn expected_map(stacks: &[(Vec<String>, i64)]) -> BTreeMap<String, (i64, i64)> {
    let mut map: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (stack, value) in stacks {
        for depth in 1..=stack.len() {
            let entry = map.entry(stack[..depth].join(";")).or_default();
            entry.1 += value;
            if depth == stack.len() {
                entry.0 += value;
            }
        }
    }
    map
}

/// xorshift64*: deterministic, dependency-free randomness for generated trees.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_stacks(seed: u64, count: usize, names: u64) -> Vec<(Vec<String>, i64)> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let depth = 1 + rng.below(8) as usize;
            let stack = (0..depth).map(|_| format!("fn_{}", rng.below(names))).collect();
            (stack, 1 + rng.below(100) as i64)
        })
        .collect()
}

fn build(stacks: &[(Vec<String>, i64)]) -> FunctionTree {
    let mut tree = FunctionTree::new();
    for (stack, value) in stacks {
        tree.insert_stack(stack, *value);
    }
    tree
}

#[test]
fn tree_insert_builds_totals_and_shares_prefixes() {
    let mut tree = FunctionTree::new();
    tree.insert_stack(&["a", "b"], 3);
    tree.insert_stack(&["a", "c"], 2);
    tree.insert_stack(&["d"], 1);
    tree.insert_stack(&["a", "b"], 4);
    tree.insert_stack(&["a"], 5);
    tree.insert_stack::<&str>(&[], 100); // no frames: dropped

    assert_eq!(tree.node_count(), 4);
    assert_eq!(tree.total(), 15);
    let expected: BTreeMap<String, (i64, i64)> = [("a", (5, 14)), ("a;b", (7, 7)), ("a;c", (2, 2)), ("d", (1, 1))]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(node_map(&tree), expected);

    let a = tree.intern("a");
    assert_eq!(tree.name(a), "a");
    assert_eq!(tree.lookup("zzz"), None);
    let node_a = tree.child(FunctionTree::ROOT, a);
    assert_eq!(tree.node_count(), 4, "child() must find the existing node");
    assert_eq!(tree.self_value(node_a), 5);
    assert_eq!(tree.parent(node_a), FunctionTree::ROOT);
}

#[test]
fn tree_matches_independent_path_sums_on_random_stacks() {
    let stacks = random_stacks(7, 3000, 25);
    let tree = build(&stacks);
    assert_eq!(node_map(&tree), expected_map(&stacks));
    assert_eq!(tree.total(), stacks.iter().map(|(_, v)| v).sum::<i64>());
}

#[test]
fn tree_merge_equals_building_from_all_stacks() {
    let left_stacks = random_stacks(1, 1500, 20);
    let right_stacks = random_stacks(2, 1500, 30);
    let mut left = build(&left_stacks);
    // Interning in a different order gives the right tree different name ids.
    let mut right = FunctionTree::new();
    for i in (0..30).rev() {
        right.intern(&format!("fn_{i}"));
    }
    for (stack, value) in &right_stacks {
        right.insert_stack(stack, *value);
    }
    left.merge(&right);

    let all: Vec<_> = left_stacks.iter().chain(&right_stacks).cloned().collect();
    assert_eq!(node_map(&left), expected_map(&all));

    let mut empty = FunctionTree::new();
    empty.merge(&right);
    assert_eq!(node_map(&empty), expected_map(&right_stacks));
}

#[test]
fn tree_encode_decode_round_trip() {
    let stacks = random_stacks(3, 3000, 40);
    let mut tree = build(&stacks);
    tree.insert_stack(&["neg", "ative"], -17);
    tree.insert_stack(&["ünïcode", "名前"], i64::MAX / 4);
    let mut bytes = Vec::new();
    tree.encode(&mut bytes);
    let decoded = FunctionTree::decode(&bytes).expect("valid encoding");
    assert_eq!(node_map(&decoded), node_map(&tree));
    assert_eq!(decoded.node_count(), tree.node_count());

    // The decoded tree is fully usable: its edge index was rebuilt.
    let mut again = decoded.clone();
    again.insert_stack(&["neg", "ative"], 17);
    assert_eq!(again.node_count(), tree.node_count());

    let mut empty_bytes = Vec::new();
    FunctionTree::new().encode(&mut empty_bytes);
    let empty = FunctionTree::decode(&empty_bytes).expect("empty tree");
    assert_eq!(empty.node_count(), 0);
    assert_eq!(empty.total(), 0);
}

#[test]
fn tree_decode_rejects_every_truncated_prefix() {
    let tree = build(&random_stacks(4, 200, 10));
    let mut bytes = Vec::new();
    tree.encode(&mut bytes);
    for len in 0..bytes.len() {
        assert!(FunctionTree::decode(&bytes[..len]).is_err(), "prefix of {len} bytes must not decode");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(FunctionTree::decode(&longer).unwrap_err(), TreeDecodeError::TrailingBytes(1));
}

#[test]
fn tree_decode_rejects_bad_references() {
    // version, 1 name "a", 2 nodes
    let header = [1u8, 1, 1, b'a', 2];
    // node 1: parent 0, name 0, self 1; node 2: parent 2 (itself) -> invalid
    let bad_parent = [&header[..], &[0, 0, 2], &[2, 0, 2]].concat();
    assert_eq!(FunctionTree::decode(&bad_parent).unwrap_err(), TreeDecodeError::BadParent { node: 2, parent: 2 });
    let bad_name = [&header[..], &[0, 0, 2], &[1, 1, 2]].concat();
    assert!(matches!(FunctionTree::decode(&bad_name), Err(TreeDecodeError::BadName { node: 2, name: 1, .. })));
    assert_eq!(FunctionTree::decode(&[9, 0, 0]).unwrap_err(), TreeDecodeError::UnsupportedVersion(9));
    assert_eq!(FunctionTree::decode(&[1, 1, 2, 0xff, 0xfe, 0]).unwrap_err(), TreeDecodeError::InvalidUtf8);
    let overflow = [1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(FunctionTree::decode(&overflow).unwrap_err(), TreeDecodeError::VarintOverflow);
    // A huge declared count with no data behind it fails on input, not on allocation.
    let huge = [1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(FunctionTree::decode(&huge).unwrap_err(), TreeDecodeError::UnexpectedEof);
    // Duplicate names and duplicate edges are merged, not trusted.
    let dupes = [1u8, 2, 1, b'a', 1, b'a', 2, 0, 0, 2, 0, 1, 4].to_vec();
    let tree = FunctionTree::decode(&dupes).expect("duplicates merge");
    assert_eq!(tree.node_count(), 1);
    assert_eq!(tree.total(), 3);
}

#[test]
fn tree_decode_survives_random_and_mutated_bytes() {
    let mut rng = Rng(99);
    for round in 0..20_000 {
        let len = rng.below(64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && !bytes.is_empty() {
            bytes[0] = 1; // get past the version check
        }
        let _ = FunctionTree::decode(&bytes);
    }
    let tree = build(&random_stacks(5, 100, 8));
    let mut valid = Vec::new();
    tree.encode(&mut valid);
    for _ in 0..5_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        if let Ok(decoded) = FunctionTree::decode(&bytes) {
            // Whatever decodes is a consistent tree.
            let _ = decoded.truncate(5).view();
        }
    }
}

/// Stacks for the hand-worked truncation examples. Node totals:
/// a 11, a;b 5, e 3, a;c 2, a;d 2, a;other 2, a;other;x 2, f 1, f;g 1, h 1 (10 nodes).
fn truncation_example() -> FunctionTree {
    let mut tree = FunctionTree::new();
    tree.insert_stack(&["a", "b"], 5);
    tree.insert_stack(&["a", "c"], 2);
    tree.insert_stack(&["a", "d"], 2);
    tree.insert_stack(&["a", "other", "x"], 2);
    tree.insert_stack(&["e"], 3);
    tree.insert_stack(&["f", "g"], 1);
    tree.insert_stack(&["h"], 1);
    tree
}

fn map_of(entries: &[(&str, i64, i64)]) -> BTreeMap<String, (i64, i64)> {
    entries.iter().map(|&(path, own, total)| (path.to_string(), (own, total))).collect()
}

#[test]
fn truncate_keeps_ties_and_folds_cut_siblings_into_other() {
    let tree = truncation_example();
    assert_eq!(tree.node_count(), 10);

    // 4th largest total is 2: c, d tie at 2 and stay; a;other goes to a's `other` by name
    // (dropping x); f (with g) and h fall below 2 and become the root's `other` = 2.
    let cut = tree.truncate(4);
    let expected = map_of(&[
        ("a", 0, 11),
        ("a;b", 5, 5),
        ("a;c", 2, 2),
        ("a;d", 2, 2),
        ("a;other", 2, 2),
        ("e", 3, 3),
        ("other", 2, 2),
    ]);
    assert_eq!(node_map(&cut), expected);
    assert_eq!(cut.total(), tree.total());
    // 5th largest is also 2: same cut.
    assert_eq!(node_map(&tree.truncate(5)), expected);

    // 3rd largest is 3: c, d and a;other (2 + 2 + 2) fold into a's `other`.
    let cut = tree.truncate(3);
    assert_eq!(
        node_map(&cut),
        map_of(&[("a", 0, 11), ("a;b", 5, 5), ("a;other", 6, 6), ("e", 3, 3), ("other", 2, 2),])
    );

    // 9th largest is 1: every node reaches it, but a;other still collapses into a leaf.
    assert_eq!(
        node_map(&tree.truncate(9)),
        map_of(&[
            ("a", 0, 11),
            ("a;b", 5, 5),
            ("a;c", 2, 2),
            ("a;d", 2, 2),
            ("a;other", 2, 2),
            ("e", 3, 3),
            ("f", 0, 1),
            ("f;g", 1, 1),
            ("h", 1, 1),
        ])
    );

    // 1st largest is 11: only `a` survives, with everything beneath it in `other`.
    assert_eq!(node_map(&tree.truncate(1)), map_of(&[("a", 0, 11), ("a;other", 11, 11), ("other", 5, 5)]));
}

#[test]
fn truncate_is_a_no_op_within_the_limit() {
    let tree = truncation_example();
    for max_nodes in [0, 10, 11, 1000] {
        assert!(matches!(tree.truncated(max_nodes), std::borrow::Cow::Borrowed(_)));
        assert_eq!(node_map(&tree.truncate(max_nodes)), node_map(&tree));
    }
}

#[test]
fn truncate_random_tree_keeps_exactly_the_nodes_at_or_above_the_threshold() {
    let stacks = random_stacks(11, 4000, 15);
    let tree = build(&stacks);
    let full = node_map(&tree);
    let max_nodes = 300;
    let mut totals: Vec<i64> = full.values().map(|&(_, total)| total).collect();
    totals.sort_unstable_by(|a, b| b.cmp(a));
    let threshold = totals[max_nodes - 1];

    let cut = node_map(&tree.truncate(max_nodes));
    for (path, &(own, total)) in &full {
        let frames: Vec<&str> = path.split(';').collect();
        let survives = (1..=frames.len()).all(|d| full[&frames[..d].join(";")].1 >= threshold);
        if survives {
            assert_eq!(cut.get(path), Some(&(own, total)), "{path}");
        } else {
            assert!(!cut.contains_key(path), "{path} should have been cut");
        }
    }
    // Every `other` holds exactly the totals cut from its parent's children.
    for (path, &(own, total)) in cut.iter().filter(|(p, _)| p.ends_with("other")) {
        assert_eq!(own, total);
        let parent = path.strip_suffix("other").unwrap_or("").trim_end_matches(';');
        let cut_sum: i64 = full
            .iter()
            .filter(|(p, (_, t))| {
                let (head, _) = p.rsplit_once(';').unwrap_or(("", p.as_str()));
                head == parent && *t < threshold
            })
            .map(|(_, &(_, t))| t)
            .sum();
        assert_eq!(total, cut_sum, "other under {parent:?}");
    }
    let kept = cut.keys().filter(|p| !p.ends_with("other")).count();
    assert!(kept >= max_nodes);
    assert_eq!(tree.truncate(max_nodes).total(), tree.total());
}

#[test]
fn view_sorts_children_by_name_with_other_last() {
    let mut tree = FunctionTree::new();
    for (frame, value) in [("other", 1), ("b", 2), ("a", 3), ("B", 4), ("ab", 5)] {
        tree.insert_stack(&["root", frame], value);
    }
    tree.insert_stack(&["z"], 1);
    let view = tree.view();
    assert_eq!(view.total(FunctionTree::ROOT), 16);
    let top: Vec<&str> = view.children(FunctionTree::ROOT).iter().map(|&n| tree.name(tree.name_id(n))).collect();
    assert_eq!(top, ["root", "z"]);
    let root = view.children(FunctionTree::ROOT)[0];
    assert_eq!(view.total(root), 15);
    let names: Vec<&str> = view.children(root).iter().map(|&n| tree.name(tree.name_id(n))).collect();
    assert_eq!(names, ["B", "a", "ab", "b", "other"]);
    assert!(view.children(view.children(root)[0]).is_empty());
}

/// Build + cut timing at benchmark scale; run with
/// `cargo test --release -p flamedb-exec tree_scale -- --ignored --nocapture`.
#[test]
#[ignore]
fn tree_scale_ten_million_nodes() {
    let started = std::time::Instant::now();
    let mut tree = FunctionTree::new();
    let names: Vec<u32> = (0..200_000).map(|i| tree.intern(&format!("fn_{i}"))).collect();
    let mut rng = Rng(42);
    let mut node = FunctionTree::ROOT;
    while tree.node_count() < 10_000_000 {
        if rng.below(16) == 0 {
            node = FunctionTree::ROOT;
        }
        let name = names[rng.below(names.len() as u64) as usize];
        node = tree.child(node, name);
        tree.add_self(node, 1 + rng.below(10) as i64);
    }
    let built = started.elapsed();
    let cut = tree.truncate(16_384);
    let truncated = started.elapsed() - built;
    eprintln!("built {} nodes in {built:?}, cut to {} in {truncated:?}", tree.node_count(), cut.node_count());
    assert!(cut.node_count() >= 16_384);
}
