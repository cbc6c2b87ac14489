//! Tenant isolation, proven on every query method: two tenants push different data, and each
//! query method answers a tenant with its own data only; `a|b` reads the union; a missing or
//! invalid tenant is refused with 401.

mod common;

use common::*;
use flamedb_proto::google::v1::Profile;
use flamedb_proto::querier::v1 as q;
use prost::Message;
use serde_json::json;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const MEM: &str = "memory:alloc_space:bytes:alloc_space:bytes";
const A: &[(&[&str], i64)] = &[(&["main", "alpha_work"], 70), (&["main", "gc"], 30)];
const B: &[(&[&str], i64)] = &[(&["start", "beta_alloc"], 500)];

struct Setup {
    server: Server,
    client: reqwest::Client,
    start: i64,
    end: i64,
}

async fn setup() -> Setup {
    let server = Server::start(&["-auth.multitenancy-enabled"]);
    let client = reqwest::Client::new();
    let now = now_nanos();
    let a = build_pprof(("cpu", "nanoseconds"), A, now);
    let b = build_pprof(("alloc_space", "bytes"), B, now);
    let ra = push_request(&[("__name__", "process_cpu"), ("service_name", "svc-a"), ("team_a", "x")], &a);
    let rb = push_request(&[("__name__", "memory"), ("service_name", "svc-b"), ("team_b", "y")], &b);
    for (tenant, r) in [("alpha", &ra), ("beta", &rb)] {
        let (st, body) = connect_proto(&client, &server.url, "/push.v1.PusherService/Push", Some(tenant), r).await;
        assert_eq!(st, 200, "{body:?}");
    }
    let (start, end) = ((now - 600_000_000_000) / 1_000_000, (now + 60_000_000_000) / 1_000_000);
    Setup { server, client, start, end }
}

impl Setup {
    async fn json(&self, method: &str, tenant: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
        connect_json(&self.client, &self.server.url, method, tenant, body).await
    }

    fn range(&self, mut v: serde_json::Value) -> serde_json::Value {
        v["start"] = json!(self.start);
        v["end"] = json!(self.end);
        v
    }

