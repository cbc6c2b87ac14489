//! Operational endpoints: `/ready`, `/metrics`, `/api/v1/status/buildinfo`, `/ingester/flush`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};

use super::services::Api;

/// Pyroscope's `/ingester/flush`: cuts the head and writes it to the bucket now; answers 204
/// once every block is uploaded, 503 when some data could not be (it stays in the head).
pub async fn flush(State(api): State<Api>) -> Response {
    let Some(f) = api.flusher.clone() else {
        return (http::StatusCode::NOT_FOUND, "this process has no ingester").into_response();
    };
    if crate::app::flush(&api, &f).await {
        http::StatusCode::NO_CONTENT.into_response()
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "flush incomplete: see the log").into_response()
    }
}

pub async fn ready() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ready").into_response()
}

pub async fn metrics(State(api): State<Api>) -> Response {
    let head = api.distributor.head();
    let (mut series, mut profiles, mut samples) = (0i64, 0i64, 0i64);
    let tenants = head.live();
    for h in &tenants {
        let s = h.stats();
        series += s.series as i64;
        profiles += s.profiles as i64;
        samples += s.samples as i64;
    }
    let m = &api.metrics;
    m.head_series.set(series);
    m.head_profiles.set(profiles);
    m.head_samples.set(samples);
    m.head_tenants.set(tenants.len() as i64);
    if let Some(f) = &api.flusher {
        m.blocks_loaded.set(f.blocks.len() as i64);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()).into_response()
}

pub async fn buildinfo(headers: HeaderMap) -> Response {
    let body = serde_json::json!({
        "status": "success",
        "data": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("FLAMEDB_GIT_REVISION").unwrap_or(""),
            "branch": option_env!("FLAMEDB_GIT_BRANCH").unwrap_or(""),
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
    });
    let pretty = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json+pretty"));
    let text = if pretty { serde_json::to_string_pretty(&body) } else { serde_json::to_string(&body) };
    ([(header::CONTENT_TYPE, "application/json")], text.unwrap_or_default()).into_response()
}
