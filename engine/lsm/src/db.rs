//! `Db`: the storage engine's public face (commit, reads, the replication feed,
//! durability, snapshots). Recovery is in `recovery.rs`, the flush and
//! compaction threads in `background.rs`, snapshots and checkpoints in
//! `snapshot.rs`.
//!
//! Concurrency: commits are serialized by the commit lock (`Inner::write`); the
//! WAL append and the memtable insert happen under it, in sequence order. Reads
//! take no lock but a short read lock to clone the current `Version` (memtable,
//! frozen memtables, tables) and then read at the published sequence
//! `visible_seq`: a reader never sees part of a batch. Version changes (memtable
//! rotation, flush and compaction installs, full-copy installs) happen under the
//! commit lock; manifest publication is serialized by the manifest lock. Lock
//! order: manifest -> write (commit) -> version / backlog / expiry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::backlog::{Backlog, BatchIter};
use crate::batch;
use crate::block_cache::BlockCache;
use crate::bloom::key_hashes;
use crate::durability::{Durability, DurableFuture};
use crate::entry_codec::{RawEntry, KEY_HEAD_SIZE};
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::manifest::{ManifestState, TableMeta};
use crate::memtable::Memtable;
use crate::merge::{MergeNewestFirst, Source};
use crate::options::{FsyncPolicy, Options};
use crate::rate_limiter::RateLimiter;
use crate::record::{Mutation, MutationRef, Record};
use crate::recovery::RecoveryInfo;
use crate::snapshot::{MemIter, Snapshot};
use crate::sstable_reader::{BloomStats, Table};
use crate::stats::Stats;
use crate::wal_format::{fill_record_header, RECORD_HEADER_SIZE, TYPE_SEQ_BATCH};
use crate::wal_writer::WalWriter;

/// Frozen memtables waiting for the flush thread before the engine stops freezing
/// (the current memtable then grows past its size until the flush catches up).
pub const MAX_IMMUTABLE: usize = 4;

/// A table of the current version.
#[derive(Clone, Debug)]
pub(crate) struct LiveTable {
    pub meta: TableMeta,
    pub table: Arc<Table>,
}

/// A memtable waiting to be flushed, with what the manifest needs once it is.
pub(crate) struct Frozen {
    pub mem: Arc<Memtable>,
    /// The WAL segment that holds exactly its batches.
    pub segment: u64,
    pub last_seq: u64,
    pub last_epoch: u64,
    /// Live keys of the whole database when it was frozen.
    pub live_keys: i64,
}

/// What readers see: replaced as a whole, never changed in place.
#[derive(Clone)]
pub(crate) struct Version {
    pub mem: Arc<Memtable>,
    pub imm: Vec<Arc<Frozen>>,
    pub tables: Vec<LiveTable>,
}

impl Version {
    /// The newest version of `key` with seq <= `seq`: `None` absent, `Some(None)` tombstone.
    pub fn lookup(&self, key: &[u8], seq: u64) -> Result<Option<Option<Record>>> {
        if let Some(r) = self.mem.get(key, seq) {
            return Ok(Some(r));
        }
        self.lookup_below_mem(key, seq)
    }

