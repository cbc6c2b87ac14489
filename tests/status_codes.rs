//! The contract's status codes for malformed requests, endpoint by endpoint (docs: pyroscope-api.md
//! §1 Connect conventions and error mapping, §2.1 the /ingest error table, §2.2 Push, §2.3 OTLP,
//! §3.4 time ranges, §5 tenancy, §6 legacy query endpoints, §9 limits). Every case asserts the
//! status and, where the contract gives the body a Connect-style `code`, that code string.

mod common;

use common::*;
use prost::Message;
use serde_json::{Value, json};

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// One request and what the contract says comes back.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The `code` of the JSON error body; `None` where the contract gives no JSON body
    /// (405/415 from the Connect router, OTLP's plain-text errors).
    code: Option<&'static str>,
}

impl Case {
    fn new(what: impl Into<String>, method: &'static str, path: impl Into<String>, status: u16) -> Self {
        Case { what: what.into(), method, path: path.into(), headers: Vec::new(), body: Vec::new(), status, code: None }
    }

    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }

    /// A Connect unary JSON call.
    fn json(what: impl Into<String>, path: &str, body: &Value, status: u16, code: &'static str) -> Self {
        Case::new(what, "POST", path, status)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .code(code)
    }
}

/// Runs every case; returns one line per mismatch.
async fn run(client: &reqwest::Client, url: &str, cases: Vec<Case>) -> Vec<String> {
    assert!(!cases.is_empty());
    let mut fails = Vec::new();
    for c in cases {
        let mut req = client.request(c.method.parse().expect("method"), format!("{url}{}", c.path)).body(c.body);
        for (k, v) in &c.headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).map(str::to_string);
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.unwrap_or_default();
        let what = format!("{} {} {}", c.method, c.path, c.what);
        if status != c.status {
            fails.push(format!("{what}: status {status}, want {} (body {text:.200})", c.status));
            continue;
        }
        if status == 405 && c.path.contains("Service/") && allow.as_deref() != Some("POST") {
            fails.push(format!("{what}: 405 without Allow: POST ({allow:?})"));
        }
        if let Some(code) = c.code {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["code"] != json!(code) || !ct.starts_with("application/json") {
                fails.push(format!("{what}: body {text:.200} ({ct}), want JSON code {code:?}"));
            } else if v["message"].as_str().is_none_or(str::is_empty) {
                fails.push(format!("{what}: error without a message: {text:.200}"));
            }
        }
    }
    fails
}

fn report(fails: Vec<String>) {
    assert!(fails.is_empty(), "{} cases differ from the contract:\n{}", fails.len(), fails.join("\n"));
}

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

fn q(method: &str) -> String {
    format!("/querier.v1.QuerierService/{method}")
}

/// Every Connect query method with a well-formed JSON body for the last hour.
fn query_methods(start: i64, end: i64) -> Vec<(&'static str, Value)> {
    let select = json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end});
    let mut series = select.clone();
    series["step"] = json!(15.0);
    vec![
        ("ProfileTypes", json!({"start": start, "end": end})),
        ("LabelNames", json!({"matchers": ["{}"], "start": start, "end": end})),
        ("LabelValues", json!({"name": "service_name", "matchers": ["{}"], "start": start, "end": end})),
        ("Series", json!({"matchers": ["{}"], "labelNames": ["service_name"], "start": start, "end": end})),
        ("SelectMergeStacktraces", select.clone()),
        ("SelectMergeProfile", select.clone()),
        ("SelectSeries", series),
        ("Diff", json!({"left": select.clone(), "right": select.clone()})),
        ("GetProfileStats", json!({})),
    ]
}

/// Sets `start`/`end` (or both sides' of a Diff).
fn with_range(method: &str, body: &Value, start: Value, end: Value) -> Value {
    let mut b = body.clone();
    if method == "Diff" {
        for side in ["left", "right"] {
            b[side]["start"] = start.clone();
            b[side]["end"] = end.clone();
        }
    } else {
        b["start"] = start;
        b["end"] = end;
    }
    b
}

