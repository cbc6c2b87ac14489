//! The rest of the query API against the real binary: Diff, span selectors
//! (SelectMergeSpanProfile and `span_selector` on SelectMergeStacktraces), AnalyzeQuery, and
//! their 400s. Expectations are computed here from the stacks that were pushed; span and
//! AnalyzeQuery checks run both on the head and, after `POST /ingester/flush`, on the block.

mod common;

use common::*;
use flamedb_proto::google::v1::{Label, Profile};
use flamedb_proto::querier::v1 as q;
use flamedb_proto::querier::v1::querier_service_client::QuerierServiceClient;
use prost::Message;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

type Stacks<'a> = [(&'a [&'a str], i64)];

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

fn range() -> (i64, i64) {
    let now = now_ms();
    (now - 3_600_000, now + 60_000)
}

async fn push(client: &reqwest::Client, url: &str, service: &str, p: &Profile) {
    let req = push_request(&[("__name__", "process_cpu"), ("service_name", service)], p);
    let (status, body) = connect_proto(client, url, "/push.v1.PusherService/Push", None, &req).await;
    assert_eq!(status, 200, "push: {}", String::from_utf8_lossy(&body));
}

async fn flush(client: &reqwest::Client, url: &str) {
    let r = client.post(format!("{url}/ingester/flush")).send().await.expect("flush");
    assert_eq!(r.status().as_u16(), 204, "flush");
}

fn select(service: &str, max_nodes: Option<i64>) -> q::SelectMergeStacktracesRequest {
    let (start, end) = range();
    q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: format!("{{service_name=\"{service}\"}}"),
        start,
        end,
        max_nodes,
        ..Default::default()
    }
}

