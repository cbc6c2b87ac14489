//! The flame-graph aggregate and the resolution of stack-trace ids into function names.

pub mod resolve;
pub mod udaf;

pub use resolve::SymbolSource;
pub use udaf::FlameGraphUdaf;
