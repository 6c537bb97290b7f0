//! Consistent views: [`Snapshot`] (a read view at one sequence number), checkpoints
//! (a copy of the database in another directory) and full-copy installs.
//!
//! A snapshot holds an `Arc` of the version it was taken at (memtables and tables)
//! and reads at its sequence number, so writes, flushes and compactions after it
//! are invisible to it; table files compaction removes meanwhile stay readable
//! through their open handles. Nothing is copied or frozen.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::db::{lock, Db, Inner, LiveTable, Version};
use crate::error::{Error, Result};
use crate::filenames::{table_name, FileKind};
use crate::fs::{make_dirs, remove_if_exists, FileSystem};
use crate::manifest::{ManifestState, TableMeta};
use crate::memtable::Memtable;
use crate::merge::{Entry, MergeNewestFirst};
use crate::record::Record;
use crate::sstable_builder::SSTableBuilder;
use crate::sstable_reader::Table;

const CHUNK: usize = 128;
/// Tier of tables built by full copies and restores (kept out of small-tier merges).
pub const COPY_TIER: u32 = 8;
/// Size at which a full copy or restore starts a new table.
pub const COPY_TABLE_BYTES: u64 = 64 << 20;

/// Ordered iteration over one memtable at a sequence number (owns an `Arc` of it).
pub struct MemIter {
    mem: Arc<Memtable>,
    seq: u64,
    start: Bytes,
    last: Option<Bytes>,
    buf: VecDeque<Entry>,
    done: bool,
}

impl MemIter {
    /// Keys >= `start`, newest version <= `seq` each.
    pub fn new(mem: Arc<Memtable>, start: &[u8], seq: u64) -> MemIter {
        MemIter {
            mem,
            seq,
            start: Bytes::copy_from_slice(start),
            last: None,
            buf: VecDeque::new(),
            done: false,
        }
    }
}

impl Iterator for MemIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.buf.is_empty() && !self.done {
            let chunk = self.mem.chunk(&self.start, self.last.as_deref(), self.seq, CHUNK);
            self.done = chunk.len() < CHUNK;
            self.last = chunk.last().map(|(k, _)| k.clone());
            self.buf.extend(chunk);
        }
        self.buf.pop_front().map(Ok)
    }
}

/// A consistent read view (see the module docs). `Send + Sync`, cheap to hold.
pub struct Snapshot {
    version: Arc<Version>,
    seq: u64,
    epoch: u64,
    live_keys: u64,
}

impl Snapshot {
    pub(crate) fn new(version: Arc<Version>, seq: u64, epoch: u64, live_keys: u64) -> Snapshot {
        Snapshot {
            version,
            seq,
            epoch,
            live_keys,
        }
    }

    /// The sequence number it reads at (the newest batch it holds).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// That batch's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Stored keys at that point.
    pub fn live_keys(&self) -> u64 {
        self.live_keys
    }

