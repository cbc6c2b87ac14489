use flamedb_exec::tree::{FunctionTree, TreeDecodeError};

use super::{Rng, node_map, random_tree, tree_of};
use crate::encode::{decode_tree_bytes, tree_bytes};

#[test]
fn tree_bytes_layout_by_hand() {
    let tree = tree_of(&[("c", 300), ("a;b", 3)]);
    let bytes = tree_bytes(&tree, 0);
    #[rustfmt::skip]
    let expected = vec![
        0, 0, 2,             // virtual root: "", self 0, 2 children
        1, b'a', 0, 1,       // a: self 0, 1 child
        1, b'b', 3, 0,       // a;b: self 3
        1, b'c', 0xac, 0x02, 0, // c: self 300 = 0b10_0101100
    ];
    assert_eq!(bytes, expected);
}

#[test]
fn tree_bytes_cut_with_other_by_hand() {
    // a 5 (b 4, c 1), d 1: max_nodes 2 -> threshold 4; c and d fold into `other`.
    let tree = tree_of(&[("a;b", 4), ("a;c", 1), ("d", 1)]);
    let bytes = tree_bytes(&tree, 2);
    #[rustfmt::skip]
    let expected = vec![
        0, 0, 2,
        1, b'a', 0, 2,
        1, b'b', 4, 0,
        5, b'o', b't', b'h', b'e', b'r', 1, 0,
        5, b'o', b't', b'h', b'e', b'r', 1, 0,
    ];
    assert_eq!(bytes, expected);
}

#[test]
fn tree_bytes_round_trip_equals_the_cut_tree() {
    let tree = random_tree(23, 3000, 25);
    for max_nodes in [0, 1, 7, 300, 100_000] {
        let bytes = tree_bytes(&tree, max_nodes);
        let decoded = decode_tree_bytes(&bytes).expect("own encoding decodes");
        assert_eq!(node_map(&decoded), node_map(&tree.truncate(max_nodes)), "{max_nodes}");
    }
    let mut negative = FunctionTree::new();
    negative.insert_stack(&["x", "y"], -5);
    let decoded = decode_tree_bytes(&tree_bytes(&negative, 0)).expect("decodes");
    assert_eq!(node_map(&decoded), node_map(&negative));
}

#[test]
fn tree_bytes_empty_tree() {
    assert!(tree_bytes(&FunctionTree::new(), 0).is_empty());
    assert_eq!(decode_tree_bytes(&[]).expect("empty").node_count(), 0);
    assert_eq!(decode_tree_bytes(&[0, 0, 0]).expect("bare root").node_count(), 0);
}

#[test]
fn tree_bytes_decode_merges_duplicate_siblings_and_handles_depth() {
    let dupes = [0, 0, 2, 1, b'a', 1, 0, 1, b'a', 2, 0];
    let tree = decode_tree_bytes(&dupes).expect("decodes");
    assert_eq!(tree.node_count(), 1);
    assert_eq!(tree.total(), 3);

    // A 200k-deep chain must not exhaust the (call) stack.
    let depth = 200_000;
    let mut deep = vec![0, 0, 1];
    for i in 0..depth {
        let last = i + 1 == depth;
        deep.extend_from_slice(&[1, b'f', u8::from(last), u8::from(!last)]);
    }
    let tree = decode_tree_bytes(&deep).expect("deep chain");
    assert_eq!(tree.node_count(), depth);
    assert_eq!(tree.total(), 1);
}

#[test]
fn tree_bytes_decode_rejects_bad_input_without_panicking() {
    let bytes = tree_bytes(&random_tree(29, 100, 8), 0);
    for len in 1..bytes.len() {
        assert!(decode_tree_bytes(&bytes[..len]).is_err(), "prefix {len}");
    }
    let mut longer = bytes.clone();
    longer.push(7);
    assert_eq!(decode_tree_bytes(&longer).unwrap_err(), TreeDecodeError::TrailingBytes(1));
    // A child count far beyond the data fails on input, not on allocation.
    assert_eq!(decode_tree_bytes(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err(), TreeDecodeError::UnexpectedEof);
    // Invalid UTF-8 names are repaired, not fatal.
    let tree = decode_tree_bytes(&[0, 0, 1, 2, 0xff, 0xfe, 1, 0]).expect("lossy name");
    assert_eq!(tree.total(), 1);

    let mut rng = Rng(31);
    for _ in 0..20_000 {
        let len = rng.below(48) as usize;
        let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = decode_tree_bytes(&random);
    }
    for _ in 0..1_000 {
        let mut mutated = bytes.clone();
        let at = rng.below(mutated.len() as u64) as usize;
        mutated[at] = rng.next() as u8;
        let _ = decode_tree_bytes(&mutated);
    }
}
