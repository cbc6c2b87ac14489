//! `flamedb export`: pulls the samples of one selection (profile type, label selector, time range) from a flamedb
//! server over Arrow Flight `DoGet` and writes them to a Parquet file, so that data teams get raw samples with
//! resolved stacks in their own tools (DuckDB, pandas, Spark) without going through the flame-graph API.
//!
//! The ticket is the JSON of `flamedb_planner::sql::ExportRequest`, the one the server's Flight service reads.
//! Batches are decoded on the async side and written by a dedicated thread, so the network and zstd compression
//! overlap. The file is written to `<output>.tmp` and renamed once complete: a failed or interrupted export leaves
//! nothing half-written under the requested name.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use arrow::array::RecordBatch;
use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::datatypes::SchemaRef;
use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use clap::Parser;
use flamedb_planner::sql::ExportRequest;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;
use tonic::codec::CompressionEncoding;
use tonic::transport::Endpoint;

/// Largest Flight message accepted: record batches of long stacks can outgrow tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Row groups are also cut at this estimated size, so a wide export never buffers more than this in memory.
const MAX_ROW_GROUP_BYTES: usize = 128 << 20;
/// Batches in flight between the Flight stream and the Parquet writer thread.
const PIPELINE_DEPTH: usize = 4;
/// Key of the Parquet key-value metadata entry that records what was exported.
const METADATA_KEY: &str = "flamedb.export";

#[derive(Debug, Parser)]
#[command(
    name = "flamedb export",
    about = "Export the samples of a profile selection from a flamedb server to a Parquet file",
    long_about = "Export the samples of a profile selection from a flamedb server to a Parquet file.\n\n\
        Reads over Arrow Flight (DoGet on the server's port) one row per (profile, stack trace): time, \
        profile_type, service_name, labels, stack (root first), value, span_id.\n\
        Flags may be written with one dash, Go style (-profile-type=ID), or two.\n\n\
        Example:\n  flamedb export -addr=http://127.0.0.1:4040 \
        -profile-type=process_cpu:cpu:nanoseconds:cpu:nanoseconds \\\n    \
        -selector='{service_name=\"api\"}' -from=now-1h -output=api.parquet"
)]
struct ExportArgs {
    /// Address of the flamedb server (Flight is served on its HTTP port).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:4040")]
    addr: String,

    /// Tenant (sent as x-scope-orgid), needed when the server runs with -auth.multitenancy-enabled;
    /// `a|b` reads both tenants.
    #[arg(long, value_name = "ORG_ID")]
    tenant: Option<String>,

    /// Profile type id, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds.
    #[arg(long = "profile-type", value_name = "ID")]
    profile_type: String,

    /// Label selector, e.g. '{service_name="api"}'; '{}' selects every series of the profile type.
    #[arg(long, value_name = "SELECTOR", default_value = "{}")]
    selector: String,

    /// Start of the range: Unix milliseconds, RFC 3339 (2024-05-01T10:00:00Z), now or now-<duration> (now-1h).
    #[arg(long, value_name = "TIME", default_value = "now-1h")]
    from: String,

    /// End of the range, written like -from.
    #[arg(long, value_name = "TIME", default_value = "now")]
    to: String,

    /// Parquet file to write (written as <FILE>.tmp first, renamed when complete).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,

    /// Most rows in one Parquet row group (a group is also cut at 128 MiB).
    #[arg(long = "row-group-rows", value_name = "N", default_value_t = 262_144,
          value_parser = clap::value_parser!(u64).range(1..))]
    row_group_rows: u64,

    /// zstd compression level of the Parquet pages (1-22).
    #[arg(long = "zstd-level", value_name = "LEVEL", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=22))]
    zstd_level: i32,
}

/// What a finished export did, for the summary line.
struct Stats {
    rows: u64,
    received_bytes: u64,
    file_bytes: u64,
}

/// Runs `flamedb export` with `args` (the words after `export`). Usage errors and `-h` are answered by clap (exit
/// 2 / 0); a failed export prints one `flamedb export: ...` line and exits with status 1 (130 when interrupted).
pub fn main<I: IntoIterator<Item = String>>(args: I) -> Result<()> {
    let args = ExportArgs::parse_from(go_style(args));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(&args));
    // The writer thread may still hold an interrupted export's file; it is not worth waiting for.
    runtime.shutdown_background();
    match result {
        Ok(()) => Ok(()),
        Err(Failure::Error(e)) => {
            eprintln!("flamedb export: {e:#}");
            std::process::exit(1)
        }
        Err(Failure::Interrupted) => {
            eprintln!("flamedb export: interrupted, nothing written");
            std::process::exit(130)
        }
    }
}

