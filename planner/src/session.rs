//! The DataFusion session every query of this process plans in: our functions registered, the
//! flame-graph aggregate bound to the local symbols, partitions sized to the machine.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::prelude::SessionConfig;
use flamedb_exec::{FlameGraphUdaf, SymbolSource, udf};

/// Builds the session state; cheap to clone per query.
pub fn session_state(symbols: Arc<dyn SymbolSource>, target_partitions: usize) -> SessionState {
    let config = SessionConfig::new()
        .with_target_partitions(target_partitions.max(1))
        .with_information_schema(true)
        .with_batch_size(8192);
    let mut state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    // Registration replaces nothing DataFusion ships: these names are ours.
    let _ = state.register_udf(udf::label_udf());
    let _ = state.register_udaf(FlameGraphUdaf::udaf(symbols));
    state
}
