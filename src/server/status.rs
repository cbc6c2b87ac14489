//! Configuration endpoints operators read: `/api/v1/status/config` (the effective configuration,
//! secrets masked), `/api/v1/status/config/default`, `/api/v1/status/config/diff`, and
//! `/runtime_config` (the tenant overrides in force, `?mode=diff` for only what differs from the
//! defaults). All YAML.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

use super::services::Api;
use crate::config::Config;

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

fn yaml<T: Serialize>(v: &T) -> Response {
    match serde_yaml_ng::to_string(v) {
        Ok(s) => text(StatusCode::OK, s),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding YAML: {e}\n")),
    }
}

fn encode_failed(e: serde_yaml_ng::Error) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the configuration: {e}\n"))
}

/// What of `actual` differs from `default`: mappings compared key by key, anything else as a
/// whole. `None` when nothing differs.
pub fn diff(actual: &Value, default: &Value) -> Option<Value> {
    match (actual, default) {
        (Value::Mapping(a), Value::Mapping(d)) => {
            let mut out = Mapping::new();
            for (k, v) in a {
                let changed = match d.get(k) {
                    Some(dv) => diff(v, dv),
                    None => Some(v.clone()),
                };
                if let Some(c) = changed {
                    out.insert(k.clone(), c);
                }
            }
            (!out.is_empty()).then_some(Value::Mapping(out))
        }
        (a, d) if a == d => None,
        (a, _) => Some(a.clone()),
    }
}

fn config_view(api: &Api, mode: Option<&str>) -> Response {
    let actual = match serde_yaml_ng::to_value(api.config.as_ref()) {
        Ok(v) => v,
        Err(e) => return encode_failed(e),
    };
    let defaults = match serde_yaml_ng::to_value(Config::default()) {
        Ok(v) => v,
        Err(e) => return encode_failed(e),
    };
    match mode {
        Some("diff") => yaml(&diff(&actual, &defaults).unwrap_or_else(|| Value::Mapping(Mapping::new()))),
        Some("defaults") => yaml(&defaults),
        _ => yaml(&actual),
    }
}

/// `GET /api/v1/status/config[?mode=diff|defaults]`.
pub async fn config(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    config_view(&api, q.get("mode").map(String::as_str))
}

/// `GET /api/v1/status/config/default`.
pub async fn config_default(State(api): State<Api>) -> Response {
    config_view(&api, Some("defaults"))
}

/// `GET /api/v1/status/config/diff`.
pub async fn config_diff(State(api): State<Api>) -> Response {
    config_view(&api, Some("diff"))
}

/// `GET /runtime_config[?mode=diff]`: `overrides:` with each overridden tenant's complete limits,
/// or with only the limits that differ from the defaults.
pub async fn runtime_config(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    if api.config.runtime_config.file.is_none() {
        return text(StatusCode::OK, "runtime config file doesn't exist\n".into());
    }
    let overrides = api.distributor.overrides();
    let defaults = match serde_yaml_ng::to_value(overrides.defaults().as_ref()) {
        Ok(v) => v,
        Err(e) => return encode_failed(e),
    };
    let only_diff = q.get("mode").is_some_and(|m| m == "diff");
    let mut tenants = Mapping::new();
    for t in overrides.tenants() {
        let limits = match serde_yaml_ng::to_value(overrides.for_tenant(&t).as_ref()) {
            Ok(v) => v,
            Err(e) => return encode_failed(e),
        };
        let shown = if only_diff { diff(&limits, &defaults).unwrap_or(Value::Mapping(Mapping::new())) } else { limits };
        tenants.insert(Value::String(t), shown);
    }
    let mut doc = Mapping::new();
    doc.insert(Value::String("overrides".into()), Value::Mapping(tenants));
    yaml(&Value::Mapping(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_keeps_only_changed_leaves() {
        let a: Value = serde_yaml_ng::from_str("a: 1\nb: {c: 2, d: 3}\ne: [1]\nf: x\n").unwrap();
        let d: Value = serde_yaml_ng::from_str("a: 1\nb: {c: 2, d: 4}\ne: [1]\n").unwrap();
        let got = diff(&a, &d).unwrap();
        let want: Value = serde_yaml_ng::from_str("b: {d: 3}\nf: x\n").unwrap();
        assert_eq!(got, want);
        assert_eq!(diff(&d, &d), None);
    }

    #[test]
    fn served_config_masks_secrets_and_round_trips() {
        let mut c = Config::default();
        c.storage.s3.secret_access_key = "hunter2-secret".into();
        c.storage.s3.access_key_id = "AKIDVISIBLE".into();
        c.limits.query.max_query_length = std::time::Duration::from_secs(7200);
        let text = serde_yaml_ng::to_string(&c).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("AKIDVISIBLE") && text.contains(crate::config::MASKED_SECRET), "{text}");
        assert!(text.contains("session_token: ''"), "unset secrets stay empty: {text}");
        let back: Config = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back.limits.query.max_query_length, std::time::Duration::from_secs(7200));
        assert_eq!(back.limits.ingest, c.limits.ingest);
        assert_eq!(back.pyroscopedb.data_path, c.pyroscopedb.data_path);
    }
}
