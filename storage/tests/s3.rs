//! The S3 backend end to end, against the in-process s3s-fs server of `flamedb_storage::testing`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flamedb_storage::block::{BlockMeta, BlockStats, Compaction, FileMeta};
use flamedb_storage::testing::S3Server;
use flamedb_storage::{BucketIndex, StorageConfig, apply_retention, open};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

#[tokio::test]
async fn put_get_range_list_delete() {
    let server = S3Server::start("profiles").await;
    let store = open(&server.storage_config(), std::path::Path::new("/unused")).expect("open s3");

    let key = Path::from("tenant/01J00000000000000000000001/meta.json");
    store.put(&key, PutPayload::from_static(b"hello, bucket")).await.expect("put");
    store.put(&Path::from("tenant/other"), PutPayload::from_static(b"x")).await.expect("put");
    assert!(server.bucket_dir().join("tenant/01J00000000000000000000001/meta.json").is_file());

    let got = store.get(&key).await.expect("get").bytes().await.expect("body");
    assert_eq!(&got[..], b"hello, bucket");
    assert_eq!(&store.get_range(&key, 7..13).await.expect("range")[..], b"bucket");
    assert_eq!(store.head(&key).await.expect("head").size, 13);

    let mut listed: Vec<String> =
        store.list(Some(&Path::from("tenant"))).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    listed.sort();
    assert_eq!(listed, vec!["tenant/01J00000000000000000000001/meta.json", "tenant/other"]);
    let dirs = store.list_with_delimiter(Some(&Path::from("tenant"))).await.expect("list_with_delimiter");
    assert_eq!(dirs.common_prefixes, vec![Path::from("tenant/01J00000000000000000000001")]);

    store.delete(&key).await.expect("delete");
    assert!(matches!(store.get(&key).await, Err(object_store::Error::NotFound { .. })));
}

#[tokio::test]
async fn multipart_upload_of_12_mib() {
    let server = S3Server::start("big").await;
    let store = open(&server.storage_config(), std::path::Path::new("/unused")).expect("open s3");
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();

    let key = Path::from("t/01J00000000000000000000001/profiles.parquet");
    let mut upload = WriteMultipart::new(store.put_multipart(&key).await.expect("start multipart"));
    for chunk in data.chunks(1024 * 1024 + 7) {
        upload.write(chunk);
    }
    upload.finish().await.expect("complete multipart");

    assert_eq!(store.head(&key).await.expect("head").size, data.len() as u64);
    let got = store.get(&key).await.expect("get").bytes().await.expect("body");
    assert!(got[..] == data[..], "multipart object differs from what was written");
    let tail = store.get_range(&key, 12 * 1024 * 1024 - 3..12 * 1024 * 1024).await.expect("range");
    assert_eq!(&tail[..], &data[data.len() - 3..]);
}

#[tokio::test]
async fn yaml_block_opens_the_same_bucket_with_a_prefix() {
    #[derive(serde::Deserialize)]
    struct Root {
        storage: StorageConfig,
    }
    let server = S3Server::start("cfg").await;
    let root: Root = serde_yaml_ng::from_str(&server.yaml()).expect("yaml parses");
    assert_eq!(root.storage, server.storage_config());

    let mut cfg = root.storage;
    cfg.prefix = "install-a".into();
    let store = open(&cfg, std::path::Path::new("/unused")).expect("open s3");
    store.put(&Path::from("t/x"), PutPayload::from_static(b"1")).await.expect("put");
    assert!(server.bucket_dir().join("install-a/t/x").is_file());
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let server = S3Server::start("auth").await;
    let mut cfg = server.storage_config();
    cfg.s3.secret_access_key = "wrong".into();
    let store = open(&cfg, std::path::Path::new("/unused")).expect("open s3");
    assert!(store.put(&Path::from("t/x"), PutPayload::from_static(b"1")).await.is_err());
}

fn meta(id: &str, min: i64, max: i64) -> BlockMeta {
    BlockMeta {
        ulid: id.into(),
        min_time: min,
        max_time: max,
        stats: BlockStats::default(),
        files: vec![FileMeta { rel_path: "profiles.parquet".into(), size_bytes: 4 }],
        compaction: Compaction { level: 1, sources: vec![id.into()], parents: vec![] },
        version: 1,
        labels: Default::default(),
    }
}

#[tokio::test]
async fn bucket_index_and_retention_over_s3() {
    const OLD: &str = "01J00000000000000000000001";
    const NEW: &str = "01J00000000000000000000002";
    let server = S3Server::start("blocks").await;
    let store = open(&server.storage_config(), std::path::Path::new("/unused")).expect("open s3");
    let day_ms = 86_400_000;
    for m in [meta(OLD, 0, day_ms), meta(NEW, 9 * day_ms, 10 * day_ms)] {
        store
            .put(&Path::from(format!("t/{}/profiles.parquet", m.ulid)), PutPayload::from_static(b"data"))
            .await
            .expect("put");
        let json = serde_json::to_vec(&m).expect("json");
        store.put(&Path::from(format!("t/{}/meta.json", m.ulid)), json.into()).await.expect("put");
    }

    assert_eq!(flamedb_storage::bucket_index::tenants(&*store).await.expect("tenants"), vec!["t"]);
    let rebuilt = BucketIndex::rebuild(&*store, "t").await.expect("rebuild");
    assert_eq!(rebuilt.index.visible_blocks().count(), 2);

    let now = UNIX_EPOCH + Duration::from_millis(10 * day_ms as u64);
    let report = apply_retention(&*store, "t", Duration::from_secs(3 * 86_400), now).await.expect("retention");
    assert_eq!(report.deleted, vec![OLD]);
    assert_eq!(report.objects_deleted, 2);
    let index = BucketIndex::load(&*store, "t").await.expect("load").expect("stored");
    assert_eq!(index.blocks.iter().map(|b| b.ulid.as_str()).collect::<Vec<_>>(), vec![NEW]);
    assert!(!server.bucket_dir().join(format!("t/{OLD}/profiles.parquet")).exists());
    assert!(SystemTime::now() > now);
}
