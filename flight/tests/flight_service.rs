//! Flight SQL and the export tickets end to end in one process: profiles pushed for two tenants
//! into a head, the service on a loopback tonic server, and `FlightSqlServiceClient` (the Rust
//! twin of what ADBC/JDBC drive) as the client. Every expectation is computed here from the stacks
//! that were pushed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, Schema};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    Any, CommandGetDbSchemas, CommandGetTables, CommandStatementQuery, CommandStatementUpdate, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, Ticket};
use flamedb_flight::{FlamedbFlight, TenantResolver};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::validate::Limits;
use flamedb_planner::Engine;
use flamedb_planner::sql::{SqlEngine, SqlLimits};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const NOW: i64 = 1_800_000_000_000_000_000;
const TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

type Stacks = &'static [(&'static [&'static str], i64)];
/// Tenant a, service api.
const A_API: Stacks = &[(&["main", "work", "fib"], 30), (&["main", "gc"], 7)];
/// Tenant a, service web.
const A_WEB: Stacks = &[(&["main", "io"], 2), (&["main", "work", "fib"], 4)];
/// Tenant b, service secret: frames tenant a never has.
const B_SECRET: Stacks = &[(&["start", "serve"], 100), (&["start", "b_only_fn"], 55)];

fn labels(service: &str) -> Vec<(String, String)> {
    vec![("__name__".into(), "process_cpu".into()), ("service_name".into(), service.into())]
}

/// {root-first stack joined with ';': summed value} of stack sets, computed independently.
fn by_stack(sets: &[Stacks]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for set in sets {
        for (frames, v) in set.iter() {
            *out.entry(frames.join(";")).or_insert(0) += v;
        }
    }
    out
}

fn total(sets: &[Stacks]) -> i64 {
    sets.iter().flat_map(|s| s.iter()).map(|(_, v)| v).sum()
}

/// The strict multitenancy rule: a tenant header is required; `a|b` reads both.
fn resolver() -> TenantResolver {
    Arc::new(|h: Option<&str>| match h.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => {
            let mut ids: Vec<String> = h.split('|').map(|s| s.trim().to_string()).collect();
            ids.sort();
            ids.dedup();
            Ok(ids)
        }
        None => Err(Status::unauthenticated("no org id")),
    })
}

async fn start() -> SocketAddr {
    let head = Arc::new(Head::new());
    let d = Distributor::new(head.clone(), Arc::new(Limits::default()));
    let push = |tenant: &str, service: &str, stacks: Stacks, at: i64| {
        d.ingest_profile(tenant, &labels(service), flamedb_ingest::testing::cpu_pprof(stacks, at), 0, None, NOW)
            .unwrap();
    };
    push("a", "api", A_API, NOW - 60_000_000_000);
    push("a", "web", A_WEB, NOW - 30_000_000_000);
    push("b", "secret", B_SECRET, NOW - 20_000_000_000);
    let sql = SqlEngine::new(Engine::new(head, 2), SqlLimits::default());
    let svc = FlamedbFlight::new(sql, resolver()).into_server(64 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// A Flight SQL client reading as `tenant` (`None`: no header).
async fn client(addr: SocketAddr, tenant: Option<&str>) -> FlightSqlServiceClient<Channel> {
    let mut c = FlightSqlServiceClient::new(channel(addr).await);
    if let Some(t) = tenant {
        c.set_header("x-scope-orgid", t);
    }
    c
}

/// The raw Flight client, for calls whose exact status code a test checks.
async fn raw(addr: SocketAddr) -> FlightServiceClient<Channel> {
    FlightServiceClient::new(channel(addr).await)
}

fn as_tenant<T>(msg: T, tenant: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
    r
}

/// Every batch of every endpoint of `info`.
async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    assert!(!info.endpoint.is_empty(), "no endpoint");
    let mut out = Vec::new();
    for ep in info.endpoint {
        assert!(ep.location.is_empty(), "endpoints must reuse the connection");
        let ticket = ep.ticket.expect("ticket");
        out.extend(c.do_get(ticket).await.unwrap().try_collect::<Vec<_>>().await.unwrap());
    }
    out
}

async fn query(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = c.execute(sql.to_string(), None).await.unwrap();
    fetch(c, info).await
}

fn strings(batches: &[RecordBatch], col: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}"));
        let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8).unwrap();
        let s = a.as_string::<i32>();
        out.extend((0..s.len()).map(|i| s.value(i).to_string()));
    }
    out
}

