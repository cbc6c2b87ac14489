//! Inputs shared by the benches: every pprof of the client captures (and, when `../shared` is
//! present, Pyroscope's test profiles), decompressed.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::PushRequest;
use prost::Message;

fn gunzip_if(b: &[u8]) -> Vec<u8> {
    if b.len() > 2 && b[0] == 0x1f && b[1] == 0x8b {
        let mut out = Vec::new();
        if flate2::read::MultiGzDecoder::new(b).read_to_end(&mut out).is_ok() {
            return out;
        }
    }
    b.to_vec()
}

/// Uncompressed pprof bytes that decode, with their `__name__`.
pub fn pprofs() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    // Push captures carry raw pprofs inside gzip'd PushRequests.
    for dir in ["python-1.0.12", "rust-2.1.5"] {
        for f in files(&root.join("tests/fixtures/clients").join(dir), "body") {
            let body = gunzip_if(&std::fs::read(&f).unwrap_or_default());
            if let Ok(req) = PushRequest::decode(body.as_slice()) {
                for s in req.series {
                    let name =
                        s.labels.iter().find(|l| l.name == "__name__").map(|l| l.value.clone()).unwrap_or_default();
                    for raw in s.samples {
                        out.push((name.clone(), gunzip_if(&raw.raw_profile)));
                    }
                }
            }
        }
    }
    for f in files(&root.join("tests/fixtures/clients/go-stdlib/pprof-files"), "gz") {
        out.push((name_of(&f), gunzip_if(&std::fs::read(&f).unwrap_or_default())));
    }
    let shared = root.join("../shared/fixtures/pyroscope");
    if shared.is_dir() {
        for f in files(&shared, "") {
            let b = gunzip_if(&std::fs::read(&f).unwrap_or_default());
            if Profile::decode(b.as_slice()).is_ok_and(|p| !p.sample.is_empty() && p.function.iter().all(|f| f.id != 0))
            {
                out.push((name_of(&f), b));
            }
        }
    } else {
        eprintln!("notice: ../shared/fixtures/pyroscope is absent; benching the client captures only");
    }
    out.retain(|(_, b)| Profile::decode(b.as_slice()).is_ok());
    out
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.retain(|p| p.is_file() && (ext.is_empty() || p.extension().is_some_and(|x| x == ext)));
    v.sort();
    v
}

/// A `__name__` for a pprof file, by the sample types it holds.
fn name_of(f: &Path) -> String {
    let b = gunzip_if(&std::fs::read(f).unwrap_or_default());
    let Ok(p) = Profile::decode(b.as_slice()) else { return "unknown".into() };
    let types: Vec<&str> =
        p.sample_type.iter().map(|t| p.string_table.get(t.r#type as usize).map_or("", |s| s)).collect();
    if types.iter().any(|t| t.contains("cpu") || *t == "samples") {
        "process_cpu".into()
    } else if types
        .iter()
        .any(|t| t.starts_with("alloc_") || t.starts_with("inuse_") || *t == "space" || *t == "objects")
    {
        "memory".into()
    } else if types.contains(&"wall") {
        "wall".into()
    } else {
        types.last().map_or("unknown".into(), |t| t.to_string())
    }
}

/// A head filled with `rounds` copies of every fixture profile in `inputs`, one second apart
/// (8 services, 16 pods) for `tenant`, as the query benches read it: the head, the time of the
/// newest copy and how many profiles were stored.
pub fn fixture_head(
    tenant: &str,
    inputs: &[(String, Vec<u8>)],
    rounds: i64,
) -> (std::sync::Arc<flamedb_ingest::head::Head>, i64, u64) {
    use flamedb_ingest::{distributor::Distributor, head::Head, pprof, validate::Limits};
    let head = std::sync::Arc::new(Head::new());
    let limits =
        Limits { reject_older_than: Default::default(), reject_newer_than: Default::default(), ..Limits::default() };
    let d = Distributor::new(head.clone(), std::sync::Arc::new(limits));
    let now = now_nanos();
    let mut profiles = 0;
    for round in 0..rounds {
        for (i, (name, raw)) in inputs.iter().enumerate() {
            let Ok(mut p) = pprof::decode(raw, usize::MAX) else { continue };
            p.profile.time_nanos = now - round * 1_000_000_000;
            let labels = vec![
                ("__name__".to_string(), name.clone()),
                ("service_name".to_string(), format!("svc-{}", i % 8)),
                ("pod".to_string(), format!("pod-{}", round % 16)),
            ];
            if d.ingest_profile(tenant, &labels, p.profile, raw.len(), None, now).is_ok() {
                profiles += 1;
            }
        }
    }
    (head, now, profiles)
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// A deterministic xorshift generator for synthetic bench data (no dependency, same data every
/// run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