/// One side (0 = left, 1 = right) of FlameGraphDiff levels read the way Grafana reads them:
/// absolute x = delta + end of the previous node on the level, the parent is the node of the
/// level above whose span contains the node. Nodes with a zero total on that side are absent.
fn diff_side_tree(fg: &q::FlameGraphDiff, side: usize) -> Tree {
    let off = side * 3;
    let mut out = Tree::new();
    let mut above: Vec<(i64, i64, Vec<String>)> = Vec::new();
    for (depth, level) in fg.levels.iter().enumerate() {
        assert_eq!(level.values.len() % 7, 0, "level {depth} is not made of 7-int nodes");
        let mut here = Vec::new();
        let mut end = 0;
        for node in level.values.chunks(7) {
            let x = end + node[off];
            let total = node[off + 1];
            end = x + total;
            if depth == 0 {
                here.push((x, total, Vec::new()));
                continue;
            }
            if total == 0 {
                continue;
            }
            let parent = above
                .iter()
                .find(|(px, pt, _)| *pt > 0 && *px <= x && x + total <= px + pt)
                .unwrap_or_else(|| panic!("side {side}: node at depth {depth} x {x} has no parent"));
            let mut path = parent.2.clone();
            path.push(fg.names[node[6] as usize].clone());
            *out.entry(path.clone()).or_insert(0) += total;
            here.push((x, total, path));
        }
        above = here;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_decodes_into_both_inputs() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let left: &Stacks = &[(&["main", "a", "b"], 10), (&["main", "c"], 5), (&["main", "a"], 4)];
    let right: &Stacks = &[(&["main", "a", "b"], 3), (&["main", "d"], 7), (&["gc"], 2)];
    push(&client, &server.url, "left.app", &build_pprof(("cpu", "nanoseconds"), left, now_nanos())).await;
    push(&client, &server.url, "right.app", &build_pprof(("cpu", "nanoseconds"), right, now_nanos())).await;

    let req = q::DiffRequest { left: Some(select("left.app", None)), right: Some(select("right.app", None)) };
    let (status, body) = connect_proto(&client, &server.url, "/querier.v1.QuerierService/Diff", None, &req).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let fg = q::DiffResponse::decode(body).expect("DiffResponse").flamegraph.expect("flamegraph");
    assert_eq!(diff_side_tree(&fg, 0), stacks_tree(left), "left side");
    assert_eq!(diff_side_tree(&fg, 1), stacks_tree(right), "right side");
    assert_eq!((fg.left_ticks, fg.right_ticks, fg.total), (19, 12, 31));
    assert_eq!(fg.names[0], "total");
    assert_eq!(fg.max_self, 10);

    // Swapped sides swap the decoded trees; the same selection on both sides is symmetric.
    let req = q::DiffRequest { left: Some(select("right.app", None)), right: Some(select("left.app", None)) };
    let (_, body) = connect_proto(&client, &server.url, "/querier.v1.QuerierService/Diff", None, &req).await;
    let fg = q::DiffResponse::decode(body).expect("DiffResponse").flamegraph.expect("flamegraph");
    assert_eq!(diff_side_tree(&fg, 0), stacks_tree(right));
    assert_eq!(diff_side_tree(&fg, 1), stacks_tree(left));

    // Connect JSON: the camelCase tick fields and string int64s.
    let (start, end) = range();
    let side = |svc: &str| {
        serde_json::json!({"profileTypeID": CPU, "labelSelector": format!("{{service_name=\"{svc}\"}}"),
            "start": start, "end": end})
    };
    let (status, json) = connect_json(
        &client,
        &server.url,
        "Diff",
        None,
        serde_json::json!({"left": side("left.app"), "right": side("right.app")}),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["flamegraph"]["leftTicks"], "19");
    assert_eq!(json["flamegraph"]["rightTicks"], "12");
    assert_eq!(json["flamegraph"]["total"], "31");

    // gRPC reaches the same method; a bad request carries InvalidArgument.
    let mut querier = QuerierServiceClient::connect(server.url.clone()).await.expect("grpc connect");
    let req = q::DiffRequest { left: Some(select("left.app", None)), right: Some(select("right.app", None)) };
    let fg = querier.diff(req).await.expect("grpc diff").into_inner().flamegraph.expect("flamegraph");
    assert_eq!(diff_side_tree(&fg, 0), stacks_tree(left));
    assert_eq!(diff_side_tree(&fg, 1), stacks_tree(right));
    let mut bad = select("left.app", None);
    bad.profile_type_id.clear();
    let err = querier.diff(q::DiffRequest { left: Some(bad), right: Some(select("right.app", None)) }).await;
    assert_eq!(err.expect_err("missing profile type").code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_cuts_to_max_nodes_on_either_side() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let left: &Stacks = &[(&["main", "big"], 100), (&["main", "s1"], 1), (&["main", "lbig"], 50)];
    let right: &Stacks = &[(&["main", "big"], 80), (&["main", "s2"], 2), (&["main", "rbig"], 60)];
    push(&client, &server.url, "left.app", &build_pprof(("cpu", "nanoseconds"), left, now_nanos())).await;
    push(&client, &server.url, "right.app", &build_pprof(("cpu", "nanoseconds"), right, now_nanos())).await;
    // max(left, right) per node with the root: 151, 151, 100, 50, 1, 60, 2; the 5th largest is
    // 50, so big, lbig and rbig stay and s1, s2 become `other` on their side.
    let req = q::DiffRequest { left: Some(select("left.app", Some(5))), right: Some(select("right.app", Some(3))) };
    let (status, body) = connect_proto(&client, &server.url, "/querier.v1.QuerierService/Diff", None, &req).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let fg = q::DiffResponse::decode(body).expect("DiffResponse").flamegraph.expect("flamegraph");
    let l = diff_side_tree(&fg, 0);
    let r = diff_side_tree(&fg, 1);
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(l.get(&path(&["main", "other"])), Some(&1));
    assert_eq!(r.get(&path(&["main", "other"])), Some(&2));
    assert_eq!(l.get(&path(&["main", "lbig"])), Some(&50));
    assert_eq!(r.get(&path(&["main", "rbig"])), Some(&60));
    assert_eq!(l.get(&path(&["main"])), Some(&151));
    assert!(!l.contains_key(&path(&["main", "s1"])) && !r.contains_key(&path(&["main", "s2"])));
}

/// A cpu pprof whose samples carry a `span_id` label where given.
fn span_pprof(samples: &[(&[&str], i64, Option<&str>)]) -> Profile {
    let stacks: Vec<(&[&str], i64)> = samples.iter().map(|(f, v, _)| (*f, *v)).collect();
    let mut p = build_pprof(("cpu", "nanoseconds"), &stacks, now_nanos());
    let mut intern = |s: &str| intern_string(&mut p, s);
    let labels: Vec<Option<Label>> = samples
        .iter()
        .map(|(_, _, span)| span.map(|s| Label { key: intern("span_id"), str: intern(s), ..Default::default() }))
        .collect();
    assert_eq!(p.sample.len(), labels.len());
    for (sample, label) in p.sample.iter_mut().zip(labels) {
        sample.label.extend(label);
    }
    p
}

const SPAN_A: &str = "00000000000000a1";
const SPAN_B: &str = "1d000000000000b2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_selectors_keep_exactly_the_selected_spans() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let samples: &[(&[&str], i64, Option<&str>)] = &[
        (&["main", "work", "a"], 10, Some(SPAN_A)),
        (&["main", "work", "b"], 20, Some(SPAN_B)),
        (&["main", "idle"], 5, None),
        (&["main", "work", "c"], 7, Some(SPAN_B)),
        (&["main", "other_span"], 3, Some("00000000000000ff")),
    ];
    push(&client, &server.url, "span.app", &span_pprof(samples)).await;
    let expect = |spans: &[&str]| {
        let kept: Vec<(&[&str], i64)> = samples
            .iter()
            .filter(|(_, _, s)| s.is_some_and(|s| spans.contains(&s)))
            .map(|(f, v, _)| (*f, *v))
            .collect();
        stacks_tree(&kept)
    };
    let all: Vec<(&[&str], i64)> = samples.iter().map(|(f, v, _)| (*f, *v)).collect();

    for stage in ["head", "block"] {
        if stage == "block" {
            flush(&client, &server.url).await;
        }
        for spans in [&[SPAN_A][..], &[SPAN_B], &[SPAN_A, SPAN_B], &["00000000000000aa"]] {
            // SelectMergeSpanProfile over Connect JSON.
            let (start, end) = range();
            let (status, json) = connect_json(
                &client,
                &server.url,
                "SelectMergeSpanProfile",
                None,
                serde_json::json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"span.app\"}",
                    "spanSelector": spans, "start": start, "end": end}),
            )
            .await;
            assert_eq!(status, 200, "{stage} {spans:?}: {json}");
            let (tree, total) = json_flamegraph_tree(&json["flamegraph"]);
            assert_eq!(tree, expect(spans), "SelectMergeSpanProfile {stage} {spans:?}");
            assert_eq!(total, expect(spans).iter().filter(|(p, _)| p.len() == 1).map(|(_, v)| v).sum::<i64>());

            // span_selector on SelectMergeStacktraces over Connect proto.
            let mut req = select("span.app", None);
            req.span_selector = spans.iter().map(|s| s.to_string()).collect();
            let (status, body) =
                connect_proto(&client, &server.url, "/querier.v1.QuerierService/SelectMergeStacktraces", None, &req)
                    .await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let fg = q::SelectMergeStacktracesResponse::decode(body).expect("response").flamegraph.expect("fg");
            let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
            assert_eq!(flamegraph_tree(&fg.names, &levels), expect(spans), "span_selector {stage} {spans:?}");
        }
        // Without a selector every sample counts, spans or not.
        let (status, body) = connect_proto(
            &client,
            &server.url,
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            None,
            &select("span.app", None),
        )
        .await;
        assert_eq!(status, 200);
        let fg = q::SelectMergeStacktracesResponse::decode(body).expect("response").flamegraph.expect("fg");
        let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
        assert_eq!(flamegraph_tree(&fg.names, &levels), stacks_tree(&all), "{stage}: no selector");
    }
    let blocks = std::fs::read_dir(server.data.path().join("bucket/anonymous"))
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().join("meta.json").exists()).count())
        .unwrap_or(0);
    assert_eq!(blocks, 1, "the second round read a block");
}

