//! WAL tests on real normalized profiles (synthetic pprofs through `normalize`).

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use flamedb_proto::google::v1::Label as PprofLabel;

use super::*;
use crate::normalize::normalize;
use crate::testing::cpu_pprof;
use crate::validate::Limits;

const NOW: i64 = 1_700_000_000_000_000_000;

/// A normalized profile with several series (two `pod` values), samples with and without span
/// ids, a profile id and contents that vary with `seed`.
pub(crate) fn profile_with_spans(seed: i64) -> NormalizedProfile {
    let mut prof = cpu_pprof(
        &[(&["main", "a", "b"], 10 + seed), (&["main", "a"], 5), (&["main", "c"], 7 + seed), (&["main", "b", "d"], 3)],
        NOW - seed,
    );
    prof.duration_nanos = 10_000_000_000;
    let mut intern = |s: &str| {
        prof.string_table.push(s.to_string());
        (prof.string_table.len() - 1) as i64
    };
    let (span_key, pod_key) = (intern("span_id"), intern("pod"));
    let span = intern(&format!("{:016x}", 0xabcd_0000_0000_0000_u64 + seed as u64));
    let (p1, p2) = (intern("p1"), intern("p2"));
    let label = |key, str| PprofLabel { key, str, ..Default::default() };
    prof.sample[0].label = vec![label(span_key, span), label(pod_key, p1)];
    prof.sample[1].label = vec![label(pod_key, p1)];
    prof.sample[2].label = vec![label(pod_key, p2), label(span_key, span)];
    let series_labels = [
        ("__name__".to_string(), "process_cpu".to_string()),
        ("service_name".to_string(), format!("svc-{}", seed % 3)),
    ];
    normalize(&series_labels, prof, Some(format!("id-{seed}")), &Limits::default(), NOW).expect("fixture normalizes")
}

/// Field-by-field equality (`NormalizedProfile` has no `PartialEq`).
pub(crate) fn assert_same(a: &NormalizedProfile, b: &NormalizedProfile) {
    assert_eq!(a.partition, b.partition);
    assert_eq!(a.profile, b.profile);
    assert_eq!(a.stacks.locations, b.stacks.locations);
    assert_eq!(a.stacks.offsets, b.stacks.offsets);
    assert_eq!(a.series.len(), b.series.len());
    for (x, y) in a.series.iter().zip(&b.series) {
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.samples, y.samples);
        assert_eq!(x.total, y.total);
    }
    assert_eq!(a.time_nanos, b.time_nanos);
    assert_eq!(a.duration_nanos, b.duration_nanos);
    assert_eq!(a.profile_id, b.profile_id);
}

type Replayed = Vec<(u64, String, NormalizedProfile)>;

fn replay_all(dir: &Path) -> (Replayed, ReplayStats) {
    let mut out = Vec::new();
    let stats = Wal::replay(dir, |seg, tenant, p| out.push((seg, tenant, p))).expect("replay");
    (out, stats)
}

fn frame_len(tenant: &str, p: &NormalizedProfile) -> u64 {
    (HEADER_LEN + record::encode(tenant, p).len()) as u64
}

fn tenant_of(i: i64) -> String {
    ["a", "b", "c"][i as usize % 3].to_string()
}

#[test]
fn append_then_replay_returns_every_record_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    assert_eq!(replay_all(&dir).1, ReplayStats::default(), "a missing dir replays nothing");

    let wal = Wal::open(&dir, WalOptions::default()).expect("open");
    let mut want = Vec::new();
    for i in 0..20 {
        let p = profile_with_spans(i);
        assert_eq!(wal.append(&tenant_of(i), &p).expect("append"), 1);
        want.push((tenant_of(i), p));
    }
    drop(wal);

    let (got, stats) = replay_all(&dir);
    assert_eq!(got.len(), want.len());
    for ((seg, tenant, p), (want_tenant, want_p)) in got.iter().zip(&want) {
        assert_eq!(*seg, 1);
        assert_eq!(tenant, want_tenant);
        assert_same(p, want_p);
    }
    let bytes: u64 = want.iter().map(|(t, p)| frame_len(t, p)).sum();
    assert_eq!(
        stats,
        ReplayStats { records: 20, skipped_records: 0, segments: 1, corrupt_segments: 0, bytes, last_segment: Some(1) }
    );
    assert_eq!(fs::metadata(dir.join("00000001")).expect("segment").len(), bytes);
}

