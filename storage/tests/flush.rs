//! Flushing through a real S3 server (s3s-fs on loopback) that fails: while the bucket is gone,
//! the head generation stays readable and the WAL keeps it; once the bucket is back, the next
//! round uploads the block, publishes it and truncates the WAL.

use std::sync::Arc;
use std::time::Duration;

use flamedb_ingest::distributor::Distributor;
use flamedb_ingest::head::Head;
use flamedb_ingest::validate::Limits;
use flamedb_ingest::wal::{Wal, WalOptions};
use flamedb_storage::BlockSet;
use flamedb_storage::flush::Flusher;
use flamedb_storage::testing::S3Server;

fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bucket_keeps_the_data_until_a_later_flush_succeeds() {
    let s3 = S3Server::start("blocks").await;
    let local = tempfile::tempdir().unwrap();
    let store = flamedb_storage::open(&s3.storage_config(), local.path()).unwrap();
    let wal_dir = local.path().join("wal");
    let head = Arc::new(Head::new());
    let wal = Arc::new(Wal::open(&wal_dir, WalOptions::default()).unwrap());
    let distributor = Distributor::new(head.clone(), Arc::new(Limits::default())).with_wal(wal);
    let blocks = Arc::new(BlockSet::new());
    let mut flusher = Flusher::new(distributor.clone(), store, blocks.clone());
    flusher.attempts = 2;
    flusher.backoff = Duration::from_millis(10);

    let now = now_nanos();
    let p = flamedb_ingest::testing::pprof(("cpu", "nanoseconds"), &[(&["main", "work"], 40), (&["main"], 2)], now);
    let labels =
        vec![("__name__".to_string(), "process_cpu".to_string()), ("service_name".to_string(), "svc".to_string())];
    distributor.ingest_profile("t", &labels, p, 0, None, now).unwrap();

    // The server cannot store the tenant's objects (a file stands where its folder goes): both
    // attempts fail, nothing is lost.
    let tenant_dir = s3.bucket_dir().join("t");
    std::fs::write(&tenant_dir, b"not a folder").unwrap();
    let r = flusher.flush().await.unwrap();
    assert_eq!((r.blocks, r.pending), (0, 1), "{r:?}");
    assert!(r.failed_attempts >= 2, "{r:?}");
    assert_eq!(head.flushing().len(), 1, "the generation stays readable");
    assert!(blocks.blocks("t").is_empty());
    let mut replayed = 0;
    Wal::replay(&wal_dir, |_, tenant, _| {
        assert_eq!(tenant, "t");
        replayed += 1;
    })
    .unwrap();
    assert_eq!(replayed, 1, "the WAL still holds the profile");

    // The server recovers: the next round publishes the block and lets go of the WAL.
    std::fs::remove_file(&tenant_dir).unwrap();
    let r = flusher.flush().await.unwrap();
    assert_eq!((r.blocks, r.pending), (1, 0), "{r:?}");
    assert!(head.flushing().is_empty());
    let published = blocks.blocks("t");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].meta.stats.num_profiles, 1);
    assert_eq!(published[0].meta.stats.num_samples, 2);
    assert!(s3.bucket_dir().join("t").join(&published[0].meta.ulid).join("meta.json").exists());
    let mut replayed = 0;
    Wal::replay(&wal_dir, |_, _, _| replayed += 1).unwrap();
    assert_eq!(replayed, 0, "flushed records are gone from the WAL");
}
