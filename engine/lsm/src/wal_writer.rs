//! Appending to the write-ahead log, and making it durable per the fsync policy.
//!
//! Threads: `append`, `rotate` and `check_writable` run on the commit path (under
//! the engine's commit lock, so one at a time). A dedicated sync thread does
//! nothing but fdatasync the current segment: it reads `written_seq` (the last
//! batch whose `write()` returned) *before* syncing, so a sync covers exactly the
//! appends that completed before it started, and everything appended meanwhile is
//! covered by the next one (group commit: one fdatasync for every batch appended
//! while the previous one ran). It never writes, so write-then-sync order holds.
//!
//! Policies: `Always` wakes the sync thread at every append; `Everysec` syncs once
//! per interval if anything is unsynced; `No` leaves it to the OS. Every policy
//! syncs a segment before rotating away from it (so an older segment is always
//! fully synced: damage there is corruption, never a torn tail) and at close.
//!
//! Failures (docs/formats/wal.md, "Failures"): a failed sync, or a write failing
//! for any reason but a full disk, is final: `Durability::fail`, and every later
//! commit gets `WritesRefused`. A write failing with ENOSPC/EDQUOT refuses writes
//! until, probing at most once a second, 4 MiB are free again; then the partial
//! record is truncated away and appending resumes in the same segment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::durability::Durability;
use crate::error::{is_no_space, Error, Result};
use crate::filenames::wal_name;
use crate::fs::{FileSystem, WritableFile};
use crate::options::FsyncPolicy;
use crate::wal_format::{file_header, VERSION_2};

/// After a full disk, look for free space at most this often.
pub const RECOVER_PROBE: Duration = Duration::from_secs(1);
/// ... and accept writes again once this much is free.
pub const RECOVER_FREE_BYTES: u64 = 4 << 20;
/// Upper bounds (seconds) of the fsync duration histogram buckets (+Inf implied).
pub const FSYNC_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
];

/// Counters of the log (for `velocity_wal_*` metrics).
#[derive(Debug, Default)]
pub struct WalCounters {
    /// Records appended.
    pub appends: AtomicU64,
    /// Bytes appended.
    pub bytes: AtomicU64,
    /// fdatasyncs done.
    pub fsyncs: AtomicU64,
    /// Their total duration.
    pub fsync_nanos: AtomicU64,
    /// The last one's duration.
    pub last_fsync_nanos: AtomicU64,
    /// Histogram counts per [`FSYNC_BUCKETS`] bound, then +Inf.
    pub fsync_buckets: [AtomicU64; 14],
}

impl WalCounters {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.last_fsync_nanos.store(d.as_nanos() as u64, Ordering::Relaxed);
        let i = FSYNC_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(FSYNC_BUCKETS.len());
        self.fsync_buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

struct SyncState {
    written_seq: u64,
    file: Arc<dyn WritableFile>,
    segment: u64,
    policy: FsyncPolicy,
    interval: Duration,
    stopping: bool,
    unsynced_since: Option<Instant>,
}

/// What the commit path and the sync thread share.
pub struct WalShared {
    state: Mutex<SyncState>,
    cond: Condvar,
    /// Durable position and its waiters.
    pub durability: Arc<Durability>,
    /// Counters.
    pub counters: WalCounters,
}

impl WalShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Age of the oldest appended batch not yet synced (zero when all are).
    pub fn fsync_lag(&self) -> Duration {
        let st = self.lock();
        match st.unsynced_since {
            Some(t) if st.written_seq > self.durability.synced() => t.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        self.lock().policy
    }

    /// Switch the policy (takes effect for the next append and the sync thread's next wake-up).
    pub fn set_policy(&self, policy: FsyncPolicy) {
        self.lock().policy = policy;
        self.cond.notify_all();
    }

    fn sync_loop(self: Arc<Self>) {
        let mut last_sync = Instant::now();
        loop {
            let (target, file, segment) = {
                let mut st = self.lock();
                loop {
                    if st.stopping || self.durability.is_failed() {
                        return;
                    }
                    let pending = st.written_seq > self.durability.synced();
                    match st.policy {
                        FsyncPolicy::Always if pending => break,
                        FsyncPolicy::Everysec => {
                            let since = last_sync.elapsed();
                            if pending && since >= st.interval {
                                break;
                            }
                            let wait = if pending { st.interval - since } else { st.interval };
                            st = self.cond.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
                        }
                        _ => st = self.cond.wait(st).unwrap_or_else(|p| p.into_inner()),
                    }
                }
                (st.written_seq, st.file.clone(), st.segment)
            };
            let started = Instant::now();
            last_sync = started;
            match file.sync_data() {
                Ok(()) => {
                    self.counters.observe(started.elapsed());
                    self.durability.advance(target);
                    let mut st = self.lock();
                    st.unsynced_since = (st.written_seq > target).then_some(started);
                }
                Err(e) => {
                    self.durability
                        .fail(format!("fdatasync of {} failed: {e}", wal_name(segment)));
                    return;
                }
            }
        }
    }
}

/// The writer (owned by the commit path).
pub struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment: u64,
    file: Arc<dyn WritableFile>,
    segment_bytes: u64,
    written_seq: u64,
    no_space: Option<String>,
    last_probe: Instant,
    shared: Arc<WalShared>,
    thread: Option<JoinHandle<()>>,
}

