//! `POST /ingest?format=jfr` against the real binary, as the pyroscope-java agent sends it: a
//! multipart form with the (gzip'd) recording in `jfr` and the context labels in `labels`. The
//! expected cpu total is counted here from the recording's event records with a small reader
//! written for this test (independent of the server's JFR reader).

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::json;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/pyroscope");
const PERIOD: i64 = 10_000_000; // sampleRate=100

fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = format!("{FIXTURES}/og__convert__jfr__testdata__{name}");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("notice: {path} absent, skipped");
            None
        }
    }
}

/// Just enough JFR reading to count the events of one class: chunk headers, the metadata
/// string table and class elements (for the class id), and the event record framing.
mod count {
    struct Cur<'a> {
        b: &'a [u8],
        pos: usize,
        varint: bool,
    }

    impl Cur<'_> {
        fn byte(&mut self) -> u8 {
            let v = self.b[self.pos];
            self.pos += 1;
            v
        }

        fn fixed(&mut self, n: usize) -> i64 {
            let mut v = 0i64;
            for _ in 0..n {
                v = (v << 8) | i64::from(self.byte());
            }
            v
        }

        fn int(&mut self, width: usize) -> i64 {
            if !self.varint {
                let v = self.fixed(width);
                return if width == 4 { i64::from(v as u32 as i32) } else { v };
            }
            let mut v = 0i64;
            for i in 0..9 {
                let b = self.byte();
                if i == 8 {
                    return v | (i64::from(b) << 56);
                }
                v |= i64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    break;
                }
            }
            v
        }

        fn string(&mut self) -> String {
            match self.byte() {
                0 | 1 => String::new(),
                3 | 5 => {
                    let n = self.int(4) as usize;
                    let s = String::from_utf8_lossy(&self.b[self.pos..self.pos + n]).into_owned();
                    self.pos += n;
                    s
                }
                e => panic!("string encoding {e} in the metadata"),
            }
        }
    }

    /// Visits the element tree; records `id` of each `class` element named `wanted`.
    fn element(c: &mut Cur<'_>, strings: &[String], name: &str, wanted: &str, found: &mut Option<i64>) {
        let attrs = c.int(4);
        let mut id = None;
        let mut class_name = None;
        for _ in 0..attrs {
            let k = &strings[c.int(4) as usize];
            let v = &strings[c.int(4) as usize];
            match k.as_str() {
                "id" => id = v.parse().ok(),
                "name" => class_name = Some(v.clone()),
                _ => {}
            }
        }
        if name == "class" && class_name.as_deref() == Some(wanted) {
            *found = id;
        }
        for _ in 0..c.int(4) {
            let child = strings[c.int(4) as usize].clone();
            element(c, strings, &child, wanted, found);
        }
    }

    /// Number of events of class `wanted` in all chunks.
    pub fn events(data: &[u8], wanted: &str) -> usize {
        let mut total = 0;
        let mut start = 0;
        while start < data.len() {
            let chunk = &data[start..];
            assert_eq!(&chunk[..4], b"FLR\0");
            let mut h = Cur { b: chunk, pos: 8, varint: false };
            let size = h.fixed(8) as usize;
            let _pool = h.fixed(8);
            let meta = h.fixed(8) as usize;
            h.pos = 64;
            let varint = h.fixed(4) & 1 == 1;
            let chunk = &chunk[..size];

            let mut c = Cur { b: chunk, pos: meta, varint };
            c.int(4);
            assert_eq!(c.int(8), 0, "metadata event");
            for _ in 0..3 {
                c.int(8);
            }
            let strings: Vec<String> = (0..c.int(4)).map(|_| c.string()).collect();
            let root = strings[c.int(4) as usize].clone();
            let mut id = None;
            element(&mut c, &strings, &root, wanted, &mut id);
            let id = id.expect("class declared");

            let mut pos = 68;
            while pos < size {
                let mut e = Cur { b: chunk, pos, varint };
                let len = e.int(4) as usize;
                if e.int(8) == id {
                    total += 1;
                }
                pos += len;
            }
            start += size;
        }
        total
    }
}

