//! The flush thread and the compaction thread, and what they install.
//!
//! Both build files from immutable inputs (a frozen memtable, a run of tables)
//! without any lock, then install under the manifest lock: publish the new
//! manifest (write-temp, fsync, rename, fsync-directory), then, under the commit
//! lock, swap the version; only after that delete what the new manifest no
//! longer needs (WAL segments, replaced tables, the old manifest). A failure
//! leaves the data where it was (the WAL, the old tables) and is retried.
//! Compaction writes through the rate limiter.
//!
//! Both threads run [`BACKGROUND_NICE`] nice levels below the process: where
//! they share a CPU with the workers (a server pinned with taskset: threads
//! inherit its mask, and the engine does not widen it), the scheduler gives the
//! workers' requests precedence and the flush takes the idle time. Both still
//! progress under full load (a nice-10 thread keeps about a tenth of a busy
//! CPU); if a flush falls behind, the memtable grows past its size
//! ([`crate::db::MAX_IMMUTABLE`]) rather than stalling commits. The WAL sync
//! thread keeps the process's priority: under `always` replies wait for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compaction::{merge_tables, pick};
use crate::db::{lock, Frozen, Inner, LiveTable, Version};
use crate::error::{Error, Result};
use crate::filenames::{manifest_name, table_name, wal_name};
use crate::fs::remove_if_exists;
use crate::manifest::{publish, ManifestState, TableMeta};
use crate::sstable_builder::SSTableBuilder;
use crate::sstable_reader::Table;
use crate::stats::{Stats, COMPACTION_BUCKETS};

const RETRY: Duration = Duration::from_secs(1);

fn sleep_unless_closed(inner: &Inner, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut bg = lock(&inner.bg);
    loop {
        if bg.closed {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        bg = inner
            .bg_cond
            .wait_timeout(bg, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn failed(inner: &Inner, flag: &std::sync::atomic::AtomicBool, msg: String) {
    inner.note_error(msg);
    flag.store(true, Ordering::Release);
    let _bg = lock(&inner.bg);
    inner.bg_cond.notify_all();
}

/// Publish `state` as a new manifest (manifest lock held); returns the old number.
pub(crate) fn publish_manifest(
    inner: &Inner,
    ctl: &mut crate::db::ManifestCtl,
    mut state: ManifestState,
) -> Result<u64> {
    let number = inner.alloc_file();
    state.next_file = inner.next_file.load(Ordering::Acquire);
    state.version = crate::manifest::VERSION_2;
    publish(inner.fs.as_ref(), &inner.dir, number, &state)?;
    let old = std::mem::replace(&mut ctl.number, number);
    ctl.state = state;
    Ok(old)
}

fn remove_manifest(inner: &Inner, n: u64) {
    if n != 0 {
        let _ = remove_if_exists(inner.fs.as_ref(), &inner.dir.join(manifest_name(n)));
    }
}

/// How many nice levels the flush and compaction threads run below the process.
pub const BACKGROUND_NICE: i32 = 10;

/// Lower the calling thread's priority by [`BACKGROUND_NICE`] (Linux: a nice
/// value is per thread). Best effort: a failure leaves the thread as it was.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and get/setpriority take plain integers and touch no memory
        // of ours; `which = PRIO_PROCESS` with a thread id addresses this thread only.
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + BACKGROUND_NICE).min(19));
        }
    }
}

/// The flush thread: frozen memtables to tier-0 tables, oldest first.
pub(crate) fn flush_loop(inner: Arc<Inner>) {
    lower_priority();
    loop {
        let frozen = {
            let mut bg = lock(&inner.bg);
            loop {
                if bg.closed {
                    return;
                }
                if let Some(f) = inner.current().imm.first().cloned() {
                    bg.flushing = true;
                    break f;
                }
                if bg.flushing {
                    // Tell waiters (wait_flushed) once; notifying on every wake-up would
                    // make this thread and the compaction thread wake each other forever.
                    bg.flushing = false;
                    inner.bg_cond.notify_all();
                }
                bg = inner.bg_cond.wait(bg).unwrap_or_else(|p| p.into_inner());
            }
        };
        let res = flush_one(&inner, &frozen);
        if res.is_ok() {
            inner.counters.flush_failing.store(false, Ordering::Release);
        }
        if let Err(e) = res {
            if matches!(e, Error::Closed) {
                return;
            }
            failed(
                &inner,
                &inner.counters.flush_failing,
                format!("flush failed (retried in 1 s; the data is safe in the WAL): {e}"),
            );
            if !sleep_unless_closed(&inner, RETRY) {
                return;
            }
        }
    }
}