fn ints(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}"));
        let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Int64).unwrap();
        out.extend(a.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or(0)));
    }
    out
}

/// {stack joined with ';': summed value} of batches with a List<Utf8> `stack` and a `value`.
fn stacks_of(batches: &[RecordBatch]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for b in batches {
        let stacks = b.column_by_name("stack").expect("stack column");
        let stacks = stacks.as_list::<i32>();
        let values =
            arrow::compute::cast(b.column_by_name("value").expect("value"), &arrow::datatypes::DataType::Int64)
                .unwrap();
        let values = values.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let frames = stacks.value(i);
            let frames = arrow::compute::cast(&frames, &arrow::datatypes::DataType::Utf8).unwrap();
            let frames = frames.as_string::<i32>();
            let key = (0..frames.len()).map(|j| frames.value(j)).collect::<Vec<_>>().join(";");
            *out.entry(key).or_insert(0) += values.value(i);
        }
    }
    out
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn statement_returns_the_pushed_rows() {
    let addr = start().await;
    let mut c = client(addr, Some("a")).await;
    let got = query(&mut c, "SELECT array_to_string(stack, ';') AS s, value FROM samples").await;
    let mut seen = BTreeMap::new();
    for (s, v) in strings(&got, "s").into_iter().zip(ints(&got, "value")) {
        *seen.entry(s).or_insert(0) += v;
    }
    assert_eq!(seen, by_stack(&[A_API, A_WEB]));

    let got = query(&mut c, "SELECT service_name, sum(total) AS t FROM profiles GROUP BY 1 ORDER BY 1").await;
    assert_eq!(strings(&got, "service_name"), vec!["api", "web"]);
    assert_eq!(ints(&got, "t"), vec![total(&[A_API]), total(&[A_WEB])]);

    // The FlightInfo schema is the one the stream carries.
    let info = c.execute("SELECT service_name, value FROM samples".into(), None).await.unwrap();
    let announced = info.clone().try_decode_schema().unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(rows(&got), 4);
    assert_eq!(got[0].schema().fields().len(), announced.fields().len());
    assert_eq!(announced.field(0).name(), "service_name");
}