    async fn flamegraph_total(&self, tenant: &str, type_id: &str) -> (Tree, i64) {
        let (st, v) = self
            .json(
                "SelectMergeStacktraces",
                Some(tenant),
                self.range(json!({"profileTypeID": type_id, "labelSelector": "{}"})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        json_flamegraph_tree(&v["flamegraph"])
    }

    async fn merge_profile_total(&self, tenant: &str, type_id: &str) -> i64 {
        let req = q::SelectMergeProfileRequest {
            profile_type_id: type_id.into(),
            label_selector: "{}".into(),
            start: self.start,
            end: self.end,
            ..Default::default()
        };
        let (st, body) = connect_proto(
            &self.client,
            &self.server.url,
            "/querier.v1.QuerierService/SelectMergeProfile",
            Some(tenant),
            &req,
        )
        .await;
        assert_eq!(st, 200);
        Profile::decode(body).expect("pprof").sample.iter().map(|s| s.value[0]).sum()
    }

    async fn series_total(&self, tenant: &str, type_id: &str) -> f64 {
        let (st, v) = self
            .json(
                "SelectSeries",
                Some(tenant),
                self.range(json!({"profileTypeID": type_id, "labelSelector": "{}", "step": 60})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["points"].as_array().into_iter().flatten())
            .map(|p| p["value"].as_f64().unwrap_or(0.0))
            .sum()
    }
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key].as_array().into_iter().flatten().map(|s| s.as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn each_query_method_sees_only_its_tenant() {
    let s = setup().await;
    assert_isolated(&s).await;
    // The same, with the data moved from the head into per-tenant blocks in the bucket.
    let r = s.client.post(format!("{}/ingester/flush", s.server.url)).send().await.expect("flush");
    assert_eq!(r.status().as_u16(), 204);
    let bucket = s.server.data.path().join("bucket");
    assert!(bucket.join("alpha").is_dir() && bucket.join("beta").is_dir(), "one bucket folder per tenant");
    assert_isolated(&s).await;
}

async fn assert_isolated(s: &Setup) {
    // ProfileTypes
    let types = |v: &serde_json::Value| -> Vec<String> {
        v["profileTypes"].as_array().into_iter().flatten().map(|t| t["ID"].as_str().unwrap_or("").to_string()).collect()
    };
    let (_, a) = s.json("ProfileTypes", Some("alpha"), s.range(json!({}))).await;
    assert_eq!(types(&a), vec![CPU]);
    let (_, b) = s.json("ProfileTypes", Some("beta"), s.range(json!({}))).await;
    assert_eq!(types(&b), vec![MEM]);
    let (_, ab) = s.json("ProfileTypes", Some("alpha|beta"), s.range(json!({}))).await;
    assert_eq!(types(&ab), vec![MEM, CPU], "the union, sorted by id");

    // LabelNames
    let (_, a) = s.json("LabelNames", Some("alpha"), s.range(json!({"matchers": ["{}"]}))).await;
    let names = strings(&a, "names");
    assert!(names.contains(&"team_a".to_string()) && !names.contains(&"team_b".to_string()), "{names:?}");

    // LabelValues
    let (_, a) = s.json("LabelValues", Some("alpha"), s.range(json!({"name": "service_name"}))).await;
    assert_eq!(strings(&a, "names"), vec!["svc-a"]);
    let (_, b) = s.json("LabelValues", Some("beta"), s.range(json!({"name": "service_name"}))).await;
    assert_eq!(strings(&b, "names"), vec!["svc-b"]);
    let (_, ab) = s.json("LabelValues", Some("beta|alpha"), s.range(json!({"name": "service_name"}))).await;
    assert_eq!(strings(&ab, "names"), vec!["svc-a", "svc-b"]);

    // Series
    let (_, a) =
        s.json("Series", Some("alpha"), s.range(json!({"labelNames": ["service_name", "__profile_type__"]}))).await;
    let sets = a["labelsSet"].as_array().cloned().unwrap_or_default();
    assert_eq!(sets.len(), 1, "{a}");
    assert!(sets[0].to_string().contains("svc-a") && !a.to_string().contains("svc-b"));

    // SelectMergeStacktraces: own data exact; the other tenant's type is empty.
    let (tree, total) = s.flamegraph_total("alpha", CPU).await;
    assert_eq!((tree, total), (stacks_tree(A), 100));
    assert_eq!(s.flamegraph_total("alpha", MEM).await.1, 0);
    assert_eq!(s.flamegraph_total("beta", CPU).await.1, 0);
    assert_eq!(s.flamegraph_total("beta", MEM).await, (stacks_tree(B), 500));

    // SelectMergeProfile
    assert_eq!(s.merge_profile_total("alpha", CPU).await, 100);
    assert_eq!(s.merge_profile_total("beta", CPU).await, 0);

    // SelectSeries
    assert_eq!(s.series_total("alpha", CPU).await, 100.0);
    assert_eq!(s.series_total("beta", CPU).await, 0.0);
    assert_eq!(s.series_total("beta", MEM).await, 500.0);

    // GetProfileStats
    let (_, a) = s.json("GetProfileStats", Some("alpha"), json!({})).await;
    assert_eq!(a["dataIngested"], json!(true));
    let (_, g) = s.json("GetProfileStats", Some("gamma"), json!({})).await;
    assert!(g.get("dataIngested").is_none(), "a tenant without data has none: {g}");
}

#[tokio::test]
async fn missing_or_invalid_tenant_is_401_everywhere() {
    let s = setup().await;
    for method in [
        "ProfileTypes",
        "LabelNames",
        "LabelValues",
        "Series",
        "SelectMergeStacktraces",
        "SelectMergeProfile",
        "SelectSeries",
        "GetProfileStats",
    ] {
        let (st, v) = s
            .json(method, None, s.range(json!({"name": "x", "profileTypeID": CPU, "labelSelector": "{}", "step": 60})))
            .await;
        assert_eq!(st, 401, "{method}: {v}");
        assert_eq!(v["code"], json!("unauthenticated"), "{method}");
        let (st, _) = s.json(method, Some("bad/tenant"), s.range(json!({"profileTypeID": CPU}))).await;
        assert_eq!(st, 401, "{method} with an invalid tenant id");
    }
    let r = push_request(&[("__name__", "process_cpu")], &build_pprof(("cpu", "nanoseconds"), A, now_nanos()));
    let (st, _) = connect_proto(&s.client, &s.server.url, "/push.v1.PusherService/Push", None, &r).await;
    assert_eq!(st, 401);
    let (st, _) = connect_proto(&s.client, &s.server.url, "/push.v1.PusherService/Push", Some("a|b"), &r).await;
    assert_eq!(st, 401, "writes go to exactly one tenant");
    let resp =
        s.client.post(format!("{}/ingest?name=app.cpu", s.server.url)).body("a;b 1\n").send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 401);
}
