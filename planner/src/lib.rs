//! Query planning side of flamedb: turns Pyroscope requests into DataFusion plans and their
//! results into Pyroscope's wire shapes. It owns the query API's validation and semantics,
//! selectors and time ranges as DataFusion filters, the plans of flame graphs and time series, the
//! session every query runs in, and the encoders of the wire results.

pub mod analyze;
pub mod api;
pub mod call_site;
pub mod diff;
pub mod encode;
pub mod error;
pub mod limits;
pub mod query;
pub mod session;
pub mod spans;
pub mod sql;

pub use api::{Querier, RequestContext};
pub use error::{ErrorKind, QueryError};
pub use limits::QueryLimits;
pub use query::{Engine, Selection};