async fn ingest(client: &reqwest::Client, server: &Server, name: &str, ct: &str, body: Vec<u8>) -> (u16, String) {
    let until = now_nanos() / 1_000_000_000;
    let from = until - 10;
    let resp = client
        .post(format!("{}/ingest", server.url))
        .query(&[
            ("format", "jfr"),
            ("name", name),
            ("spyName", "javaspy"),
            ("sampleRate", "100"),
            ("units", "samples"),
            ("aggregationType", "sum"),
            ("from", &from.to_string()),
            ("until", &until.to_string()),
        ])
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .expect("send");
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

async fn profile_types(client: &reqwest::Client, server: &Server) -> BTreeSet<String> {
    let end = now_nanos() / 1_000_000 + 60_000;
    let (status, types) =
        connect_json(client, &server.url, "ProfileTypes", None, json!({"start": end - 3_600_000, "end": end})).await;
    assert_eq!(status, 200, "{types}");
    types["profileTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["ID"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn flamegraph_total(client: &reqwest::Client, server: &Server, type_id: &str, selector: &str) -> (Tree, i64) {
    let end = now_nanos() / 1_000_000 + 60_000;
    select_flamegraph(client, &server.url, None, type_id, selector, (end - 3_600_000, end), Some(65536)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_agent_upload_is_queryable() {
    let Some(gz) = fixture("cortex-dev-01__kafka-0__cpu__0.jfr.gz") else { return };
    let samples = count::events(&gunzip(&gz), "jdk.ExecutionSample");
    assert!(samples > 100, "{samples}");
    let want = samples as i64 * PERIOD;

    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let (ct, body) = multipart_form(&[("jfr", &gz)]);
    let (status, text) = ingest(&client, &server, "kafka{env=e2e}", &ct, body).await;
    assert_eq!(status, 200, "{text}");

    assert!(profile_types(&client, &server).await.contains(CPU));
    let (tree, total) = flamegraph_total(&client, &server, CPU, r#"{service_name="kafka",env="e2e"}"#).await;
    assert_eq!(total, want);
    // Java frames are `class.method` with slashes in the package path.
    assert!(tree.keys().flatten().any(|f| f.starts_with("java/lang/Thread.")), "{:?}", tree.keys().next());
    let (_, by_event) = flamegraph_total(&client, &server, CPU, r#"{service_name="kafka",jfr_event="cpu"}"#).await;
    assert_eq!(by_event, want);
    let (_, by_spy) = flamegraph_total(&client, &server, CPU, r#"{pyroscope_spy="javaspy"}"#).await;
    assert_eq!(by_spy, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_labels_become_queryable_series() {
    let (Some(gz), Some(labels)) = (fixture("dump1.jfr.gz"), fixture("dump1.labels.pb.gz")) else { return };
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    // The recording un-gzip'd and the labels gzip'd: both shapes are accepted.
    let raw = gunzip(&gz);
    let (ct, body) = multipart_form(&[("jfr", &raw), ("labels", &labels)]);
    let (status, text) = ingest(&client, &server, "dumpapp", &ct, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(profile_types(&client, &server).await.contains(CPU));
    let (_, all) = flamegraph_total(&client, &server, CPU, r#"{service_name="dumpapp"}"#).await;
    let (_, one) =
        flamegraph_total(&client, &server, CPU, r#"{service_name="dumpapp",thread_name="pool-2-thread-7"}"#).await;
    assert!(one > 0 && one < all, "{one} of {all}");
    assert_eq!(one % PERIOD, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_422() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let (status, text) = ingest(&client, &server, "app", "application/octet-stream", b"not a recording".to_vec()).await;
    assert_eq!(status, 422, "{text}");
    let err: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(err["message"].as_str().unwrap().contains("JFR"), "{text}");

    let (ct, body) = multipart_form(&[("labels", b"\x00\x00")]);
    let (status, text) = ingest(&client, &server, "app", &ct, body).await;
    assert_eq!((status, text.contains("jfr field is required")), (422, true), "{text}");

    if let Some(gz) = fixture("cortex-dev-01__kafka-0__cpu__0.jfr.gz") {
        let raw = gunzip(&gz);
        let (ct, body) = multipart_form(&[("jfr", &raw[..raw.len() / 2])]);
        let (status, text) = ingest(&client, &server, "app", &ct, body).await;
        assert_eq!(status, 422, "{text}");
    }
    // The server is still up and serving.
    let (status, _) = ingest(&client, &server, "app", "application/octet-stream", Vec::new()).await;
    assert_eq!(status, 200);
}