fn flush_one(inner: &Inner, frozen: &Arc<Frozen>) -> Result<()> {
    let number = inner.alloc_file();
    let path = inner.dir.join(table_name(number));
    let mut builder = SSTableBuilder::create(inner.fs.as_ref(), &path, number)?;
    let added = frozen.mem.for_each_newest(|k, r| builder.add(k, r));
    if let Err(e) = added {
        builder.abort();
        return Err(e);
    }
    let info = if builder.entries() == 0 {
        builder.abort();
        None
    } else {
        Some(builder.finish()?)
    };
    let table = match &info {
        Some(_) => Some(Arc::new(Table::open(
            inner.fs.as_ref(),
            &path,
            number,
            inner.cache.clone(),
            inner.bloom.clone(),
        )?)),
        None => None,
    };
    let mut ctl = lock(&inner.manifest);
    if !inner.current().imm.iter().any(|f| Arc::ptr_eq(f, frozen)) {
        // A full copy replaced the database meanwhile: this memtable is gone.
        drop(ctl);
        let _ = remove_if_exists(inner.fs.as_ref(), &path);
        return Ok(());
    }
    let mut state = ctl.state.clone();
    let mut live = None;
    if let (Some(info), Some(table)) = (&info, &table) {
        let meta = TableMeta {
            number,
            tier: 0,
            size: info.size,
            entries: info.entries,
            smallest: info.smallest.clone(),
            largest: info.largest.clone(),
        };
        state.tables.push(meta.clone());
        live = Some(LiveTable {
            meta,
            table: table.clone(),
        });
    }
    state.log_number = frozen.segment + 1;
    state.last_seq = frozen.last_seq;
    state.last_epoch = frozen.last_epoch;
    state.live_keys = frozen.live_keys.max(0) as u64;
    let old = match publish_manifest(inner, &mut ctl, state) {
        Ok(old) => old,
        Err(e) => {
            drop(ctl);
            let _ = remove_if_exists(inner.fs.as_ref(), &path);
            return Err(e);
        }
    };
    {
        let _w = lock(&inner.write);
        let v = inner.current();
        let mut tables = v.tables.clone();
        tables.extend(live);
        let imm = v.imm.iter().filter(|f| !Arc::ptr_eq(f, frozen)).cloned().collect();
        inner.set_version(Version {
            mem: v.mem.clone(),
            imm,
            tables,
        });
    }
    inner.counters.flushes.fetch_add(1, Ordering::Relaxed);
    inner
        .counters
        .flush_bytes
        .fetch_add(info.map_or(0, |i| i.size), Ordering::Relaxed);
    remove_manifest(inner, old);
    let log_number = ctl.state.log_number;
    drop(ctl);
    if let Ok(names) = inner.fs.list_dir(&inner.dir) {
        for name in names {
            if let crate::filenames::FileKind::Wal(n) = crate::filenames::parse(&name) {
                if n < log_number {
                    let _ = remove_if_exists(inner.fs.as_ref(), &inner.dir.join(wal_name(n)));
                }
            }
        }
    }
    let mut bg = lock(&inner.bg);
    bg.compaction_wanted = true;
    inner.bg_cond.notify_all();
    Ok(())
}

/// The compaction thread.
pub(crate) fn compaction_loop(inner: Arc<Inner>) {
    lower_priority();
    loop {
        {
            let mut bg = lock(&inner.bg);
            loop {
                if bg.closed {
                    return;
                }
                if bg.compaction_wanted {
                    bg.compaction_wanted = false;
                    bg.compacting = true;
                    break;
                }
                if bg.compacting {
                    bg.compacting = false;
                    inner.bg_cond.notify_all();
                }
                bg = inner.bg_cond.wait(bg).unwrap_or_else(|p| p.into_inner());
            }
        }
        loop {
            let res = compact_one(&inner);
            if res.is_ok() {
                inner.counters.compaction_failing.store(false, Ordering::Release);
            }
            match res {
                Ok(true) => continue,
                Ok(false) => break,
                Err(Error::Closed) => return,
                Err(e) => {
                    failed(
                        &inner,
                        &inner.counters.compaction_failing,
                        format!("compaction failed (retried in 5 s): {e}"),
                    );
                    if !sleep_unless_closed(&inner, RETRY * 5) {
                        return;
                    }
                }
            }
        }
    }
}