fn without_range(method: &str, body: &Value) -> Value {
    let mut b = body.clone();
    let strip = |o: &mut Value| {
        if let Some(m) = o.as_object_mut() {
            m.remove("start");
            m.remove("end");
        }
    };
    if method == "Diff" {
        strip(&mut b["left"]);
        strip(&mut b["right"]);
    } else {
        strip(&mut b);
    }
    b
}

#[tokio::test]
async fn connect_query_methods() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let (end, start) = (now_ms(), now_ms() - 3_600_000);
    let mut cases = Vec::new();
    for (method, body) in query_methods(start, end) {
        // The well-formed request is a 200: the failures below are the malformed parts alone.
        cases.push(
            Case::new("well-formed", "POST", q(method), 200)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        );
        cases.push(Case::new("GET", "GET", q(method), 405));
        cases.push(Case::new("PUT", "PUT", q(method), 405).header("Content-Type", "application/json").body("{}"));
        cases.push(Case::new("text/plain", "POST", q(method), 415).header("Content-Type", "text/plain").body("{}"));
        cases.push(
            Case::new("empty JSON body", "POST", q(method), 400)
                .header("Content-Type", "application/json")
                .code("invalid_argument"),
        );
        cases.push(Case::json("truncated JSON", &q(method), &json!(null), 400, "invalid_argument").body("{\"start\":"));
        if method == "GetProfileStats" {
            continue;
        }
        cases.push(Case::json(
            "start \"now-1h\"",
            &q(method),
            &with_range(method, &body, json!("now-1h"), json!(end)),
            400,
            "invalid_argument",
        ));
        cases.push(Case::json(
            "start > end",
            &q(method),
            &with_range(method, &body, json!(end), json!(start)),
            400,
            "invalid_argument",
        ));
        if method == "ProfileTypes" {
            continue;
        }
        let over_24h = Case::json(
            "range over 24h",
            &q(method),
            &with_range(method, &body, json!(end - 25 * 3_600_000), json!(end)),
            400,
            "invalid_argument",
        );
        // ProfileTypes alone turns a missing range into the last hour (skipped above).
        let no_range =
            Case::json("missing time range", &q(method), &without_range(method, &body), 400, "invalid_argument");
        cases.push(over_24h);
        cases.push(no_range);
    }
    // Profile type ids and selectors.
    let selects = ["SelectMergeStacktraces", "SelectMergeProfile", "SelectSeries"];
    let bodies: Vec<(&str, Value)> =
        query_methods(start, end).into_iter().filter(|(m, _)| selects.contains(m) || *m == "Diff").collect();
    for (method, body) in &bodies {
        let mut bad_type = body.clone();
        let mut bad_selector = body.clone();
        let mut empty_selector = body.clone();
        let mut too_many_nodes = body.clone();
        if *method == "Diff" {
            bad_type["left"]["profileTypeID"] = json!("process_cpu:cpu");
            bad_selector["right"]["labelSelector"] = json!("{service_name=");
            empty_selector["left"]["labelSelector"] = json!("");
            too_many_nodes["left"]["maxNodes"] = json!(1_048_577);
        } else {
            bad_type["profileTypeID"] = json!("process_cpu:cpu");
            bad_selector["labelSelector"] = json!("{service_name=");
            empty_selector["labelSelector"] = json!("");
            too_many_nodes["maxNodes"] = json!(1_048_577);
        }
        let mut missing_type = body.clone();
        if *method == "Diff" {
            missing_type["right"].as_object_mut().map(|o| o.remove("profileTypeID"));
        } else {
            missing_type.as_object_mut().map(|o| o.remove("profileTypeID"));
        }
        let m = q(method);
        cases.push(Case::json("profile type with 2 parts", &m, &bad_type, 400, "invalid_argument"));
        cases.push(Case::json("missing profile type", &m, &missing_type, 400, "invalid_argument"));
        cases.push(Case::json("bad selector", &m, &bad_selector, 400, "invalid_argument"));
        cases.push(Case::json("empty selector", &m, &empty_selector, 400, "invalid_argument"));
        // SelectMergeProfile does not enforce max_nodes by default (§3.2); SelectSeries has none.
        if !matches!(*method, "SelectMergeProfile" | "SelectSeries") {
            cases.push(Case::json("maxNodes over the max", &m, &too_many_nodes, 400, "invalid_argument"));
        }
    }
    for (method, mut body) in query_methods(start, end) {
        let m = q(method);
        match method {
            "LabelNames" | "Series" => {
                body["matchers"] = json!(["{service_name="]);
                cases.push(Case::json("bad matcher", &m, &body, 400, "invalid_argument"));
            }
            "LabelValues" => {
                let mut b = body.clone();
                b["matchers"] = json!(["{service_name="]);
                cases.push(Case::json("bad matcher", &m, &b, 400, "invalid_argument"));
                body["name"] = json!("");
                cases.push(Case::json("no name", &m, &body, 400, "invalid_argument"));
            }
            "SelectSeries" => {
                body["step"] = json!(0);
                cases.push(Case::json("step 0", &m, &body, 400, "invalid_argument"));
            }
            _ => {}
        }
    }
    // Connect-level rules that hold for any method.
    cases.push(Case::new("unknown method", "POST", q("NoSuchMethod"), 404).header("Content-Type", "application/json"));
    cases.push(
        Case::new("unknown service", "POST", "/querier.v9.QuerierService/ProfileTypes", 404)
            .header("Content-Type", "application/json")
            .body("{}"),
    );
    cases.push(
        Case::new("Connect-Protocol-Version 2", "POST", q("ProfileTypes"), 400)
            .header("Content-Type", "application/json")
            .header("Connect-Protocol-Version", "2")
            .body("{}")
            .code("invalid_argument"),
    );
    cases.push(
        Case::new("garbage proto", "POST", q("SelectMergeStacktraces"), 400)
            .header("Content-Type", "application/proto")
            .body(vec![0xff, 0xff, 0xff, 0xff])
            .code("invalid_argument"),
    );
    cases.push(
        Case::new("bad gzip body", "POST", q("ProfileTypes"), 400)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body("{}")
            .code("invalid_argument"),
    );
    // §1: a syntactically invalid Accept header fails any request.
    cases.push(
        Case::new("invalid Accept", "POST", q("ProfileTypes"), 400)
            .header("Content-Type", "application/json")
            .header("Accept", "*/*;;;=")
            .body("{}"),
    );
    report(run(&client, &server.url, cases).await);
}