#[test]
fn small_segments_rotate_and_replay_spans_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = frame_len("a", &profile_with_spans(0));
    // About three records per segment.
    let wal = Wal::open(tmp.path(), WalOptions { fsync: false, segment_size: one * 3 + one / 2 }).expect("open");
    let mut appended = Vec::new();
    for i in 0..20 {
        appended.push(wal.append(&tenant_of(i), &profile_with_spans(i)).expect("append"));
    }
    assert!(appended.windows(2).all(|w| w[0] <= w[1]), "segment ids never go back: {appended:?}");
    let segments = Wal::segments(tmp.path()).expect("list");
    assert!(segments.len() >= 5, "rotated into several segments: {segments:?}");
    assert_eq!(wal.current_segment(), *segments.last().expect("one"));
    let total: u64 = (0..20).map(|i| frame_len(&tenant_of(i), &profile_with_spans(i))).sum();
    assert_eq!(wal.size_bytes().expect("size"), total);
    drop(wal);

    let (got, stats) = replay_all(tmp.path());
    assert_eq!(got.len(), 20);
    for (i, (seg, tenant, p)) in got.iter().enumerate() {
        assert_eq!(*seg, appended[i], "record {i} replayed with the segment append reported");
        assert_eq!(*tenant, tenant_of(i as i64));
        assert_same(p, &profile_with_spans(i as i64));
    }
    assert_eq!(stats.segments, segments.len() as u64);
    assert_eq!(stats.corrupt_segments, 0);
}

#[test]
fn torn_tail_is_skipped_and_earlier_records_kept() {
    // Cut inside the last payload, then inside the last header.
    for partial_header in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
        for i in 0..5 {
            wal.append("t", &profile_with_spans(i)).expect("append");
        }
        drop(wal);
        let path = tmp.path().join("00000001");
        let len = fs::metadata(&path).expect("segment").len();
        let last = frame_len("t", &profile_with_spans(4));
        let keep = if partial_header { len - last + 5 } else { len - 3 };
        OpenOptions::new().write(true).open(&path).expect("open").set_len(keep).expect("truncate");

        let (got, stats) = replay_all(tmp.path());
        assert_eq!(got.len(), 4, "partial header: {partial_header}");
        for (i, (_, _, p)) in got.iter().enumerate() {
            assert_same(p, &profile_with_spans(i as i64));
        }
        assert_eq!(stats.corrupt_segments, 1);
        assert_eq!(stats.bytes, len - last);
    }
}