/// One compaction, if one is due; `Ok(false)` when none is.
pub(crate) fn compact_one(inner: &Inner) -> Result<bool> {
    let (metas, inputs, start, tier) = {
        let ctl = lock(&inner.manifest);
        let Some((start, end)) = pick(&ctl.state.tables) else {
            return Ok(false);
        };
        let metas: Vec<TableMeta> = ctl.state.tables[start..end].to_vec();
        let v = inner.current();
        let mut inputs = Vec::new();
        for m in &metas {
            match v.tables.iter().find(|t| t.meta.number == m.number) {
                Some(t) => inputs.push(t.table.clone()),
                None => return Ok(false),
            }
        }
        (metas.clone(), inputs, start, metas[0].tier + 1)
    };
    let number = inner.alloc_file();
    let path = inner.dir.join(table_name(number));
    let throttle = |n: usize| inner.limiter.throttle(n);
    let builder = SSTableBuilder::create(inner.fs.as_ref(), &path, number)?.with_throttle(&throttle);
    let res = merge_tables(&inputs, builder, start == 0, (inner.opts.clock)())?;
    let table = match &res.info {
        Some(_) => Some(Arc::new(Table::open(
            inner.fs.as_ref(),
            &path,
            number,
            inner.cache.clone(),
            inner.bloom.clone(),
        )?)),
        None => None,
    };
    let mut ctl = lock(&inner.manifest);
    let tables = &ctl.state.tables;
    if tables.len() < start + metas.len() || tables[start..start + metas.len()] != metas[..] {
        drop(ctl);
        let _ = remove_if_exists(inner.fs.as_ref(), &path);
        return Ok(true);
    }
    let end = start + metas.len();
    let v = inner.current();
    let newer: Vec<&LiveTable> = v
        .tables
        .iter()
        .filter(|t| ctl.state.tables[end..].iter().any(|m| m.number == t.meta.number))
        .collect();
    let vanished: Vec<&bytes::Bytes> = res
        .dropped_expired
        .iter()
        .filter(|k| {
            !newer
                .iter()
                .any(|t| matches!(t.table.get(k, crate::bloom::key_hashes(k)), Ok(Some(_))))
        })
        .collect();
    let mut state = ctl.state.clone();
    let out = match (&res.info, &table) {
        (Some(info), Some(t)) => {
            let meta = TableMeta {
                number,
                tier,
                size: info.size,
                entries: info.entries,
                smallest: info.smallest.clone(),
                largest: info.largest.clone(),
            };
            Some(LiveTable { meta, table: t.clone() })
        }
        _ => None,
    };
    state.tables.splice(start..end, out.iter().map(|t| t.meta.clone()));
    state.live_keys = state.live_keys.saturating_sub(vanished.len() as u64);
    let old = match publish_manifest(inner, &mut ctl, state) {
        Ok(old) => old,
        Err(e) => {
            drop(ctl);
            let _ = remove_if_exists(inner.fs.as_ref(), &path);
            return Err(e);
        }
    };
    {
        let mut w = lock(&inner.write);
        let v = inner.current();
        let mut tables: Vec<LiveTable> = Vec::with_capacity(v.tables.len());
        let mut placed = false;
        for t in &v.tables {
            if metas.iter().any(|m| m.number == t.meta.number) {
                if !placed {
                    tables.extend(out.iter().cloned());
                    placed = true;
                }
            } else {
                tables.push(t.clone());
            }
        }
        for k in &vanished {
            let in_memory = v.mem.get(k, u64::MAX).is_some() || v.imm.iter().any(|f| f.mem.get(k, u64::MAX).is_some());
            if !in_memory {
                w.live_keys -= 1;
                lock(&inner.expiring).keys.remove(k.as_ref());
            }
        }
        inner.set_version(Version {
            mem: v.mem.clone(),
            imm: v.imm.clone(),
            tables,
        });
    }
    remove_manifest(inner, old);
    drop(ctl);
    for m in &metas {
        let _ = remove_if_exists(inner.fs.as_ref(), &inner.dir.join(table_name(m.number)));
    }
    let c = &inner.counters;
    c.compactions.fetch_add(1, Ordering::Relaxed);
    c.compaction_read.fetch_add(res.bytes_read, Ordering::Relaxed);
    c.compaction_written
        .fetch_add(res.info.as_ref().map_or(0, |i| i.size), Ordering::Relaxed);
    c.compaction_nanos
        .fetch_add(res.duration.as_nanos() as u64, Ordering::Relaxed);
    let s = res.duration.as_secs_f64();
    let i = COMPACTION_BUCKETS
        .iter()
        .position(|&b| s <= b)
        .unwrap_or(COMPACTION_BUCKETS.len());
    c.compaction_buckets[i].fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Block until no frozen memtable is left; the flush's error if it fails meanwhile
/// (the flush thread keeps retrying; the data is safe in the WAL).
pub(crate) fn wait_flushed(inner: &Inner) -> Result<()> {
    let mut bg = lock(&inner.bg);
    loop {
        if inner.current().imm.is_empty() {
            return Ok(());
        }
        if bg.closed {
            return Err(Error::Closed);
        }
        if inner.counters.flush_failing.load(Ordering::Acquire) {
            return Err(Error::WritesRefused(lock(&inner.counters.last_error).clone()));
        }
        bg = inner
            .bg_cond
            .wait_timeout(bg, Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Block until no compaction runs or is due.
pub(crate) fn wait_compacted(inner: &Inner) -> Result<()> {
    if !inner.opts.compaction {
        return Ok(());
    }
    let mut bg = lock(&inner.bg);
    loop {
        let due = pick(&lock(&inner.manifest).state.tables).is_some();
        if !bg.compacting && !bg.compaction_wanted && !due {
            return Ok(());
        }
        if bg.closed {
            return Err(Error::Closed);
        }
        if inner.counters.compaction_failing.load(Ordering::Acquire) {
            return Err(Error::WritesRefused(lock(&inner.counters.last_error).clone()));
        }
        if due && !bg.compacting {
            bg.compaction_wanted = true;
            inner.bg_cond.notify_all();
        }
        bg = inner
            .bg_cond
            .wait_timeout(bg, Duration::from_millis(20))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

pub(crate) fn stats(inner: &Inner) -> Stats {
    let v = inner.current();
    let (live, last_seq, last_epoch, segment, segment_bytes, refusal, counters_src) = {
        let w = lock(&inner.write);
        let (seg, bytes) = w.wal.position();
        (
            w.live_keys,
            w.last_seq,
            w.last_epoch,
            seg,
            bytes,
            w.wal.refusal(),
            w.wal.shared().clone(),
        )
    };
    let wc = &counters_src.counters;
    let mut tiers: Vec<(u32, u64, u64)> = Vec::new();
    for t in &v.tables {
        match tiers.iter_mut().find(|x| x.0 == t.meta.tier) {
            Some(x) => {
                x.1 += 1;
                x.2 += t.meta.size;
            }
            None => tiers.push((t.meta.tier, 1, t.meta.size)),
        }
    }
    tiers.sort();
    let (hits, misses) = inner.cache.counters();
    let (bfirst, bn, bbytes) = inner.backlog.span();
    let c = &inner.counters;
    Stats {
        last_epoch,
        last_seq,
        durable_seq: inner.durability.synced(),
        live_keys: live.max(0) as u64,
        keys_with_ttl: lock(&inner.expiring).keys.len() as u64,
        memtable_bytes: (v.mem.approx_bytes() + v.imm.iter().map(|f| f.mem.approx_bytes()).sum::<usize>()) as u64,
        immutable_memtables: v.imm.len() as u64,
        sstables: v.tables.len() as u64,
        sstable_bytes: v.tables.iter().map(|t| t.meta.size).sum(),
        tiers,
        wal_segment: segment,
        wal_segment_bytes: segment_bytes,
        wal_appends: wc.appends.load(Ordering::Relaxed),
        wal_bytes: wc.bytes.load(Ordering::Relaxed),
        fsyncs: wc.fsyncs.load(Ordering::Relaxed),
        fsync_seconds_sum: wc.fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        fsync_buckets: wc.fsync_buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        last_fsync_seconds: wc.last_fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        fsync_lag_seconds: counters_src.fsync_lag().as_secs_f64(),
        appendfsync: counters_src.policy().as_str(),
        writes_refused: refusal.is_some(),
        write_error: refusal.unwrap_or_default(),
        flushes: c.flushes.load(Ordering::Relaxed),
        flush_bytes: c.flush_bytes.load(Ordering::Relaxed),
        compactions: c.compactions.load(Ordering::Relaxed),
        compaction_bytes_read: c.compaction_read.load(Ordering::Relaxed),
        compaction_bytes_written: c.compaction_written.load(Ordering::Relaxed),
        compaction_seconds_sum: c.compaction_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        compaction_buckets: c.compaction_buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        background_error: lock(&c.last_error).clone(),
        block_cache_bytes: inner.cache.used(),
        block_cache_hits: hits,
        block_cache_misses: misses,
        bloom_negative: inner.bloom.negative.load(Ordering::Relaxed),
        bloom_maybe: inner.bloom.maybe.load(Ordering::Relaxed),
        bloom_false_positives: inner.bloom.false_positive.load(Ordering::Relaxed),
        backlog_first_seq: bfirst,
        backlog_batches: bn as u64,
        backlog_bytes: bbytes as u64,
        recovery: inner.recovery.clone(),
    }
}
