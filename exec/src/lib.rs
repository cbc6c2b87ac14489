//! DataFusion physical side of flamedb: the tables over the ingester head, the scan that reads
//! them, the flame-graph aggregate with its function-name tree, and the extension codec that lets
//! plan fragments travel between processes.

pub mod block_scan;
pub mod codec;
pub mod dataset;
pub mod filter;
pub mod flamegraph;
pub mod provider;
pub mod scan;
pub mod schema;
pub mod tree;
pub mod udf;

pub use codec::FlamedbCodec;
pub use dataset::{Dataset, TenantSnapshot};
pub use filter::ScanFilter;
pub use flamegraph::{FlameGraphUdaf, SymbolSource};
pub use provider::HeadTableProvider;
pub use scan::HeadScanExec;
pub use schema::HeadTable;
