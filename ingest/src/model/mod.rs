//! The data model shared by the write and the read path: labels, matchers, profile types and the
//! Prometheus selector syntax.

pub mod labels;
pub mod matchers;
pub mod profile_type;
pub mod selector;

pub use labels::{Label, Labels};
pub use matchers::{MatchOp, Matcher, MatcherError};
pub use profile_type::{ProfileType, ProfileTypeError};
