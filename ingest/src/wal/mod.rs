//! The write-ahead log of the ingester head. The head lives in memory until it is flushed to a
//! block, so every accepted profile is first appended here; after a restart, [`Wal::replay`] feeds
//! the records back into the head and nothing that was acknowledged to a client is lost.
//!
//! Layout: a directory of segment files named by a zero-padded decimal id (`00000001`), ids
//! strictly increasing, plus `checkpoint.json`. A segment is a sequence of frames:
//!
//! ```text
//! u32 LE payload length | u64 LE xxh3_64(payload) | payload (a `flamedb.v1.WalRecord`)
//! ```
//!
//! A writer never appends to a segment it did not create: [`Wal::open`] always starts a new
//! segment, so a torn tail left by a crash stays at the end of its segment and replay only has to
//! stop reading that segment there.
//!
//! Flushed data: once a tenant's head is flushed up to a cut (the id returned by [`Wal::rotate`]),
//! [`Wal::mark_flushed`] records that in the checkpoint and replay skips that tenant's records in
//! segments at or below the cut. [`Wal::truncate_through`] deletes segments no longer needed.

pub mod record;

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hashbrown::HashSet;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::normalize::NormalizedProfile;

/// Largest payload a frame may carry. Replay treats a larger length as corruption, so a garbage
/// length field can never make it allocate gigabytes; append refuses records above it so every
/// record written can be read back.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// Frame header: payload length (u32) and checksum (u64).
const HEADER_LEN: usize = 12;
const CHECKPOINT_FILE: &str = "checkpoint.json";
const CHECKPOINT_TMP: &str = "checkpoint.json.tmp";

/// Why a WAL operation failed. Corrupt segment data is not an error (replay logs and skips it);
/// these are failures the caller has to act on.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system call failed (permissions, disk full, ...); `op` and `path` say which.
    #[error("wal: cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record's bytes are not a `WalRecord`.
    #[error("wal record does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A record decodes but its stacks or samples do not fit together.
    #[error("invalid wal record: {0}")]
    InvalidRecord(&'static str),
    /// The record could not be read back (replay refuses lengths above [`MAX_RECORD_BYTES`]).
    #[error("wal record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// Deleting the segment being written would lose records that are in no block yet.
    #[error("cannot truncate the wal through segment {segment}: segment {active} is being written")]
    ActiveSegment { segment: u64, active: u64 },
    /// After a failed fsync the kernel may have dropped dirty pages while reporting later syncs as
    /// successful, so no further append can be acknowledged as durable. Restart and replay.
    #[error("wal is unusable after a failed fsync; restart to replay what is durable")]
    Poisoned,
    /// The checkpoint could not be serialized.
    #[error("wal checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io { op, path: path.to_path_buf(), source }
}

/// Durability and segment sizing of a [`Wal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Sync each append to disk before it returns (with group commit). Without it a record is only
    /// in the page cache when append returns and an OS crash can lose it.
    pub fsync: bool,
    /// A segment that would grow beyond this many bytes is closed and a new one started, so
    /// flushed data can be deleted a segment at a time.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { fsync: true, segment_size: 128 << 20 }
    }
}

/// What a [`Wal::replay`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records handed to the callback.
    pub records: u64,
    /// Intact records skipped because the checkpoint says their tenant was flushed.
    pub skipped_records: u64,
    /// Segment files read.
    pub segments: u64,
    /// Segments whose reading stopped early at a torn, corrupt or undecodable record.
    pub corrupt_segments: u64,
    /// Bytes of intact frames (headers included), replayed or skipped.
    pub bytes: u64,
    /// Highest segment id seen.
    pub last_segment: Option<u64>,
}

/// `checkpoint.json`: which tenants' records in segments `<= cut_segment` are already in blocks
/// and must not be replayed into the head again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The segment id the flush cut at (returned by [`Wal::rotate`]); 0 when nothing is flushed.
    pub cut_segment: u64,
    /// Tenants whose head was flushed through `cut_segment`.
    pub flushed_tenants: Vec<String>,
}

impl Checkpoint {
    /// Reads the checkpoint of `dir`; none is an empty one. A checkpoint that does not parse is
    /// logged and ignored (replaying flushed data again is better than refusing to start).
    fn load(dir: &Path) -> Result<Self, WalError> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(cp) => Ok(cp),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable wal checkpoint");
                Ok(Self::default())
            }
        }
    }

    /// Replaces the checkpoint atomically: a reader sees the old or the new one, never a mix.
    fn store(&self, dir: &Path) -> Result<(), WalError> {
        let tmp = dir.join(CHECKPOINT_TMP);
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = serde_json::to_vec(self).map_err(|source| WalError::Checkpoint { path: path.clone(), source })?;
        {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(&bytes).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        sync_dir(dir)
    }
}