#[test]
fn corruption_skips_the_rest_of_its_segment_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    let mut seeds = Vec::new();
    let mut cuts = Vec::new();
    for s in 0..3 {
        for r in 0..3 {
            let seed = s * 3 + r;
            wal.append("t", &profile_with_spans(seed)).expect("append");
            seeds.push(seed);
        }
        cuts.push(wal.rotate().expect("rotate"));
    }
    assert_eq!(cuts, vec![1, 2, 3]);
    drop(wal);

    // Segment 2: flip a payload byte of its second record.
    let path = tmp.path().join("00000002");
    let mut bytes = fs::read(&path).expect("read");
    let at = frame_len("t", &profile_with_spans(3)) as usize + HEADER_LEN + 40;
    bytes[at] ^= 0x55;
    fs::write(&path, &bytes).expect("write");
    // Segment 3: a garbage length in the first header must not allocate or panic.
    let path = tmp.path().join("00000003");
    let mut bytes = fs::read(&path).expect("read");
    bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &bytes).expect("write");

    let (got, stats) = replay_all(tmp.path());
    let got_seeds: Vec<(u64, i64)> = got.iter().map(|(seg, _, p)| (*seg, NOW - p.time_nanos)).collect();
    assert_eq!(got_seeds, vec![(1, 0), (1, 1), (1, 2), (2, 3)]);
    assert_eq!(stats.corrupt_segments, 2);
    assert_eq!(stats.segments, 4, "the empty segment 4 opened last is read too");

    // A later segment after the damaged ones still replays.
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    assert_eq!(wal.append("t", &profile_with_spans(42)).expect("append"), 5);
    drop(wal);
    let (got, _) = replay_all(tmp.path());
    let (seg, _, p) = got.last().expect("records");
    assert_eq!(*seg, 5);
    assert_same(p, &profile_with_spans(42));
}

#[test]
fn checkpoint_skips_flushed_tenants_up_to_the_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    for i in 0..6 {
        wal.append(&tenant_of(i), &profile_with_spans(i)).expect("append");
    }
    let cut = wal.rotate().expect("rotate");
    for i in 6..12 {
        wal.append(&tenant_of(i), &profile_with_spans(i)).expect("append");
    }
    wal.mark_flushed(cut, "a").expect("mark");
    wal.mark_flushed(cut, "b").expect("mark");
    wal.mark_flushed(cut, "a").expect("mark is idempotent");
    let want_cp = Checkpoint { cut_segment: cut, flushed_tenants: vec!["a".into(), "b".into()] };
    assert_eq!(wal.checkpoint(), want_cp);
    let on_disk: Checkpoint =
        serde_json::from_slice(&fs::read(tmp.path().join("checkpoint.json")).expect("read")).expect("json");
    assert_eq!(on_disk, want_cp);
    drop(wal);

    let (got, stats) = replay_all(tmp.path());
    let got: Vec<(u64, String, i64)> = got.into_iter().map(|(s, t, p)| (s, t, NOW - p.time_nanos)).collect();
    let mut want = vec![(1, "c".to_string(), 2), (1, "c".to_string(), 5)];
    want.extend((6..12).map(|i| (2, tenant_of(i), i)));
    assert_eq!(got, want);
    assert_eq!((stats.records, stats.skipped_records), (8, 4));

    // A new cut starts a new tenant list.
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    wal.mark_flushed(2, "b").expect("mark");
    assert_eq!(wal.checkpoint(), Checkpoint { cut_segment: 2, flushed_tenants: vec!["b".into()] });
    drop(wal);
    let (got, _) = replay_all(tmp.path());
    assert!(got.iter().all(|(_, t, _)| t != "b"));
    assert_eq!(got.len(), 8, "a and c of both segments");
}

#[test]
fn truncate_through_deletes_segments_and_resets_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    wal.append("a", &profile_with_spans(0)).expect("append");
    let first = wal.rotate().expect("rotate");
    wal.append("a", &profile_with_spans(1)).expect("append");
    let second = wal.rotate().expect("rotate");
    wal.append("a", &profile_with_spans(2)).expect("append");
    assert_eq!(Wal::segments(tmp.path()).expect("list"), vec![1, 2, 3]);
    wal.mark_flushed(second, "a").expect("mark");

    assert!(matches!(wal.truncate_through(3), Err(WalError::ActiveSegment { segment: 3, active: 3 })));
    assert_eq!(wal.truncate_through(first).expect("truncate"), 1);
    assert_eq!(Wal::segments(tmp.path()).expect("list"), vec![2, 3]);
    assert_eq!(wal.checkpoint().cut_segment, second, "segment 2 still needs the checkpoint");
    assert!(tmp.path().join("checkpoint.json").exists());

    assert_eq!(wal.truncate_through(second).expect("truncate"), 1);
    assert_eq!(Wal::segments(tmp.path()).expect("list"), vec![3]);
    assert_eq!(wal.checkpoint(), Checkpoint::default());
    assert!(!tmp.path().join("checkpoint.json").exists());
    assert_eq!(wal.truncate_through(second).expect("again"), 0);
    drop(wal);

    let (got, stats) = replay_all(tmp.path());
    assert_eq!(got.len(), 1);
    assert_same(&got[0].2, &profile_with_spans(2));
    assert_eq!(stats.last_segment, Some(3));
}

