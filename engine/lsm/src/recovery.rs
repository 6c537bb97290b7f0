//! Opening a database: recovery, the migration of Python-engine (version 1)
//! directories, and the start of the background threads.
//!
//! Order: CURRENT -> manifest (CRC checked) -> open every listed table (footer,
//! index and filter checked; a missing table is corruption) -> delete what no
//! manifest needs (tables not listed, other manifests, segments below
//! `log_number`, leftover temporary files) -> replay the WAL segments from
//! `log_number` in order (docs/formats/wal.md "Recovery rules": a torn tail of
//! the newest segment is cut off, anything else is corruption; version-2 batches
//! must continue the sequence exactly) -> fsync the newest segment (so
//! `durable_seq` is true) -> start a new segment.
//!
//! Migration: when the manifest or a replayed segment is version 1, the replayed
//! data, plus a tombstone for the replication position record the Python engine
//! kept in user data, is written to a table, and a version-2 manifest records the
//! position as `last_seq`/`last_epoch`; only then are the version-1 segments
//! removed. A crash before that publication leaves the version-1 directory as it
//! was (migrated again at the next start); after it, the directory is version 2.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;

use crate::backlog::Backlog;
use crate::block_cache::BlockCache;
use crate::db::{
    insert_batch, BgCounters, BgState, Db, ExpiryIndex, Inner, LiveTable, ManifestCtl, Version, WriteState,
};
use crate::durability::Durability;
use crate::error::{Error, Result};
use crate::filenames::{manifest_name, parse, table_name, wal_name, FileKind, CURRENT};
use crate::fs::{make_dirs, remove_if_exists};
use crate::manifest::{read_current, ManifestState, TableMeta, VERSION_1, VERSION_2};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::rate_limiter::RateLimiter;
use crate::sstable_builder::SSTableBuilder;
use crate::sstable_reader::{BloomStats, Table};
use crate::wal_format::FILE_HEADER_SIZE;
use crate::wal_reader::scan_segment;
use crate::wal_writer::WalWriter;

/// The key under which the Python engine kept the replication position in user data
/// (docs/formats/replication.md, section 2). Removed by the migration.
pub const LEGACY_POSITION_KEY: &[u8] = b"\xff\xffvelocity/replication/position";

/// The replication position a version-1 directory held as a hidden key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyPosition {
    /// Epoch of the last batch.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
    /// Flag INCOMPLETE: a full copy was being loaded.
    pub incomplete: bool,
}

impl LegacyPosition {
    /// Decode the record's value (epoch:u64 seq:u64 flags:u8, little-endian).
    pub fn decode(value: &[u8]) -> Option<LegacyPosition> {
        if value.len() != 17 {
            return None;
        }
        let mut e = [0u8; 8];
        let mut s = [0u8; 8];
        e.copy_from_slice(&value[..8]);
        s.copy_from_slice(&value[8..16]);
        Some(LegacyPosition {
            epoch: u64::from_le_bytes(e),
            seq: u64::from_le_bytes(s),
            incomplete: value[16] & 1 != 0,
        })
    }
}

/// What the last start-up did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryInfo {
    /// WAL segments replayed.
    pub segments: u64,
    /// Batches replayed.
    pub batches: u64,
    /// Bytes of a torn tail dropped (`velocity_wal_truncated_bytes`).
    pub torn_bytes: u64,
    /// Where (`path:offset`), and why, when a tail was dropped.
    pub torn_at: String,
    /// Files removed because no manifest needed them (an interrupted flush or compaction).
    pub removed_files: Vec<String>,
    /// The directory was written by the Python engine (version 1) and was migrated.
    pub migrated_from_v1: bool,
    /// The replication position the version-1 data held, if any (now `last_seq`).
    pub legacy_position: Option<LegacyPosition>,
    /// Time the start-up took.
    pub seconds: f64,
}

fn io(ctx: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(ctx, e)
}

