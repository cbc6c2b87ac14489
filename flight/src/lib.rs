//! Arrow Flight side of flamedb. Today: the serialization boundary of plan fragments, the bytes a
//! coordinator sends to a worker (datafusion-proto plus flamedb's extension codec). Flight SQL,
//! bulk export and the datafusion-distributed worker build on it.

pub mod fragment;
