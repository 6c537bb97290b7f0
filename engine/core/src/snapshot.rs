//! Serving snapshots to clients: SNAPSHOT_BEGIN (0x30) / SNAPSHOT_READ (0x31),
//! docs/formats/protocol.md section 10, the native counterpart of
//! engine/velocity_engine/storage/snapshot_exporter.py (same semantics, limits,
//! messages and metrics).
//!
//! BEGIN takes a point-in-time view of the store ([`crate::store::Store::snapshot_entries`]:
//! velocity-lsm's `Db::snapshot()`, or a copy of the memory store made under all its
//! shard locks) and a thread of its own writes the snapshot file (docs/formats/snapshot.md,
//! version 1, byte for byte what the Python engine and velocity-lsm write) into
//! DATA_DIR/storage/snapshots/: `snap-<id>.tmp`, fsync, rename to `snap-<id>.vsnap`,
//! fsync the directory. READ serves byte ranges of the finished file; the file is
//! deleted once read to the end, after `idle` without reads, or at shutdown.
//!
//! The disk is bounded (docs/security.md, "Snapshots"; [`SnapshotLimits`]):
//! - at most `max_files` snapshots exist at once (writing, ready, being read); a
//!   failed one's partial file is deleted at once (its id answers READ with the
//!   error until it expires);
//! - BEGIN estimates the new file (the data size) and is refused (BUSY) when the
//!   files would pass `max_bytes` or the volume would keep less than
//!   `min_free_bytes` free; a file being written is abandoned (and deleted) when it
//!   passes `max_bytes` or free space falls below half the margin;
//! - a janitor thread deletes snapshots (and failed ids) untouched for `idle`, and
//!   start-up deletes whatever a previous process left in the directory.
//!
//! Threading: the [`Exporter`] is shared by every worker thread; its state sits
//! behind one mutex held only for bookkeeping (never across file writes). READ's
//! `pread` of at most [`MAX_READ`] bytes runs on the request thread, as the
//! Python engine's does on its loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use velocity_lsm::entry_codec::encode_entry;
use velocity_lsm::fs::{make_dirs, FileSystem, ReadableFile, WritableFile};
use velocity_lsm::snapshot_file::{CHUNK_TARGET, END_MAGIC, MAGIC, VERSION};
use velocity_proto::ErrorCode;

use crate::error::VError;
use crate::store::Store;

/// Idle time after which an unread snapshot is deleted (config.py's default).
pub const IDLE: Duration = Duration::from_secs(120);
/// Snapshots written at once (each holds a pinned view and a thread's time).
pub const MAX_JOBS: usize = 2;
/// Failed ids remembered (no files) until they expire.
pub const MAX_FAILED: usize = 16;
/// The most bytes one READ returns (also its default).
pub const MAX_READ: u64 = 4 * 1024 * 1024;
/// BUSY hint of a refusal for the file limits.
pub const RETRY_BUSY_MS: u32 = 1000;
/// BUSY hint of a refusal for space.
pub const RETRY_NO_SPACE_MS: u32 = 10_000;
/// The directory under DATA_DIR (filenames.py's `snapshot_dir`).
pub const SNAPSHOT_DIR: &str = "storage/snapshots";

/// Every live record of one instant, in key order, owned (a thread streams it).
pub type SnapshotEntries = Box<dyn Iterator<Item = Result<(Bytes, velocity_lsm::Record), String>> + Send>;

/// The bounds of config.py's `snapshot_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLimits {
    pub max_files: usize,
    /// 0: no bound beyond `max_files`.
    pub max_bytes: u64,
    pub min_free_bytes: u64,
    pub idle: Duration,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_files: 4,
            max_bytes: 0,
            min_free_bytes: 256 * 1024 * 1024,
            idle: IDLE,
        }
    }
}

/// Figures for /metrics (`velocity_snapshot*`, exported_metrics.py's names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotStats {
    /// When the last snapshot finished writing (Unix s; 0: none since start).
    pub last_success_ts: f64,
    pub last_bytes: u64,
    pub last_seconds: f64,
    pub completed: u64,
    pub failed: u64,
    pub refused: u64,
    pub expired: u64,
    /// Snapshots holding a file now.
    pub files: u64,
    /// Bytes those files take or are expected to take.
    pub disk_bytes: u64,
    /// Files a previous process left, deleted at start.
    pub removed_at_start: u64,
}

/// What READ answers: (ready, total size, data at the offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReply {
    pub ready: bool,
    pub size: u64,
    pub data: Vec<u8>,
}

