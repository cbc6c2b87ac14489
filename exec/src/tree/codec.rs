//! Binary form of a [`FunctionTree`], the aggregate state passed from the Partial to the Final
//! phase.
//!
//! Layout (all integers unsigned LEB128 varints):
//! `version (1 byte)`, `name_count`, then per name `len, utf-8 bytes`, then `node_count` (root
//! excluded), then per node in id order `parent, name, zigzag(self)`. Totals and the edge index
//! are rebuilt on decode, so they cost nothing on the wire.

use thiserror::Error;

use super::FunctionTree;
use super::varint::{put_uvarint, read_bytes, read_uvarint, unzigzag, zigzag};

/// Version byte leading every encoded tree, so a format change is detected rather than misread.
const VERSION: u8 = 1;

/// Why bytes could not be decoded into a tree.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeDecodeError {
    /// The input ended in the middle of a value.
    #[error("tree encoding is truncated")]
    UnexpectedEof,
    /// A varint was longer than 64 bits.
    #[error("tree encoding has a varint overflowing 64 bits")]
    VarintOverflow,
    /// The leading version byte is not one this build understands.
    #[error("unsupported tree encoding version {0}")]
    UnsupportedVersion(u8),
    /// A function name was not valid UTF-8.
    #[error("tree encoding has a name that is not valid UTF-8")]
    InvalidUtf8,
    /// A node referred to a parent that does not precede it.
    #[error("tree node {node} refers to parent {parent}, which does not precede it")]
    BadParent {
        /// 1-based position of the node in the encoding.
        node: u64,
        /// The parent it named.
        parent: u64,
    },
    /// A node referred to a name outside the names table.
    #[error("tree node {node} refers to name {name}, but only {names} names are defined")]
    BadName {
        /// 1-based position of the node in the encoding.
        node: u64,
        /// The name index it named.
        name: u64,
        /// Size of the names table.
        names: usize,
    },
    /// Bytes were left over after the last node.
    #[error("{0} trailing bytes after the tree encoding")]
    TrailingBytes(usize),
}

impl FunctionTree {
    /// Appends the binary form of the tree to `out` (see the module docs for the layout).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(1 + self.names.len() * 16 + self.node_count() * 5);
        out.push(VERSION);
        put_uvarint(out, self.names.len() as u64);
        for name in &self.names {
            put_uvarint(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        put_uvarint(out, self.node_count() as u64);
        for node in 1..self.links.len() {
            let node = node as u32;
            put_uvarint(out, u64::from(self.parent(node)));
            put_uvarint(out, u64::from(self.name_id(node)));
            put_uvarint(out, zigzag(self.self_value(node)));
        }
    }

    /// Decodes the output of [`FunctionTree::encode`].
    ///
    /// The bytes come from another partition, or from a spill file, so nothing is trusted:
    /// every index is checked, allocations are bounded by the input length, duplicate names or
    /// edges are merged rather than corrupting the index, and no input can panic.
    pub fn decode(buf: &[u8]) -> Result<FunctionTree, TreeDecodeError> {
        let mut pos = 0usize;
        let version = *buf.first().ok_or(TreeDecodeError::UnexpectedEof)?;
        pos += 1;
        if version != VERSION {
            return Err(TreeDecodeError::UnsupportedVersion(version));
        }

        let name_count = read_uvarint(buf, &mut pos)?;
        // Each name takes at least one byte, so the remaining input bounds any honest count.
        let remaining = (buf.len() - pos) as u64;
        let names_cap = name_count.min(remaining) as usize;
        let mut name_map = Vec::with_capacity(names_cap);
        let mut tree = FunctionTree::with_capacity(0, names_cap);
        for _ in 0..name_count {
            let len = read_uvarint(buf, &mut pos)?;
            let bytes = read_bytes(buf, &mut pos, len)?;
            let name = std::str::from_utf8(bytes).map_err(|_| TreeDecodeError::InvalidUtf8)?;
            name_map.push(tree.intern(name));
        }

        let node_count = read_uvarint(buf, &mut pos)?;
        // Each node takes at least three bytes.
        let remaining = (buf.len() - pos) as u64;
        let nodes_cap = node_count.min(remaining / 3) as usize;
        let mut node_map: Vec<u32> = Vec::with_capacity(nodes_cap + 1);
        node_map.push(FunctionTree::ROOT);
        tree.reserve_nodes(nodes_cap);
        for node in 1..=node_count {
            let parent = read_uvarint(buf, &mut pos)?;
            let name = read_uvarint(buf, &mut pos)?;
            let value = unzigzag(read_uvarint(buf, &mut pos)?);
            if parent >= node {
                return Err(TreeDecodeError::BadParent { node, parent });
            }
            let name_id = usize::try_from(name)
                .ok()
                .and_then(|n| name_map.get(n))
                .copied()
                .ok_or(TreeDecodeError::BadName { node, name, names: name_map.len() })?;
            // `parent < node <= node_map.len()` was checked above.
            let parent_id = node_map[parent as usize];
            let id = tree.child(parent_id, name_id);
            tree.add_self(id, value);
            node_map.push(id);
        }
        if pos != buf.len() {
            return Err(TreeDecodeError::TrailingBytes(buf.len() - pos));
        }
        Ok(tree)
    }
}