#[tokio::test]
async fn tenancy_on_every_endpoint() {
    let server = Server::start(&["-auth.multitenancy-enabled=true"]);
    let client = reqwest::Client::new();
    let (end, start) = (now_ms(), now_ms() - 3_600_000);
    let mut cases = Vec::new();
    for (method, body) in query_methods(start, end) {
        cases.push(Case::json("no X-Scope-OrgID", &q(method), &body, 401, "unauthenticated"));
        cases.push(
            Case::json("invalid tenant", &q(method), &body, 401, "unauthenticated").header("X-Scope-OrgID", "a/b"),
        );
    }
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main"], 1)], now_nanos());
    let push = push_request(&[("__name__", "process_cpu"), ("service_name", "svc")], &p).encode_to_vec();
    cases.push(
        Case::new("Push without tenant", "POST", "/push.v1.PusherService/Push", 401)
            .header("Content-Type", "application/proto")
            .body(push.clone())
            .code("unauthenticated"),
    );
    // Writes go to exactly one tenant.
    cases.push(
        Case::new("Push to two tenants", "POST", "/push.v1.PusherService/Push", 401)
            .header("Content-Type", "application/proto")
            .header("X-Scope-OrgID", "a|b")
            .body(push)
            .code("unauthenticated"),
    );
    cases.push(
        Case::new("/ingest without tenant", "POST", "/ingest?name=svc", 401).body("a;b 1\n").code("unauthenticated"),
    );
    cases.push(
        Case::new("/pyroscope/ingest without tenant", "POST", "/pyroscope/ingest?name=svc", 401)
            .body("a;b 1\n")
            .code("unauthenticated"),
    );
    cases.push(
        Case::new("OTLP without tenant", "POST", "/v1development/profiles", 401)
            .header("Content-Type", "application/x-protobuf"),
    );
    let render = format!("/pyroscope/render?query={CPU}%7B%7D&from=now-1h&until=now");
    cases.push(Case::new("render without tenant", "GET", render, 401).code("unauthenticated"));
    cases.push(
        Case::new("label-values without tenant", "GET", "/pyroscope/label-values?label=__name__", 401)
            .code("unauthenticated"),
    );
    report(run(&client, &server.url, cases).await);
}