#[tokio::test]
async fn empty_results_still_carry_the_schema() {
    let addr = start().await;
    let mut c = client(addr, Some("a")).await;
    let info = c.execute("SELECT service_name FROM profiles WHERE service_name = 'nope'".into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await.unwrap();
    let mut n = 0;
    while let Some(b) = stream.try_next().await.unwrap() {
        n += b.num_rows();
    }
    assert_eq!(n, 0);
    let schema = stream.schema().expect("schema sent before the (absent) batches");
    assert_eq!(schema.field(0).name(), "service_name");
}

#[tokio::test]
async fn catalog_listings() {
    let addr = start().await;
    let mut c = client(addr, Some("a")).await;

    let got = fetch(&mut c.clone(), c.get_catalogs().await.unwrap()).await;
    assert_eq!(strings(&got, "catalog_name"), vec!["flamedb"]);

    let info = c.get_db_schemas(CommandGetDbSchemas::default()).await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(strings(&got, "catalog_name"), vec!["flamedb"]);
    assert_eq!(strings(&got, "db_schema_name"), vec!["public"]);
    let info = c
        .get_db_schemas(CommandGetDbSchemas { catalog: Some("other".into()), db_schema_filter_pattern: None })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut c, info).await), 0, "catalog filter honoured");

    let info = c.get_tables(CommandGetTables::default()).await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(strings(&got, "table_name"), vec!["profiles", "samples"]);
    assert_eq!(strings(&got, "db_schema_name"), vec!["public", "public"]);
    assert!(got[0].column_by_name("table_schema").is_none());

    let info = c
        .get_tables(CommandGetTables {
            include_schema: true,
            table_name_filter_pattern: Some("s%".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(strings(&got, "table_name"), vec!["samples"], "pattern honoured");
    let bytes = got[0].column_by_name("table_schema").expect("table_schema").as_binary::<i32>().value(0).to_vec();
    let schema = Schema::try_from(IpcMessage(bytes.into())).unwrap();
    for col in ["time", "profile_type", "service_name", "labels", "stack", "value", "span_id"] {
        assert!(schema.field_with_name(col).is_ok(), "samples schema lacks {col}: {schema:?}");
    }

    let info = c
        .get_tables(CommandGetTables { db_schema_filter_pattern: Some("information%".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut c, info).await), 0);

    let got = fetch(&mut c.clone(), c.get_table_types().await.unwrap()).await;
    assert_eq!(strings(&got, "table_type"), vec!["VIEW"]);
}

#[tokio::test]
async fn sql_info_answers_what_drivers_ask() {
    let addr = start().await;
    let mut c = client(addr, Some("a")).await;
    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
            SqlInfo::FlightSqlServerVersion,
        ])
        .await
        .unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(rows(&got), 3);
    let text = arrow::util::pretty::pretty_format_batches(&got).unwrap().to_string();
    assert!(text.contains("flamedb"), "{text}");
    assert!(text.contains("true"), "read-only: {text}");
}

#[tokio::test]
async fn prepared_statement_round_trip() {
    let addr = start().await;
    let mut c = client(addr, Some("a")).await;
    let mut stmt = c.prepare("SELECT count(*) AS n, sum(value) AS v FROM samples".into(), None).await.unwrap();
    assert_eq!(stmt.dataset_schema().unwrap().field(0).name(), "n");
    let info = stmt.execute().await.unwrap();
    let got = fetch(&mut c, info).await;
    assert_eq!(ints(&got, "n"), vec![4]);
    assert_eq!(ints(&got, "v"), vec![total(&[A_API, A_WEB])]);
    // Executable again, then closed.
    let info = stmt.execute().await.unwrap();
    assert_eq!(ints(&fetch(&mut c, info).await, "n"), vec![4]);
    stmt.close().await.unwrap();
}

#[tokio::test]
async fn writes_are_refused() {
    let addr = start().await;
    let mut r = raw(addr).await;
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO samples SELECT * FROM samples",
        "DROP VIEW samples",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let cmd = CommandStatementQuery { query: sql.into(), transaction_id: None };
        let req = as_tenant(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()), "a");
        let err = r.get_flight_info(req).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{sql}: {err:?}");
    }
    // CommandStatementUpdate through DoPut.
    let mut c = client(addr, Some("a")).await;
    let err = c.execute_update("DELETE FROM samples".into(), None).await.unwrap_err();
    assert!(format!("{err:?}").contains("PermissionDenied"), "{err:?}");
    assert!(format!("{err:?}").contains("read-only"), "{err:?}");
    // Preparing a write fails too.
    let err = c.prepare("CREATE VIEW v AS SELECT 1".into(), None).await.unwrap_err();
    assert!(format!("{err:?}").contains("PermissionDenied"), "{err:?}");
    // An update command sent to GetFlightInfo is refused the same way.
    let cmd = CommandStatementUpdate { query: "DELETE FROM samples".into(), transaction_id: None };
    let err =
        r.get_flight_info(as_tenant(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()), "a")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test]
