//! Arrow Flight side of flamedb: the Flight service clients query over (Flight SQL on the SQL
//! views, bulk export by JSON ticket) and the serialization boundary of plan fragments, the bytes
//! a coordinator sends to a worker (datafusion-proto plus flamedb's extension codec).

pub mod catalog;
pub mod encode;
pub mod export;
pub mod fragment;
pub mod service;
pub mod sql_info;
pub mod sql_service;
pub mod status;
pub mod tenancy;

pub use service::FlamedbFlight;
pub use tenancy::{ORG_ID_METADATA, TenantResolver};
