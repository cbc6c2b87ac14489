//! The wire contract on one port: Connect unary (proto and JSON, gzip, errors, 405/415), gRPC and
//! gRPC-Web through tonic, the contract's 400s on queries, the TREE and PPROF formats, and the
//! operational endpoints.

mod common;

use common::*;
use flamedb_proto::push::v1::pusher_service_client::PusherServiceClient;
use flamedb_proto::querier::v1 as q;
use flamedb_proto::querier::v1::querier_service_client::QuerierServiceClient;
use flamedb_proto::types::v1 as t;
use prost::Message;
use serde_json::json;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const STACKS: &[(&[&str], i64)] = &[
    (&["main", "a", "x"], 50),
    (&["main", "a", "y"], 25),
    (&["main", "b"], 15),
    (&["main", "c"], 6),
    (&["other_root", "z"], 4),
];

struct Setup {
    server: Server,
    client: reqwest::Client,
    start: i64,
    end: i64,
}

async fn setup() -> Setup {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let r = push_request(
        &[("__name__", "process_cpu"), ("service_name", "svc")],
        &build_pprof(("cpu", "nanoseconds"), STACKS, now),
    );
    // pyroscope-rs gzips the whole Connect body.
    let resp = client
        .post(format!("{}/push.v1.PusherService/Push", server.url))
        .header("Content-Type", "application/proto")
        .header("Content-Encoding", "gzip")
        .body(gzip(&r.encode_to_vec()))
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status().as_u16(), 200);
    Setup { server, client, start: (now - 600_000_000_000) / 1_000_000, end: (now + 60_000_000_000) / 1_000_000 }
}

impl Setup {
    fn select(&self) -> serde_json::Value {
        json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"svc\"}", "start": self.start, "end": self.end})
    }
}

