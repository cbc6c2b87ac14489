//! Wire encoders for a merged function tree: the forms a SelectMergeStacktraces (or
//! SelectMergeProfile) answer can take. All of them cut the tree with the same `max_nodes` rule
//! (see `FunctionTree::truncate`) and show an `other` child as one leaf after its siblings.

mod dot;
mod flamegraph;
mod flamegraph_diff;
mod pprof;
mod shown;
mod tree_bytes;

#[cfg(test)]
mod tests;

pub use dot::{DEFAULT_DOT_NODES, DEFAULT_SOURCE_NODES, dot, dot_limits};
pub use flamegraph::flamegraph;
pub use flamegraph_diff::flamegraph_diff;
pub use pprof::to_pprof;
pub use tree_bytes::{decode_tree_bytes, tree_bytes};
