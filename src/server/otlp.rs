//! OTLP profiles ingest on the HTTP port: gRPC `ProfilesService/Export` (reached through the gRPC
//! dispatch) and OTLP/HTTP `POST /v1development/profiles` with a protobuf or protojson body. Both
//! convert the request into pprof profiles and store them through the distributor, as Push does.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flamedb_ingest::distributor::{ErrorKind as IngestKind, IngestError};
use flamedb_ingest::gzip::{self, DecompressError};
use flamedb_ingest::otlp;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::profiles_service_server::{
    ProfilesService, ProfilesServiceServer,
};
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use http::{HeaderMap, StatusCode, header};
use prost::Message;
use tonic::{Request, Status};

use super::services::{Api, now_nanos, reason};
use super::tenant::{self, ORG_ID_HEADER};

/// The only body types OTLP/HTTP defines; anything else is 415 (compared exactly, as Pyroscope
/// does: no parameters).
const JSON: &str = "application/json";
const PROTOBUF: [&str; 2] = ["application/x-protobuf", "application/protobuf"];

/// Why an export failed, in the classes clients act on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The request is malformed or breaks a limit: dropped by the client (400).
    Invalid(String),
    /// Rate limited: retried (429).
    Exhausted(String),
    /// Anything else (the WAL could not be written): retried (500).
    Internal(String),
}

impl Failure {
    fn from_ingest(e: &IngestError) -> Self {
        match e.kind() {
            IngestKind::InvalidArgument => Failure::Invalid(e.to_string()),
            IngestKind::ResourceExhausted => Failure::Exhausted(e.to_string()),
            IngestKind::Unavailable => Failure::Internal(e.to_string()),
        }
    }

    fn status(&self) -> Status {
        match self {
            Failure::Invalid(m) => Status::invalid_argument(m),
            Failure::Exhausted(m) => Status::resource_exhausted(m),
            Failure::Internal(m) => Status::unavailable(m),
        }
    }

    fn response(&self) -> Response {
        match self {
            Failure::Invalid(m) => text(StatusCode::BAD_REQUEST, m),
            Failure::Exhausted(m) => text(StatusCode::TOO_MANY_REQUESTS, m),
            Failure::Internal(m) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

/// Converts and stores one request for `tenant`. Every profile is converted and size-checked
/// before the first one is stored, so a malformed request stores nothing.
fn store(api: &Api, tenant: &str, req: &ExportProfilesServiceRequest) -> Result<(), Failure> {
    let now = now_nanos();
    let profiles = otlp::convert_request(req, now).map_err(|e| {
        api.metrics.discard("convert");
        Failure::Invalid(e.to_string())
    })?;
    let max = api.distributor.limits().max_profile_size_bytes;
    let sized: Vec<(usize, otlp::OtlpProfile)> = profiles.into_iter().map(|p| (p.profile.encoded_len(), p)).collect();
    if let Some((size, _)) = sized.iter().find(|(size, _)| *size > max) {
        api.metrics.discard("validation");
        return Err(Failure::Invalid(format!("uncompressed profile payload size {size} exceeds limit of {max} bytes")));
    }
    for (size, p) in sized {
        match api.distributor.ingest_profile(tenant, &p.labels, p.profile, size, None, now) {
            Ok(stats) => api.record(&stats),
            Err(e) => {
                api.metrics.discard(reason(&e));
                return Err(Failure::from_ingest(&e));
            }
        }
    }
    Ok(())
}

/// Runs `store` off the I/O threads (conversion and normalization are CPU work).
async fn store_blocking(api: &Api, tenant: String, req: ExportProfilesServiceRequest) -> Result<(), Failure> {
    let api = api.clone();
    tokio::task::spawn_blocking(move || store(&api, &tenant, &req))
        .await
        .map_err(|e| Failure::Internal(format!("export task failed: {e}")))?
}

/// `POST /v1development/profiles`.
pub async fn http_export(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json = content_type == JSON;
    if !json && !PROTOBUF.contains(&content_type) {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("Unsupported Content-Type: {content_type}"));
    }
    let tenant = match tenant::write_tenant(headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok()), api.multitenancy)
    {
        Ok(t) => t,
        Err(e) => return text(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let limit = api.distributor.limits().body_limit_bytes();
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, &format!("failed to read request body: {e}")),
    };
    api.metrics.received_compressed_bytes.inc_by(raw.len() as u64);
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let body = if gzipped {
        // The body limit applies to the decompressed size (zip-bomb guard).
        match gzip::gunzip_capped(&raw, limit) {
            Ok(b) => bytes::Bytes::from(b),
            Err(DecompressError::TooLarge { limit }) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("uncompressed profile payload size exceeds limit of {limit} bytes"),
                );
            }
            Err(e) => {
                return text(StatusCode::BAD_REQUEST, &format!("failed to read gzip-compressed request body: {e}"));
            }
        }
    } else {
        raw
    };
    let req = if json {
        match serde_json::from_slice::<ExportProfilesServiceRequest>(&body) {
            Ok(r) => r,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("Failed to parse JSON request: {e}")),
        }
    } else {
        match ExportProfilesServiceRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("Failed to parse protobuf request: {e}")),
        }
    };
    match store_blocking(&api, tenant, req).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportProfilesServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
        Err(f) => f.response(),
    }
}

/// The gRPC service, added to the process's tonic routes (gzip-compressed requests accepted).
pub fn profiles_server(api: Api) -> ProfilesServiceServer<Api> {
    ProfilesServiceServer::new(api)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(super::GRPC_MAX_MESSAGE)
}

#[tonic::async_trait]
impl ProfilesService for Api {
    async fn export(
        &self,
        request: Request<ExportProfilesServiceRequest>,
    ) -> Result<tonic::Response<ExportProfilesServiceResponse>, Status> {
        let org = request.metadata().get(ORG_ID_HEADER).and_then(|v| v.to_str().ok());
        let tenant = tenant::write_tenant(org, self.multitenancy)?;
        let req = request.into_inner();
        self.metrics.received_compressed_bytes.inc_by(req.encoded_len() as u64);
        store_blocking(self, tenant, req).await.map_err(|f| f.status())?;
        Ok(tonic::Response::new(ExportProfilesServiceResponse::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_otlp_status_classes() {
        assert_eq!(Failure::Invalid("x".into()).response().status(), StatusCode::BAD_REQUEST);
        assert_eq!(Failure::Exhausted("x".into()).response().status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Failure::Internal("x".into()).response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Failure::Invalid("x".into()).status().code(), tonic::Code::InvalidArgument);
        assert_eq!(Failure::Exhausted("x".into()).status().code(), tonic::Code::ResourceExhausted);
    }
}
