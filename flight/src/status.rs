//! SQL errors as gRPC statuses, so a Flight client sees the same classification the HTTP endpoint
//! answers with (invalid statement, read-only violation, memory limit, timeout, our fault).

use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use flamedb_planner::sql::{SqlError, SqlErrorKind};
use tonic::Status;

/// The message every write attempt gets: flamedb's SQL surface only reads.
pub const READ_ONLY: &str = "flamedb SQL is read-only";

/// The status of a SQL error.
pub fn sql_status(e: &SqlError) -> Status {
    match e.kind {
        SqlErrorKind::Invalid => Status::invalid_argument(e.message.clone()),
        SqlErrorKind::ReadOnly => Status::permission_denied(e.message.clone()),
        SqlErrorKind::ResourcesExhausted => Status::resource_exhausted(e.message.clone()),
        SqlErrorKind::Timeout => Status::deadline_exceeded(e.message.clone()),
        SqlErrorKind::Internal => Status::internal(e.message.clone()),
    }
}

/// An error raised while a result streams, classified like a planning error and carried as the
/// status the client reads at the end of the stream.
pub fn stream_error(e: DataFusionError) -> FlightError {
    FlightError::Tonic(Box::new(sql_status(&SqlError::from_datafusion(e))))
}

/// A failure building Arrow metadata (schemas, listings): always ours.
pub fn arrow_status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("encoding Arrow data: {e}"))
}

/// The status of a write attempt.
pub fn read_only() -> Status {
    Status::permission_denied(READ_ONLY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn kinds_map_to_codes() {
        let cases = [
            (SqlErrorKind::Invalid, Code::InvalidArgument),
            (SqlErrorKind::ReadOnly, Code::PermissionDenied),
            (SqlErrorKind::ResourcesExhausted, Code::ResourceExhausted),
            (SqlErrorKind::Timeout, Code::DeadlineExceeded),
            (SqlErrorKind::Internal, Code::Internal),
        ];
        for (kind, code) in cases {
            let s = sql_status(&SqlError::new(kind, "boom"));
            assert_eq!(s.code(), code, "{kind:?}");
            assert_eq!(s.message(), "boom");
        }
    }

    #[test]
    fn stream_errors_keep_their_class() {
        let e = DataFusionError::ResourcesExhausted("pool".into());
        match stream_error(e) {
            FlightError::Tonic(s) => assert_eq!(s.code(), Code::ResourceExhausted),
            other => panic!("unexpected {other:?}"),
        }
    }
}
