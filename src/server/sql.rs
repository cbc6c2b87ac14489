//! `POST /api/v1/sql`: one read-only statement over the caller's tenants, answered as JSON (an
//! array of row objects), CSV or an Arrow IPC stream by `Accept`. Rows stream out as DataFusion
//! produces them; the status is decided by the first batch, so errors raised before any row (a
//! plan error, the memory limit of an aggregate, the timeout) get their own status code.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use flamedb_planner::sql::{SqlError, SqlErrorKind};
use futures::{StreamExt, stream};
use http::{HeaderMap, StatusCode, header};

use super::services::Api;
use super::tenant::{self, ORG_ID_HEADER};

/// Media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The answer formats, chosen from `Accept` (JSON when absent or `*/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    fn from_accept(accept: Option<&str>) -> Result<Self, String> {
        let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else { return Ok(Format::Json) };
        for part in accept.split(',') {
            let media = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "*/*" | "application/*" => return Ok(Format::Json),
                "text/csv" | "text/*" => return Ok(Format::Csv),
                ARROW_STREAM => return Ok(Format::Arrow),
                _ => {}
            }
        }
        Err(format!(
            "Accept {accept:?} names no format this endpoint writes: application/json, text/csv or {ARROW_STREAM}"
        ))
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => ARROW_STREAM,
        }
    }
}

/// The status code each SQL error kind answers with.
pub fn status_of(kind: SqlErrorKind) -> StatusCode {
    match kind {
        SqlErrorKind::Invalid => StatusCode::BAD_REQUEST,
        SqlErrorKind::ReadOnly => StatusCode::FORBIDDEN,
        SqlErrorKind::ResourcesExhausted => StatusCode::UNPROCESSABLE_ENTITY,
        SqlErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        SqlErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn sql_error(e: &SqlError) -> Response {
    error(status_of(e.kind), e.kind.code(), &e.message)
}

/// The statement: the body itself, or the `query` field of a JSON body.
fn statement(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the statement is not valid UTF-8".to_string())?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let sql = if json {
        #[derive(serde::Deserialize)]
        struct Body {
            query: String,
        }
        serde_json::from_str::<Body>(text).map_err(|e| format!("expected {{\"query\": \"<SQL>\"}}: {e}"))?.query
    } else {
        text.to_string()
    };
    if sql.trim().is_empty() {
        return Err("empty statement: send the SQL as the body or as {\"query\": \"<SQL>\"}".into());
    }
    Ok(sql)
}

pub async fn query(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let tenants = match tenant::read_tenants(headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok()), api.multitenancy)
    {
        Ok(t) => t,
        Err(e) => return error(StatusCode::UNAUTHORIZED, "unauthenticated", &e.to_string()),
    };
    let format = match Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::NOT_ACCEPTABLE, "invalid_argument", &m),
    };
    let sql = match statement(&headers, &body) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_argument", &m),
    };
    let run = async {
        let planned = api.sql.plan(&tenants, &sql).await?;
        planned.execute().await
    };
    let mut rows = match run.await {
        Ok(s) => s,
        Err(e) => return sql_error(&e),
    };
    // Wait for the first batch before committing to 200.
    let first = match rows.next().await {
        Some(Err(e)) => return sql_error(&SqlError::from_datafusion(e)),
        other => other.and_then(|r| r.ok()),
    };
    let schema = rows.schema();
    match encoded(format, schema, first, rows) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => sql_error(&e),
    }
}

/// Writes each batch as it comes; an error after the first batch aborts the body (the client
/// sees a broken response, never a silently short one).
fn encoded(
    format: Format,
    schema: SchemaRef,
    first: Option<RecordBatch>,
    rest: SendableRecordBatchStream,
) -> Result<Body, SqlError> {
    let mut encoder = Encoder::new(format, &schema)?;
    let head = match &first {
        Some(b) => encoder.write(b)?,
        None => Bytes::new(),
    };
    let chunks = stream::once(async move { Ok::<Bytes, SqlError>(head) })
        .chain(rest.map(Some).chain(stream::once(async { None })).scan(Some(encoder), |enc, item| {
            let out = match (enc.as_mut(), item) {
                (Some(e), Some(Ok(batch))) => Some(e.write(&batch)),
                (Some(_), Some(Err(err))) => {
                    *enc = None;
                    Some(Err(SqlError::from_datafusion(err)))
                }
                (Some(_), None) => enc.take().map(Encoder::finish),
                (None, _) => None,
            };
            std::future::ready(out)
        }))
        .map(|r| r.map_err(|e| std::io::Error::other(e.message)));
    Ok(Body::from_stream(chunks))
}