#[tokio::test]
async fn connect_protocol_rules() {
    let s = setup().await;
    let url = &s.server.url;
    // 405 with Allow for other methods, 415 for unknown content types, 404 for unknown methods.
    let r = s.client.get(format!("{url}/querier.v1.QuerierService/ProfileTypes")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/ProfileTypes"))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/Nope"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // An empty JSON body is invalid; an empty proto body is an empty message.
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/ProfileTypes"))
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], json!("invalid_argument"));
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/ProfileTypes"))
        .header("Content-Type", "application/proto")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Connect-Protocol-Version must be 1 when present.
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/ProfileTypes"))
        .header("Content-Type", "application/json")
        .header("Connect-Protocol-Version", "2")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // int64 as strings on output, lowerCamelCase names, proto names accepted on input.
    let (st, v) = connect_json(
        &s.client,
        url,
        "SelectMergeStacktraces",
        None,
        json!({"profile_typeID": CPU, "label_selector": "{}", "start": s.start.to_string(), "end": s.end}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["flamegraph"]["total"], json!("100"));
    assert!(v["flamegraph"]["maxSelf"].is_string());
    // gzip'd request body on a query, gzip'd response for clients that accept it.
    let body = gzip(s.select().to_string().as_bytes());
    let r = s
        .client
        .post(format!("{url}/querier.v1.QuerierService/SelectMergeStacktraces"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["flamegraph"]["total"], json!("100"));
}

#[tokio::test]
async fn query_validation_answers_400() {
    let s = setup().await;
    let url = &s.server.url;
    let cases = [
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": "now-1h", "end": s.end}),
        ),
        ("SelectMergeStacktraces", json!({"profileTypeID": CPU, "labelSelector": "{}"})),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": s.end, "end": s.start}),
        ),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": s.end - 25 * 3_600_000, "end": s.end}),
        ),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": "cpu", "labelSelector": "{}", "start": s.start, "end": s.end}),
        ),
        ("SelectMergeStacktraces", json!({"profileTypeID": CPU, "labelSelector": "", "start": s.start, "end": s.end})),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{a=", "start": s.start, "end": s.end}),
        ),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": s.start, "end": s.end, "maxNodes": 1_048_577}),
        ),
        (
            "SelectSeries",
            json!({"profileTypeID": CPU, "labelSelector": "{}", "start": s.start, "end": s.end, "step": 0}),
        ),
        ("LabelValues", json!({"name": "", "start": s.start, "end": s.end})),
    ];
    for (method, body) in cases {
        let (st, v) = connect_json(&s.client, url, method, None, body.clone()).await;
        assert_eq!(st, 400, "{method} {body}: {v}");
        assert_eq!(v["code"], json!("invalid_argument"), "{method} {body}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A range wholly before the lookback is an empty success.
    let old = s.start - 8 * 24 * 3_600_000;
    let (st, v) = connect_json(
        &s.client,
        url,
        "SelectMergeStacktraces",
        None,
        json!({"profileTypeID": CPU, "labelSelector": "{}", "start": old, "end": old + 1000}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["flamegraph"]["names"], json!(["total"]));
}

#[tokio::test]
async fn formats_and_truncation() {
    let s = setup().await;
    let url = &s.server.url;
    // Truncation keeps the total in `other` nodes, laid out after the kept children.
    let mut body = s.select();
    body["maxNodes"] = json!(3);
    let (_, v) = connect_json(&s.client, url, "SelectMergeStacktraces", None, body).await;
    let (tree, total) = json_flamegraph_tree(&v["flamegraph"]);
    assert_eq!(total, 100);
    assert!(tree.keys().any(|k| k.last().map(String::as_str) == Some("other")), "{tree:?}");
    assert_eq!(tree.get(&vec!["main".to_string()]), Some(&96));
    // TREE format: the tree bytes decode back to the same totals.
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start: s.start,
        end: s.end,
        format: q::ProfileFormat::Tree as i32,
        ..Default::default()
    };
    let (st, b) = connect_proto(&s.client, url, "/querier.v1.QuerierService/SelectMergeStacktraces", None, &req).await;
    assert_eq!(st, 200);
    let resp = q::SelectMergeStacktracesResponse::decode(b).unwrap();
    assert!(resp.flamegraph.is_none());
    let decoded = flamedb_planner::encode::decode_tree_bytes(&resp.tree).expect("tree bytes");
    assert_eq!(decoded.total(), 100);
    // PPROF format: one sample type, the same stacks.
    let req = q::SelectMergeStacktracesRequest { format: q::ProfileFormat::Pprof as i32, ..req };
    let (_, b) = connect_proto(&s.client, url, "/querier.v1.QuerierService/SelectMergeStacktraces", None, &req).await;
    let p = q::SelectMergeStacktracesResponse::decode(b).unwrap().pprof.unwrap().profile.unwrap();
    let mut got = Tree::new();
    pprof_tree(&p, 0, &same_name, &mut got);
    assert_eq!(got, stacks_tree(STACKS));
    assert_eq!(p.sample_type.len(), 1);
}

#[tokio::test]
async fn grpc_and_grpc_web_on_the_same_port() {
    let s = setup().await;
    let mut querier = QuerierServiceClient::connect(s.server.url.clone()).await.expect("grpc connect");
    let types =
        querier.profile_types(q::ProfileTypesRequest { start: s.start, end: s.end }).await.expect("grpc").into_inner();
    assert_eq!(types.profile_types.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec![CPU]);
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{}".into(),
        start: s.start,
        end: s.end,
        ..Default::default()
    };
    let fg = querier.select_merge_stacktraces(req.clone()).await.expect("grpc").into_inner().flamegraph.expect("fg");
    let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
    assert_eq!(flamegraph_tree(&fg.names, &levels), stacks_tree(STACKS));
    // A gRPC error carries the status code.
    let bad = querier
        .select_merge_stacktraces(q::SelectMergeStacktracesRequest { profile_type_id: "x".into(), ..req.clone() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // Push over gRPC.
    let mut pusher = PusherServiceClient::connect(s.server.url.clone()).await.expect("grpc connect");
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["grpc_main"], 7)], now_nanos());
    pusher
        .push(push_request(&[("__name__", "process_cpu"), ("service_name", "grpc-svc")], &p))
        .await
        .expect("grpc push");
    let values = querier
        .label_values(t::LabelValuesRequest {
            name: "service_name".into(),
            matchers: vec![],
            start: s.start,
            end: s.end,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(values.names, vec!["grpc-svc", "svc"]);

    // gRPC-Web: an enveloped request, a data frame and a trailer frame in the body.
    let msg = q::ProfileTypesRequest { start: s.start, end: s.end }.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let r = s
        .client
        .post(format!("{}/querier.v1.QuerierService/ProfileTypes", s.server.url))
        .header("Content-Type", "application/grpc-web+proto")
        .header("X-Grpc-Web", "1")
        .body(framed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body[0], 0, "first frame is data");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let resp = q::ProfileTypesResponse::decode(&body[5..5 + len]).unwrap();
    assert_eq!(resp.profile_types.len(), 1);
    let trailer = &body[5 + len..];
    assert_eq!(trailer[0] & 0x80, 0x80, "then the trailers");
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
}

#[tokio::test]
async fn operational_endpoints() {
    let s = setup().await;
    let url = &s.server.url;
    let r = s.client.get(format!("{url}/ready")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ready".to_string()));
    let m = s.client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("flamedb_distributor_received_profiles_total 1"), "{m}");
    assert!(m.contains("flamedb_head_series"), "{m}");
    assert!(m.contains("flamedb_request_duration_seconds"), "{m}");
    let b: serde_json::Value =
        s.client.get(format!("{url}/api/v1/status/buildinfo")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["status"], json!("success"));
    assert_eq!(b["data"]["version"], json!(env!("CARGO_PKG_VERSION")));
}