#[test]
fn open_always_starts_a_fresh_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    assert_eq!(wal.current_segment(), 1);
    wal.append("a", &profile_with_spans(0)).expect("append");
    drop(wal);
    fs::write(tmp.path().join("checkpoint.json.tmp"), b"{half").expect("stale tmp");
    fs::write(tmp.path().join("notes.txt"), b"not a segment").expect("stray file");

    let (got, _) = replay_all(tmp.path());
    assert_eq!(got.len(), 1);
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("reopen");
    assert_eq!(wal.current_segment(), 2);
    assert!(!tmp.path().join("checkpoint.json.tmp").exists(), "stale checkpoint tmp removed");
    assert_eq!(wal.append("a", &profile_with_spans(1)).expect("append"), 2);
    drop(wal);
    assert_eq!(Wal::segments(tmp.path()).expect("list"), vec![1, 2]);
    let (got, _) = replay_all(tmp.path());
    assert_eq!(got.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn open_never_reuses_an_id_the_checkpoint_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("checkpoint.json"), br#"{"cut_segment":7,"flushed_tenants":["a"]}"#).expect("write");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    assert_eq!(wal.current_segment(), 8);
}

#[test]
fn unreadable_checkpoint_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(tmp.path(), WalOptions::default()).expect("open");
    wal.append("a", &profile_with_spans(0)).expect("append");
    drop(wal);
    fs::write(tmp.path().join("checkpoint.json"), b"{garbage").expect("write");
    let (got, stats) = replay_all(tmp.path());
    assert_eq!((got.len(), stats.skipped_records), (1, 0));
}

#[test]
fn concurrent_appends_are_all_replayed_in_per_thread_order() {
    for fsync in [true, false] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let one = frame_len("t0", &profile_with_spans(0));
        let wal = Arc::new(Wal::open(tmp.path(), WalOptions { fsync, segment_size: one * 16 }).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        wal.append(&format!("t{t}"), &profile_with_spans(i)).expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert!(wal.current_segment() > 4, "rotated while appending concurrently");
        drop(wal);

        let (got, stats) = replay_all(tmp.path());
        assert_eq!(got.len(), 200);
        assert_eq!(stats.corrupt_segments, 0);
        for t in 0..4 {
            let tenant = format!("t{t}");
            let seeds: Vec<i64> =
                got.iter().filter(|(_, tt, _)| *tt == tenant).map(|(_, _, p)| NOW - p.time_nanos).collect();
            assert_eq!(seeds, (0..50).collect::<Vec<_>>(), "{tenant}");
        }
    }
}

#[test]
fn record_that_passes_its_checksum_but_does_not_decode_ends_the_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let frame = |payload: &[u8]| {
        let mut f = (payload.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&xxh3_64(payload).to_le_bytes());
        f.extend_from_slice(payload);
        f
    };
    let good = record::encode("a", &profile_with_spans(0));
    let mut seg = frame(&good);
    seg.extend(frame(&[0xff, 0xff, 0xff, 0xff]));
    seg.extend(frame(&good));
    fs::write(tmp.path().join("00000001"), &seg).expect("write");
    fs::write(tmp.path().join("00000002"), frame(&good)).expect("write");

    let (got, stats) = replay_all(tmp.path());
    assert_eq!(got.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((stats.records, stats.corrupt_segments, stats.segments), (2, 1, 2));
}
