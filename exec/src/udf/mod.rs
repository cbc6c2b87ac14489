//! Scalar functions over the head tables.

pub mod frames;
pub mod label;
pub mod stack;
pub mod stack_ids;
pub mod tree_fns;

pub use frames::{contains_udf, frames_udfs, leaf_udf, root_udf};
pub use label::label_udf;
pub use stack::{StackUdf, stack_udf};
pub use tree_fns::{flamegraph_folded_udf, flamegraph_total_udf, tree_udfs};
