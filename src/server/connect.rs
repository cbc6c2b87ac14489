//! Connect unary over HTTP/1.1 and h2: `application/proto` and `application/json` bodies,
//! `Content-Encoding: gzip` requests, gzip'd responses for clients that accept them, and Connect's
//! JSON error body with its code-to-HTTP-status map. The handlers behind it are the same tonic
//! service implementations gRPC and gRPC-Web reach, so every protocol answers alike.

use std::future::Future;
use std::io::Write;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flamedb_ingest::gzip::{DecompressError, gunzip_capped};
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// Responses at least this large are gzip'd when the client accepts gzip.
const COMPRESS_MIN_BYTES: usize = 1024;

/// The two Connect codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    /// The codec of a request's `Content-Type`, `None` when Connect does not speak it (415).
    pub fn from_content_type(ct: Option<&str>) -> Option<Self> {
        let ct = ct?;
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/proto" | "application/protobuf" | "application/x-protobuf" => Some(Codec::Proto),
            "application/json" => Some(Codec::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }
}

/// Connect's name of a status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// connect-go's code -> HTTP status map.
pub fn http_status(code: Code) -> StatusCode {
    let n = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 400,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
        Code::Unauthenticated => 401,
    };
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// A Connect error response: the mapped status and `{"code": ..., "message": ...}`.
pub fn error_response(code: Code, message: &str) -> Response {
    let body = serde_json::to_vec(&ErrorBody { code: code_name(code), message }).unwrap_or_default();
    (http_status(code), [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// A status as a Connect error response.
pub fn status_response(s: &Status) -> Response {
    error_response(s.code(), s.message())
}

/// Undoes `Content-Encoding` of a request body, capping the decompressed size.
pub fn decode_body(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Status> {
    let encoding =
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => {
            if body.len() > limit {
                return Err(Status::resource_exhausted(format!("request body too large: limit {limit} bytes")));
            }
            Ok(body)
        }
        Some("gzip") => match gunzip_capped(&body, limit) {
            Ok(v) => Ok(Bytes::from(v)),
            Err(DecompressError::TooLarge { limit }) => {
                Err(Status::resource_exhausted(format!("decompressed request body exceeds {limit} bytes")))
            }
            Err(DecompressError::Invalid(e)) => {
                Err(Status::invalid_argument(format!("invalid gzip request body: {e}")))
            }
        },
        Some(other) => Err(Status::unimplemented(format!("unsupported content encoding {other:?}"))),
    }
}

/// Decodes a Connect request message.
pub fn decode_message<M: prost::Message + Default + DeserializeOwned>(codec: Codec, body: &[u8]) -> Result<M, Status> {
    match codec {
        Codec::Proto => M::decode(body).map_err(|e| Status::invalid_argument(format!("unmarshal message: {e}"))),
        Codec::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(Status::invalid_argument("unmarshal message: empty JSON body"));
            }
            serde_json::from_slice(body).map_err(|e| Status::invalid_argument(format!("unmarshal message: {e}")))
        }
    }
}

/// Encodes a Connect response message (gzip'd when the client accepts it and it is worth it).
pub fn encode_message<M: prost::Message + Serialize>(codec: Codec, msg: &M, req_headers: &HeaderMap) -> Response {
    let body = match codec {
        Codec::Proto => msg.encode_to_vec(),
        Codec::Json => match serde_json::to_vec(msg) {
            Ok(b) => b,
            Err(e) => return error_response(Code::Internal, &format!("marshal message: {e}")),
        },
    };
    let accepts_gzip = req_headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.split(';').next().is_some_and(|n| n.trim().eq_ignore_ascii_case("gzip")));
    let mut resp = Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, codec.content_type());
    let body = if accepts_gzip && body.len() >= COMPRESS_MIN_BYTES {
        let mut e = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        match e.write_all(&body).and_then(|_| e.finish()) {
            Ok(z) => {
                resp = resp.header(header::CONTENT_ENCODING, "gzip");
                z
            }
            Err(_) => body,
        }
    } else {
        body
    };
    resp.body(Body::from(body)).unwrap_or_else(|_| error_response(Code::Internal, "building response"))
}

/// Runs one unary call: checks the protocol headers, decodes, calls `f` with a tonic request that
/// carries the HTTP headers as metadata, and encodes the result or the error.
pub async fn unary<Req, Resp, F, Fut>(headers: HeaderMap, body: Bytes, body_limit: usize, f: F) -> Response
where
    Req: prost::Message + Default + DeserializeOwned,
    Resp: prost::Message + Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(codec) = Codec::from_content_type(ct) else {
        let msg = format!("unsupported content type {:?}", ct.unwrap_or(""));
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, [(header::ACCEPT_ENCODING, "gzip")], msg).into_response();
    };
    if let Some(v) = headers.get("connect-protocol-version")
        && v.as_bytes() != b"1"
    {
        return error_response(Code::InvalidArgument, "connect-protocol-version must be \"1\"");
    }
    let body = match decode_body(&headers, body, body_limit) {
        Ok(b) => b,
        Err(s) => return status_response(&s),
    };
    let msg: Req = match decode_message(codec, &body) {
        Ok(m) => m,
        Err(s) => return status_response(&s),
    };
    let timeout = headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    let metadata = MetadataMap::from_headers(headers.clone());
    let req = tonic::Request::from_parts(metadata, tonic::Extensions::default(), msg);
    let result = match timeout {
        Some(t) => match tokio::time::timeout(t, f(req)).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded("the request deadline expired")),
        },
        None => f(req).await,
    };
    match result {
        Ok(resp) => encode_message(codec, resp.get_ref(), &headers),
        Err(s) => status_response(&s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(Codec::from_content_type(Some("application/proto")), Some(Codec::Proto));
        assert_eq!(Codec::from_content_type(Some("application/json; charset=utf-8")), Some(Codec::Json));
        assert_eq!(Codec::from_content_type(Some("text/plain")), None);
        assert_eq!(Codec::from_content_type(None), None);
    }

    #[test]
    fn code_map() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::ResourceExhausted), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(Code::Unimplemented), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(http_status(Code::DeadlineExceeded), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(code_name(Code::Unauthenticated), "unauthenticated");
    }

    #[test]
    fn empty_json_is_invalid_empty_proto_is_not() {
        let e = decode_message::<flamedb_proto::querier::v1::ProfileTypesRequest>(Codec::Json, b"").unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(decode_message::<flamedb_proto::querier::v1::ProfileTypesRequest>(Codec::Proto, b"").is_ok());
    }
}
