//! (a) Ingest throughput: MB/s of uncompressed pprof through decode + normalize + head append,
//! beside a decode-only run of the same bytes (their ratio is the cost of our write path beyond
//! protobuf decoding).

mod common;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::pprof;
use flamedb_ingest::validate::Limits;

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
    let d = Distributor::new(head, Arc::new(limits));
    let mut round = 0u64;
    g.bench_function("decode_normalize_append", |b| {
        b.iter(|| {
            round += 1;
            let now = common::now_nanos();
            for (i, (name, raw)) in inputs.iter().enumerate() {
                let Ok(decoded) = pprof::decode(raw, usize::MAX) else { continue };
                // A few services, as a real tenant has; the same symbols recur, as they do.
                let labels = vec![
                    ("__name__".to_string(), name.clone()),
                    ("service_name".to_string(), format!("svc-{}", i % 8)),
                    ("pod".to_string(), format!("pod-{}", round % 16)),
                ];
                let _ = std::hint::black_box(d.ingest_profile("bench", &labels, decoded.profile, raw.len(), None, now));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