/// Why an export did not complete.
enum Failure {
    Error(anyhow::Error),
    Interrupted,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

/// The words after `export` as clap reads them, under the name `flamedb export` (the server's
/// Go-style flag rule).
fn go_style<I: IntoIterator<Item = String>>(args: I) -> Vec<OsString> {
    std::iter::once("flamedb export".to_string())
        .chain(crate::config::go_style_args(args))
        .map(OsString::from)
        .collect()
}

async fn run(args: &ExportArgs) -> Result<(), Failure> {
    let now = now_ms();
    let start = parse_time(&args.from, now).context("-from")?;
    let end = parse_time(&args.to, now).context("-to")?;
    if start > end {
        return Err(anyhow!("-from ({start} ms) is after -to ({end} ms)").into());
    }
    let ticket = serde_json::to_string(&ExportRequest {
        profile_type: args.profile_type.clone(),
        label_selector: args.selector.clone(),
        start,
        end,
    })
    .context("encoding the ticket")?;
    let tmp = tmp_path(&args.output);
    let progress = Progress::new();
    let started = Instant::now();
    let result = tokio::select! {
        r = export(args, &ticket, &tmp, &progress) => r.map_err(Failure::Error),
        _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
    };
    progress.finish();
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, &args.output) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("renaming {} to {}: {e}", tmp.display(), args.output.display()).into());
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {} rows ({} received, {} written) in {secs:.2} s ({:.0} rows/s) to {}",
        stats.rows,
        megabytes(stats.received_bytes),
        megabytes(stats.file_bytes),
        stats.rows as f64 / secs.max(1e-9),
        args.output.display()
    );
    Ok(())
}

/// Streams the export into `tmp`; the caller renames or removes it.
async fn export(args: &ExportArgs, ticket: &str, tmp: &Path, progress: &Progress) -> Result<Stats> {
    let endpoint = Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("-addr {:?} is not a URL", args.addr))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| anyhow!("cannot connect to {}: {}", args.addr, chain(&e)))?;
    let mut client = FlightServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
    let mut request = tonic::Request::new(Ticket { ticket: ticket.to_owned().into() });
    if let Some(tenant) = &args.tenant {
        let value = tenant.parse().map_err(|_| anyhow!("-tenant {tenant:?} is not a valid header value"))?;
        request.metadata_mut().insert("x-scope-orgid", value);
    }
    let response = client.do_get(request).await.map_err(|s| server_error(&s))?;

    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let data = response.into_inner().map(move |item| match item {
        Ok(d) => {
            counter.fetch_add((d.data_header.len() + d.data_body.len()) as u64, Ordering::Relaxed);
            Ok(d)
        }
        Err(s) => Err(FlightError::Tonic(Box::new(s))),
    });
    let mut batches = FlightRecordBatchStream::new_from_flight_data(data);

    let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = writer_properties(args, ticket)?;
    let written = Arc::new(AtomicU64::new(0));
    let mut file = Some(file);
    let mut sink: Option<Sink> = None;
    let mut rows = 0u64;
    let mut failure = None;
    while let Some(item) = batches.next().await {
        let batch = match item {
            Ok(batch) => batch,
            Err(e) => {
                failure = Some(flight_error(e));
                break;
            }
        };
        rows += batch.num_rows() as u64;
        if sink.is_none() {
            sink = Some(Sink::spawn(file.take(), batch.schema(), props.clone(), Arc::clone(&written))?);
        }
        if let Some(s) = &sink
            && s.tx.send(batch).await.is_err()
        {
            break; // the writer stopped: its error comes out of `finish`
        }
        progress.update(rows, received.load(Ordering::Relaxed), written.load(Ordering::Relaxed));
    }
    if sink.is_none() && failure.is_none() {
        // Nothing matched: still a valid Parquet file with the export's columns.
        let schema =
            batches.schema().cloned().ok_or_else(|| anyhow!("the server ended the export without a schema"))?;
        sink = Some(Sink::spawn(file.take(), schema, props, Arc::clone(&written))?);
    }
    drop(batches);
    let file_bytes = match sink {
        Some(s) => s.finish(),
        None => Ok(0),
    };
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Stats { rows, received_bytes: received.load(Ordering::Relaxed), file_bytes: file_bytes? })
}

fn writer_properties(args: &ExportArgs, ticket: &str) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(args.zstd_level).map_err(|e| anyhow!("-zstd-level: {e}"))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(usize::try_from(args.row_group_rows).unwrap_or(usize::MAX)))
        .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
        .set_created_by(format!("flamedb export {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![KeyValue::new(METADATA_KEY.to_string(), ticket.to_string())]))
        .build())
}

/// The Parquet writer thread and the channel that feeds it.
struct Sink {
    tx: mpsc::Sender<RecordBatch>,
    thread: std::thread::JoinHandle<Result<u64>>,
}

impl Sink {
    fn spawn(file: Option<File>, schema: SchemaRef, props: WriterProperties, written: Arc<AtomicU64>) -> Result<Sink> {
        let file = file.ok_or_else(|| anyhow!("the output file was already handed to a writer"))?;
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("parquet-writer".into())
            .spawn(move || write_parquet(file, schema, props, rx, &written))
            .context("starting the Parquet writer thread")?;
        Ok(Sink { tx, thread })
    }

    /// Closes the channel, lets the writer write the footer and returns the file's size.
    fn finish(self) -> Result<u64> {
        drop(self.tx);
        self.thread.join().map_err(|_| anyhow!("the Parquet writer thread panicked"))?
    }
}