/// Why a request could not be served; [`From`] maps it to the wire error the
/// Python engine answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Too many at once: BUSY, retry in a second.
    #[error("{0}")]
    Busy(String),
    /// Bytes or free-space limit: BUSY, retry in ten seconds.
    #[error("{0}")]
    NoSpace(String),
    /// READ of an unknown, expired or failed id: INVALID_ARGUMENT.
    #[error("{0}")]
    Invalid(String),
    /// The directory or the file could not be used: INTERNAL.
    #[error("{0}")]
    Io(String),
}

impl From<SnapshotError> for VError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Busy(m) => VError::new(ErrorCode::Busy, m).retry_after(RETRY_BUSY_MS),
            SnapshotError::NoSpace(m) => VError::new(ErrorCode::Busy, m).retry_after(RETRY_NO_SPACE_MS),
            SnapshotError::Invalid(m) => VError::invalid(m),
            SnapshotError::Io(m) => VError::new(ErrorCode::Internal, m),
        }
    }
}

enum Status {
    Writing,
    Ready {
        size: u64,
        file: Option<Arc<dyn ReadableFile>>,
    },
    Failed(String),
}

struct Job {
    path: PathBuf,
    started: Instant,
    /// Last BEGIN/READ or the end of the write: idle time counts from here.
    touched: Instant,
    status: Status,
    /// Bytes BEGIN expected the file to take.
    estimate: u64,
    /// Bytes written so far (the writer thread adds to it).
    written: Arc<AtomicU64>,
}

impl Job {
    fn writing(&self) -> bool {
        matches!(self.status, Status::Writing)
    }

    fn has_file(&self) -> bool {
        !matches!(self.status, Status::Failed(_))
    }

    fn disk_bytes(&self) -> u64 {
        match &self.status {
            Status::Failed(_) => 0,
            Status::Ready { size, .. } => *size,
            Status::Writing => self.estimate.max(self.written.load(Ordering::Relaxed)),
        }
    }
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    closed: bool,
    stats: SnapshotStats,
    writers: Vec<JoinHandle<()>>,
}

struct State {
    inner: Mutex<Inner>,
    /// Wakes the janitor early at close.
    wake: Condvar,
}

/// The snapshot service of one engine (see the module docs). Cheap to share.
pub struct Exporter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Where free space is measured before the directory exists.
    data_dir: PathBuf,
    limits: SnapshotLimits,
    state: Arc<State>,
    janitor: Mutex<Option<JoinHandle<()>>>,
}

fn lock(state: &State) -> MutexGuard<'_, Inner> {
    state.inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 16 hex digits from the kernel's generator (an id nobody can guess).
