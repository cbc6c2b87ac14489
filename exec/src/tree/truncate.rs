//! Cutting a tree to `max_nodes` with Pyroscope's rule (contract 3.3).
//!
//! If the tree has at most N nodes (root excluded) nothing is cut. Otherwise the threshold is the
//! N-th largest node total over the whole tree; every child whose total is below it is removed
//! with its subtree, and the removed totals of a parent's children are summed into one synthetic
//! `other` child (self = total = that sum). Ties at the threshold are kept, so the result may
//! exceed N slightly. A child that is itself called `other` always joins its parent's `other`.

use std::borrow::Cow;

use super::FunctionTree;
use super::key_hash::{name_of, parent_of};

/// Marks a node or name of the source tree that has no counterpart in the cut tree.
const DROPPED: u32 = u32::MAX;

impl FunctionTree {
    /// The tree cut to `max_nodes` nodes (0 = no cut); see the module docs for the rule.
    pub fn truncate(&self, max_nodes: usize) -> FunctionTree {
        self.truncated(max_nodes).into_owned()
    }

    /// Like [`FunctionTree::truncate`], but borrows `self` when nothing needs cutting, so that
    /// encoders of an uncut tree do not copy it.
    pub fn truncated(&self, max_nodes: usize) -> Cow<'_, FunctionTree> {
        if max_nodes == 0 || self.node_count() <= max_nodes {
            return Cow::Borrowed(self);
        }
        let totals = self.totals();
        let threshold = nth_largest(&totals[1..], max_nodes);
        Cow::Owned(self.cut_below(&totals, threshold))
    }

    /// Copies the nodes whose total reaches `threshold` (and whose ancestors all do), folding
    /// the rest into `other` children. One forward pass: parents precede children, so a node's
    /// parent has been decided by the time the node is seen.
    fn cut_below(&self, totals: &[i64], threshold: i64) -> FunctionTree {
        let other = self.other_id();
        let mut out = FunctionTree::new();
        let mut name_map = vec![DROPPED; self.names.len()];
        let mut node_map = vec![DROPPED; self.links.len()];
        node_map[0] = FunctionTree::ROOT;
        // Sum of the cut children of each node of `out`, indexed by its id there.
        let mut other_sums: Vec<i64> = vec![0];

        for (i, &link) in self.links.iter().enumerate().skip(1) {
            let parent = node_map[parent_of(link) as usize];
            if parent == DROPPED {
                continue;
            }
            let name = name_of(link);
            if totals[i] < threshold || Some(name) == other {
                let sum = &mut other_sums[parent as usize];
                *sum = sum.wrapping_add(totals[i]);
                continue;
            }
            let mut new_name = name_map[name as usize];
            if new_name == DROPPED {
                new_name = out.intern(&self.names[name as usize]);
                name_map[name as usize] = new_name;
            }
            node_map[i] = out.push_new(parent, new_name, self.selfs[i]);
            other_sums.push(0);
        }

        if other_sums.iter().any(|&sum| sum != 0) {
            let other_name = out.intern(FunctionTree::OTHER);
            for (parent, &sum) in other_sums.iter().enumerate() {
                if sum != 0 {
                    // No `other` child was copied above, so this edge is new.
                    out.push_new(parent as u32, other_name, sum);
                }
            }
        }
        out
    }
}

/// The `n`-th largest of `values` (1-based; `1 <= n <= values.len()`), in O(len) with
/// quickselect rather than a heap of `n` entries.
fn nth_largest(values: &[i64], n: usize) -> i64 {
    let mut scratch = values.to_vec();
    let (_, nth, _) = scratch.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
    *nth
}
