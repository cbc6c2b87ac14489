//! OTLP profiles ingest end to end, against the real binary: the OpenTelemetry eBPF profiler's
//! export over OTLP/HTTP (protobuf, gzip'd) and gRPC, a protojson body, and the error statuses.

mod common;

use common::*;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::profiles_service_client::ProfilesServiceClient;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use flamedb_proto::opentelemetry::proto::common::v1::{AnyValue, KeyValue, any_value::Value};
use flamedb_proto::opentelemetry::proto::profiles::v1development as otel;
use flamedb_proto::opentelemetry::proto::resource::v1::Resource;
use prost::Message;
use serde_json::json;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const OFF_CPU: &str = "off_cpu:off_cpu:nanoseconds::";
const PATH: &str = "/v1development/profiles";

/// The eBPF profiler's export with every profile stamped now (it was recorded long before the
/// ingestion window), and its CPU and off-CPU totals read from the request itself.
struct Fixture {
    req: ExportProfilesServiceRequest,
    cpu_total: i64,
    off_cpu_total: i64,
    /// `unknown_service`, and `unknown_service:<executable>` for resources that name one.
    services: Vec<String>,
}

fn fixture() -> Option<Fixture> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/pyroscope/test__integration__testdata__otel-ebpf-profile.pb.bin"
    );
    let Ok(raw) = std::fs::read(path) else {
        eprintln!("notice: {path} absent, skipped");
        return None;
    };
    let mut req = ExportProfilesServiceRequest::decode(raw.as_slice()).expect("decode the export");
    let strings = req.dictionary.as_ref().expect("dictionary").string_table.clone();
    let s = |i: i32| strings[i as usize].as_str();
    let now = now_nanos() as u64;
    let (mut cpu_total, mut off_cpu_total) = (0i64, 0i64);
    let mut services = std::collections::BTreeSet::new();
    for rp in &req.resource_profiles {
        let exe = rp.resource.iter().flat_map(|r| &r.attributes).find(|a| a.key == "process.executable.name");
        services.insert(match exe.and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => format!("unknown_service:{s}"),
            _ => "unknown_service".to_string(),
        });
    }
    for p in req
        .resource_profiles
        .iter_mut()
        .flat_map(|rp| rp.scope_profiles.iter_mut())
        .flat_map(|sp| sp.profiles.iter_mut())
    {
        p.time_unix_nano = now;
        let t = p.sample_type.as_ref().expect("sample type");
        // The profiler sends CPU samples as timestamps only: one occurrence each.
        let sum: i64 = p
            .samples
            .iter()
            .map(|x| if x.values.is_empty() { x.timestamps_unix_nano.len() as i64 } else { x.values.iter().sum() })
            .sum();
        match (s(t.type_strindex), s(t.unit_strindex)) {
            // CPU sample counts, one period (ns) each.
            ("samples", "count") => cpu_total += sum * p.period,
            ("off_cpu", "nanoseconds") => off_cpu_total += sum,
            other => panic!("unexpected sample type {other:?}"),
        }
    }
    assert!(cpu_total > 0 && off_cpu_total > 0);
    Some(Fixture { req, cpu_total, off_cpu_total, services: services.into_iter().collect() })
}

fn range() -> (i64, i64) {
    let now_ms = now_nanos() / 1_000_000;
    (now_ms - 3_600_000, now_ms + 3_600_000)
}

async fn flamegraph(client: &reqwest::Client, url: &str, profile_type: &str, selector: &str) -> (Tree, i64) {
    select_flamegraph(client, url, None, profile_type, selector, range(), Some(1 << 20)).await
}

/// What a stored fixture must look like: both profile types, unknown_service, and the totals.
async fn assert_fixture_stored(url: &str, f: &Fixture) {
    let client = reqwest::Client::new();
    let (start, end) = range();
    let (st, v) = connect_json(&client, url, "ProfileTypes", None, json!({"start": start, "end": end})).await;
    assert_eq!(st, 200, "{v}");
    let mut ids: Vec<&str> =
        v["profileTypes"].as_array().expect("profileTypes").iter().filter_map(|t| t["ID"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![OFF_CPU, CPU]);
    let (st, v) =
        connect_json(&client, url, "LabelValues", None, json!({"name": "service_name", "start": start, "end": end}))
            .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["names"], json!(f.services));
    let (_, cpu) = flamegraph(&client, url, CPU, "{}").await;
    assert_eq!(cpu, f.cpu_total);
    let (_, off) = flamegraph(&client, url, OFF_CPU, "{}").await;
    assert_eq!(off, f.off_cpu_total);
    // Pyroscope's expectation: both types have data under service_name="unknown_service".
    for id in [CPU, OFF_CPU] {
        let (tree, total) = flamegraph(&client, url, id, "{service_name=\"unknown_service\"}").await;
        assert!(total > 0 && !tree.is_empty(), "{id}");
    }
}