/// The segment being written.
struct Writer {
    id: u64,
    /// Shared so a group-commit leader can sync it without holding the writer lock.
    file: Arc<File>,
    /// Bytes in this segment.
    len: u64,
    /// Bytes appended since open, over all segments: the clock group commit compares against.
    written: u64,
    /// A write failed part-way, leaving a partial frame at the tail: nothing more may follow it
    /// in this segment (replay stops at the first bad frame).
    needs_rotation: bool,
}

/// An open write-ahead log. Appends may come from many threads at once.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    writer: Mutex<Writer>,
    /// Held by the thread syncing on behalf of everyone waiting (group commit).
    sync_lock: Mutex<()>,
    /// Value of `Writer::written` up to which every byte is on disk.
    durable: AtomicU64,
    poisoned: AtomicBool,
    checkpoint: Mutex<Checkpoint>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens the WAL in `dir` (created if missing) and starts a new segment with an id above every
    /// existing one. Call [`Wal::replay`] first: open never reads old segments.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Self, WalError> {
        let dir = dir.as_ref().to_path_buf();
        let existed = dir.is_dir();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        // A directory this call created must itself survive a crash, or so would none of its files.
        if !existed
            && opts.fsync
            && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        {
            sync_dir(parent)?;
        }
        match fs::remove_file(dir.join(CHECKPOINT_TMP)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &dir.join(CHECKPOINT_TMP))(e)),
        }
        let checkpoint = Checkpoint::load(&dir)?;
        let last = Self::segments(&dir)?.last().copied().unwrap_or(0);
        // The checkpoint's cut counts too, in case every segment was deleted by hand: ids must
        // never be reused while a checkpoint refers to them.
        let id = last.max(checkpoint.cut_segment) + 1;
        let file = create_segment(&dir, id, opts.fsync)?;
        tracing::info!(dir = %dir.display(), segment = id, "wal opened");
        Ok(Self {
            dir,
            opts,
            writer: Mutex::new(Writer { id, file: Arc::new(file), len: 0, written: 0, needs_rotation: false }),
            sync_lock: Mutex::new(()),
            durable: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            checkpoint: Mutex::new(checkpoint),
        })
    }

    /// Reads every segment of `dir` in id order and hands each record to `f` with its segment id,
    /// except records the checkpoint marks as flushed. A torn, corrupt or undecodable record is
    /// logged and ends the reading of its segment (later segments are still read); only real I/O
    /// errors are returned. A missing `dir` replays nothing.
    pub fn replay(
        dir: impl AsRef<Path>,
        mut f: impl FnMut(u64, String, NormalizedProfile),
    ) -> Result<ReplayStats, WalError> {
        let dir = dir.as_ref();
        let mut stats = ReplayStats::default();
        if !dir.exists() {
            return Ok(stats);
        }
        let checkpoint = Checkpoint::load(dir)?;
        let flushed: HashSet<&str> = checkpoint.flushed_tenants.iter().map(String::as_str).collect();
        let mut payload = Vec::new();
        for id in Self::segments(dir)? {
            stats.segments += 1;
            stats.last_segment = Some(id);
            let skip = (id <= checkpoint.cut_segment && !flushed.is_empty()).then_some(&flushed);
            replay_segment(dir, id, skip, &mut payload, &mut stats, &mut f)?;
        }
        tracing::info!(
            dir = %dir.display(),
            records = stats.records,
            skipped = stats.skipped_records,
            segments = stats.segments,
            corrupt_segments = stats.corrupt_segments,
            bytes = stats.bytes,
            "wal replayed"
        );
        Ok(stats)
    }

    /// Ids of the segment files in `dir`, ascending. A missing `dir` has none.
    pub fn segments(dir: impl AsRef<Path>) -> Result<Vec<u64>, WalError> {
        let dir = dir.as_ref();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Appends one record and returns the id of the segment it went to. With `fsync` it returns
    /// only once the record is on disk; concurrent appends share one sync (group commit).
    pub fn append(&self, tenant: &str, p: &NormalizedProfile) -> Result<u64, WalError> {
        let mut frame = vec![0u8; HEADER_LEN];
        record::encode_into(tenant, p, &mut frame);
        let size = frame.len() - HEADER_LEN;
        if size > MAX_RECORD_BYTES {
            return Err(WalError::RecordTooLarge { size, max: MAX_RECORD_BYTES });
        }
        let sum = xxh3_64(&frame[HEADER_LEN..]);
        frame[..4].copy_from_slice(&(size as u32).to_le_bytes());
        frame[4..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());

        let (id, end) = {
            let mut w = self.writer.lock();
            self.check_poisoned()?;
            if w.needs_rotation || (w.len > 0 && w.len + frame.len() as u64 > self.opts.segment_size) {
                self.rotate_locked(&mut w)?;
            }
            if let Err(e) = (&*w.file).write_all(&frame) {
                w.needs_rotation = true;
                return Err(io_err("write", &segment_path(&self.dir, w.id))(e));
            }
            w.len += frame.len() as u64;
            w.written += frame.len() as u64;
            (w.id, w.written)
        };
        if self.opts.fsync {
            self.wait_durable(end)?;
        }
        Ok(id)
    }

    /// Closes the current segment (synced, with `fsync`) and starts the next. Returns the id of
    /// the closed segment: every append that returned before this call is in a segment `<=` it,
    /// which makes it the cut to flush the head at.
    pub fn rotate(&self) -> Result<u64, WalError> {
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        self.rotate_locked(&mut w)
    }

    /// Records that `tenant`'s records in segments `<= cut_segment` are flushed, so replay skips
    /// them. A cut different from the stored one starts a new tenant list: the caller truncates
    /// through the old cut (or re-marks its tenants) before moving on to a new one.
    pub fn mark_flushed(&self, cut_segment: u64, tenant: &str) -> Result<(), WalError> {
        let mut cp = self.checkpoint.lock();
        let mut next = if cp.cut_segment == cut_segment {
            if cp.flushed_tenants.iter().any(|t| t == tenant) {
                return Ok(());
            }
            cp.clone()
        } else {
            if cut_segment < cp.cut_segment {
                tracing::warn!(old = cp.cut_segment, new = cut_segment, "wal checkpoint cut moves backwards");
            }
            Checkpoint { cut_segment, flushed_tenants: Vec::new() }
        };
        next.flushed_tenants.push(tenant.to_string());
        next.store(&self.dir)?;
        *cp = next;
        Ok(())
    }

    /// Deletes the segment files with id `<= segment` (their data is in blocks) and returns how
    /// many were deleted. Once no segment at or below the checkpoint's cut is left, the checkpoint
    /// is removed too. The segment being written cannot be deleted: rotate first.
    pub fn truncate_through(&self, segment: u64) -> Result<usize, WalError> {
        let mut cp = self.checkpoint.lock();
        let active = self.writer.lock().id;
        if segment >= active {
            return Err(WalError::ActiveSegment { segment, active });
        }
        let mut removed = 0;
        for id in Self::segments(&self.dir)?.into_iter().take_while(|&id| id <= segment) {
            let path = segment_path(&self.dir, id);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        // The deletions are made durable before the checkpoint goes: a segment coming back after
        // a crash without the checkpoint that covers it would be replayed a second time.
        sync_dir(&self.dir)?;
        if segment >= cp.cut_segment && *cp != Checkpoint::default() {
            let path = self.dir.join(CHECKPOINT_FILE);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
            sync_dir(&self.dir)?;
            *cp = Checkpoint::default();
        }
        tracing::info!(dir = %self.dir.display(), through = segment, removed, "wal truncated");
        Ok(removed)
    }

    /// Total size of the segment files, for metrics and for deciding when to flush.
    pub fn size_bytes(&self) -> Result<u64, WalError> {
        let mut total = 0;
        for id in Self::segments(&self.dir)? {
            let path = segment_path(&self.dir, id);
            match fs::metadata(&path) {
                Ok(m) => total += m.len(),
                // Deleted by a concurrent truncate.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("stat", &path)(e)),
            }
        }
        Ok(total)
    }

    /// Id of the segment appends currently go to.
    pub fn current_segment(&self) -> u64 {
        self.writer.lock().id
    }

    /// The stored checkpoint (what replay would skip).
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint.lock().clone()
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        if self.poisoned.load(Ordering::Acquire) { Err(WalError::Poisoned) } else { Ok(()) }
    }

    fn poison(&self, path: &Path, e: &io::Error) {
        tracing::error!(path = %path.display(), error = %e, "wal fsync failed; refusing further appends");
        self.poisoned.store(true, Ordering::Release);
    }

    /// Returns once every byte up to `end` (a `Writer::written` value) is on disk. The first
    /// waiter syncs everything written so far; the ones queued behind it usually find their
    /// record already covered.
    fn wait_durable(&self, end: u64) -> Result<(), WalError> {
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let _sync = self.sync_lock.lock();
        self.check_poisoned()?;
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        // Bytes of earlier segments were synced by the rotation that closed them, so syncing the
        // current file covers everything written up to `written`.
        let (file, written, id) = {
            let w = self.writer.lock();
            (Arc::clone(&w.file), w.written, w.id)
        };
        if let Err(e) = file.sync_data() {
            let path = segment_path(&self.dir, id);
            self.poison(&path, &e);
            return Err(io_err("sync", &path)(e));
        }
        self.durable.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }

    /// Syncs and closes the current segment, starts the next; returns the closed id.
    fn rotate_locked(&self, w: &mut Writer) -> Result<u64, WalError> {
        if self.opts.fsync {
            if let Err(e) = w.file.sync_data() {
                let path = segment_path(&self.dir, w.id);
                self.poison(&path, &e);
                return Err(io_err("sync", &path)(e));
            }
            self.durable.fetch_max(w.written, Ordering::AcqRel);
        }
        let next = w.id + 1;
        let file = create_segment(&self.dir, next, self.opts.fsync)?;
        let closed = w.id;
        tracing::debug!(closed, next, bytes = w.len, "wal segment rotated");
        *w = Writer { id: next, file: Arc::new(file), len: 0, written: w.written, needs_rotation: false };
        Ok(closed)
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}"))
}

