//! The function tree: the call tree whose frames are function names, built by the flame-graph
//! aggregate, shipped between its Partial and Final phases as bytes, cut to `max_nodes` and handed
//! to the wire encoders.
//!
//! Nodes live in flat arrays (parents are always created before their children, so a parent's
//! index is lower than its child's) which keeps totals, merging, cutting and decoding to linear
//! passes without recursion.

mod codec;
mod function_tree;
mod key_hash;
mod truncate;
pub mod varint;
mod view;

#[cfg(test)]
mod tests;

pub use codec::TreeDecodeError;
pub use function_tree::FunctionTree;
pub use view::TreeView;