    /// The record of `key` at the snapshot.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        Ok(self.version.lookup(key, self.seq)?.flatten())
    }

    /// Every record with key >= `start`, in order, tombstones hidden (an owned iterator:
    /// stream a full copy or a snapshot file from it). Blocks it reads bypass the cache.
    pub fn iter_from(&self, start: &[u8]) -> impl Iterator<Item = Result<(Bytes, Record)>> + Send + 'static {
        MergeNewestFirst::new(self.version.sources(start, self.seq, false)).filter_map(|item| match item {
            Ok((k, Some(r))) => Some(Ok((k, r))),
            Ok((_, None)) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// Up to `limit` records from `start`.
    pub fn scan_from(&self, start: &[u8], limit: usize) -> Result<Vec<(Bytes, Record)>> {
        self.iter_from(start).take(limit).collect()
    }

    /// Records and tombstones of the memtables only, merged (checkpoints).
    fn memtable_entries(&self) -> MergeNewestFirst {
        let mut srcs: Vec<crate::merge::Source> = vec![Box::new(MemIter::new(self.version.mem.clone(), b"", self.seq))];
        for f in self.version.imm.iter().rev() {
            srcs.push(Box::new(MemIter::new(f.mem.clone(), b"", self.seq)));
        }
        MergeNewestFirst::new(srcs)
    }
}

fn copy_table(fs: &dyn FileSystem, t: &LiveTable, dst: &Path) -> Result<()> {
    if fs.hard_link(&t.table.path, dst).is_ok() {
        return Ok(());
    }
    let src = fs.open_read(&t.table.path);
    let ctx = |e| Error::io(format!("copying {} to {}", t.table.path.display(), dst.display()), e);
    // The file may have been removed by a compaction meanwhile: read what the table holds.
    let data = match src {
        Ok(f) => {
            let mut buf = vec![0u8; f.size() as usize];
            f.read_exact_at(&mut buf, 0).map_err(ctx)?;
            buf
        }
        Err(_) => {
            return Err(Error::InvalidArgument(format!(
                "{} was compacted away while the checkpoint ran; retry",
                t.table.path.display()
            )))
        }
    };
    let out = fs.create(dst).map_err(ctx)?;
    out.append(&data).map_err(ctx)?;
    out.sync_all().map_err(ctx)
}

pub(crate) fn checkpoint(db: &Db, dest: &Path) -> Result<()> {
    let inner = &db.inner;
    let fs = inner.fs.as_ref();
    if fs.exists(dest) {
        return Err(Error::InvalidArgument(format!("{} already exists", dest.display())));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    make_dirs(fs, parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let snap = db.snapshot();
    let res = (|| -> Result<()> {
        fs.create_dir(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let mut tables: Vec<TableMeta> = Vec::new();
        let mut max_number = 0;
        for t in &snap.version.tables {
            copy_table(fs, t, &tmp.join(table_name(t.meta.number)))?;
            tables.push(t.meta.clone());
            max_number = max_number.max(t.meta.number);
        }
        let number = max_number + 1;
        let path = tmp.join(table_name(number));
        let mut b = SSTableBuilder::create(fs, &path, number)?;
        for item in snap.memtable_entries() {
            let (k, r) = item?;
            b.add(&k, r.as_ref())?;
        }
        if b.entries() > 0 {
            let info = b.finish()?;
            tables.push(TableMeta {
                number,
                tier: 0,
                size: info.size,
                entries: info.entries,
                smallest: info.smallest,
                largest: info.largest,
            });
        } else {
            b.abort();
        }
        let state = ManifestState {
            version: crate::manifest::VERSION_2,
            next_file: number + 3,
            log_number: number + 2,
            live_keys: snap.live_keys,
            last_seq: snap.seq,
            last_epoch: snap.epoch,
            needs_full_copy: lock(&inner.manifest).state.needs_full_copy,
            tables,
        };
        crate::manifest::publish(fs, &tmp, number + 1, &state)?;
        fs.rename(&tmp, dest)
            .map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), dest.display()), e))?;
        fs.sync_dir(parent)
            .map_err(|e| Error::io(format!("fsync of {}", parent.display()), e))
    })();
    if res.is_err() {
        if let Ok(names) = fs.list_dir(&tmp) {
            for n in names {
                let _ = fs.remove_file(&tmp.join(n));
            }
        }
    }
    res
}