#[tokio::test]
async fn push_rejections() {
    let server = Server::start(&["-validation.max-profile-size-bytes=4096"]);
    let client = reqwest::Client::new();
    let push = "/push.v1.PusherService/Push";
    let now = now_nanos();
    let p = build_pprof(("cpu", "nanoseconds"), &[(&["main", "work"], 10)], now);
    let send = |r: &flamedb_proto::push::v1::PushRequest, what: &str, status: u16| {
        Case::new(what, "POST", push, status).header("Content-Type", "application/proto").body(r.encode_to_vec())
    };
    let proto = |r: &flamedb_proto::push::v1::PushRequest, what: &str, status: u16, code: &'static str| {
        send(r, what, status).code(code)
    };
    let ok = push_request(&[("__name__", "process_cpu"), ("service_name", "svc")], &p);
    let mut cases = vec![send(&ok, "well-formed", 200)];

    let none = flamedb_proto::push::v1::PushRequest { series: vec![] };
    cases.push(proto(&none, "no series", 400, "invalid_argument"));
    let mut no_samples = ok.clone();
    no_samples.series[0].samples.clear();
    cases.push(proto(&no_samples, "a series without samples", 400, "invalid_argument"));
    let no_name = push_request(&[("service_name", "svc")], &p);
    cases.push(proto(&no_name, "missing __name__", 400, "invalid_argument"));
    let empty_name = push_request(&[("__name__", ""), ("service_name", "svc")], &p);
    cases.push(proto(&empty_name, "empty __name__", 400, "invalid_argument"));
    let mut bad_gzip = ok.clone();
    bad_gzip.series[0].samples[0].raw_profile = vec![0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef].into();
    cases.push(proto(&bad_gzip, "raw_profile: corrupt gzip", 400, "invalid_argument"));
    let mut not_pprof = ok.clone();
    not_pprof.series[0].samples[0].raw_profile = vec![0xff; 16].into();
    cases.push(proto(&not_pprof, "raw_profile: not a pprof", 400, "invalid_argument"));
    // Over max_profile_size_bytes once decompressed, however small on the wire.
    let long = "x".repeat(10_000);
    let big = build_pprof(("cpu", "nanoseconds"), &[(&["main", long.as_str()], 10)], now);
    let mut oversize = push_request(&[("__name__", "process_cpu"), ("service_name", "svc")], &big);
    oversize.series[0].samples[0].raw_profile = gzip(&big.encode_to_vec()).into();
    cases.push(proto(&oversize, "profile over max_profile_size_bytes", 400, "invalid_argument"));
    let dup = push_request(&[("__name__", "process_cpu"), ("service_name", "a"), ("service_name", "b")], &p);
    cases.push(proto(&dup, "duplicate label name", 400, "invalid_argument"));
    // A profile older than the ingestion window (1h).
    let old = build_pprof(("cpu", "nanoseconds"), &[(&["main"], 1)], now - 2 * 3_600_000_000_000);
    let old = push_request(&[("__name__", "process_cpu"), ("service_name", "svc")], &old);
    cases.push(proto(&old, "outside the ingestion window", 400, "invalid_argument"));
    cases.push(Case::new("GET", "GET", push, 405));
    cases.push(Case::new("text/plain", "POST", push, 415).header("Content-Type", "text/plain").body("x"));
    cases.push(Case::json("empty JSON body", push, &json!(null), 400, "invalid_argument").body(""));
    report(run(&client, &server.url, cases).await);
}