/// Segment ids are all-digit names of at least 8 characters (wider once ids pass 99,999,999).
fn parse_segment_name(name: &str) -> Option<u64> {
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn create_segment(dir: &Path, id: u64, fsync: bool) -> Result<File, WalError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_err("create", &path))?;
    if fsync {
        // The record syncs cover the file's data, not its directory entry.
        sync_dir(dir)?;
    }
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync", dir))
}

/// How a segment read ended early.
enum Stop {
    Corrupt(String),
    Io(io::Error),
}

/// Reads one segment into `f`, stopping at the first bad frame (logged and counted).
fn replay_segment(
    dir: &Path,
    id: u64,
    skip_tenants: Option<&HashSet<&str>>,
    payload: &mut Vec<u8>,
    stats: &mut ReplayStats,
    f: &mut impl FnMut(u64, String, NormalizedProfile),
) -> Result<(), WalError> {
    let path = segment_path(dir, id);
    let file = File::open(&path).map_err(io_err("open", &path))?;
    let len = file.metadata().map_err(io_err("stat", &path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let stop = loop {
        if offset == len {
            return Ok(());
        }
        if len - offset < HEADER_LEN as u64 {
            break Stop::Corrupt("truncated frame header".into());
        }
        let mut header = [0u8; HEADER_LEN];
        if let Err(e) = reader.read_exact(&mut header) {
            break Stop::Io(e);
        }
        let mut size = [0u8; 4];
        size.copy_from_slice(&header[..4]);
        let size = u32::from_le_bytes(size) as usize;
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&header[4..]);
        let sum = u64::from_le_bytes(sum);
        if size > MAX_RECORD_BYTES {
            break Stop::Corrupt("record length over the limit".into());
        }
        let frame_len = (HEADER_LEN + size) as u64;
        if len - offset < frame_len {
            break Stop::Corrupt("truncated record".into());
        }
        payload.clear();
        payload.resize(size, 0);
        if let Err(e) = reader.read_exact(payload) {
            break Stop::Io(e);
        }
        if xxh3_64(payload) != sum {
            break Stop::Corrupt("checksum mismatch".into());
        }
        if let Some(skip) = skip_tenants {
            match record::decode_tenant(payload) {
                Ok(tenant) if skip.contains(tenant.as_str()) => {
                    stats.skipped_records += 1;
                    stats.bytes += frame_len;
                    offset += frame_len;
                    continue;
                }
                Ok(_) => {}
                Err(e) => break Stop::Corrupt(format!("record does not decode: {e}")),
            }
        }
        match record::decode(payload) {
            Ok((tenant, profile)) => f(id, tenant, profile),
            Err(e) => break Stop::Corrupt(format!("record does not decode: {e}")),
        }
        stats.records += 1;
        stats.bytes += frame_len;
        offset += frame_len;
    };
    let reason = match stop {
        Stop::Corrupt(reason) => reason,
        // The file shrank under us: as torn as a short file.
        Stop::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "segment ended early".into(),
        Stop::Io(e) => return Err(io_err("read", &path)(e)),
    };
    stats.corrupt_segments += 1;
    tracing::warn!(
        segment = id,
        offset,
        reason = %reason,
        skipped_bytes = len - offset,
        "wal segment damaged; skipping the rest of it"
    );
    Ok(())
}
