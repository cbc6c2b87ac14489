//! The write path of flamedb: profile decoders, normalization into series, validation, the
//! distributor and the in-memory ingester head.

pub mod distributor;
pub mod gzip;
pub mod head;
pub mod legacy;
pub mod model;
pub mod normalize;
pub mod otlp;
pub mod overrides;
pub mod pprof;
pub mod rate_limit;
pub mod testing;
pub mod validate;
pub mod wal;