#[tokio::test]
async fn ingest_rejections() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let pprof = gzip(&build_pprof(("cpu", "nanoseconds"), &[(&["main", "work"], 10)], now_nanos()).encode_to_vec());
    let form = |parts: &[(&str, &[u8])], what: &str, query: &str, status: u16| {
        let (ct, body) = multipart_form(parts);
        Case::new(what, "POST", format!("/ingest?{query}"), status).header("Content-Type", ct).body(body)
    };
    let cases = vec![
        Case::new("folded, well-formed", "POST", "/ingest?name=svc.cpu", 200).body("a;b 1\n"),
        form(&[("profile", &pprof)], "multipart pprof, well-formed", "name=svc", 200),
        Case::new("missing name", "POST", "/ingest", 400).body("a;b 1\n").code("invalid_argument"),
        Case::new("empty name", "POST", "/ingest?name=", 400).body("a;b 1\n").code("invalid_argument"),
        Case::new("name with a bad rune", "POST", "/ingest?name=my%20app%21", 400)
            .body("a;b 1\n")
            .code("invalid_argument"),
        Case::new("name with a bad label key", "POST", "/ingest?name=app%7Bk-y%3Dv%7D", 400)
            .body("a;b 1\n")
            .code("invalid_argument"),
        Case::new("unknown name suffix", "POST", "/ingest?name=my.app", 400).body("a;b 1\n").code("invalid_argument"),
        // A parse error carries no Connect code, so it is a conversion failure: 422 (§2.1 table).
        Case::new("folded count not an integer", "POST", "/ingest?name=svc.cpu", 422).body("a;b x\n").code("unknown"),
        Case::new("format=pprof, not a pprof", "POST", "/ingest?name=svc&format=pprof", 422)
            .body(vec![0xff; 32])
            .code("unknown"),
        form(&[("profile", &[0xff; 32])], "multipart, not a pprof", "name=svc", 422).code("unknown"),
        form(&[("profile", &pprof), ("prev_profile", &pprof)], "prev_profile", "name=svc", 422).code("unknown"),
        Case::new("GET", "GET", "/ingest?name=svc", 405),
        Case::new("GET /pyroscope/ingest", "GET", "/pyroscope/ingest?name=svc", 405),
        Case::new("corrupt gzip Content-Encoding", "POST", "/ingest?name=svc.cpu", 400)
            .header("Content-Encoding", "gzip")
            .body("a;b 1\n")
            .code("invalid_argument"),
    ];
    let fails = run(&client, &server.url, cases).await;

    // The body limit: 413 with code invalid_argument (§2.1), from a server whose limit is 16 KiB.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("limits.yaml");
    std::fs::write(&cfg, "limits:\n  ingestion_body_limit_mb: 0.015625\n").expect("config");
    let small = Server::start(&[&format!("-config.file={}", cfg.display())]);
    let big: String = (0..4000).map(|i| format!("main;f{i} 1\n")).collect();
    assert!(big.len() > 16 << 10);
    let limited = vec![
        Case::new("body under the limit", "POST", "/ingest?name=svc.cpu", 200).body("a;b 1\n"),
        Case::new("body over the limit", "POST", "/ingest?name=svc.cpu", 413)
            .body(big.clone())
            .code("invalid_argument"),
        // Connect's read limit: resource_exhausted (§9).
        Case::new("Push body over the limit", "POST", "/push.v1.PusherService/Push", 429)
            .header("Content-Type", "application/proto")
            .body(vec![0u8; 20 << 10])
            .code("resource_exhausted"),
    ];
    let mut more = run(&client, &small.url, limited).await;
    more.extend(fails);
    report(more);
}