fn open_segment(fs: &dyn FileSystem, dir: &Path, segment: u64) -> Result<(Arc<dyn WritableFile>, u64)> {
    let path = dir.join(wal_name(segment));
    let ctx = |what: &str| format!("{what} {}", path.display());
    // O_APPEND: after a full disk the partial record is truncated and appends must
    // continue at the new end. The number is new, so the file does not exist yet.
    let file = fs.open_append(&path).map_err(|e| Error::io(ctx("creating"), e))?;
    if file.size().map_err(|e| Error::io(ctx("reading the size of"), e))? != 0 {
        file.truncate(0).map_err(|e| Error::io(ctx("truncating"), e))?;
    }
    let head = file_header(VERSION_2, segment);
    file.append(&head).map_err(|e| Error::io(ctx("writing"), e))?;
    file.sync_data().map_err(|e| Error::io(ctx("fdatasync of"), e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))?;
    Ok((file, head.len() as u64))
}

impl WalWriter {
    /// Start a new segment and the sync thread. `last_seq` is durable already.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        segment: u64,
        last_seq: u64,
        policy: FsyncPolicy,
        interval: Duration,
        durability: Arc<Durability>,
    ) -> Result<WalWriter> {
        let (file, size) = open_segment(fs.as_ref(), dir, segment)?;
        let shared = Arc::new(WalShared {
            state: Mutex::new(SyncState {
                written_seq: last_seq,
                file: file.clone(),
                segment,
                policy,
                interval,
                stopping: false,
                unsynced_since: None,
            }),
            cond: Condvar::new(),
            durability,
            counters: WalCounters::default(),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("vlsm-wal-sync".into())
            .spawn(move || s2.sync_loop())
            .map_err(|e| Error::io("starting the WAL sync thread", e))?;
        Ok(WalWriter {
            fs,
            dir: dir.to_path_buf(),
            segment,
            file,
            segment_bytes: size,
            written_seq: last_seq,
            no_space: None,
            last_probe: Instant::now(),
            shared,
            thread: Some(thread),
        })
    }

    /// What the sync thread shares (counters, policy, durability).
    pub fn shared(&self) -> &Arc<WalShared> {
        &self.shared
    }

    /// The current segment number and its size.
    pub fn position(&self) -> (u64, u64) {
        (self.segment, self.segment_bytes)
    }

    /// Why writes are refused, if they are (fail-stop or full disk).
    pub fn refusal(&self) -> Option<String> {
        self.shared.durability.failure().or_else(|| self.no_space.clone())
    }

    /// Err if writes are refused; after a full disk, probe for space and resume if there is.
    pub fn check_writable(&mut self) -> Result<()> {
        if self.shared.durability.is_failed() {
            let why = self.shared.durability.failure().unwrap_or_default();
            return Err(Error::WritesRefused(format!("since an earlier log failure: {why}")));
        }
        let Some(why) = self.no_space.clone() else {
            return Ok(());
        };
        if self.last_probe.elapsed() < RECOVER_PROBE {
            return Err(Error::WritesRefused(why));
        }
        self.last_probe = Instant::now();
        match self.fs.free_bytes(&self.dir) {
            Ok(free) if free >= RECOVER_FREE_BYTES => {}
            _ => return Err(Error::WritesRefused(why)),
        }
        if self.file.truncate(self.segment_bytes).is_err() {
            return Err(Error::WritesRefused(why));
        }
        self.no_space = None;
        Ok(())
    }

    /// Append one whole record (header + batch) for batch `seq`.
    pub fn append(&mut self, record: &[u8], seq: u64) -> Result<()> {
        if let Err(e) = self.file.append(record) {
            let msg = format!("write to {} failed: {e}", wal_name(self.segment));
            if is_no_space(&e) {
                self.no_space = Some(msg.clone());
                self.last_probe = Instant::now();
            } else {
                self.shared.durability.fail(msg.clone());
                self.shared.cond.notify_all();
            }
            return Err(Error::WritesRefused(msg));
        }
        self.segment_bytes += record.len() as u64;
        self.written_seq = seq;
        let c = &self.shared.counters;
        c.appends.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(record.len() as u64, Ordering::Relaxed);
        let mut st = self.shared.lock();
        st.written_seq = seq;
        if st.unsynced_since.is_none() {
            st.unsynced_since = Some(Instant::now());
        }
        let always = st.policy == FsyncPolicy::Always;
        drop(st);
        if always {
            self.shared.cond.notify_one();
        }
        Ok(())
    }

    /// Sync the current segment on this thread (rotation, close).
    pub fn sync_now(&mut self) -> Result<()> {
        if self.shared.durability.is_failed() {
            return Err(Error::WritesRefused(
                self.shared.durability.failure().unwrap_or_default(),
            ));
        }
        let started = Instant::now();
        if let Err(e) = self.file.sync_data() {
            let msg = format!("fdatasync of {} failed: {e}", wal_name(self.segment));
            self.shared.durability.fail(msg.clone());
            self.shared.cond.notify_all();
            return Err(Error::WritesRefused(msg));
        }
        self.shared.counters.observe(started.elapsed());
        self.shared.durability.advance(self.written_seq);
        let mut st = self.shared.lock();
        if st.written_seq <= self.written_seq {
            st.unsynced_since = None;
        }
        Ok(())
    }

    /// Finish the current segment (synced) and continue in `segment`.
    pub fn rotate(&mut self, segment: u64) -> Result<()> {
        self.check_writable()?;
        self.sync_now()?;
        let (file, size) = match open_segment(self.fs.as_ref(), &self.dir, segment) {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("cannot start {}: {e}", wal_name(segment));
                self.shared.durability.fail(msg.clone());
                self.shared.cond.notify_all();
                return Err(Error::WritesRefused(msg));
            }
        };
        self.file = file.clone();
        self.segment = segment;
        self.segment_bytes = size;
        let mut st = self.shared.lock();
        st.file = file;
        st.segment = segment;
        Ok(())
    }

    /// A full copy replaced the log: continue at `seq` (already durable) in a new segment.
    pub fn reset(&mut self, segment: u64, seq: u64) -> Result<()> {
        self.rotate(segment)?;
        self.written_seq = seq;
        self.shared.lock().written_seq = seq;
        Ok(())
    }

    /// Stop the sync thread and sync what is pending.
    pub fn close(&mut self) -> Result<()> {
        self.shared.lock().stopping = true;
        self.shared.cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.shared.durability.is_failed() {
            return Err(Error::WritesRefused(
                self.shared.durability.failure().unwrap_or_default(),
            ));
        }
        if self.written_seq > self.shared.durability.synced() || self.no_space.is_some() {
            self.sync_now()?;
        }
        Ok(())
    }
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