/// One format's writer over a buffer that is drained after every batch.
enum Encoder {
    Json(arrow::json::Writer<Vec<u8>, arrow::json::writer::JsonArray>, bool),
    /// The CSV writer cannot hand its buffer back: one writer per batch, the header on the first.
    Csv(bool),
    Arrow(arrow::ipc::writer::StreamWriter<Vec<u8>>),
}

fn internal(e: arrow::error::ArrowError) -> SqlError {
    SqlError::new(SqlErrorKind::Internal, format!("encoding the result: {e}"))
}

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> Result<Self, SqlError> {
        Ok(match format {
            Format::Json => {
                Encoder::Json(arrow::json::WriterBuilder::new().with_explicit_nulls(true).build(Vec::new()), false)
            }
            Format::Csv => Encoder::Csv(false),
            Format::Arrow => {
                Encoder::Arrow(arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema).map_err(internal)?)
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, SqlError> {
        match self {
            Encoder::Json(w, wrote) => {
                *wrote |= batch.num_rows() > 0;
                w.write(batch).map_err(internal)?;
                Ok(Bytes::from(std::mem::take(w.get_mut())))
            }
            Encoder::Csv(header_written) => {
                let mut w = arrow::csv::WriterBuilder::new().with_header(!*header_written).build(Vec::new());
                w.write(&flat(batch)?).map_err(internal)?;
                *header_written = true;
                Ok(Bytes::from(w.into_inner()))
            }
            Encoder::Arrow(w) => {
                w.write(batch).map_err(internal)?;
                Ok(Bytes::from(std::mem::take(w.get_mut())))
            }
        }
    }

    fn finish(self) -> Result<Bytes, SqlError> {
        match self {
            // The JSON writer writes nothing for no rows: the answer is still an array.
            Encoder::Json(_, false) => Ok(Bytes::from_static(b"[]")),
            Encoder::Json(mut w, true) => {
                w.finish().map_err(internal)?;
                Ok(Bytes::from(w.into_inner()))
            }
            Encoder::Csv(_) => Ok(Bytes::new()),
            Encoder::Arrow(mut w) => {
                w.finish().map_err(internal)?;
                w.into_inner().map(Bytes::from).map_err(internal)
            }
        }
    }
}

/// The batch with nested columns (the stack list, the labels map) as their text, which CSV has
/// no other way to hold: `[main, work]`, `{service_name: api}`.
fn flat(batch: &RecordBatch) -> Result<RecordBatch, SqlError> {
    use arrow::array::{ArrayRef, StringBuilder};
    use arrow::datatypes::{Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let options = FormatOptions::default().with_null("");
        let fmt = ArrayFormatter::try_new(column.as_ref(), &options).map_err(internal)?;
        let mut text = StringBuilder::with_capacity(column.len(), column.len() * 16);
        for row in 0..column.len() {
            if column.is_null(row) {
                text.append_null();
            } else {
                text.append_value(fmt.value(row).to_string());
            }
        }
        fields.push(Field::new(field.name(), arrow::datatypes::DataType::Utf8, true));
        columns.push(std::sync::Arc::new(text.finish()));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(Format::from_accept(None), Ok(Format::Json));
        assert_eq!(Format::from_accept(Some("text/csv")), Ok(Format::Csv));
        assert_eq!(Format::from_accept(Some("application/vnd.apache.arrow.stream")), Ok(Format::Arrow));
        assert_eq!(Format::from_accept(Some("image/png, text/csv;q=0.5")), Ok(Format::Csv));
        assert_eq!(Format::from_accept(Some("*/*")), Ok(Format::Json));
        assert!(Format::from_accept(Some("image/png")).is_err());
    }

    #[test]
    fn statement_from_text_or_json() {
        let mut h = HeaderMap::new();
        assert_eq!(statement(&h, b"SELECT 1").unwrap(), "SELECT 1");
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(statement(&h, br#"{"query": "SELECT 2"}"#).unwrap(), "SELECT 2");
        assert!(statement(&h, b"SELECT 2").is_err());
        assert!(statement(&HeaderMap::new(), b"  ").is_err());
    }
}