#[tokio::test]
async fn otlp_rejections() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let path = "/v1development/profiles";
    // OTLP errors are plain text (§2.3): the status is what clients act on.
    let cases = vec![
        // `dictionary` and `resource_profiles` are required.
        Case::new("empty request", "POST", path, 400).header("Content-Type", "application/x-protobuf"),
        Case::new("text/plain", "POST", path, 415).header("Content-Type", "text/plain").body("x"),
        Case::new("no Content-Type", "POST", path, 415).body(vec![0x0a, 0x00]),
        Case::new("garbage protobuf", "POST", path, 400)
            .header("Content-Type", "application/x-protobuf")
            .body(vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        Case::new("garbage JSON", "POST", path, 400)
            .header("Content-Type", "application/json")
            .body("{\"resourceProfiles\":"),
    ];
    report(run(&client, &server.url, cases).await);
}

#[tokio::test]
async fn legacy_query_endpoints() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let query = format!("{CPU}%7Bservice_name%3D%22svc%22%7D");
    let render = |params: &str| format!("/pyroscope/render?{params}");
    let cases = vec![
        Case::new("well-formed", "GET", render(&format!("query={query}&from=now-1h&until=now")), 200),
        Case::new("missing query", "GET", render("from=now-1h&until=now"), 400).code("invalid_argument"),
        Case::new("empty query", "GET", render("query=&from=now-1h&until=now"), 400).code("invalid_argument"),
        Case::new(
            "query without a profile type",
            "GET",
            render("query=%7Bservice_name%3D%22svc%22%7D&from=now-1h&until=now"),
            400,
        )
        .code("invalid_argument"),
        Case::new("bad profile type", "GET", render("query=process_cpu%7B%7D&from=now-1h&until=now"), 400)
            .code("invalid_argument"),
        Case::new("bad selector", "GET", render(&format!("query={CPU}%7Ba%3D&from=now-1h&until=now")), 400)
            .code("invalid_argument"),
        Case::new("from=0", "GET", render(&format!("query={query}&from=0&until=now")), 400).code("invalid_argument"),
        Case::new("from=0&until=0 format=dot", "GET", render(&format!("query={query}&from=0&until=0&format=dot")), 400)
            .code("invalid_argument"),
        Case::new("POST", "POST", render(&format!("query={query}&from=now-1h&until=now")), 405),
        Case::new("DELETE", "DELETE", render(&format!("query={query}&from=now-1h&until=now")), 405),
        Case::new(
            "render-diff, profile types differ",
            "GET",
            format!(
                "/pyroscope/render-diff?leftQuery={query}&leftFrom=now-1h&leftUntil=now\
                 &rightQuery=memory:alloc_space:bytes:space:bytes%7B%7D&rightFrom=now-1h&rightUntil=now"
            ),
            400,
        )
        .code("invalid_argument"),
        Case::new(
            "render-diff, missing leftQuery",
            "GET",
            format!("/pyroscope/render-diff?rightQuery={query}&rightFrom=now-1h&rightUntil=now&leftFrom=now-1h&leftUntil=now"),
            400,
        )
        .code("invalid_argument"),
        Case::new("render-diff POST", "POST", "/pyroscope/render-diff", 405),
        Case::new("label-values __name__", "GET", "/pyroscope/label-values?label=__name__", 200),
        Case::new("label-values without label", "GET", "/pyroscope/label-values", 400).code("invalid_argument"),
        Case::new("label-values POST", "POST", "/pyroscope/label-values?label=__name__", 405),
        // OG-Pyroscope routes are not served (§6).
        Case::new("OG /render", "GET", format!("/render?query={query}&from=now-1h&until=now"), 404),
        Case::new("no /pyroscope/labels", "GET", "/pyroscope/labels", 404),
    ];
    report(run(&client, &server.url, cases).await);
}
