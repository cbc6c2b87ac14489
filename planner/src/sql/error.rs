//! SQL errors in the terms the transports map to status codes (HTTP and gRPC/Flight), with the
//! DataFusion errors classified once here so both transports answer a query the same way.

use datafusion::error::DataFusionError;

/// What went wrong, as a transport needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The statement does not parse or plan (HTTP 400 / `InvalidArgument`).
    Invalid,
    /// The statement would change something: flamedb SQL only reads (HTTP 403 / `PermissionDenied`).
    ReadOnly,
    /// The query needed more memory than one query may take (HTTP 422 / `ResourceExhausted`).
    ResourcesExhausted,
    /// The query ran past the timeout (HTTP 504 / `DeadlineExceeded`).
    Timeout,
    /// Our fault (HTTP 500 / `Internal`).
    Internal,
}

impl SqlErrorKind {
    /// A short code for error bodies.
    pub fn code(self) -> &'static str {
        match self {
            SqlErrorKind::Invalid => "invalid_argument",
            SqlErrorKind::ReadOnly => "permission_denied",
            SqlErrorKind::ResourcesExhausted => "resource_exhausted",
            SqlErrorKind::Timeout => "deadline_exceeded",
            SqlErrorKind::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub kind: SqlErrorKind,
    pub message: String,
}

impl SqlError {
    pub fn new(kind: SqlErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SqlErrorKind::Invalid, message)
    }

    /// Classifies an error DataFusion raised while planning or running a statement. Errors we
    /// raise inside a stream (the timeout) travel as `External` and come back out unchanged.
    pub fn from_datafusion(e: DataFusionError) -> Self {
        if let Some(ours) = find_ours(&e) {
            return ours;
        }
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => {
                Self::new(SqlErrorKind::ResourcesExhausted, format!("the query exceeded its memory limit: {m}"))
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => Self::invalid(strip_context(&e)),
            DataFusionError::Execution(m) => Self::invalid(m.clone()),
            _ => Self::new(SqlErrorKind::Internal, e.to_string()),
        }
    }
}

/// A [`SqlError`] we wrapped into a DataFusion error somewhere below (a stream).
fn find_ours(e: &DataFusionError) -> Option<SqlError> {
    let mut cur = e;
    loop {
        match cur {
            DataFusionError::External(inner) => return inner.downcast_ref::<SqlError>().cloned(),
            DataFusionError::Context(_, inner) => cur = inner,
            DataFusionError::Shared(inner) => cur = inner,
            _ => return None,
        }
    }
}

/// DataFusion's message without its "Error during planning: " style prefixes.
fn strip_context(e: &DataFusionError) -> String {
    let root = e.find_root();
    match root {
        DataFusionError::Plan(m) | DataFusionError::NotImplemented(m) | DataFusionError::Configuration(m) => m.clone(),
        other => other.to_string(),
    }
}

impl From<SqlError> for DataFusionError {
    fn from(e: SqlError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

impl From<crate::QueryError> for SqlError {
    fn from(e: crate::QueryError) -> Self {
        let kind = match e.kind {
            crate::ErrorKind::InvalidArgument => SqlErrorKind::Invalid,
            _ => SqlErrorKind::Internal,
        };
        Self::new(kind, e.message)
    }
}
