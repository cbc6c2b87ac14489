//! One port for everything: Connect unary, gRPC and gRPC-Web on the RPC paths (told apart by
//! `Content-Type`), the legacy HTTP ingest, and the operational endpoints.

pub mod accept;
pub mod connect;
pub mod ingest;
pub mod limits;
pub mod ops;
pub mod otlp;
pub mod render;
pub mod services;
pub mod settings;
pub mod sql;
pub mod status;
pub mod tenant;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use flamedb_proto::capabilities::v1::feature_flags_service_server::{FeatureFlagsService, FeatureFlagsServiceServer};
use flamedb_proto::push::v1::pusher_service_server::{PusherService, PusherServiceServer};
use flamedb_proto::querier::v1::querier_service_server::{QuerierService, QuerierServiceServer};
use flamedb_proto::settings::v1::settings_service_server::{SettingsService, SettingsServiceServer};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, header};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use crate::metrics::RequestLabels;
use services::Api;

/// gRPC message size cap (Pyroscope raises the default to 100 MiB).
const GRPC_MAX_MESSAGE: usize = 100 << 20;

/// The HTTP router of the process.
pub fn router(api: Api) -> Router {
    let body_limit = api.distributor.limits().body_limit_bytes();
    let http = Router::new()
        .route("/push.v1.PusherService/{method}", post(connect_push))
        .route("/querier.v1.QuerierService/{method}", post(connect_querier))
        .route("/settings.v1.SettingsService/{method}", post(connect_settings))
        .route("/capabilities.v1.FeatureFlagsService/{method}", post(connect_feature_flags))
        .route("/ingest", post(ingest::ingest))
        .route("/v1development/profiles", post(otlp::http_export))
        .route("/pyroscope/ingest", post(ingest::ingest))
        .route("/ready", axum::routing::get(ops::ready))
        .route("/ingester/flush", axum::routing::get(ops::flush).post(ops::flush))
        .route("/metrics", axum::routing::get(ops::metrics))
        .route("/api/v1/status/buildinfo", axum::routing::get(ops::buildinfo))
        .route("/pyroscope/render", axum::routing::get(render::render))
        .route("/pyroscope/render-diff", axum::routing::get(render::render_diff))
        .route("/pyroscope/label-values", axum::routing::get(render::label_values))
        .route("/api/v1/tenant_limits", axum::routing::get(limits::tenant_limits))
        .route("/api/v1/status/config", axum::routing::get(status::config))
        .route("/api/v1/status/config/default", axum::routing::get(status::config_default))
        .route("/api/v1/status/config/diff", axum::routing::get(status::config_diff))
        .route("/runtime_config", axum::routing::get(status::runtime_config))
        .route("/api/v1/sql", post(sql::query))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(api.clone());

    let querier = QuerierServiceServer::new(api.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(GRPC_MAX_MESSAGE)
        .max_encoding_message_size(GRPC_MAX_MESSAGE);
    let pusher = PusherServiceServer::new(api.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(GRPC_MAX_MESSAGE);
    let otlp_profiles = otlp::profiles_server(api.clone());
    let settings_svc = SettingsServiceServer::new(api.clone());
    let feature_flags = FeatureFlagsServiceServer::new(api.clone());
    // Flight SQL and the Flight export, with each call's tenant read by this server's rule.
    let multitenancy = api.multitenancy;
    let flight_tenants: flamedb_flight::TenantResolver =
        Arc::new(move |h: Option<&str>| tenant::read_tenants(h, multitenancy).map_err(Status::from));
    let flight = flamedb_flight::FlamedbFlight::new(api.sql.clone(), flight_tenants).into_server(GRPC_MAX_MESSAGE);
    let grpc = tonic::service::Routes::new(querier)
        .add_service(pusher)
        .add_service(otlp_profiles)
        .add_service(settings_svc)
        .add_service(feature_flags)
        .add_service(flight)
        .into_axum_router();
    let grpc_web = grpc.clone().layer(tonic_web::GrpcWebLayer::new());

    let dispatch = Dispatch { http, grpc, grpc_web, metrics: api.metrics.clone() };
    Router::new().fallback_service(dispatch)
}

/// Sends each request to the protocol its `Content-Type` names, and times it.
#[derive(Clone)]
struct Dispatch {
    http: Router,
    grpc: Router,
    grpc_web: Router,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // Pyroscope's client-capability middleware runs on every route: a malformed `Accept`
        // fails the request whatever it is.
        let accept = req.headers().get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
        if let Err(e) = accept::parse(accept) {
            let resp = (
                http::StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("Invalid header format: {e}\n"),
            );
            return Box::pin(async move { Ok(axum::response::IntoResponse::into_response(resp)) });
        }
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let target = if ct.starts_with("application/grpc-web") {
            self.grpc_web.clone()
        } else if ct.starts_with("application/grpc") {
            self.grpc.clone()
        } else {
            self.http.clone()
        };
        let method = req.method().to_string();
        let route = route_label(req.uri().path());
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let start = Instant::now();
            let resp = target.oneshot(req).await?;
            let labels = RequestLabels { method, route, status_code: resp.status().as_u16() };
            metrics.requests.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
            Ok(resp)
        })
    }
}

