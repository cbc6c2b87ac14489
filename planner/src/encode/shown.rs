//! Which children a wire format shows, and with what values.

use flamedb_exec::tree::{FunctionTree, TreeView};

/// A child as the wire formats show it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shown {
    pub node: u32,
    pub total: i64,
    pub self_value: i64,
    /// False for an `other` node: it is drawn as a leaf whatever it held.
    pub expand: bool,
}

/// Children of `node` in layout order (by name, `other` last).
///
/// Pyroscope always folds a child called `other` into the parent's synthetic `other` node,
/// which is a leaf with self = total and is left out when that total is 0; after
/// `FunctionTree::truncate` there is at most one such child, so this only has to relabel it.
pub(super) fn shown_children<'a>(
    tree: &'a FunctionTree,
    view: &'a TreeView,
    other: Option<u32>,
    node: u32,
) -> impl DoubleEndedIterator<Item = Shown> + 'a {
    view.children(node).iter().filter_map(move |&child| {
        let total = view.total(child);
        if Some(tree.name_id(child)) == other {
            (total != 0).then_some(Shown { node: child, total, self_value: total, expand: false })
        } else {
            Some(Shown { node: child, total, self_value: tree.self_value(child), expand: true })
        }
    })
}
