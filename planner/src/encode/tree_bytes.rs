//! Pyroscope's "tree" wire format (`PROFILE_FORMAT_TREE`, and the legacy `/ingest?format=tree`
//! body): a pre-order walk where each node is `uvarint(len(name)), name, uvarint(self),
//! uvarint(child_count)`, led by a virtual root with an empty name and self 0.

use flamedb_exec::tree::varint::{put_uvarint, read_bytes, read_uvarint};
use flamedb_exec::tree::{FunctionTree, TreeDecodeError};

use super::shown::shown_children;

/// Encodes `tree` cut to `max_nodes` (0 = no cut) in the tree format.
///
/// An empty tree encodes to no bytes at all, as Pyroscope does; the decoder accepts both that
/// and a lone virtual root. Self values are written as their two's-complement bits, like Go's
/// `uint64(self)`, so even a negative value survives a round trip.
pub fn tree_bytes(tree: &FunctionTree, max_nodes: usize) -> Vec<u8> {
    let tree = tree.truncated(max_nodes);
    let tree: &FunctionTree = &tree;
    let view = tree.view();
    let other = tree.other_id();

    let top = shown_children(tree, &view, other, FunctionTree::ROOT).count();
    let mut out = Vec::new();
    if top == 0 {
        return out;
    }
    write_node(&mut out, "", 0, top);

    // Reversed so that popping yields children in layout order.
    let mut stack: Vec<_> = shown_children(tree, &view, other, FunctionTree::ROOT).rev().collect();
    while let Some(node) = stack.pop() {
        let children = if node.expand { shown_children(tree, &view, other, node.node).count() } else { 0 };
        let name = tree.name(tree.name_id(node.node));
        write_node(&mut out, name, node.self_value, children);
        if children > 0 {
            stack.extend(shown_children(tree, &view, other, node.node).rev());
        }
    }
    out
}

fn write_node(out: &mut Vec<u8>, name: &str, self_value: i64, children: usize) {
    put_uvarint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    put_uvarint(out, self_value as u64);
    put_uvarint(out, children as u64);
}

/// Decodes the tree format back into a function tree.
///
/// Input may come from any client (legacy ingest), so it is checked throughout and never
/// panics: truncation, varint overflow and trailing bytes are errors; siblings with the same
/// name are merged (their order on the wire carries no meaning); names that are not UTF-8 are
/// repaired lossily rather than rejecting the whole profile; the virtual root's name and self
/// are ignored, since a root has neither in a function tree. Empty input is an empty tree.
pub fn decode_tree_bytes(b: &[u8]) -> Result<FunctionTree, TreeDecodeError> {
    let mut tree = FunctionTree::new();
    if b.is_empty() {
        return Ok(tree);
    }
    let mut pos = 0usize;
    let (_, _, top) = read_node(b, &mut pos)?;
    // (node, children still to read); an explicit stack so deep trees cannot overflow ours.
    let mut stack: Vec<(u32, u64)> = vec![(FunctionTree::ROOT, top)];
    while let Some((parent, remaining)) = stack.last_mut() {
        if *remaining == 0 {
            stack.pop();
            continue;
        }
        *remaining -= 1;
        let parent = *parent;
        let (name, self_value, children) = read_node(b, &mut pos)?;
        let name = tree.intern(&String::from_utf8_lossy(name));
        let node = tree.child(parent, name);
        tree.add_self(node, self_value as i64);
        if children > 0 {
            stack.push((node, children));
        }
    }
    if pos != b.len() {
        return Err(TreeDecodeError::TrailingBytes(b.len() - pos));
    }
    Ok(tree)
}

/// Reads one `(name, self, child_count)` triple.
fn read_node<'a>(b: &'a [u8], pos: &mut usize) -> Result<(&'a [u8], u64, u64), TreeDecodeError> {
    let len = read_uvarint(b, pos)?;
    let name = read_bytes(b, pos, len)?;
    let self_value = read_uvarint(b, pos)?;
    let children = read_uvarint(b, pos)?;
    Ok((name, self_value, children))
}