/// Build tier-`COPY_TIER` tables from sorted entries (full copies, restores).
/// Returns the tables, the entry count and the keys with a TTL.
#[allow(clippy::type_complexity)]
pub(crate) fn build_copy_tables(
    fs: &dyn FileSystem,
    dir: &Path,
    mut alloc: impl FnMut() -> u64,
    entries: impl Iterator<Item = Result<(Bytes, Record)>>,
    mut on_entry: impl FnMut(&Bytes, &Record),
) -> Result<(Vec<TableMeta>, u64)> {
    let mut tables = Vec::new();
    let mut built = Vec::new();
    let mut count = 0u64;
    let mut builder: Option<(SSTableBuilder<'_>, u64)> = None;
    let mut last: Option<Bytes> = None;
    let res = (|| -> Result<()> {
        for item in entries {
            let (k, r) = item?;
            if last.as_ref().is_some_and(|l| *l >= k) {
                return Err(Error::InvalidArgument(
                    "full copy entries are not in strictly increasing key order".into(),
                ));
            }
            last = Some(k.clone());
            if builder.is_none() {
                let n = alloc();
                let path = dir.join(table_name(n));
                built.push(path.clone());
                builder = Some((SSTableBuilder::create(fs, &path, n)?, n));
            }
            let (b, _) = builder.as_mut().expect("just set");
            b.add(&k, Some(&r))?;
            on_entry(&k, &r);
            count += 1;
            if b.bytes_written() >= COPY_TABLE_BYTES {
                let (b, n) = builder.take().expect("set");
                let info = b.finish()?;
                tables.push(TableMeta {
                    number: n,
                    tier: COPY_TIER,
                    size: info.size,
                    entries: info.entries,
                    smallest: info.smallest,
                    largest: info.largest,
                });
            }
        }
        if let Some((b, n)) = builder.take() {
            let info = b.finish()?;
            tables.push(TableMeta {
                number: n,
                tier: COPY_TIER,
                size: info.size,
                entries: info.entries,
                smallest: info.smallest,
                largest: info.largest,
            });
        }
        Ok(())
    })();
    if let Err(e) = res {
        if let Some((b, _)) = builder.take() {
            b.abort();
        }
        for p in built {
            let _ = remove_if_exists(fs, &p);
        }
        return Err(e);
    }
    Ok((tables, count))
}

pub(crate) fn install_copy(
    db: &Db,
    epoch: u64,
    seq: u64,
    entries: impl Iterator<Item = Result<(Bytes, Record)>>,
) -> Result<()> {
    let inner: &Inner = &db.inner;
    let fs = inner.fs.as_ref();
    let mut ttl: Vec<(Bytes, i64)> = Vec::new();
    let (metas, count) = build_copy_tables(
        fs,
        &inner.dir,
        || inner.alloc_file(),
        entries,
        |k, r| {
            if r.expire_at_ms != 0 {
                ttl.push((Bytes::copy_from_slice(k), r.expire_at_ms));
            }
        },
    )?;
    let mut opened = Vec::new();
    for m in &metas {
        let t = Table::open(
            fs,
            &inner.dir.join(table_name(m.number)),
            m.number,
            inner.cache.clone(),
            inner.bloom.clone(),
        )?;
        opened.push(LiveTable {
            meta: m.clone(),
            table: Arc::new(t),
        });
    }
    let cleanup = |metas: &[TableMeta]| {
        for m in metas {
            let _ = remove_if_exists(fs, &inner.dir.join(table_name(m.number)));
        }
    };
    let mut ctl = lock(&inner.manifest);
    let mut w = lock(&inner.write);
    if inner.closed.load(Ordering::Acquire) {
        drop(w);
        drop(ctl);
        cleanup(&metas);
        return Err(Error::Closed);
    }
    let segment = inner.alloc_file();
    if let Err(e) = w.wal.reset(segment, seq) {
        drop(w);
        drop(ctl);
        cleanup(&metas);
        return Err(e);
    }
    let state = ManifestState {
        log_number: segment,
        live_keys: count,
        last_seq: seq,
        last_epoch: epoch,
        needs_full_copy: false,
        tables: metas.clone(),
        ..Default::default()
    };
    let old_tables: Vec<u64> = ctl.state.tables.iter().map(|t| t.number).collect();
    let old = match crate::background::publish_manifest(inner, &mut ctl, state) {
        Ok(o) => o,
        Err(e) => {
            drop(w);
            drop(ctl);
            cleanup(&metas);
            return Err(e);
        }
    };
    inner.set_version(Version {
        mem: Arc::new(Memtable::new()),
        imm: Vec::new(),
        tables: opened,
    });
    w.last_seq = seq;
    w.last_epoch = epoch;
    w.live_keys = count as i64;
    inner.visible_epoch.store(epoch, Ordering::Release);
    inner.visible_seq.store(seq, Ordering::Release);
    inner.backlog.reset(seq + 1);
    inner.durability.reset_to(seq);
    {
        let mut ex = lock(&inner.expiring);
        ex.keys.clear();
        ex.cycle.clear();
        ex.keys.extend(ttl);
    }
    drop(w);
    if old != 0 {
        let _ = remove_if_exists(fs, &inner.dir.join(crate::filenames::manifest_name(old)));
    }
    drop(ctl);
    for n in old_tables {
        let _ = remove_if_exists(fs, &inner.dir.join(table_name(n)));
    }
    if let Ok(names) = fs.list_dir(&inner.dir) {
        for name in names {
            if let FileKind::Wal(n) = crate::filenames::parse(&name) {
                if n < segment {
                    let _ = remove_if_exists(fs, &inner.dir.join(name));
                }
            }
        }
    }
    Ok(())
}