async fn post(url: &str, content_type: &str, gzip_it: bool, body: Vec<u8>) -> (u16, Option<String>, bytes::Bytes) {
    let mut req = reqwest::Client::new().post(format!("{url}{PATH}")).header("Content-Type", content_type);
    let body = if gzip_it {
        req = req.header("Content-Encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    let resp = req.body(body).send().await.expect("send");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, ct, resp.bytes().await.expect("body"))
}

#[tokio::test]
async fn ebpf_export_over_http_protobuf() {
    let Some(f) = fixture() else { return };
    let server = Server::start(&[]);
    let (st, ct, body) = post(&server.url, "application/x-protobuf", false, f.req.encode_to_vec()).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct.as_deref(), Some("application/x-protobuf"));
    assert_eq!(
        ExportProfilesServiceResponse::decode(body).expect("response"),
        ExportProfilesServiceResponse::default()
    );
    assert_fixture_stored(&server.url, &f).await;
}

#[tokio::test]
async fn ebpf_export_over_http_gzip() {
    let Some(f) = fixture() else { return };
    let server = Server::start(&[]);
    let (st, _, body) = post(&server.url, "application/protobuf", true, f.req.encode_to_vec()).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_fixture_stored(&server.url, &f).await;
}

#[tokio::test]
async fn ebpf_export_over_grpc() {
    let Some(f) = fixture() else { return };
    let server = Server::start(&[]);
    let mut client = ProfilesServiceClient::connect(server.url.clone()).await.expect("grpc connect");
    let resp = client.export(f.req.clone()).await.expect("export").into_inner();
    assert_eq!(resp, ExportProfilesServiceResponse::default());
    assert_fixture_stored(&server.url, &f).await;
    // Malformed requests are InvalidArgument over gRPC too.
    let err = client.export(ExportProfilesServiceRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

/// A small symbolized request: `main -> work` (10 samples) and `main` (5), 1 ms period.
fn built_request(service: &str) -> ExportProfilesServiceRequest {
    let strings: Vec<String> =
        ["", "samples", "count", "cpu", "nanoseconds", "main", "work", "app.go", "app"].map(String::from).to_vec();
    let dict = otel::ProfilesDictionary {
        mapping_table: vec![otel::Mapping { filename_strindex: 8, ..Default::default() }],
        location_table: vec![
            otel::Location {
                address: 0x10,
                lines: vec![otel::Line { function_index: 0, line: 3, column: 0 }],
                ..Default::default()
            },
            otel::Location {
                address: 0x20,
                lines: vec![otel::Line { function_index: 1, line: 9, column: 0 }],
                ..Default::default()
            },
        ],
        function_table: vec![
            otel::Function { name_strindex: 5, system_name_strindex: 5, filename_strindex: 7, start_line: 1 },
            otel::Function { name_strindex: 6, system_name_strindex: 6, filename_strindex: 7, start_line: 8 },
        ],
        string_table: strings,
        // Leaf first, as in pprof.
        stack_table: vec![otel::Stack { location_indices: vec![1, 0] }, otel::Stack { location_indices: vec![0] }],
        ..Default::default()
    };
    let profile = otel::Profile {
        sample_type: Some(otel::ValueType { type_strindex: 1, unit_strindex: 2 }),
        samples: vec![
            otel::Sample { stack_index: 0, values: vec![10], ..Default::default() },
            otel::Sample { stack_index: 1, values: vec![5], ..Default::default() },
        ],
        time_unix_nano: now_nanos() as u64,
        duration_nano: 1_000_000_000,
        period_type: Some(otel::ValueType { type_strindex: 3, unit_strindex: 4 }),
        period: 1_000_000,
        ..Default::default()
    };
    let service_attr = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue { value: Some(Value::StringValue(service.into())) }),
    };
    ExportProfilesServiceRequest {
        resource_profiles: vec![otel::ResourceProfiles {
            resource: Some(Resource { attributes: vec![service_attr], ..Default::default() }),
            scope_profiles: vec![otel::ScopeProfiles { profiles: vec![profile], ..Default::default() }],
            ..Default::default()
        }],
        dictionary: Some(dict),
    }
}

#[tokio::test]
async fn protojson_body() {
    let server = Server::start(&[]);
    let body = serde_json::to_vec(&built_request("json-svc")).expect("protojson");
    let text = String::from_utf8_lossy(&body).to_string();
    assert!(text.contains("\"resourceProfiles\"") && text.contains("\"stackTable\""), "lowerCamelCase names: {text}");
    let (st, _, resp) = post(&server.url, "application/json", false, body).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&resp));
    let client = reqwest::Client::new();
    let (tree, total) = flamegraph(&client, &server.url, CPU, "{service_name=\"json-svc\"}").await;
    assert_eq!(total, 15_000_000);
    assert_eq!(tree, stacks_tree(&[(&["main", "work"], 10_000_000), (&["main"], 5_000_000)]));
    // Proto field names are accepted as well, as protojson parsers do.
    let snake = json!({
        "resource_profiles": [{"scope_profiles": [{"profiles": [{
            "sample_type": {"type_strindex": 1, "unit_strindex": 2},
            "samples": [{"stack_index": 0, "values": ["4"]}],
            "time_unix_nano": now_nanos().to_string(),
        }]}]}],
        "dictionary": {"string_table": ["", "samples", "count", "solo"],
            "function_table": [{"name_strindex": 3}],
            "location_table": [{"lines": [{"function_index": 0}]}],
            "stack_table": [{"location_indices": [0]}]},
    });
    let (st, _, resp) = post(&server.url, "application/json", false, snake.to_string().into_bytes()).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&resp));
    let sample_ct = "process_cpu:samples:count::";
    let (tree, total) = flamegraph(&client, &server.url, sample_ct, "{service_name=\"unknown_service\"}").await;
    assert_eq!((tree, total), (stacks_tree(&[(&["solo"], 4)]), 4));
}

