//! Query errors in the terms the API layer maps to Connect/gRPC codes.

use datafusion::error::DataFusionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (HTTP 400 / `invalid_argument`).
    InvalidArgument,
    /// The request needs something this build does not do yet (HTTP 501 / `unimplemented`).
    Unimplemented,
    /// Our fault (HTTP 500 / `internal`).
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
}

impl QueryError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::InvalidArgument, message: message.into() }
    }

    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Unimplemented, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Internal, message: message.into() }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        QueryError::internal(format!("query execution failed: {e}"))
    }
}

impl From<arrow::error::ArrowError> for QueryError {
    fn from(e: arrow::error::ArrowError) -> Self {
        QueryError::internal(format!("query execution failed: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;
