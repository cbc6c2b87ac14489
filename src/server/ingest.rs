//! `POST /ingest` (and `/pyroscope/ingest`): the legacy ingest endpoint every SDK that does not
//! speak Push uses. The body is read with the body limit (413), `Content-Encoding: gzip` undone,
//! the format converted to pprof by `flamedb_ingest::legacy`, and the result stored through the
//! same distributor as Push. Errors carry the status codes Pyroscope answers with.

use axum::body::{Body, HttpBody as _};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use flamedb_ingest::distributor::{ErrorKind as IngestKind, ProfileInput};
use flamedb_ingest::legacy::{self, ConvertLimits, IngestParams};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use tonic::Code;

use super::connect::decode_body;
use super::services::{Api, now_nanos, reason};
use super::tenant::{self, ORG_ID_HEADER};

/// Pyroscope's JSON error body, with the code derived from the status it picked.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        400 | 413 => "invalid_argument",
        401 => "unauthenticated",
        429 => "resource_exhausted",
        404 => "not_found",
        _ => "unknown",
    };
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// How much of an oversized body is read and discarded before answering 413, so a client still
/// sending it sees the answer instead of a reset connection (Go's server does the same).
const DRAIN_MAX: usize = 64 << 20;

/// Reads a request body up to `limit` bytes; a longer one is a 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| json_error(StatusCode::REQUEST_TIMEOUT, &format!("failed to read request body: {e}")))?;
        if buf.len().saturating_add(chunk.len()) > limit {
            let mut drained = 0usize;
            while drained < DRAIN_MAX {
                match stream.next().await {
                    Some(Ok(c)) => drained += c.len(),
                    _ => break,
                }
            }
            return Err(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body too large: limit {limit} bytes"),
            ));
        }
        if buf.is_empty() && stream.is_end_stream() {
            // One chunk: no copy.
            return Ok(chunk);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Whether the request takes the pprof branch, where any conversion or validation failure is a
/// 422 (text formats answer with the failure's own status, 400 for validation).
fn pprof_path(params: &IngestParams, content_type: Option<&str>) -> bool {
    match params.format.as_deref() {
        Some("pprof") | Some("jfr") => true,
        Some(_) => false,
        None => content_type.is_some_and(|ct| ct.contains("multipart/form-data")),
    }
}

pub async fn ingest(State(api): State<Api>, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let tenant = match tenant::write_tenant(headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok()), api.multitenancy)
    {
        Ok(t) => t,
        Err(e) => return json_error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let limit = api.distributor.tenant_limits(&tenant).body_limit_bytes();
    let raw = match read_body(body, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    api.metrics.received_compressed_bytes.inc_by(raw.len() as u64);
    let body = match decode_body(&headers, raw, limit) {
        Ok(b) => b,
        Err(s) if s.code() == Code::ResourceExhausted => return json_error(StatusCode::PAYLOAD_TOO_LARGE, s.message()),
        Err(s) => return json_error(StatusCode::BAD_REQUEST, s.message()),
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let params = IngestParams::from_query(&pairs);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let result =
        tokio::task::spawn_blocking(move || store(&api, &tenant, &params, content_type.as_deref(), &body)).await;
    match result {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err((status, message))) => json_error(status, &message),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("ingest task failed: {e}")),
    }
}

/// Converts and stores the profiles of one request; on failure, the status and message to answer.
fn store(
    api: &Api,
    tenant: &str,
    params: &IngestParams,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), (StatusCode, String)> {
    let limits = api.distributor.tenant_limits(tenant);
    let convert_limits = ConvertLimits { max_profile_size: limits.max_profile_size_bytes, max_form_size: 32 << 20 };
    let now = now_nanos();
    let profiles = legacy::convert(params, content_type, body, now, &convert_limits).map_err(|e| {
        api.metrics.discard("convert");
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        (status, e.to_string())
    })?;
    let pprof = pprof_path(params, content_type);
    let inputs = profiles.into_iter().map(ProfileInput::from).collect();
    // The upload passes the rate limit as a whole, then its profiles are stored in order.
    let outcome = api.distributor.ingest_batch(tenant, inputs, now);
    api.record(&outcome.stats);
    match outcome.error {
        None => Ok(()),
        Some(e) => {
            api.metrics.discard(reason(&e));
            let status = match e.kind() {
                IngestKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                IngestKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                IngestKind::InvalidArgument if pprof => StatusCode::UNPROCESSABLE_ENTITY,
                IngestKind::InvalidArgument => StatusCode::BAD_REQUEST,
            };
            Err((status, e.to_string()))
        }
    }
}
