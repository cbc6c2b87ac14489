//! A read-only layout of a tree for the encoders: node totals and name-ordered children.

use super::FunctionTree;
use super::key_hash::{name_of, parent_of};

/// Node totals plus each node's children in the order every wire format lays them out:
/// ascending by name (byte-wise, as Go compares strings), with `other` last.
///
/// Children are stored in CSR form (one offsets array, one flat children array) and sorted by a
/// precomputed rank of each name, so a tree of millions of nodes is laid out with one sort of the
/// distinct names and integer sorts of small sibling lists, never a string compare per node.
#[derive(Debug, Clone)]
pub struct TreeView {
    totals: Vec<i64>,
    offsets: Vec<u32>,
    children: Vec<u32>,
}

impl TreeView {
    /// Total (self plus descendants) of `node`; the root's is the tree's total.
    pub fn total(&self, node: u32) -> i64 {
        self.totals[node as usize]
    }

    /// Totals of all nodes, indexed by node id.
    pub fn totals(&self) -> &[i64] {
        &self.totals
    }

    /// Children of `node`, sorted by name with `other` last.
    pub fn children(&self, node: u32) -> &[u32] {
        let start = self.offsets[node as usize] as usize;
        let end = self.offsets[node as usize + 1] as usize;
        &self.children[start..end]
    }
}

impl FunctionTree {
    /// Computes totals and sorted children lists; linear apart from sorting names and siblings.
    pub fn view(&self) -> TreeView {
        let totals = self.totals();
        let nodes = self.links.len();
        let rank = self.name_ranks();

        let mut offsets = vec![0u32; nodes + 1];
        for &link in &self.links[1..] {
            offsets[parent_of(link) as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut cursor = offsets.clone();
        let mut children = vec![0u32; nodes - 1];
        for (node, &link) in self.links.iter().enumerate().skip(1) {
            let slot = &mut cursor[parent_of(link) as usize];
            children[*slot as usize] = node as u32;
            *slot += 1;
        }
        for pair in offsets.windows(2) {
            let siblings = &mut children[pair[0] as usize..pair[1] as usize];
            if siblings.len() > 1 {
                // Siblings have distinct names, so ranks never tie.
                siblings.sort_unstable_by_key(|&c| rank[name_of(self.links[c as usize]) as usize]);
            }
        }
        TreeView { totals, offsets, children }
    }

    /// Position of each name in byte-wise sorted order, with `other` after everything.
    fn name_ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0u32; self.names.len()];
        for (position, &name) in order.iter().enumerate() {
            rank[name as usize] = position as u32;
        }
        if let Some(other) = self.other_id() {
            rank[other as usize] = u32::MAX;
        }
        rank
    }
}