    /// [`Version::lookup`] without the current memtable: frozen memtables, then tables.
    pub fn lookup_below_mem(&self, key: &[u8], seq: u64) -> Result<Option<Option<Record>>> {
        for f in self.imm.iter().rev() {
            if let Some(r) = f.mem.get(key, seq) {
                return Ok(Some(r));
            }
        }
        let mut hashes = None;
        for t in self.tables.iter().rev() {
            if key >= t.meta.smallest.as_ref() && key <= t.meta.largest.as_ref() {
                let h = *hashes.get_or_insert_with(|| key_hashes(key));
                if let Some(r) = t.table.get(key, h)? {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }

    /// Sorted sources from `start`, newest first, at `seq`.
    pub fn sources(&self, start: &[u8], seq: u64, fill_cache: bool) -> Vec<Source> {
        let mut out: Vec<Source> = Vec::with_capacity(1 + self.imm.len() + self.tables.len());
        out.push(Box::new(MemIter::new(self.mem.clone(), start, seq)));
        for f in self.imm.iter().rev() {
            out.push(Box::new(MemIter::new(f.mem.clone(), start, seq)));
        }
        for t in self.tables.iter().rev() {
            if t.meta.largest.as_ref() >= start {
                out.push(Box::new(t.table.iter_from(start, fill_cache)));
            }
        }
        out
    }
}

/// True when two entries of a batch write the same key (MSET k k): then the second
/// one's insert replaces the first's version (same seq), which `Memtable::insert`
/// cannot report, so [`insert_batch`] looks such keys up first.
fn has_duplicate_keys(raw: &[u8], entries: &[RawEntry]) -> bool {
    if entries.len() < 2 {
        return false;
    }
    let mut keys: Vec<&[u8]> = entries.iter().map(|e| &raw[e.key.clone()]).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// Insert a logged batch (`raw`, its parsed `entries`) into `v.mem` at `seq`, note
/// its TTLs in `exp`, and return the change in live keys, with the first lookup
/// error (a table block failing its checks) if any; the insertion itself never fails.
///
/// Whether a key existed before comes from the insert itself (the older version
/// in the memtable is the new node's successor) and, only for keys the memtable
/// did not hold, from the frozen memtables and tables: one skiplist search per
/// entry instead of two (replay and the commit path both run this).
pub(crate) fn insert_batch(
    v: &Version,
    seq: u64,
    raw: &Bytes,
    entries: &[RawEntry],
    exp: &mut ExpiryIndex,
) -> (i64, Result<()>) {
    let dup = has_duplicate_keys(raw, entries);
    let mut delta = 0i64;
    let mut status = Ok(());
    let mut existed_in = |found: Result<Option<Option<Record>>>| match found {
        Ok(r) => matches!(r, Some(Some(_))),
        Err(e) => {
            if status.is_ok() {
                status = Err(e);
            }
            false
        }
    };
    for e in entries {
        let key = &raw[e.key.clone()];
        let rec = e.record(raw);
        let live = rec.is_some();
        exp.note(key, rec.as_ref());
        let before = dup.then(|| existed_in(v.lookup(key, u64::MAX)));
        let charge = e.end - (e.key.start - KEY_HEAD_SIZE);
        let older = v.mem.insert(raw.slice(e.key.clone()), seq, rec, charge);
        let existed = match (before, older) {
            (Some(x), _) => x,
            (None, Some(x)) => x,
            (None, None) => existed_in(v.lookup_below_mem(key, u64::MAX)),
        };
        match (live, existed) {
            (true, false) => delta += 1,
            (false, true) => delta -= 1,
            _ => {}
        }
    }
    (delta, status)
}

/// Keys with a TTL written since start-up, for the caller's active expiry cycle.
#[derive(Default)]
pub(crate) struct ExpiryIndex {
    pub keys: std::collections::HashMap<Bytes, i64>,
    pub cycle: Vec<Bytes>,
}

impl ExpiryIndex {
    pub fn note(&mut self, key: &[u8], rec: Option<&Record>) {
        match rec {
            Some(r) if r.expire_at_ms != 0 => {
                self.keys.insert(Bytes::copy_from_slice(key), r.expire_at_ms);
            }
            _ => {
                if !self.keys.is_empty() {
                    self.keys.remove(key);
                }
            }
        }
    }
}

/// State the commit path owns.
pub(crate) struct WriteState {
    pub wal: WalWriter,
    pub last_seq: u64,
    pub last_epoch: u64,
    pub live_keys: i64,
}

/// The manifest in force and its number.
pub(crate) struct ManifestCtl {
    pub number: u64,
    pub state: ManifestState,
}

/// Background thread coordination.
#[derive(Default)]
pub(crate) struct BgState {
    pub closed: bool,
    pub compaction_wanted: bool,
    pub flushing: bool,
    pub compacting: bool,
}

/// Counters of the background work.
#[derive(Default)]
pub(crate) struct BgCounters {
    pub flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_read: AtomicU64,
    pub compaction_written: AtomicU64,
    pub compaction_nanos: AtomicU64,
    pub compaction_buckets: [AtomicU64; 13],
    pub flush_failing: AtomicBool,
    pub compaction_failing: AtomicBool,
    pub last_error: Mutex<String>,
}

pub(crate) struct Inner {
    pub opts: Options,
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    pub write: Mutex<WriteState>,
    pub version: RwLock<Arc<Version>>,
    pub visible_seq: AtomicU64,
    pub visible_epoch: AtomicU64,
    pub manifest: Mutex<ManifestCtl>,
    pub next_file: AtomicU64,
    pub durability: Arc<Durability>,
    pub backlog: Arc<Backlog>,
    pub cache: Arc<BlockCache>,
    pub bloom: Arc<BloomStats>,
    pub limiter: RateLimiter,
    pub bg: Mutex<BgState>,
    pub bg_cond: Condvar,
    pub counters: BgCounters,
    pub expiring: Mutex<ExpiryIndex>,
    pub recovery: RecoveryInfo,
    pub closed: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub fn alloc_file(&self) -> u64 {
        self.next_file.fetch_add(1, Ordering::AcqRel)
    }

    pub fn current(&self) -> Arc<Version> {
        self.version.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_version(&self, v: Version) {
        *self.version.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }

    /// Apply a logged batch to the memtable and publish it (commit lock held).
    pub fn apply_locked(&self, w: &mut WriteState, seq: u64, epoch: u64, raw: &Bytes, entries: &[RawEntry]) {
        let v = self.current();
        {
            let mut exp = lock(&self.expiring);
            // A lookup error counts the key as absent (as before): the batch is logged
            // and must be applied whole; the error reaches the reader that hits the block.
            let (delta, _) = insert_batch(&v, seq, raw, entries, &mut exp);
            w.live_keys += delta;
        }
        w.last_seq = seq;
        w.last_epoch = epoch;
        self.visible_epoch.store(epoch, Ordering::Release);
        self.visible_seq.store(seq, Ordering::Release);
        self.backlog.push(seq, raw.clone());
        if v.mem.approx_bytes() >= self.opts.memtable_bytes {
            // A failure here is recorded by the writer: later commits are refused.
            let _ = self.freeze_locked(w);
        }
    }

    /// Freeze the memtable and continue in a new memtable and WAL segment (commit lock held).
    pub fn freeze_locked(&self, w: &mut WriteState) -> Result<bool> {
        let v = self.current();
        if v.imm.len() >= MAX_IMMUTABLE || v.mem.is_empty() {
            return Ok(false);
        }
        let old_segment = w.wal.position().0;
        w.wal.rotate(self.alloc_file())?;
        let frozen = Arc::new(Frozen {
            mem: v.mem.clone(),
            segment: old_segment,
            last_seq: w.last_seq,
            last_epoch: w.last_epoch,
            live_keys: w.live_keys,
        });
        let mut imm = v.imm.clone();
        imm.push(frozen);
        self.set_version(Version {
            mem: Arc::new(Memtable::new()),
            imm,
            tables: v.tables.clone(),
        });
        lock(&self.bg).flushing = true;
        self.bg_cond.notify_all();
        Ok(true)
    }

    pub fn note_error(&self, msg: String) {
        *lock(&self.counters.last_error) = msg;
    }
}

/// The result of a commit: its sequence, and its durability.
///
/// `is_durable()` / `durable()` / `wait()` answer "may the write be acknowledged
/// now", per the policy in force when it was committed: under `Always` once an
/// fdatasync covered it (group commit), under `Everysec` and `No` at once (the
/// background flusher or the OS makes it durable later; `Db::durable_seq` says how
/// far that got). Never true for a write whose sync failed.
#[derive(Clone)]
pub struct Commit {
    /// The batch's sequence number.
    pub seq: u64,
    /// The batch's epoch.
    pub epoch: u64,
    needs_sync: bool,
    durability: Arc<Durability>,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Commit {
    /// Whether the write may be acknowledged now.
    pub fn is_durable(&self) -> bool {
        !self.needs_sync || self.durability.synced() >= self.seq
    }

    /// A future completing when the write may be acknowledged; an error if the log
    /// failed first (then the write must never be reported as durable).
    pub fn durable(&self) -> DurableFuture {
        DurableFuture {
            state: self.durability.clone(),
            seq: if self.needs_sync { self.seq } else { 0 },
        }
    }

    /// Block the calling thread until [`Commit::durable`] would complete.
    pub fn wait(&self) -> Result<()> {
        if !self.needs_sync {
            return Ok(());
        }
        self.durability.wait_blocking(self.seq)
    }
}

/// The storage engine. `Send + Sync`: share it in an `Arc`; reads from any number
/// of threads, commits serialized inside. See the crate docs for the contract.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    /// The directory lock, released when the `Db` is dropped (after the threads stopped).
    pub(crate) _lock: Box<dyn std::any::Any + Send + Sync>,
}

impl Db {
    /// Open (or create) the database in `opts.dir`: recovery, then the background threads.
    ///
    /// Reads directories written by the Python engine (WAL and manifest version 1)
    /// and migrates them to version 2 before returning (see `RecoveryInfo`).
    /// Refuses (`Error::Corruption`) data it cannot trust.
    pub fn open(opts: Options) -> Result<Db> {
        crate::recovery::open(opts)
    }

    /// Commit a batch: assign the next sequence number, encode the batch once,
    /// append it to the WAL and apply it to the memtable. Visible to readers when
    /// this returns; durable per [`Commit`]. On error nothing was applied.
    ///
    /// `epoch` must not be below the last batch's epoch.
    pub fn commit(&self, epoch: u64, mutations: Vec<Mutation>) -> Result<Commit> {
        self.commit_encoded(epoch, batch::encode(RECORD_HEADER_SIZE, epoch, &mutations)?)
    }

    /// [`Db::commit`] of borrowed mutations: the key and value bytes are copied
    /// once, into the batch (a caller that keeps them in its own types saves a copy
    /// and an allocation per key and value).
    pub fn commit_refs(&self, epoch: u64, mutations: &[MutationRef<'_>]) -> Result<Commit> {
        self.commit_encoded(
            epoch,
            batch::encode_refs(RECORD_HEADER_SIZE, epoch, mutations.iter().copied())?,
        )
    }

    fn commit_encoded(&self, epoch: u64, mut enc: batch::Encoded) -> Result<Commit> {
        let inner = &self.inner;
        let mut w = lock(&inner.write);
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if epoch < w.last_epoch {
            return Err(Error::InvalidArgument(format!(
                "epoch {epoch} is below the log's epoch {}",
                w.last_epoch
            )));
        }
        w.wal.check_writable()?;
        let seq = w.last_seq + 1;
        enc.set_seq(seq);
        fill_record_header(&mut enc.buf, TYPE_SEQ_BATCH);
        let record = Bytes::from(enc.buf);
        let needs_sync = w.wal.shared().policy() == FsyncPolicy::Always;
        w.wal.append(&record, seq)?;
        let raw = record.slice(RECORD_HEADER_SIZE..);
        inner.apply_locked(&mut w, seq, epoch, &raw, &enc.entries);
        Ok(Commit {
            seq,
            epoch,
            needs_sync,
            durability: inner.durability.clone(),
        })
    }

    /// Commit several batches at once (e.g. the pipelined writes of one connection):
    /// each gets its own consecutive sequence number and stays its own atomic batch,
    /// but all are appended with one `write()` and one commit-lock acquisition. On
    /// error none was applied. Returns one [`Commit`] per batch, in order.
    pub fn commit_many(&self, epoch: u64, batches: Vec<Vec<Mutation>>) -> Result<Vec<Commit>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut encoded = Vec::with_capacity(batches.len());
        for muts in &batches {
            encoded.push(batch::encode(RECORD_HEADER_SIZE, epoch, muts)?);
        }
        let inner = &self.inner;
        let mut w = lock(&inner.write);
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if epoch < w.last_epoch {
            return Err(Error::InvalidArgument(format!(
                "epoch {epoch} is below the log's epoch {}",
                w.last_epoch
            )));
        }
        w.wal.check_writable()?;
        let first = w.last_seq + 1;
        let total: usize = encoded.iter().map(|e| e.buf.len()).sum();
        let mut all = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(encoded.len());
        for (i, enc) in encoded.iter_mut().enumerate() {
            enc.set_seq(first + i as u64);
            fill_record_header(&mut enc.buf, TYPE_SEQ_BATCH);
            let start = all.len();
            all.extend_from_slice(&enc.buf);
            spans.push(start + RECORD_HEADER_SIZE..all.len());
        }
        let last = first + encoded.len() as u64 - 1;
        let needs_sync = w.wal.shared().policy() == FsyncPolicy::Always;
        w.wal.append(&all, last)?;
        let all = Bytes::from(all);
        let mut out = Vec::with_capacity(encoded.len());
        for (i, (enc, span)) in encoded.iter().zip(spans).enumerate() {
            let seq = first + i as u64;
            let raw = all.slice(span);
            inner.apply_locked(&mut w, seq, epoch, &raw, &enc.entries);
            out.push(Commit {
                seq,
                epoch,
                needs_sync,
                durability: inner.durability.clone(),
            });
        }
        Ok(out)
    }

    /// A replica logs and applies a batch exactly as the primary encoded it.
    /// Its sequence must be `last_seq + 1` (else `Error::SeqGap`) and its epoch not
    /// below the last one; the bytes must parse (else `InvalidArgument`).
    pub fn apply_replicated(&self, raw: Bytes) -> Result<Commit> {
        let parsed = batch::parse(&raw).map_err(|e| Error::InvalidArgument(format!("replicated batch: {e}")))?;
        let inner = &self.inner;
        let mut w = lock(&inner.write);
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if parsed.seq != w.last_seq + 1 {
            return Err(Error::SeqGap {
                expected: w.last_seq + 1,
                got: parsed.seq,
            });
        }
        if parsed.epoch < w.last_epoch {
            return Err(Error::InvalidArgument(format!(
                "replicated batch {} has epoch {} below the log's epoch {}",
                parsed.seq, parsed.epoch, w.last_epoch
            )));
        }
        w.wal.check_writable()?;
        let mut record = vec![0u8; RECORD_HEADER_SIZE];
        record.extend_from_slice(&raw);
        fill_record_header(&mut record, TYPE_SEQ_BATCH);
        let needs_sync = w.wal.shared().policy() == FsyncPolicy::Always;
        w.wal.append(&record, parsed.seq)?;
        inner.apply_locked(&mut w, parsed.seq, parsed.epoch, &raw, &parsed.entries);
        Ok(Commit {
            seq: parsed.seq,
            epoch: parsed.epoch,
            needs_sync,
            durability: inner.durability.clone(),
        })
    }

    /// The stored record of `key`, expired or not (the caller decides).
    /// An error only when a table block fails its checksum (never wrong data).
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        let v = self.inner.current();
        let seq = self.inner.visible_seq.load(Ordering::Acquire);
        Ok(v.lookup(key, seq)?.flatten())
    }

    /// Up to `limit` records with key >= `start`, in key order (memtables and tables
    /// merged, tombstones hidden), from one consistent state.
    pub fn scan_from(&self, start: &[u8], limit: usize) -> Result<Vec<(Bytes, Record)>> {
        let v = self.inner.current();
        let seq = self.inner.visible_seq.load(Ordering::Acquire);
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        for item in MergeNewestFirst::new(v.sources(start, seq, true)) {
            let (k, r) = item?;
            if let Some(r) = r {
                out.push((k, r));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The batches after `seq` (`seq + 1` ..= `last_seq` at the time of the call),
    /// as raw bytes, for the replication feed. `Error::Compacted` when the backlog no
    /// longer holds `seq + 1` (the replica needs a full copy); the iterator yields it
    /// too if batches are evicted while it runs.
    pub fn batches_since(&self, seq: u64) -> Result<BatchIter> {
        let end = self.inner.visible_seq.load(Ordering::Acquire);
        if seq > end {
            return Err(Error::InvalidArgument(format!(
                "batch {seq} is ahead of the log (last {end})"
            )));
        }
        let (first, _, _) = self.inner.backlog.span();
        if seq < end && seq + 1 < first {
            return Err(Error::Compacted {
                requested: seq + 1,
                oldest: first,
            });
        }
        Ok(BatchIter {
            backlog: self.inner.backlog.clone(),
            next: seq + 1,
            end,
        })
    }

    /// (epoch, seq) of the newest batch (0, 0 for an empty log).
    pub fn last_seq(&self) -> (u64, u64) {
        let w = lock(&self.inner.write);
        (w.last_epoch, w.last_seq)
    }

    /// The newest batch an fdatasync has covered.
    pub fn durable_seq(&self) -> u64 {
        self.inner.durability.synced()
    }

    /// A future completing when batch `seq` is fdatasync'ed (whatever the policy:
    /// under `Everysec` within about a second, under `No` at the next rotation or close).
    pub fn wait_synced(&self, seq: u64) -> DurableFuture {
        DurableFuture {
            state: self.inner.durability.clone(),
            seq,
        }
    }

    /// Make everything appended so far durable now (an fdatasync on this thread).
    pub fn sync(&self) -> Result<u64> {
        let mut w = lock(&self.inner.write);
        w.wal.sync_now()?;
        Ok(w.last_seq)
    }

    /// Switch the WAL sync policy (live config reload). Commits made before keep the
    /// durability rule they were made under.
    pub fn set_fsync(&self, policy: FsyncPolicy) {
        lock(&self.inner.write).wal.shared().set_policy(policy);
    }

    /// Change compaction's write rate (bytes per second; 0 = unlimited).
    pub fn set_compaction_rate(&self, bytes_per_s: u64) {
        self.inner.limiter.set_rate(bytes_per_s);
    }

    /// A consistent point-in-time view (reads at one sequence number; the files it
    /// needs stay readable until it is dropped). Cheap: nothing is copied.
    pub fn snapshot(&self) -> Snapshot {
        let w = lock(&self.inner.write);
        Snapshot::new(
            self.inner.current(),
            w.last_seq,
            w.last_epoch,
            w.live_keys.max(0) as u64,
        )
    }

    /// Write a consistent copy of the database into `dest` (a new directory that
    /// [`Db::open`] opens at the same sequence number). Tables are hard-linked when
    /// possible, the memtables written as one table; the directory appears at once
    /// (built under a temporary name, synced, renamed, parent synced).
    pub fn checkpoint(&self, dest: &Path) -> Result<()> {
        crate::snapshot::checkpoint(self, dest)
    }

    /// Replace the whole database by a full copy at (epoch, seq) (a replica that
    /// could not resume): `entries` in strictly increasing key order. Tables are built
    /// first while reads continue on the old data; then one manifest publication
    /// switches atomically (a crash leaves the old or the new state, never a mix).
    /// The log continues at `seq + 1`.
    pub fn install_copy<I>(&self, epoch: u64, seq: u64, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = Result<(Bytes, Record)>>,
    {
        crate::snapshot::install_copy(self, epoch, seq, entries.into_iter())
    }

    /// Up to `n` (key, expire_at_ms) of keys with a TTL written since start-up,
    /// cycling through all of them (the caller's active expiry cycle).
    pub fn expiring_sample(&self, n: usize) -> Vec<(Bytes, i64)> {
        let mut ex = lock(&self.inner.expiring);
        if ex.cycle.is_empty() {
            let keys: Vec<Bytes> = ex.keys.keys().cloned().collect();
            ex.cycle = keys;
        }
        let mut out = Vec::new();
        while out.len() < n {
            let Some(k) = ex.cycle.pop() else { break };
            if let Some(&at) = ex.keys.get(&k) {
                out.push((k, at));
            }
        }
        out
    }

    /// Number of stored keys (expired ones not yet removed included).
    pub fn len(&self) -> u64 {
        lock(&self.inner.write).live_keys.max(0) as u64
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the data is a partial copy (migrated from an interrupted full copy of
    /// the Python engine): the replica must take a full copy before serving.
    pub fn needs_full_copy(&self) -> bool {
        lock(&self.inner.manifest).state.needs_full_copy
    }

    /// What the last start-up did (torn tail, migration, legacy replication position).
    pub fn recovery(&self) -> &RecoveryInfo {
        &self.inner.recovery
    }

    /// Why writes are refused, if they are.
    pub fn write_error(&self) -> Option<String> {
        lock(&self.inner.write).wal.refusal()
    }

    /// Freeze the memtable and wait until every frozen memtable is in a table.
    pub fn flush(&self) -> Result<()> {
        loop {
            let frozen = {
                let mut w = lock(&self.inner.write);
                if self.inner.current().mem.is_empty() {
                    break;
                }
                self.inner.freeze_locked(&mut w)?
            };
            if frozen {
                break;
            }
            // MAX_IMMUTABLE frozen memtables wait already: let the flush thread make room.
            crate::background::wait_flushed(&self.inner)?;
        }
        crate::background::wait_flushed(&self.inner)
    }

    /// Wait until no compaction is running or due (tests, tools).
    pub fn wait_for_compactions(&self) -> Result<()> {
        crate::background::wait_compacted(&self.inner)
    }

    /// The engine's figures now.
    pub fn stats(&self) -> Stats {
        crate::background::stats(&self.inner)
    }

    /// Stop the background threads and make pending writes durable. Unflushed data
    /// stays in the WAL (replayed at the next open).
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.limiter.cancel();
        lock(&self.inner.bg).closed = true;
        self.inner.bg_cond.notify_all();
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
        lock(&self.inner.write).wal.close()
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.dir)
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