#[tokio::test]
async fn error_statuses() {
    let server = Server::start(&[]);
    let good = built_request("x").encode_to_vec();
    for ct in ["text/plain", "application/octet-stream", "application/json; charset=utf-8", ""] {
        let (st, _, body) = post(&server.url, ct, false, good.clone()).await;
        assert_eq!(st, 415, "{ct:?}: {}", String::from_utf8_lossy(&body));
    }
    let (st, ct, _) = post(&server.url, "application/x-protobuf", false, b"\xff\xff\xff\xff garbage".to_vec()).await;
    assert_eq!(st, 400);
    assert!(ct.unwrap_or_default().starts_with("text/plain"));
    let (st, _, _) = post(&server.url, "application/json", false, b"{not json".to_vec()).await;
    assert_eq!(st, 400);
    // A body claiming gzip that is not.
    let resp = reqwest::Client::new()
        .post(format!("{}{PATH}", server.url))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // No dictionary / no resource profiles: InvalidArgument -> 400.
    let mut r = built_request("x");
    r.dictionary = None;
    let (st, _, body) = post(&server.url, "application/x-protobuf", false, r.encode_to_vec()).await;
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("dictionary"));
    let (st, _, _) =
        post(&server.url, "application/x-protobuf", false, ExportProfilesServiceRequest::default().encode_to_vec())
            .await;
    assert_eq!(st, 400);
    // An index outside its table.
    let mut r = built_request("x");
    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 7;
    let (st, _, body) = post(&server.url, "application/x-protobuf", false, r.encode_to_vec()).await;
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("stack index 7"), "{}", String::from_utf8_lossy(&body));
    // None of the refused requests stored anything.
    let (start, end) = range();
    let (_, v) =
        connect_json(&reqwest::Client::new(), &server.url, "ProfileTypes", None, json!({"start": start, "end": end}))
            .await;
    assert_eq!(v["profileTypes"].as_array().map_or(0, Vec::len), 0, "{v}");
}

#[tokio::test]
async fn tenancy_as_for_push() {
    let server = Server::start(&["-auth.multitenancy-enabled"]);
    let good = built_request("t").encode_to_vec();
    let (st, _, _) = post(&server.url, "application/x-protobuf", false, good.clone()).await;
    assert_eq!(st, 401);
    let resp = reqwest::Client::new()
        .post(format!("{}{PATH}", server.url))
        .header("Content-Type", "application/x-protobuf")
        .header("X-Scope-OrgID", "team-a")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (start, end) = range();
    let client = reqwest::Client::new();
    let (_, v) =
        connect_json(&client, &server.url, "ProfileTypes", Some("team-a"), json!({"start": start, "end": end})).await;
    assert_eq!(v["profileTypes"][0]["ID"], json!(CPU), "{v}");
    let (_, v) =
        connect_json(&client, &server.url, "ProfileTypes", Some("team-b"), json!({"start": start, "end": end})).await;
    assert_eq!(v["profileTypes"].as_array().map_or(0, Vec::len), 0, "{v}");
}
