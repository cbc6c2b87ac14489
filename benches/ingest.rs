//! (a) Ingest throughput: MB/s of uncompressed pprof through decode + normalize + head append,
//! beside a decode-only run of the same bytes (their ratio is the cost of our write path beyond
//! protobuf decoding). The same append with a write-ahead log, with and without fsync, prices
//! durability in the same MB/s.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::pprof;
use flamedb_ingest::validate::Limits;
use flamedb_ingest::wal::{Wal, WalOptions};

fn bench(c: &mut Criterion) {
    let inputs = common::pprofs();
    let bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    eprintln!("ingest bench: {} profiles, {:.2} MB uncompressed", inputs.len(), bytes as f64 / 1e6);
    let limits =
        Limits { reject_older_than: Default::default(), reject_newer_than: Default::default(), ..Limits::default() };
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            for (_, raw) in &inputs {
                std::hint::black_box(pprof::decode(raw, usize::MAX).ok());
            }
        })
    });
    let head = Arc::new(Head::new());
    let d = Distributor::new(head, Arc::new(limits.clone()));
    let mut round = 0u64;
    g.bench_function("decode_normalize_append", |b| {
        b.iter(|| {
            round += 1;
            append_round(&d, &inputs, round);
        })
    });
    // With a WAL in front of the head: each variant has a head of its own that grows as the
    // no-WAL bench's does; closed segments are deleted between iterations (untimed).
    // Each fsync'd append waits for the disk: fewer, flat samples keep the run short.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    let variants = [("decode_normalize_append_wal_nofsync", false), ("decode_normalize_append_wal_fsync", true)];
    for (bench, fsync) in variants {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal =
            Arc::new(Wal::open(dir.path().join("wal"), WalOptions { fsync, ..WalOptions::default() }).expect("wal"));
        let d = Distributor::new(Arc::new(Head::new()), Arc::new(limits.clone())).with_wal(wal.clone());
        let mut round = 0u64;
        if !fsync {
            let before = wal.size_bytes().expect("wal size");
            round += 1;
            append_round(&d, &inputs, round);
            let written = wal.size_bytes().expect("wal size") - before;
            eprintln!(
                "ingest bench: one round writes {:.2} MB of WAL, {:.3} B per uncompressed pprof byte",
                written as f64 / 1e6,
                written as f64 / bytes as f64
            );
        }
        g.bench_function(bench, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let t = Instant::now();
                    append_round(&d, &inputs, round);
                    took += t.elapsed();
                    if wal.size_bytes().expect("wal size") > 256 << 20 {
                        let segment = wal.rotate().expect("rotate");
                        wal.truncate_through(segment).expect("truncate");
                    }
                }
                took
            })
        });
    }
    g.finish();
}

/// One round of the fixture profiles through a distributor: a few services, as a real tenant
/// has, and the same symbols recurring, as they do.
fn append_round(d: &Distributor, inputs: &[(String, Vec<u8>)], round: u64) {
    let now = common::now_nanos();
    for (i, (name, raw)) in inputs.iter().enumerate() {
        let Ok(decoded) = pprof::decode(raw, usize::MAX) else { continue };
        let labels = vec![
            ("__name__".to_string(), name.clone()),
            ("service_name".to_string(), format!("svc-{}", i % 8)),
            ("pod".to_string(), format!("pod-{}", round % 16)),
        ];
        let _ = std::hint::black_box(d.ingest_profile("bench", &labels, decoded.profile, raw.len(), None, now));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
