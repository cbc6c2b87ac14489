//! The small services Grafana Profiles Drilldown calls on load, end to end against the real
//! binary: `settings.v1.SettingsService` (Connect JSON, Connect proto, gRPC; per tenant; kept
//! across a restart; older writes refused), `capabilities.v1.FeatureFlagsService`, and the
//! operator endpoints `/runtime_config` and `/api/v1/status/config`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use flamedb_proto::capabilities::v1 as caps;
use flamedb_proto::settings::v1 as s;
use flamedb_proto::settings::v1::settings_service_client::SettingsServiceClient;
use prost::Message;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;

const SETTINGS: &str = "/settings.v1.SettingsService";

async fn call_json(c: &reqwest::Client, url: &str, path: &str, tenant: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = c.post(format!("{url}{path}")).header("Content-Type", "application/json").body(body.to_string());
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("text");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get_json(c: &reqwest::Client, url: &str, tenant: &str) -> Vec<(String, String, i64)> {
    let (status, body) = call_json(c, url, &format!("{SETTINGS}/Get"), Some(tenant), json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["settings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let at = s["modifiedAt"].as_str().and_then(|v| v.parse().ok()).expect("modifiedAt int64 string");
                    (s["name"].as_str().unwrap_or("").to_string(), s["value"].as_str().unwrap_or("").to_string(), at)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn now_millis() -> i64 {
    now_nanos() / 1_000_000
}

#[tokio::test]
async fn settings_per_tenant_json_and_proto_conflicts_and_restart() {
    let server = Server::start(&["-auth.multitenancy-enabled"]);
    let c = reqwest::Client::new();
    let url = server.url.clone();

    // JSON Set, with a timestamp (int64 as a JSON number, as Drilldown sends it).
    let set = json!({"setting": {"name": "pyroscope.ui.theme", "value": "dark", "modifiedAt": 1000}});
    let (status, body) = call_json(&c, &url, &format!("{SETTINGS}/Set"), Some("team-a"), set).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["setting"]["value"], "dark");
    assert_eq!(body["setting"]["modifiedAt"], "1000", "int64 goes out as a string: {body}");

    // Proto Set without a timestamp: the server stamps it now.
    let before = now_millis();
    let msg = s::SetSettingsRequest {
        setting: Some(s::Setting { name: "aaa.first".into(), value: "1".into(), modified_at: 0 }),
    };
    let (status, raw) = connect_proto(&c, &url, &format!("{SETTINGS}/Set"), Some("team-a"), &msg).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
    let stamped = s::SetSettingsResponse::decode(raw).expect("decode").setting.expect("setting");
    assert!(stamped.modified_at >= before && stamped.modified_at <= now_millis() + 1000, "{stamped:?}");

    // Another tenant sees none of it, and has its own.
    assert!(get_json(&c, &url, "team-b").await.is_empty());
    let set_b = json!({"setting": {"name": "pyroscope.ui.theme", "value": "light", "modifiedAt": "5"}});
    let (status, _) = call_json(&c, &url, &format!("{SETTINGS}/Set"), Some("team-b"), set_b).await;
    assert_eq!(status, 200);

    let a = get_json(&c, &url, "team-a").await;
    assert_eq!(
        a,
        vec![("aaa.first".into(), "1".into(), stamped.modified_at), ("pyroscope.ui.theme".into(), "dark".into(), 1000)],
        "sorted by name"
    );
    // The same over Connect proto.
    let (status, raw) =
        connect_proto(&c, &url, &format!("{SETTINGS}/Get"), Some("team-a"), &s::GetSettingsRequest {}).await;
    assert_eq!(status, 200);
    let got = s::GetSettingsResponse::decode(raw).expect("decode");
    assert_eq!(got.settings.len(), 2);
    assert_eq!(
        got.settings[1],
        s::Setting { name: "pyroscope.ui.theme".into(), value: "dark".into(), modified_at: 1000 }
    );

    // An older write loses (Pyroscope: already_exists, "newer update already written").
    let stale = json!({"setting": {"name": "pyroscope.ui.theme", "value": "stale", "modifiedAt": 999}});
    let (status, body) = call_json(&c, &url, &format!("{SETTINGS}/Set"), Some("team-a"), stale).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "already_exists");
    assert!(body["message"].as_str().unwrap_or("").contains("newer update already written"), "{body}");
    assert_eq!(get_json(&c, &url, "team-a").await[1].1, "dark", "the stale write changed nothing");
    // A newer one wins.
    let newer = json!({"setting": {"name": "pyroscope.ui.theme", "value": "contrast", "modifiedAt": 2000}});
    let (status, _) = call_json(&c, &url, &format!("{SETTINGS}/Set"), Some("team-a"), newer).await;
    assert_eq!(status, 200);

    // Bad requests.
    let (status, body) = call_json(&c, &url, &format!("{SETTINGS}/Set"), Some("team-a"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_argument")), "{body}");
    let (status, _) = call_json(&c, &url, &format!("{SETTINGS}/Get"), None, json!({})).await;
    assert_eq!(status, 401, "no tenant with multitenancy on");
    let (status, _) = call_json(&c, &url, &format!("{SETTINGS}/Nope"), Some("team-a"), json!({})).await;
    assert_eq!(status, 404);

    // Delete (JSON), then a delete of something absent is fine too.
    let (status, body) =
        call_json(&c, &url, &format!("{SETTINGS}/Delete"), Some("team-a"), json!({"name": "aaa.first"})).await;
    assert_eq!(status, 200, "{body}");
    let del = s::DeleteSettingsRequest { name: "never.set".into() };
    let (status, _) = connect_proto(&c, &url, &format!("{SETTINGS}/Delete"), Some("team-a"), &del).await;
    assert_eq!(status, 200);
    assert_eq!(get_json(&c, &url, "team-a").await, vec![("pyroscope.ui.theme".into(), "contrast".into(), 2000)]);

    // gRPC reaches the same store.
    let mut grpc = SettingsServiceClient::connect(url.clone()).await.expect("grpc connect");
    let mut req = tonic::Request::new(s::GetSettingsRequest {});
    req.metadata_mut().insert("x-scope-orgid", MetadataValue::from_static("team-b"));
    let got = grpc.get(req).await.expect("grpc get").into_inner();
    assert_eq!(
        got.settings,
        vec![s::Setting { name: "pyroscope.ui.theme".into(), value: "light".into(), modified_at: 5 }]
    );

    // A hard kill and a restart on the same data keep every acknowledged change.
    let data = server.kill9();
    let server = Server::start_in(data, &["-auth.multitenancy-enabled"]);
    assert_eq!(get_json(&c, &server.url, "team-a").await, vec![("pyroscope.ui.theme".into(), "contrast".into(), 2000)]);
    assert_eq!(get_json(&c, &server.url, "team-b").await, vec![("pyroscope.ui.theme".into(), "light".into(), 5)]);
    assert!(get_json(&c, &server.url, "team-c").await.is_empty());
}

#[tokio::test]
async fn feature_flags() {
    let server = Server::start(&[]);
    let c = reqwest::Client::new();
    let path = "/capabilities.v1.FeatureFlagsService/GetFeatureFlags";
    let (status, body) = call_json(&c, &server.url, path, None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let flags: Vec<(String, bool)> = body["featureFlags"]
        .as_array()
        .expect("featureFlags")
        .iter()
        .map(|f| (f["name"].as_str().unwrap_or("").to_string(), f["enabled"].as_bool().unwrap_or(false)))
        .collect();
    let want = [
        ("v2StorageLayer", false),
        ("pyroscopeRuler", false),
        ("pyroscopeRulerFunctions", false),
        ("utf8LabelNames", true),
    ];
    assert_eq!(flags, want.iter().map(|(n, e)| (n.to_string(), *e)).collect::<Vec<_>>());

    let (status, raw) = connect_proto(&c, &server.url, path, None, &caps::GetFeatureFlagsRequest {}).await;
    assert_eq!(status, 200);
    let got = caps::GetFeatureFlagsResponse::decode(raw).expect("decode");
    assert_eq!(got.feature_flags.len(), 4);
    assert!(got.feature_flags.iter().any(|f| f.name == "utf8LabelNames" && f.enabled));
}

async fn get_text(c: &reqwest::Client, url: &str) -> (u16, String, String) {
    let resp = c.get(url).send().await.expect("send");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, resp.text().await.expect("text"))
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn runtime_config_shows_the_overrides_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = dir.path().join("runtime.yaml");
    write_atomic(&rt, "overrides:\n  team-a:\n    ingestion_rate_mb: 7\n    max_label_names_per_series: 12\n");
    let flag = format!("-runtime-config.file={}", rt.display());
    let server =
        Server::start(&[&flag, "-runtime-config.reload-period=100ms", "-validation.max-length-label-value=99"]);
    let c = reqwest::Client::new();

    let (status, ct, text) = get_text(&c, &format!("{}/runtime_config", server.url)).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let a = &doc["overrides"]["team-a"];
    assert_eq!(a["ingestion_rate_mb"].as_f64(), Some(7.0), "{text}");
    assert_eq!(a["max_label_names_per_series"].as_u64(), Some(12));
    assert_eq!(a["max_label_value_length"].as_u64(), Some(99), "the full limits, defaults from the flags: {text}");

    let (status, _, text) = get_text(&c, &format!("{}/runtime_config?mode=diff", server.url)).await;
    assert_eq!(status, 200);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let a = doc["overrides"]["team-a"].as_mapping().expect("team-a");
    let mut keys: Vec<&str> = a.keys().filter_map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ingestion_rate_mb", "max_label_names_per_series"], "only what differs: {text}");

    // A reload shows up.
    write_atomic(&rt, "overrides:\n  team-b:\n    max_global_series_per_tenant: 3\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, text) = get_text(&c, &format!("{}/runtime_config?mode=diff", server.url)).await;
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        if doc["overrides"]["team-b"]["max_global_series_per_tenant"].as_u64() == Some(3) {
            assert!(doc["overrides"].get("team-a").is_none(), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "reload not reflected: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn status_config_is_yaml_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "limits:\n  max_query_length: 2h\nstorage:\n  backend: filesystem\n  s3:\n    bucket_name: profiles\n    \
         access_key_id: AKIDVISIBLE\n    secret_access_key: very-secret-value-42\n",
    )
    .expect("write config");
    let flag = format!("-config.file={}", cfg.display());
    let server = Server::start(&[&flag]);
    let c = reqwest::Client::new();

    let (status, ct, text) = get_text(&c, &format!("{}/api/v1/status/config", server.url)).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; charset=utf-8");
    assert!(!text.contains("very-secret-value-42"), "the secret leaked: {text}");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(doc["storage"]["s3"]["secret_access_key"].as_str(), Some("********"));
    assert_eq!(doc["storage"]["s3"]["access_key_id"].as_str(), Some("AKIDVISIBLE"));
    assert_eq!(doc["storage"]["s3"]["bucket_name"].as_str(), Some("profiles"));
    assert_eq!(doc["limits"]["max_query_length"].as_str(), Some("2h"));
    assert_eq!(doc["server"]["http_listen_port"].as_u64(), Some(server.port as u64));

    let (status, _, text) = get_text(&c, &format!("{}/api/v1/status/config/default", server.url)).await;
    assert_eq!(status, 200);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(doc["limits"]["max_query_length"].as_str(), Some("1day"));
    assert_eq!(doc["server"]["http_listen_port"].as_u64(), Some(4040));
    assert_eq!(doc["storage"]["s3"]["secret_access_key"].as_str(), Some(""));

    let (status, _, text) = get_text(&c, &format!("{}/api/v1/status/config/diff", server.url)).await;
    assert_eq!(status, 200);
    assert!(!text.contains("very-secret-value-42"), "{text}");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(doc["limits"]["max_query_length"].as_str(), Some("2h"), "{text}");
    assert!(doc["limits"].get("max_query_lookback").is_none(), "unchanged values are left out: {text}");

    // Without a runtime file there is nothing to show.
    let (status, _, text) = get_text(&c, &format!("{}/runtime_config", server.url)).await;
    assert_eq!(status, 200);
    assert!(text.contains("doesn't exist"), "{text}");
}
