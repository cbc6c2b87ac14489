//! Scalar functions over the head tables.

pub mod label;

pub use label::label_udf;
