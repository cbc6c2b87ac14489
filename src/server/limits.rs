//! `GET /api/v1/tenant_limits`: the limits in force for the caller's tenant, so an operator can
//! check that a runtime override took effect. The body carries Pyroscope's three fields
//! (`ingestion_rate`, `ingestion_burst_size` in MiB, `max_global_series_per_user`) and, beside
//! them, every effective limit under its YAML name.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::ingest::json_error;
use super::services::Api;
use super::tenant::{self, ORG_ID_HEADER};

pub async fn tenant_limits(State(api): State<Api>, headers: HeaderMap) -> Response {
    let tenant = match tenant::write_tenant(headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok()), api.multitenancy)
    {
        Ok(t) => t,
        Err(e) => return json_error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let limits = api.distributor.tenant_limits(&tenant);
    let mut body = match serde_json::to_value(limits.as_ref()) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => serde_json::Map::new(),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding limits: {e}")),
    };
    body.insert("ingestion_rate".into(), number(limits.ingestion_rate_mb));
    body.insert("ingestion_burst_size".into(), number(limits.ingestion_burst_size_mb));
    body.insert("max_global_series_per_user".into(), serde_json::json!(limits.max_global_series_per_tenant));
    let text = serde_json::Value::Object(body).to_string();
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// A float as Go's JSON encoder writes it: whole numbers without a fraction (`4`, not `4.0`).
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        serde_json::json!(v as i64)
    } else {
        serde_json::json!(v)
    }
}