fn scope<'a>(resp: &'a q::AnalyzeQueryResponse, name: &str) -> &'a q::QueryScope {
    resp.query_scopes.iter().find(|s| s.component_type == name).unwrap_or_else(|| panic!("no {name} scope"))
}

async fn analyze(client: &reqwest::Client, url: &str, query: &str) -> q::AnalyzeQueryResponse {
    let (start, end) = range();
    let req = q::AnalyzeQueryRequest { start, end, query: query.into() };
    let (status, body) = connect_proto(client, url, "/querier.v1.QuerierService/AnalyzeQuery", None, &req).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    q::AnalyzeQueryResponse::decode(body).expect("AnalyzeQueryResponse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_query_counts_what_was_pushed() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let a: &Stacks = &[(&["main", "a"], 1), (&["main", "b"], 2)];
    let b: &Stacks = &[(&["main", "c"], 3), (&["x"], 4), (&["y"], 5)];
    let t = now_nanos();
    push(&client, &server.url, "left.app", &build_pprof(("cpu", "nanoseconds"), a, t - 2_000_000_000)).await;
    push(&client, &server.url, "left.app", &build_pprof(("cpu", "nanoseconds"), b, t - 1_000_000_000)).await;
    push(&client, &server.url, "right.app", &build_pprof(("cpu", "nanoseconds"), a, t)).await;
    let (series, profiles, samples) = (2u64, 3u64, (a.len() * 2 + b.len()) as u64);

    let all = format!("{CPU}{{}}");
    let left = format!("{CPU}{{service_name=\"left.app\"}}");
    for stage in ["head", "block"] {
        if stage == "block" {
            flush(&client, &server.url).await;
        }
        let r = analyze(&client, &server.url, &all).await;
        assert_eq!(r.query_scopes.len(), 2, "{stage}: both components are always described");
        let (read, idle) = if stage == "head" {
            ("Short term storage", "Long term storage")
        } else {
            ("Long term storage", "Short term storage")
        };
        let s = scope(&r, read);
        assert_eq!(
            (s.component_count, s.block_count, s.series_count, s.profile_count, s.sample_count),
            (1, 1, series, profiles, samples),
            "{stage}: {s:?}"
        );
        assert!(s.profile_bytes > 0 && s.index_bytes > 0 && s.symbol_bytes > 0, "{stage}: {s:?}");
        let i = scope(&r, idle);
        assert_eq!((i.block_count, i.series_count, i.profile_count), (0, 0, 0), "{stage}: {i:?}");
        let impact = r.query_impact.expect("impact");
        assert_eq!(impact.total_queried_series, series, "{stage}");
        assert_eq!(impact.total_bytes_in_time_range, s.index_bytes + s.profile_bytes + s.symbol_bytes);
        assert!(!impact.deduplication_needed);

        let r = analyze(&client, &server.url, &left).await;
        assert_eq!(r.query_impact.expect("impact").total_queried_series, 1, "{stage}: one series matches");
        let r = analyze(&client, &server.url, "memory:alloc_space:bytes:space:bytes{}").await;
        assert_eq!(r.query_impact.expect("impact").total_queried_series, 0, "{stage}: another profile type");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_400() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let (start, end) = range();
    let side = |pt: &str, max: Option<i64>| {
        let mut v = serde_json::json!({"profileTypeID": pt, "labelSelector": "{}", "start": start, "end": end});
        if let Some(m) = max {
            v["maxNodes"] = serde_json::json!(m);
        }
        v
    };
    let cases = [
        ("Diff", serde_json::json!({"left": side("", None), "right": side(CPU, None)}), "missing profile type"),
        ("Diff", serde_json::json!({"left": side(CPU, None)}), "missing right side"),
        ("Diff", serde_json::json!({"left": side(CPU, Some(2_000_000)), "right": side(CPU, None)}), "max_nodes"),
        (
            "Diff",
            serde_json::json!({"left": side(CPU, None), "right": {"profileTypeID": CPU, "labelSelector": "{}",
                "start": end, "end": start}}),
            "inverted range",
        ),
        (
            "SelectMergeStacktraces",
            serde_json::json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end,
                "spanSelector": ["xyz"]}),
            "short span id",
        ),
        (
            "SelectMergeSpanProfile",
            serde_json::json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end,
                "spanSelector": ["00000000000000zz"]}),
            "non-hex span id",
        ),
        (
            "SelectMergeSpanProfile",
            serde_json::json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end,
                "spanSelector": [SPAN_A], "maxNodes": 2_000_000}),
            "span profile max_nodes",
        ),
        ("AnalyzeQuery", serde_json::json!({"query": "{service_name=}", "start": start, "end": end}), "bad query"),
        ("AnalyzeQuery", serde_json::json!({"query": "{}"}), "missing range"),
    ];
    for (method, body, what) in cases {
        let (status, json) = connect_json(&client, &server.url, method, None, body).await;
        assert_eq!(status, 400, "{method} {what}: {json}");
        assert_eq!(json["code"], "invalid_argument", "{method} {what}: {json}");
    }
    // trace ids stay unimplemented (contract 3.2: v1 semantics).
    let (status, _) = connect_json(
        &client,
        &server.url,
        "SelectMergeStacktraces",
        None,
        serde_json::json!({"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end,
            "traceIdSelector": ["0123456789abcdef0123456789abcdef"]}),
    )
    .await;
    assert_eq!(status, 501);
}

/// A function that appears under two different parents keeps both places in the tree. (A frame
/// literally named `other` is different: Pyroscope folds it into the synthetic `other` leaf,
/// children included, and so does flamedb; see `shown_children` in planner/src/encode.)
#[tokio::test]
async fn a_function_under_two_parents_keeps_both_places() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let stacks: &Stacks =
        &[(&["main", "work", "a"], 10), (&["main", "work", "b"], 20), (&["main", "idle"], 5), (&["xother", "work"], 7)];
    push(&client, &server.url, "two.parents", &build_pprof(("cpu", "nanoseconds"), stacks, now_nanos())).await;
    let (status, body) = connect_proto(
        &client,
        &server.url,
        "/querier.v1.QuerierService/SelectMergeStacktraces",
        None,
        &select("two.parents", None),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let fg = q::SelectMergeStacktracesResponse::decode(body).expect("response").flamegraph.expect("flamegraph");
    let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
    assert_eq!(flamegraph_tree(&fg.names, &levels), stacks_tree(stacks));
}