/// A bounded route label: known paths as they are, everything else `other`.
fn route_label(path: &str) -> String {
    const KNOWN: &[&str] = &[
        "/ingest",
        "/pyroscope/ingest",
        "/v1development/profiles",
        "/pyroscope/render",
        "/pyroscope/render-diff",
        "/pyroscope/label-values",
        "/ready",
        "/metrics",
        "/ingester/flush",
        "/api/v1/status/buildinfo",
        "/api/v1/tenant_limits",
        "/api/v1/status/config",
        "/api/v1/status/config/default",
        "/api/v1/status/config/diff",
        "/runtime_config",
        "/api/v1/sql",
    ];
    if KNOWN.contains(&path) {
        return path.to_string();
    }
    for prefix in [
        "/querier.v1.QuerierService/",
        "/push.v1.PusherService/",
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/",
        "/settings.v1.SettingsService/",
        "/capabilities.v1.FeatureFlagsService/",
        "/arrow.flight.protocol.FlightService/",
    ] {
        if let Some(m) = path.strip_prefix(prefix)
            && !m.is_empty()
            && m.len() < 40
            && m.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return path.to_string();
        }
    }
    "other".into()
}

async fn connect_push(State(api): State<Api>, Path(method): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let (body, limit) = match read_request(&api, body).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    match method.as_str() {
        "Push" => connect::unary(headers, body, limit, |r| async move { PusherService::push(&api, r).await }).await,
        _ => not_found(),
    }
}

/// Reads a Connect request body under the default tenant's body limit (the contract's Push
/// read limit), returning the body and the limit that also caps its decompression.
async fn read_request(api: &Api, body: Body) -> Result<(Bytes, usize), Response> {
    let limit = api.distributor.limits().body_limit_bytes();
    Ok((read(body, limit).await?, limit))
}

async fn read(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| connect::status_response(&Status::resource_exhausted(format!("reading request body: {e}"))))
}

fn not_found() -> Response {
    connect::error_response(Code::NotFound, "404 page not found")
}

async fn connect_querier(
    State(api): State<Api>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, limit) = match read_request(&api, body).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let a = &api;
    match method.as_str() {
        "ProfileTypes" => connect::unary(headers, body, limit, |r| a.profile_types(r)).await,
        "LabelValues" => connect::unary(headers, body, limit, |r| a.label_values(r)).await,
        "LabelNames" => connect::unary(headers, body, limit, |r| a.label_names(r)).await,
        "Series" => connect::unary(headers, body, limit, |r| a.series(r)).await,
        "SelectMergeStacktraces" => connect::unary(headers, body, limit, |r| a.select_merge_stacktraces(r)).await,
        "SelectMergeSpanProfile" => connect::unary(headers, body, limit, |r| a.select_merge_span_profile(r)).await,
        "SelectMergeProfile" => connect::unary(headers, body, limit, |r| a.select_merge_profile(r)).await,
        "SelectSeries" => connect::unary(headers, body, limit, |r| a.select_series(r)).await,
        "SelectHeatmap" => connect::unary(headers, body, limit, |r| a.select_heatmap(r)).await,
        "Diff" => connect::unary(headers, body, limit, |r| a.diff(r)).await,
        "GetProfileStats" => connect::unary(headers, body, limit, |r| a.get_profile_stats(r)).await,
        "AnalyzeQuery" => connect::unary(headers, body, limit, |r| a.analyze_query(r)).await,
        _ => not_found(),
    }
}

async fn connect_settings(
    State(api): State<Api>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, limit) = match read_request(&api, body).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let a = &api;
    match method.as_str() {
        "Get" => connect::unary(headers, body, limit, |r| SettingsService::get(a, r)).await,
        "Set" => connect::unary(headers, body, limit, |r| SettingsService::set(a, r)).await,
        "Delete" => connect::unary(headers, body, limit, |r| SettingsService::delete(a, r)).await,
        _ => not_found(),
    }
}

async fn connect_feature_flags(
    State(api): State<Api>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (body, limit) = match read_request(&api, body).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let a = &api;
    match method.as_str() {
        "GetFeatureFlags" => {
            connect::unary(headers, body, limit, |r| FeatureFlagsService::get_feature_flags(a, r)).await
        }
        _ => not_found(),
    }
}

/// Serves the router on `addr` until `shutdown` resolves.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "listening (HTTP/1.1 and h2c: Connect, gRPC, gRPC-Web, HTTP)");
    axum::serve(listener, router.into_make_service()).with_graceful_shutdown(shutdown).await
}