pub(crate) fn open(opts: Options) -> Result<Db> {
    let t0 = Instant::now();
    let fs = opts.fs.clone();
    let dir = opts.dir.clone();
    make_dirs(fs.as_ref(), &dir).map_err(io(format!("creating {}", dir.display())))?;
    let lock = fs.lock_file(&dir.join(crate::filenames::LOCK)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::InvalidArgument(format!("{} is in use by another engine (LOCK is held)", dir.display()))
        } else {
            Error::io(format!("locking {}", dir.display()), e)
        }
    })?;
    let cache = Arc::new(BlockCache::new(opts.block_cache_bytes));
    let bloom = Arc::new(BloomStats::default());
    let (manifest_no, mut state) = read_current(fs.as_ref(), &dir)?.unwrap_or((0, ManifestState::default()));
    let mut tables = Vec::new();
    for m in &state.tables {
        let path = dir.join(table_name(m.number));
        if !fs.exists(&path) {
            return Err(Error::corruption(
                dir.join(CURRENT),
                0,
                format!(
                    "{} names {}, which is missing",
                    manifest_name(manifest_no),
                    table_name(m.number)
                ),
            ));
        }
        let t = Table::open(fs.as_ref(), &path, m.number, cache.clone(), bloom.clone())?;
        tables.push(LiveTable {
            meta: m.clone(),
            table: Arc::new(t),
        });
    }
    let names = fs.list_dir(&dir).map_err(io(format!("listing {}", dir.display())))?;
    let max_seen = names
        .iter()
        .filter_map(|n| match parse(n) {
            FileKind::Wal(x) | FileKind::Table(x) | FileKind::Manifest(x) => Some(x),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let next_file = AtomicU64::new(state.next_file.max(manifest_no + 1).max(max_seen + 1).max(1));
    let alloc = || next_file.fetch_add(1, std::sync::atomic::Ordering::AcqRel);

    let mut info = RecoveryInfo::default();
    let listed: HashSet<u64> = state.tables.iter().map(|t| t.number).collect();
    let mut segments = Vec::new();
    for name in &names {
        let remove = match parse(name) {
            FileKind::Table(n) => !listed.contains(&n),
            FileKind::Manifest(n) => n != manifest_no,
            FileKind::Wal(n) if n < state.log_number => true,
            FileKind::Wal(n) => {
                segments.push(n);
                false
            }
            FileKind::Temp => true,
            _ => false,
        };
        if remove {
            remove_if_exists(fs.as_ref(), &dir.join(name)).map_err(io(format!("removing {name}")))?;
            info.removed_files.push(name.clone());
        }
    }
    if !info.removed_files.is_empty() {
        fs.sync_dir(&dir).map_err(io(format!("fsync of {}", dir.display())))?;
    }
    segments.sort_unstable();

    // Replay.
    let mem = Arc::new(Memtable::new());
    let lookup = Version {
        mem: mem.clone(),
        imm: Vec::new(),
        tables: tables.clone(),
    };
    let mut live_keys = state.live_keys as i64;
    let mut expiring = ExpiryIndex::default();
    let mut last_seq = state.last_seq;
    let mut last_epoch = state.last_epoch;
    let mut synthetic = 0u64;
    let mut saw_v1 = state.version == VERSION_1;
    let mut saw_v2 = state.version == VERSION_2;
    let mut replayed: Vec<(u64, Bytes)> = Vec::new();
    for (i, &n) in segments.iter().enumerate() {
        let path = dir.join(wal_name(n));
        let last = i + 1 == segments.len();
        let scan = scan_segment(fs.as_ref(), &path, n, last)?;
        if let Some((off, why)) = &scan.problem {
            if !scan.torn {
                return Err(Error::corruption(&path, *off, why.clone()));
            }
        }
        info.segments += 1;
        match scan.version {
            1 if saw_v2 => {
                return Err(Error::corruption(
                    &path,
                    0,
                    "a version-1 segment after version-2 data".to_string(),
                ))
            }
            1 => saw_v1 = true,
            2 if saw_v1 => {
                return Err(Error::corruption(
                    &path,
                    0,
                    "a version-2 segment after version-1 data".to_string(),
                ))
            }
            2 => saw_v2 = true,
            _ => {}
        }
        for b in &scan.batches {
            let seq = match b.position {
                Some((epoch, seq)) => {
                    if seq != last_seq + 1 {
                        return Err(Error::corruption(
                            &path,
                            b.offset,
                            format!("batch {seq} does not follow batch {last_seq} (a segment is missing)"),
                        ));
                    }
                    if epoch < last_epoch {
                        return Err(Error::corruption(
                            &path,
                            b.offset,
                            format!("batch {seq} has epoch {epoch}, below the previous epoch {last_epoch}"),
                        ));
                    }
                    last_seq = seq;
                    last_epoch = epoch;
                    replayed.push((seq, b.payload.clone()));
                    seq
                }
                None => {
                    synthetic += 1;
                    synthetic
                }
            };
            let (delta, status) = insert_batch(&lookup, seq, &b.payload, &b.entries, &mut expiring);
            status?;
            live_keys += delta;
            info.batches += 1;
        }
        if let Some((off, why)) = &scan.problem {
            info.torn_bytes = scan.dropped_bytes();
            info.torn_at = format!("{}:{off} ({why})", path.display());
            if scan.valid_end < FILE_HEADER_SIZE as u64 {
                remove_if_exists(fs.as_ref(), &path).map_err(io(format!("removing {}", path.display())))?;
            } else {
                let f = fs
                    .open_append(&path)
                    .map_err(io(format!("opening {}", path.display())))?;
                f.truncate(scan.valid_end)
                    .map_err(io(format!("truncating {}", path.display())))?;
                f.sync_all().map_err(io(format!("fsync of {}", path.display())))?;
            }
            fs.sync_dir(&dir).map_err(io(format!("fsync of {}", dir.display())))?;
        } else if last {
            // Make what the last run appended durable before reporting it as durable.
            let f = fs
                .open_append(&path)
                .map_err(io(format!("opening {}", path.display())))?;
            f.sync_data().map_err(io(format!("fdatasync of {}", path.display())))?;
        }
    }

    let mut mem = mem;
    let mut manifest_no = manifest_no;
    let segment;
    if saw_v1 {
        // Migrate: everything replayed, minus the hidden position record, into a table.
        let pos = lookup.lookup(LEGACY_POSITION_KEY, u64::MAX)?;
        let legacy = pos
            .as_ref()
            .and_then(|r| r.as_ref())
            .and_then(|r| LegacyPosition::decode(&r.value));
        if matches!(pos, Some(Some(_))) {
            mem.insert(Bytes::from_static(LEGACY_POSITION_KEY), synthetic + 1, None, 0);
            live_keys -= 1;
        }
        if !mem.is_empty() {
            let n = alloc();
            let path = dir.join(table_name(n));
            let mut b = SSTableBuilder::create(fs.as_ref(), &path, n)?;
            if let Err(e) = mem.for_each_newest(|k, r| b.add(k, r)) {
                b.abort();
                return Err(e);
            }
            let ti = b.finish()?;
            let t = Table::open(fs.as_ref(), &path, n, cache.clone(), bloom.clone())?;
            let meta = TableMeta {
                number: n,
                tier: 0,
                size: ti.size,
                entries: ti.entries,
                smallest: ti.smallest,
                largest: ti.largest,
            };
            state.tables.push(meta.clone());
            tables.push(LiveTable {
                meta,
                table: Arc::new(t),
            });
        }
        segment = alloc();
        let number = alloc();
        state.version = VERSION_2;
        state.log_number = segment;
        state.live_keys = live_keys.max(0) as u64;
        state.last_seq = legacy.map_or(0, |p| p.seq);
        state.last_epoch = legacy.map_or(0, |p| p.epoch);
        state.needs_full_copy = legacy.is_some_and(|p| p.incomplete);
        state.next_file = next_file.load(std::sync::atomic::Ordering::Acquire);
        crate::manifest::publish(fs.as_ref(), &dir, number, &state)?;
        if manifest_no != 0 {
            remove_if_exists(fs.as_ref(), &dir.join(manifest_name(manifest_no)))
                .map_err(io("removing the old manifest".into()))?;
        }
        manifest_no = number;
        for &n in &segments {
            remove_if_exists(fs.as_ref(), &dir.join(wal_name(n))).map_err(io(format!("removing {}", wal_name(n))))?;
        }
        last_seq = state.last_seq;
        last_epoch = state.last_epoch;
        replayed.clear();
        mem = Arc::new(Memtable::new());
        info.migrated_from_v1 = true;
        info.legacy_position = legacy;
    } else {
        segment = alloc();
        state.version = VERSION_2;
    }

    // The backlog starts with the newest replayed batches (copied out of the segment buffers).
    let mut start = replayed.len();
    let mut acc = 0;
    while start > 0 && acc + replayed[start - 1].1.len() <= opts.backlog_bytes {
        start -= 1;
        acc += replayed[start].1.len();
    }
    let first = replayed.get(start).map_or(last_seq + 1, |r| r.0);
    let backlog = Arc::new(Backlog::new(opts.backlog_bytes, first));
    for (seq, raw) in &replayed[start..] {
        backlog.push(*seq, Bytes::copy_from_slice(raw));
    }
    drop(replayed);
    finish(
        opts,
        t0,
        info,
        state,
        manifest_no,
        next_file,
        tables,
        mem,
        live_keys,
        expiring,
        last_seq,
        last_epoch,
        segment,
        backlog,
        cache,
        bloom,
        lock,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    opts: Options,
    t0: Instant,
    mut info: RecoveryInfo,
    state: ManifestState,
    manifest_no: u64,
    next_file: AtomicU64,
    tables: Vec<LiveTable>,
    mem: Arc<Memtable>,
    live_keys: i64,
    expiring: ExpiryIndex,
    last_seq: u64,
    last_epoch: u64,
    segment: u64,
    backlog: Arc<Backlog>,
    cache: Arc<BlockCache>,
    bloom: Arc<BloomStats>,
    lock: Box<dyn std::any::Any + Send + Sync>,
) -> Result<Db> {
    let fs = opts.fs.clone();
    let durability = Durability::new(last_seq);
    let wal = WalWriter::create(
        fs.clone(),
        &opts.dir,
        segment,
        last_seq,
        opts.fsync,
        opts.everysec_interval,
        durability.clone(),
    )?;
    info.seconds = t0.elapsed().as_secs_f64();
    let inner = Arc::new(Inner {
        fs,
        dir: opts.dir.clone(),
        write: Mutex::new(WriteState {
            wal,
            last_seq,
            last_epoch,
            live_keys,
        }),
        version: RwLock::new(Arc::new(Version {
            mem,
            imm: Vec::new(),
            tables,
        })),
        visible_seq: AtomicU64::new(last_seq),
        visible_epoch: AtomicU64::new(last_epoch),
        manifest: Mutex::new(ManifestCtl {
            number: manifest_no,
            state,
        }),
        next_file,
        durability,
        backlog,
        cache,
        bloom,
        limiter: RateLimiter::new(opts.compaction_rate_bytes),
        bg: Mutex::new(BgState {
            compaction_wanted: true,
            ..Default::default()
        }),
        bg_cond: Condvar::new(),
        counters: BgCounters::default(),
        expiring: Mutex::new(expiring),
        recovery: info,
        closed: AtomicBool::new(false),
        opts,
    });
    let mut threads = Vec::new();
    let i2 = inner.clone();
    threads.push(
        std::thread::Builder::new()
            .name("vlsm-flush".into())
            .spawn(move || crate::background::flush_loop(i2))
            .map_err(|e| Error::io("starting the flush thread", e))?,
    );
    if inner.opts.compaction {
        let i3 = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("vlsm-compact".into())
                .spawn(move || crate::background::compaction_loop(i3))
                .map_err(|e| Error::io("starting the compaction thread", e))?,
        );
    }
    let db = Db {
        inner,
        threads: Mutex::new(threads),
        _lock: lock,
    };
    {
        let mut w = crate::db::lock(&db.inner.write);
        if db.inner.current().mem.approx_bytes() >= db.inner.opts.memtable_bytes {
            db.inner.freeze_locked(&mut w)?;
        }
    }
    db.inner.bg_cond.notify_all();
    Ok(db)
}
