//! Wire encoders for a merged function tree: the forms a SelectMergeStacktraces (or
//! SelectMergeProfile) answer can take. All of them cut the tree with the same `max_nodes` rule
//! (see `FunctionTree::truncate`) and show an `other` child as one leaf after its siblings.

mod flamegraph;
mod pprof;
mod shown;
mod tree_bytes;

#[cfg(test)]
mod tests;

pub use flamegraph::flamegraph;
pub use pprof::to_pprof;
pub use tree_bytes::{decode_tree_bytes, tree_bytes};