async fn a_tenant_sees_only_its_rows() {
    let addr = start().await;
    let mut a = client(addr, Some("a")).await;
    let mut b = client(addr, Some("b")).await;

    let got = query(&mut a, "SELECT DISTINCT service_name FROM samples ORDER BY 1").await;
    assert_eq!(strings(&got, "service_name"), vec!["api", "web"]);
    let got = query(&mut b, "SELECT DISTINCT service_name FROM samples ORDER BY 1").await;
    assert_eq!(strings(&got, "service_name"), vec!["secret"], "b's data is there");

    for sql in [
        "SELECT count(*) AS n FROM samples WHERE service_name = 'secret'",
        "SELECT count(*) AS n FROM profiles WHERE service_name = 'secret'",
        "SELECT count(*) AS n FROM samples WHERE contains(stack, 'b_only_fn')",
        "SELECT count(*) AS n FROM samples WHERE array_to_string(stack, ';') LIKE '%serve%'",
        "SELECT count(*) AS n FROM profiles WHERE label(labels, 'service_name') = 'secret'",
    ] {
        assert_eq!(ints(&query(&mut a, sql).await, "n"), vec![0], "{sql}");
    }
    // The catalog shows only the two views: no raw table that could name other tenants.
    let got =
        query(&mut a, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
            .await;
    assert_eq!(strings(&got, "table_name"), vec!["profiles", "samples"]);
    let mut r = raw(addr).await;
    let cmd = CommandStatementQuery { query: "SELECT * FROM samples_raw".into(), transaction_id: None };
    let err =
        r.get_flight_info(as_tenant(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()), "a")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A statement ticket b obtained, presented by a, reads a's rows.
    let sum_sql = "SELECT sum(value) AS v FROM samples";
    let info = b.execute(sum_sql.into(), None).await.unwrap();
    assert_eq!(ints(&fetch(&mut b, info.clone()).await, "v"), vec![total(&[B_SECRET])]);
    assert_eq!(ints(&fetch(&mut a, info.clone()).await, "v"), vec![total(&[A_API, A_WEB])]);
    // Same with a hand-made ticket and b's prepared statement.
    let ticket = TicketStatementQuery { statement_handle: sum_sql.as_bytes().to_vec().into() };
    let got: Vec<RecordBatch> =
        a.do_get(Ticket::new(ticket.as_any().encode_to_vec())).await.unwrap().try_collect().await.unwrap();
    assert_eq!(ints(&got, "v"), vec![total(&[A_API, A_WEB])]);
    let mut stmt = b.prepare(sum_sql.into(), None).await.unwrap();
    let info = stmt.execute().await.unwrap();
    assert_eq!(ints(&fetch(&mut a, info).await, "v"), vec![total(&[A_API, A_WEB])]);

    // Without a tenant, nothing.
    let mut none = client(addr, None).await;
    let err = none.execute(sum_sql.into(), None).await.unwrap_err();
    assert!(format!("{err:?}").contains("Unauthenticated"), "{err:?}");
    let mut r = raw(addr).await;
    let err = r.do_get(Request::new(info_ticket(&mut b, sum_sql).await)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // An export selecting b's service as a: empty.
    let json = format!(
        r#"{{"profile_type":"{TYPE}","label_selector":"{{service_name=\"secret\"}}","start":{},"end":{}}}"#,
        range().0,
        range().1
    );
    let got: Vec<RecordBatch> = a.do_get(Ticket::new(json)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(rows(&got), 0);
}

async fn info_ticket(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Ticket {
    let info = c.execute(sql.into(), None).await.unwrap();
    info.endpoint[0].ticket.clone().unwrap()
}

/// An export range around the pushed profiles, in ms.
fn range() -> (i64, i64) {
    ((NOW - 3_600_000_000_000) / 1_000_000, NOW / 1_000_000)
}

#[tokio::test]
async fn export_ticket_streams_the_samples() {
    let addr = start().await;
    let mut a = client(addr, Some("a")).await;
    let (start, end) = range();
    let json = format!(r#"{{"profile_type":"{TYPE}","label_selector":"{{}}","start":{start},"end":{end}}}"#);
    let got: Vec<RecordBatch> = a.do_get(Ticket::new(json.clone())).await.unwrap().try_collect().await.unwrap();
    assert_eq!(stacks_of(&got), by_stack(&[A_API, A_WEB]));
    let names: Vec<String> = got[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["time", "profile_type", "service_name", "labels", "stack", "value", "span_id"]);

    // A selector narrows it.
    let json_api = format!(
        r#"{{"profile_type":"{TYPE}","label_selector":"{{service_name=\"api\"}}","start":{start},"end":{end}}}"#
    );
    let got: Vec<RecordBatch> = a.do_get(Ticket::new(json_api)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(stacks_of(&got), by_stack(&[A_API]));

    // pyarrow.flight style: GetFlightInfo on the JSON command, then DoGet its endpoint.
    let mut r = raw(addr).await;
    let info = r.get_flight_info(as_tenant(FlightDescriptor::new_cmd(json.clone()), "a")).await.unwrap().into_inner();
    assert_eq!(info.endpoint.len(), 1);
    let schema = info.clone().try_decode_schema().unwrap();
    assert!(schema.field_with_name("stack").is_ok());
    assert_eq!(stacks_of(&fetch(&mut a, info).await), by_stack(&[A_API, A_WEB]));
    let schema = r.get_schema(as_tenant(FlightDescriptor::new_cmd(json), "a")).await.unwrap().into_inner();
    assert!(!schema.schema.is_empty());

    // Tenant b's export has b's stacks only.
    let mut b = client(addr, Some("b")).await;
    let json = format!(r#"{{"profile_type":"{TYPE}","label_selector":"{{}}","start":{start},"end":{end}}}"#);
    let got: Vec<RecordBatch> = b.do_get(Ticket::new(json)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(stacks_of(&got), by_stack(&[B_SECRET]));
}

#[tokio::test]
async fn bad_tickets_are_invalid_arguments() {
    let addr = start().await;
    let mut r = raw(addr).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xff, 0x01, 0x02]),
        ("bad json", br#"{"nope": 1}"#.to_vec()),
        ("truncated json", br#"{"profile_type": "#.to_vec()),
        ("unknown any", Any { type_url: "type.googleapis.com/x.Y".into(), value: vec![1].into() }.encode_to_vec()),
        (
            "bad selector",
            format!(r#"{{"profile_type":"{TYPE}","label_selector":"{{service_name=","start":0,"end":1}}"#).into_bytes(),
        ),
        ("bad profile type", br#"{"profile_type":"nope","label_selector":"{}","start":0,"end":1}"#.to_vec()),
    ];
    for (what, bytes) in cases {
        let err = r.do_get(as_tenant(Ticket::new(bytes), "a")).await.err().unwrap_or_else(|| panic!("{what} accepted"));
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    }
    let err = r.do_get(as_tenant(Ticket::new(br#"{"nope": 1}"#.to_vec()), "a")).await.err().unwrap();
    assert!(err.message().contains("profile_type"), "the message shows the expected shape: {}", err.message());
    // A bad statement is InvalidArgument too.
    let cmd = CommandStatementQuery { query: "SELEC nonsense".into(), transaction_id: None };
    let err =
        r.get_flight_info(as_tenant(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()), "a")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn unsupported_calls_say_so() {
    let addr = start().await;
    let mut r = raw(addr).await;
    let err = r.list_flights(as_tenant(arrow_flight::Criteria::default(), "a")).await.err().unwrap();
    assert_eq!(err.code(), Code::Unimplemented);
    let mut c = client(addr, Some("a")).await;
    let err = c.begin_transaction().await.unwrap_err();
    assert!(format!("{err:?}").contains("Unimplemented"), "{err:?}");
}