fn new_id() -> Result<String, SnapshotError> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| SnapshotError::Io(format!("cannot start a snapshot: no random id: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Exporter {
    /// The service for the engine in `data_dir`: deletes what a previous process
    /// left in DATA_DIR/storage/snapshots and starts the idle-expiry thread.
    pub fn new(fs: Arc<dyn FileSystem>, data_dir: &Path, limits: SnapshotLimits) -> Self {
        let dir = data_dir.join(SNAPSHOT_DIR);
        let state = Arc::new(State {
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
        });
        let exporter = Self {
            fs,
            dir,
            data_dir: data_dir.to_path_buf(),
            limits,
            state,
            janitor: Mutex::new(None),
        };
        let removed = exporter.remove_leftovers();
        lock(&exporter.state).stats.removed_at_start = removed;
        exporter.start_janitor();
        exporter
    }

    /// Whatever a previous process left (ready, idle, partial): no id refers to it any more.
    fn remove_leftovers(&self) -> u64 {
        if !self.fs.is_dir(&self.dir) {
            return 0;
        }
        let mut n = 0;
        for name in self.fs.list_dir(&self.dir).unwrap_or_default() {
            if self.fs.remove_file(&self.dir.join(&name)).is_ok() {
                n += 1;
            }
        }
        if n > 0 {
            eprintln!("velocity-core: removed {n} snapshot file(s) left by a previous process");
        }
        n
    }

    fn start_janitor(&self) {
        let state = self.state.clone();
        let fs = self.fs.clone();
        let idle = self.limits.idle;
        // As the Python timer: a quarter of the idle time, between 50 ms and 5 s.
        let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let spawned = std::thread::Builder::new()
            .name("velocity-snapshot-expiry".into())
            .spawn(move || {
                let mut g = lock(&state);
                while !g.closed {
                    expire_idle(&mut g, &*fs, idle);
                    g = state.wake.wait_timeout(g, period).unwrap_or_else(|e| e.into_inner()).0;
                }
            });
        match spawned {
            Ok(h) => *self.janitor.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            // Expiry then happens at each BEGIN only; the engine still serves.
            Err(e) => eprintln!("velocity-core: cannot start the snapshot expiry thread: {e}"),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &SnapshotLimits {
        &self.limits
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Figures for /metrics.
    pub fn stats(&self) -> SnapshotStats {
        let g = lock(&self.state);
        let mut s = g.stats.clone();
        s.files = g.jobs.values().filter(|j| j.has_file()).count() as u64;
        s.disk_bytes = g.jobs.values().map(Job::disk_bytes).sum();
        s
    }

    /// An upper-bound guess of the next snapshot's size, without walking the data.
    fn estimate(store: &dyn Store) -> u64 {
        let st = store.stats();
        st.data_bytes + 32 * st.keys + 64 * 1024
    }

    fn free_bytes(&self) -> Result<u64, SnapshotError> {
        let at = if self.fs.is_dir(&self.dir) {
            &self.dir
        } else {
            &self.data_dir
        };
        self.fs
            .free_bytes(at)
            .map_err(|e| SnapshotError::Io(format!("cannot start a snapshot: {}: {e}", at.display())))
    }

    /// The limits BEGIN checks: (estimate, bytes held by the others) or the refusal.
    fn admit(&self, g: &Inner, store: &dyn Store) -> Result<(u64, u64), SnapshotError> {
        let lim = &self.limits;
        let writing = g.jobs.values().filter(|j| j.writing()).count();
        if writing >= MAX_JOBS {
            return Err(SnapshotError::Busy(format!(
                "{MAX_JOBS} snapshots are already being written; try again later"
            )));
        }
        let files = g.jobs.values().filter(|j| j.has_file()).count();
        if files >= lim.max_files {
            return Err(SnapshotError::Busy(format!(
                "{files} snapshots are held (snapshot_max_files = {}); one is freed when read to the end or \
                 after {}s without reads",
                lim.max_files,
                secs(lim.idle)
            )));
        }
        let est = Self::estimate(store);
        let held: u64 = g.jobs.values().map(Job::disk_bytes).sum();
        if lim.max_bytes > 0 && held + est > lim.max_bytes {
            return Err(SnapshotError::NoSpace(format!(
                "snapshot files would take about {} bytes, over snapshot_max_bytes = {}",
                held + est,
                lim.max_bytes
            )));
        }
        // What the files being written may still add, plus this one.
        let pending: u64 = g
            .jobs
            .values()
            .filter(|j| j.writing())
            .map(|j| j.estimate.saturating_sub(j.written.load(Ordering::Relaxed)))
            .sum();
        let free = self.free_bytes()?;
        if (free as i128) - (pending as i128) - (est as i128) < lim.min_free_bytes as i128 {
            return Err(SnapshotError::NoSpace(format!(
                "not enough disk space for a snapshot: {free} bytes free, about {} needed, and \
                 snapshot_min_free_bytes = {} must stay free",
                est + pending,
                lim.min_free_bytes
            )));
        }
        Ok((est, held))
    }

    /// SNAPSHOT_BEGIN: admits, pins a view of `store` and starts the writer thread.
    /// Returns the id and the snapshot's instant (Unix ms).
    pub fn begin(&self, store: &dyn Store) -> Result<(String, i64), SnapshotError> {
        let mut g = lock(&self.state);
        expire_idle(&mut g, &*self.fs, self.limits.idle);
        if g.closed {
            return Err(SnapshotError::Busy("the engine is shutting down".into()));
        }
        let (est, held) = match self.admit(&g, store) {
            Ok(v) => v,
            Err(e) => {
                if !matches!(e, SnapshotError::Io(_)) {
                    g.stats.refused += 1;
                }
                return Err(e);
            }
        };
        make_dirs(&*self.fs, &self.dir)
            .map_err(|e| SnapshotError::Io(format!("cannot start a snapshot: {}: {e}", self.dir.display())))?;
        let id = new_id()?;
        let created_ms = now_ms();
        // The view: taken under the exporter's lock so two BEGINs are ordered.
        let entries = store
            .snapshot_entries()
            .map_err(|e| SnapshotError::Io(format!("cannot start a snapshot: {e}")))?;
        let now = Instant::now();
        let path = self.dir.join(format!("snap-{id}.vsnap"));
        let written = Arc::new(AtomicU64::new(0));
        let guard = Guard {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            max_bytes: self.limits.max_bytes,
            floor: self.limits.min_free_bytes / 2,
            held,
            written: written.clone(),
        };
        let work = Work {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            path: path.clone(),
            entries,
            created_ms,
            guard,
        };
        let state = self.state.clone();
        let fs = self.fs.clone();
        let job_id = id.clone();
        let job_path = path.clone();
        g.jobs.insert(
            id.clone(),
            Job {
                path,
                started: now,
                touched: now,
                status: Status::Writing,
                estimate: est,
                written,
            },
        );
        let spawned = std::thread::Builder::new()
            .name(format!("velocity-snapshot-{id}"))
            .spawn(move || {
                let result = work.run();
                finish(&state, &*fs, &job_id, &job_path, result);
            });
        match spawned {
            Ok(h) => {
                g.writers.retain(|h| !h.is_finished());
                g.writers.push(h);
            }
            Err(e) => {
                g.jobs.remove(&id);
                return Err(SnapshotError::Io(format!("cannot start a snapshot: no thread: {e}")));
            }
        }
        Ok((id, created_ms))
    }

    /// SNAPSHOT_READ: up to `max_bytes` (0: [`MAX_READ`]) from `offset`. The file
    /// is deleted once its last byte was served.
    pub fn read(&self, id: &str, offset: u64, max_bytes: u32) -> Result<ReadReply, SnapshotError> {
        let mut g = lock(&self.state);
        let idle = secs(self.limits.idle);
        let Some(job) = g.jobs.get_mut(id) else {
            return Err(SnapshotError::Invalid(format!(
                "no snapshot {id:?} (finished, expired after {idle}s idle, or never begun)"
            )));
        };
        job.touched = Instant::now();
        let (size, file) = match &mut job.status {
            Status::Writing => {
                return Ok(ReadReply {
                    ready: false,
                    size: 0,
                    data: Vec::new(),
                })
            }
            Status::Failed(why) => {
                let msg = format!("snapshot {id} failed: {why}");
                drop_job(&mut g, &*self.fs, id);
                return Err(SnapshotError::Invalid(msg));
            }
            Status::Ready { size, file } => (*size, file),
        };
        let file = match file {
            Some(f) => f.clone(),
            None => {
                let f = self
                    .fs
                    .open_read(&job.path)
                    .map_err(|e| SnapshotError::Io(format!("cannot read snapshot {id}: {e}")))?;
                *file = Some(f.clone());
                f
            }
        };
        let want = if max_bytes == 0 {
            MAX_READ
        } else {
            u64::from(max_bytes).min(MAX_READ)
        };
        let n = want.min(size.saturating_sub(offset));
        let mut data = vec![0u8; n as usize];
        if n > 0 {
            file.read_exact_at(&mut data, offset)
                .map_err(|e| SnapshotError::Io(format!("cannot read snapshot {id}: {e}")))?;
        }
        if offset + n >= size {
            drop_job(&mut g, &*self.fs, id); // read to the end: done
        }
        Ok(ReadReply {
            ready: true,
            size,
            data,
        })
    }

    /// Ends the service: waits for the writers, deletes every file. Idempotent.
    pub fn close(&self) {
        let writers = {
            let mut g = lock(&self.state);
            g.closed = true;
            std::mem::take(&mut g.writers)
        };
        self.state.wake.notify_all();
        if let Some(h) = self.janitor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        for h in writers {
            let _ = h.join();
        }
        let mut g = lock(&self.state);
        let ids: Vec<String> = g.jobs.keys().cloned().collect();
        for id in ids {
            drop_job(&mut g, &*self.fs, &id);
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The exporter of a data plane, or INTERNAL when it has no data directory.
pub fn serve(shared: &crate::server::Shared) -> Result<&Exporter, VError> {
    shared.snapshots.as_ref().ok_or_else(|| {
        VError::new(
            ErrorCode::Internal,
            "snapshots need a data directory (this data plane was started without data_dir)",
        )
    })
}

/// A duration as config.py prints it (`3`, `0.5`).
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn drop_job(g: &mut Inner, fs: &dyn FileSystem, id: &str) {
    if let Some(job) = g.jobs.remove(id) {
        if job.has_file() {
            let _ = fs.remove_file(&job.path);
        }
    }
}

fn expire_idle(g: &mut Inner, fs: &dyn FileSystem, idle: Duration) {
    let now = Instant::now();
    let stale: Vec<String> = g
        .jobs
        .iter()
        .filter(|(_, j)| !j.writing() && now.duration_since(j.touched) > idle)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if matches!(g.jobs[&id].status, Status::Ready { .. }) {
            g.stats.expired += 1;
        }
        drop_job(g, fs, &id);
    }
}

/// The writer thread's end: records the outcome (or, after close, deletes the file).
fn finish(state: &State, fs: &dyn FileSystem, id: &str, path: &Path, result: Result<(u64, u64), String>) {
    let mut g = lock(state);
    let closed = g.closed;
    let Some(job) = g.jobs.get_mut(id) else {
        // Dropped meanwhile: nobody will read it.
        if result.is_ok() {
            let _ = fs.remove_file(path);
        }
        return;
    };
    job.touched = Instant::now(); // idle from now: finished (or failed) and not yet read
    match result {
        Ok((size, entries)) => {
            let seconds = job.started.elapsed().as_secs_f64();
            job.status = Status::Ready { size, file: None };
            if closed {
                drop_job(&mut g, fs, id);
                return;
            }
            g.stats.completed += 1;
            g.stats.last_success_ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            g.stats.last_bytes = size;
            g.stats.last_seconds = seconds;
            eprintln!("velocity-core: snapshot {id}: {entries} keys, {size} bytes in {seconds:.2}s");
        }
        Err(why) => {
            eprintln!("velocity-core: snapshot {id} failed: {why}");
            job.status = Status::Failed(why);
            g.stats.failed += 1;
            if closed {
                g.jobs.remove(id);
            }
            trim_failed(&mut g);
        }
    }
}

fn trim_failed(g: &mut Inner) {
    let mut failed: Vec<(Instant, String)> = g
        .jobs
        .iter()
        .filter(|(_, j)| matches!(j.status, Status::Failed(_)))
        .map(|(id, j)| (j.touched, id.clone()))
        .collect();
    if failed.len() <= MAX_FAILED {
        return;
    }
    failed.sort();
    let extra = failed.len() - MAX_FAILED;
    for (_, id) in failed.into_iter().take(extra) {
        g.jobs.remove(&id);
    }
}

/// The checks every write of a snapshot file passes: the file is abandoned past
/// `max_bytes` (with what the others held at BEGIN) or when free space falls
/// below `floor` (half `snapshot_min_free_bytes`).
struct Guard {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    max_bytes: u64,
    floor: u64,
    held: u64,
    written: Arc<AtomicU64>,
}

impl Guard {
    fn write(&self, f: &dyn WritableFile, data: &[u8]) -> Result<(), String> {
        let n = data.len() as u64;
        if self.max_bytes > 0 && self.held + self.written.load(Ordering::Relaxed) + n > self.max_bytes {
            return Err(format!("snapshot passed snapshot_max_bytes = {}", self.max_bytes));
        }
        if self.floor > 0 {
            let free = self.fs.free_bytes(&self.dir).map_err(|e| e.to_string())?;
            if free < n + self.floor {
                return Err(format!(
                    "free space fell below {} bytes (half snapshot_min_free_bytes)",
                    self.floor
                ));
            }
        }
        f.append(data).map_err(|e| io_reason(&e))?;
        self.written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// An I/O error as the Python engine reports it (strerror: "No space left on device").
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

/// One snapshot file to write (on its own thread).
struct Work {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    path: PathBuf,
    entries: SnapshotEntries,
    created_ms: i64,
    guard: Guard,
}

impl Work {
    /// Writes `snap-<id>.tmp`, fsyncs, renames it to the final name and fsyncs the
    /// directory; on any failure the partial file is deleted. (size, entries).
    fn run(mut self) -> Result<(u64, u64), String> {
        let tmp = self.path.with_extension("tmp");
        let entries = std::mem::replace(&mut self.entries, Box::new(std::iter::empty()));
        let result = self.write(&tmp, entries).and_then(|info| {
            self.fs.rename(&tmp, &self.path).map_err(|e| io_reason(&e))?;
            self.fs.sync_dir(&self.dir).map_err(|e| io_reason(&e))?;
            Ok(info)
        });
        if result.is_err() {
            // A failed snapshot leaves no partial file.
            let _ = self.fs.remove_file(&tmp);
            let _ = self.fs.remove_file(&self.path);
        }
        result
    }

    fn write(&self, tmp: &Path, entries: SnapshotEntries) -> Result<(u64, u64), String> {
        let f = self.fs.create(tmp).map_err(|e| io_reason(&e))?;
        let mut w = CrcWriter {
            f: &*f,
            guard: &self.guard,
            crc: crc32fast::Hasher::new(),
            size: 0,
        };
        // header := magic | version:u32 | reserved:u32 | created_ms:i64 | reserved:u64
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&self.created_ms.to_le_bytes());
        head.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(head.len(), 32);
        w.put(&head)?;
        let mut chunk = Vec::with_capacity(CHUNK_TARGET + 1024);
        let mut count = 0u64;
        for item in entries {
            let (k, r) = item?;
            if r.is_expired_at(self.created_ms) {
                continue;
            }
            encode_entry(&mut chunk, &k, Some(&r));
            count += 1;
            if chunk.len() >= CHUNK_TARGET {
                w.chunk(&mut chunk)?;
            }
        }
        w.chunk(&mut chunk)?;
        // end := zero:u32 | entry_count:u64 | file_crc:u32 | magic
        let mut tail = Vec::with_capacity(12);
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&count.to_le_bytes());
        w.put(&tail)?;
        let mut end = w.crc.clone().finalize().to_le_bytes().to_vec();
        end.extend_from_slice(END_MAGIC);
        self.guard.write(&*f, &end)?;
        let size = w.size + end.len() as u64;
        f.sync_all().map_err(|e| io_reason(&e))?;
        Ok((size, count))
    }
}

struct CrcWriter<'a> {
    f: &'a dyn WritableFile,
    guard: &'a Guard,
    crc: crc32fast::Hasher,
    size: u64,
}

impl CrcWriter<'_> {
    fn put(&mut self, data: &[u8]) -> Result<(), String> {
        self.guard.write(self.f, data)?;
        self.crc.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// chunk := length:u32 (> 0) | crc:u32 | entries
    fn chunk(&mut self, chunk: &mut Vec<u8>) -> Result<(), String> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut h = Vec::with_capacity(8 + chunk.len());
        h.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        h.extend_from_slice(chunk);
        self.put(&h)?;
        chunk.clear();
        Ok(())
    }
}

#[cfg(test)]
impl Exporter {
    /// Waits for every writer thread begun so far (tests: no polling for "ready").
    fn join_writers(&self) {
        let writers = std::mem::take(&mut lock(&self.state).writers);
        for h in writers {
            h.join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use velocity_lsm::snapshot_file::{read_snapshot_file, write_snapshot_file};
    use velocity_lsm::testing::SimFs;
    use velocity_lsm::{Db, Options};

    use super::*;
    use crate::lsm_store::{LsmStore, STORAGE_DIR};
    use crate::memory::MemoryStore;
    use crate::store::{Mutation, Record};

    fn root() -> PathBuf {
        PathBuf::from("/sim")
    }

    fn limits() -> SnapshotLimits {
        SnapshotLimits {
            min_free_bytes: 0,
            ..SnapshotLimits::default()
        }
    }

    fn put(store: &dyn Store, key: &str, value: &str, expire_at_ms: i64) {
        let m = Mutation {
            key: key.as_bytes().into(),
            record: Some(Record {
                kind: 1,
                value: value.as_bytes().into(),
                expire_at_ms,
            }),
        };
        store.commit(1, vec![m]).unwrap();
    }

    fn memory_with(n: usize) -> MemoryStore {
        let s = MemoryStore::new();
        for i in 0..n {
            put(&s, &format!("k{i:05}"), &format!("v{i}"), 0);
        }
        s
    }

    /// Reads a snapshot to the end in `step`-byte READs.
    fn read_all(x: &Exporter, id: &str, step: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let r = x.read(id, out.len() as u64, step).unwrap();
            assert!(r.ready);
            out.extend_from_slice(&r.data);
            if out.len() as u64 >= r.size {
                return out;
            }
        }
    }

    fn files(fs: &SimFs) -> Vec<String> {
        let dir = root().join(SNAPSHOT_DIR);
        if fs.is_dir(&dir) {
            fs.list_dir(&dir).unwrap()
        } else {
            Vec::new()
        }
    }

    #[test]
    fn memory_snapshot_round_trips_and_is_deleted_when_read_to_the_end() {
        let fs = SimFs::new(root());
        let x = Exporter::new(Arc::new(fs.clone()), &root(), limits());
        let store = memory_with(3000);
        put(&store, "gone", "x", 1); // expired long ago: not in the file
        let (id, created_ms) = x.begin(&store).unwrap();
        assert_eq!(id.len(), 16);
        x.join_writers();
        assert_eq!(
            files(&fs),
            vec![format!("snap-{id}.vsnap")],
            "no .tmp left, the final name"
        );
        let bytes = read_all(&x, &id, 4096);
        assert_eq!(files(&fs), Vec::<String>::new(), "read to the end: deleted");
        let copy = root().join("copy.vsnap");
        fs.write_file(&copy, &bytes).unwrap();
        let (info, entries) = read_snapshot_file(&fs, &copy).unwrap();
        assert_eq!((info.entries, info.created_ms), (3000, created_ms));
        assert_eq!(entries.len(), 3000);
        assert_eq!(&entries[7].0[..], b"k00007");
        assert_eq!(&entries[7].1.value[..], b"v7");
        let err = x.read(&id, 0, 0).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Invalid(ref m) if m.contains("no snapshot")),
            "{err:?}"
        );
        let s = x.stats();
        assert_eq!((s.completed, s.files, s.disk_bytes), (1, 0, 0));
        assert_eq!(s.last_bytes, bytes.len() as u64);
    }

    #[test]
    fn lsm_snapshot_is_byte_for_byte_velocity_lsm_s_file() {
        let fs = SimFs::new(root());
        let mut opts = Options::new(root().join(STORAGE_DIR));
        opts.fs = Arc::new(fs.clone());
        let store = LsmStore::from_db(Db::open(opts).unwrap());
        for i in 0..2000 {
            put(&store, &format!("key-{i:05}"), &"v".repeat(i % 50), 0);
        }
        let x = Exporter::new(Arc::new(fs.clone()), &root(), limits());
        let (id, created_ms) = x.begin(&store).unwrap();
        // Written after BEGIN: not in the snapshot (its view was pinned at BEGIN).
        put(&store, "key-99999", "late", 0);
        x.join_writers();
        let ours = read_all(&x, &id, 0);
        let theirs = root().join("lsm.vsnap");
        // The same view, as of BEGIN: everything but the late key.
        store
            .commit(
                2,
                vec![Mutation {
                    key: b"key-99999"[..].into(),
                    record: None,
                }],
            )
            .unwrap();
        write_snapshot_file(&fs, &theirs, &store.db().snapshot(), created_ms).unwrap();
        assert_eq!(ours, fs.contents(&theirs).unwrap());
        store.close().unwrap();
    }

    #[test]
    fn begin_is_refused_past_max_files_and_counted() {
        let fs = SimFs::new(root());
        let x = Exporter::new(
            Arc::new(fs.clone()),
            &root(),
            SnapshotLimits {
                max_files: 2,
                ..limits()
            },
        );
        let store = memory_with(10);
        x.begin(&store).unwrap();
        x.join_writers();
        x.begin(&store).unwrap();
        x.join_writers();
        let err = x.begin(&store).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Busy(ref m) if m.contains("snapshot_max_files = 2")),
            "{err:?}"
        );
        let v: VError = err.into();
        assert_eq!((v.code, v.retry_after_ms), (ErrorCode::Busy, RETRY_BUSY_MS));
        assert_eq!(x.stats().refused, 1);
        assert_eq!(x.stats().files, 2);
    }

    #[test]
    fn begin_is_refused_when_it_would_eat_the_free_space_margin() {
        let fs = SimFs::new(root());
        fs.set_free_bytes(Some(10 * 1024 * 1024));
        let x = Exporter::new(
            Arc::new(fs.clone()),
            &root(),
            SnapshotLimits {
                min_free_bytes: 9 * 1024 * 1024 + 512 * 1024,
                ..limits()
            },
        );
        let store = memory_with(20_000); // estimated at ~ 20k * (11 + 32) + 64 KiB: ~ 0.9 MiB
        let err = x.begin(&store).unwrap_err();
        assert!(
            matches!(err, SnapshotError::NoSpace(ref m) if m.contains("disk space") && m.contains("snapshot_min_free_bytes")),
            "{err:?}"
        );
        assert_eq!(VError::from(err).retry_after_ms, RETRY_NO_SPACE_MS);
        assert!(files(&fs).is_empty());
    }

    #[test]
    fn begin_is_refused_past_max_bytes() {
        let fs = SimFs::new(root());
        let x = Exporter::new(
            Arc::new(fs),
            &root(),
            SnapshotLimits {
                max_bytes: 1000,
                ..limits()
            },
        );
        let err = x.begin(&memory_with(10)).unwrap_err(); // estimate >= 64 KiB
        assert!(
            matches!(err, SnapshotError::NoSpace(ref m) if m.contains("snapshot_max_bytes = 1000")),
            "{err:?}"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_file_and_its_id_reports_the_error_once() {
        let fs = SimFs::new(root());
        let x = Exporter::new(Arc::new(fs.clone()), &root(), limits());
        let store = memory_with(5000);
        // The volume fills up after BEGIN: the third append gets ENOSPC, half written.
        let mut appends = 0;
        fs.set_fault(move |op| {
            if op.kind != velocity_lsm::testing::OpKind::Append {
                return None;
            }
            appends += 1;
            (appends == 3).then_some(velocity_lsm::testing::Fault::Torn {
                keep: 100,
                errno: libc_enospc(),
            })
        });
        let (id, _) = x.begin(&store).unwrap();
        x.join_writers();
        assert!(files(&fs).is_empty(), "partial file left: {:?}", files(&fs));
        let err = x.read(&id, 0, 0).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Invalid(ref m) if m.contains("failed: No space left on device")),
            "{err:?}"
        );
        assert!(matches!(x.read(&id, 0, 0), Err(SnapshotError::Invalid(ref m)) if m.contains("no snapshot")));
        assert_eq!(x.stats().failed, 1);
    }

    #[test]
    fn the_write_guard_abandons_a_file_past_max_bytes_or_below_half_the_margin() {
        // BEGIN admits on an estimate; these are the checks of the real writes.
        let fs = SimFs::new(root());
        let f = fs.create(&root().join("g")).unwrap();
        let g = Guard {
            fs: Arc::new(fs.clone()),
            dir: root(),
            max_bytes: 100,
            floor: 0,
            held: 60, // another snapshot's bytes when this one began
            written: Arc::new(AtomicU64::new(0)),
        };
        g.write(&*f, &[0; 40]).unwrap();
        let err = g.write(&*f, &[0; 1]).unwrap_err();
        assert!(err.contains("snapshot_max_bytes = 100"), "{err}");
        fs.set_free_bytes(Some(1000));
        let g = Guard {
            max_bytes: 0,
            floor: 990,
            ..g
        };
        g.write(&*f, &[0; 10]).unwrap();
        let err = g.write(&*f, &[0; 11]).unwrap_err();
        assert!(err.contains("half snapshot_min_free_bytes"), "{err}");
    }

    /// ENOSPC on Linux (no libc dependency for one constant).
    fn libc_enospc() -> i32 {
        28
    }

    #[test]
    fn unread_snapshots_expire_after_the_idle_time() {
        let fs = SimFs::new(root());
        let x = Exporter::new(
            Arc::new(fs.clone()),
            &root(),
            SnapshotLimits {
                idle: Duration::from_millis(100),
                ..limits()
            },
        );
        let (id, _) = x.begin(&memory_with(10)).unwrap();
        x.join_writers();
        assert_eq!(files(&fs).len(), 1);
        // The janitor runs every 50 ms; wait for its verdict, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !files(&fs).is_empty() {
            assert!(Instant::now() < deadline, "the idle snapshot was never deleted");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(matches!(x.read(&id, 0, 0), Err(SnapshotError::Invalid(_))));
        assert_eq!(x.stats().expired, 1);
    }

    #[test]
    fn start_up_removes_leftovers_and_close_removes_everything() {
        let fs = SimFs::new(root());
        let dir = root().join(SNAPSHOT_DIR);
        make_dirs(&fs, &dir).unwrap();
        fs.write_file(&dir.join("snap-0123456789abcdef.tmp"), b"partial")
            .unwrap();
        fs.write_file(&dir.join("snap-fedcba9876543210.vsnap"), b"old").unwrap();
        let x = Exporter::new(Arc::new(fs.clone()), &root(), limits());
        assert!(files(&fs).is_empty());
        assert_eq!(x.stats().removed_at_start, 2);
        x.begin(&memory_with(10)).unwrap();
        x.close();
        assert!(files(&fs).is_empty(), "close left {:?}", files(&fs));
        assert!(matches!(x.begin(&memory_with(1)), Err(SnapshotError::Busy(_))));
    }

    #[test]
    fn read_caps_its_size_and_serves_not_ready_while_writing() {
        let fs = SimFs::new(root());
        let x = Exporter::new(Arc::new(fs.clone()), &root(), limits());
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        // Hold the writer at its first append until the test has asked.
        fs.set_fault(move |op| {
            if op.kind == velocity_lsm::testing::OpKind::Append {
                let mut open = g.0.lock().unwrap();
                while !*open {
                    open = g.1.wait(open).unwrap();
                }
            }
            None
        });
        let (id, _) = x.begin(&memory_with(10)).unwrap();
        let r = x.read(&id, 0, 0).unwrap();
        assert_eq!((r.ready, r.size, r.data.len()), (false, 0, 0));
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        x.join_writers();
        let r = x.read(&id, 0, 10).unwrap();
        assert!(r.ready && r.data.len() == 10 && r.size > 10);
    }
}