/// Writes every batch `rx` delivers, then the footer; syncs the file and returns its size.
fn write_parquet(
    file: File,
    schema: SchemaRef,
    props: WriterProperties,
    mut rx: mpsc::Receiver<RecordBatch>,
    written: &AtomicU64,
) -> Result<u64> {
    let mut writer =
        ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema, Some(props)).context("Parquet writer")?;
    while let Some(batch) = rx.blocking_recv() {
        writer.write(&batch).context("writing Parquet")?;
        written.store(writer.bytes_written() as u64, Ordering::Relaxed);
    }
    let buffered = writer.into_inner().context("writing the Parquet footer")?;
    let file = buffered.into_inner().map_err(|e| e.into_error()).context("writing Parquet")?;
    file.sync_all().context("syncing the Parquet file")?;
    Ok(file.metadata().context("reading the Parquet file's size")?.len())
}

/// A progress line on stderr (rows, MB received and written, rows/s), drawn only when stderr is a terminal.
struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    fn new() -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} [{elapsed_precise}] {msg}") {
                bar.set_style(style);
            }
            bar.set_message("waiting for the server");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar, started: Instant::now() }
    }

    fn update(&self, rows: u64, received: u64, written: u64) {
        if self.bar.is_hidden() {
            return;
        }
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "{} rows  {} received  {} written  {} rows/s",
            indicatif::HumanCount(rows),
            megabytes(received),
            megabytes(written),
            indicatif::HumanCount(rate as u64)
        ));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `bytes` as decimal megabytes with one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `<output>.tmp`, beside the output so that the final rename stays on one file system.
fn tmp_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Reads a time bound: Unix milliseconds, RFC 3339, `now`, `now-<duration>` or `now+<duration>`.
fn parse_time(s: &str, now_ms: i64) -> Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms);
    }
    if let Some(d) = s.strip_prefix("now-") {
        return Ok(now_ms.saturating_sub(duration_ms(d)?));
    }
    if let Some(d) = s.strip_prefix("now+") {
        return Ok(now_ms.saturating_add(duration_ms(d)?));
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let nanos = string_to_timestamp_nanos(s).map_err(|_| {
        anyhow!("cannot read {s:?}: expected Unix milliseconds, RFC 3339 (2024-05-01T10:00:00Z) or now-<duration>")
    })?;
    Ok(nanos.div_euclid(1_000_000))
}

fn duration_ms(s: &str) -> Result<i64> {
    let d = humantime::parse_duration(s.trim()).with_context(|| format!("cannot read the duration {s:?}"))?;
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A refused `DoGet` in the server's words.
fn server_error(status: &tonic::Status) -> anyhow::Error {
    let message = status.message();
    match status.code() {
        tonic::Code::Unauthenticated => {
            anyhow!("the server wants a tenant (-tenant=<org id>): {message}")
        }
        code if message.is_empty() => anyhow!("the server answered {code:?}: {}", chain(status)),
        code => anyhow!("the server answered {code:?}: {message}"),
    }
}

fn flight_error(e: FlightError) -> anyhow::Error {
    match e {
        FlightError::Tonic(status) => server_error(&status),
        other => anyhow!("reading the export stream: {other}"),
    }
}

/// An error with its sources, `a: b: c` (transport errors hide the useful part in the sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("now", now).ok(), Some(now));
        assert_eq!(parse_time("now-1h", now).ok(), Some(now - 3_600_000));
        assert_eq!(parse_time("now+90s", now).ok(), Some(now + 90_000));
        assert_eq!(parse_time("1699999999123", now).ok(), Some(1_699_999_999_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", now).ok(), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20.5+01:00", now).ok(), Some(1_700_000_000_500));
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("now-forever", now).is_err());
    }

    #[test]
    fn go_style_flags() {
        let args = ["-profile-type=x", "--output", "o.parquet", "-h", "-selector", "{}", "--", "-raw"];
        let out: Vec<String> =
            go_style(args.map(String::from)).into_iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            out,
            ["flamedb export", "--profile-type=x", "--output", "o.parquet", "-h", "--selector", "{}", "--", "-raw"]
        );
        let parsed = ExportArgs::try_parse_from(go_style(
            ["-profile-type=cpu", "-output=a.parquet", "-tenant", "t1", "-from=now-2h"].map(String::from),
        ));
        let parsed = parsed.map_err(|e| e.to_string());
        assert!(parsed.is_ok(), "{parsed:?}");
        if let Ok(a) = parsed {
            assert_eq!((a.profile_type.as_str(), a.tenant.as_deref(), a.from.as_str()), ("cpu", Some("t1"), "now-2h"));
            assert_eq!((a.selector.as_str(), a.to.as_str(), a.row_group_rows), ("{}", "now", 262_144));
        }
    }

    #[test]
    fn tmp_beside_output() {
        assert_eq!(tmp_path(Path::new("/x/out.parquet")), PathBuf::from("/x/out.parquet.tmp"));
    }
}
