//! Durable storage (`--storage lsm`, the default): the [`Store`] contract over
//! `velocity_lsm::Db` (engine/lsm; WAL with group commit, memtable, SSTables,
//! compaction, recovery that migrates what the Python engine wrote).
//!
//! A thin delegation: every call is the `Db` call of the same name, with the
//! record types converted (the core shares value bytes as `store::Value`, the engine
//! as `bytes::Bytes`; a read copies the value once) and errors mapped:
//! - a commit the engine refuses (a failed fdatasync or write: fail-stop; a full
//!   disk until space returns; a closed database) is `StoreError::WritesRefused`,
//!   answered `WRITES_REFUSED`; reads keep working;
//! - a read that meets a block failing its checksum is `StoreError::Corruption`
//!   (answered `INTERNAL`), never wrong data.
//!
//! Durability: a commit under `appendfsync always` returns the engine's
//! durability future (completed by the group-commit thread's fdatasync); under
//! `everysec` and `no` it returns `durable: None` (acknowledged at once, as the
//! Python engine does). The data lives in `DATA_DIR/storage`, where the Python
//! engine keeps it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use velocity_lsm::{Db, FsyncPolicy, Options};

use crate::store::{Commit, FullCopy, Key, Mutation, Record, Store, StoreError, StoreStats};

/// The directory under `--data-dir` that holds the storage engine's files
/// (filenames.py `STORAGE_DIR`).
pub const STORAGE_DIR: &str = "storage";

/// What `--storage lsm` needs from EngineSettings (config.py).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsmSettings {
    /// `DATA_DIR/storage`.
    pub dir: PathBuf,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: String,
    pub memtable_bytes: usize,
    pub block_cache_bytes: usize,
    pub compaction_rate_bytes: u64,
    /// Recent batches kept for replicas that resume (`replication_backlog_bytes`).
    pub backlog_bytes: usize,
}

impl LsmSettings {
    /// The defaults of config.py for `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        let d = Options::new(data_dir.join(STORAGE_DIR));
        Self {
            dir: d.dir,
            appendfsync: d.fsync.as_str().to_string(),
            memtable_bytes: d.memtable_bytes,
            block_cache_bytes: d.block_cache_bytes,
            compaction_rate_bytes: d.compaction_rate_bytes,
            backlog_bytes: d.backlog_bytes,
        }
    }
}

/// Why the storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid storage setting: {0}")]
    Setting(String),
    /// Recovery refused the directory (corruption) or an I/O call failed.
    #[error("cannot open the storage in {dir}: {source}")]
    Db {
        dir: PathBuf,
        #[source]
        source: velocity_lsm::Error,
    },
}

fn policy(s: &str) -> Result<FsyncPolicy, String> {
    s.parse::<FsyncPolicy>()
}

/// The LSM store (see the module documentation).
pub struct LsmStore {
    db: Db,
}

impl LsmStore {
    /// Opens (recovers, migrates) the storage in `s.dir`, creating it if missing.
    pub fn open(s: &LsmSettings) -> Result<Self, OpenError> {
        let mut opts = Options::new(&s.dir);
        opts.fsync = policy(&s.appendfsync).map_err(OpenError::Setting)?;
        opts.memtable_bytes = s.memtable_bytes;
        opts.block_cache_bytes = s.block_cache_bytes;
        opts.compaction_rate_bytes = s.compaction_rate_bytes;
        opts.backlog_bytes = s.backlog_bytes;
        let db = Db::open(opts).map_err(|e| OpenError::Db {
            dir: s.dir.clone(),
            source: e,
        })?;
        Ok(Self { db })
    }

    /// A store over an engine opened by the caller (tests inject a file system).
    pub fn from_db(db: Db) -> Self {
        Self { db }
    }

    /// The engine (for what the Store contract does not carry yet: snapshots, replication).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn read_error(e: velocity_lsm::Error) -> StoreError {
    StoreError::Corruption(e.to_string())
}

fn write_error(e: velocity_lsm::Error) -> StoreError {
    match e {
        velocity_lsm::Error::WritesRefused(why) => StoreError::WritesRefused(why),
        other => StoreError::WritesRefused(other.to_string()),
    }
}

/// The replication log's errors: a replica too far behind needs a full copy.
fn log_error(e: velocity_lsm::Error) -> StoreError {
    match e {
        velocity_lsm::Error::Compacted { requested, oldest } => StoreError::Compacted { requested, oldest },
        other => read_error(other),
    }
}

/// What a reply showing this commit waits for: nothing unless `appendfsync always`.
fn durability(c: &velocity_lsm::Commit) -> Option<crate::store::DurabilityWait> {
    if c.is_durable() {
        return None;
    }
    let fut = c.durable();
    Some(Box::pin(async move { fut.await.map_err(write_error) }))
}

fn to_core(r: velocity_lsm::Record) -> Record {
    Record {
        kind: r.kind,
        value: r.value[..].into(),
        expire_at_ms: r.expire_at_ms,
    }
}

/// A core mutation, borrowed for `Db::commit_refs` (its bytes are copied once, into the batch).
fn as_lsm_ref(m: &Mutation) -> velocity_lsm::MutationRef<'_> {
    velocity_lsm::MutationRef {
        key: &m.key,
        put: m.record.as_ref().map(|r| velocity_lsm::PutRef {
            kind: r.kind,
            value: &r.value,
            expire_at_ms: r.expire_at_ms,
        }),
    }
}

impl Store for LsmStore {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        Ok(self.db.get(key).map_err(read_error)?.map(to_core))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Record>>, StoreError> {
        // One consistent state: a snapshot reads every key at one sequence number.
        let snap = self.db.snapshot();
        keys.iter()
            .map(|k| Ok(snap.get(k).map_err(read_error)?.map(to_core)))
            .collect()
    }

    fn commit(&self, epoch: u64, mutations: Vec<Mutation>) -> Result<Commit, StoreError> {
        let c = match &mutations[..] {
            [m] => self.db.commit_refs(epoch, &[as_lsm_ref(m)]),
            many => self
                .db
                .commit_refs(epoch, &many.iter().map(as_lsm_ref).collect::<Vec<_>>()),
        }
        .map_err(write_error)?;
        Ok(Commit {
            seq: c.seq,
            durable: durability(&c),
        })
    }

    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Vec<(Key, Record)>, StoreError> {
        Ok(self
            .db
            .scan_from(start, limit)
            .map_err(read_error)?
            .into_iter()
            .map(|(k, r)| (Key::from(&k[..]), to_core(r)))
            .collect())
    }

    fn snapshot_entries(&self) -> Result<crate::snapshot::SnapshotEntries, StoreError> {
        // Db::snapshot(): the memtables frozen at one sequence, the tables pinned;
        // writes go on while the file is written from it.
        Ok(Box::new(
            self.db.snapshot().iter_from(b"").map(|r| r.map_err(|e| e.to_string())),
        ))
    }

    fn expiring_sample(&self, n: usize) -> Vec<(Key, i64)> {
        self.db
            .expiring_sample(n)
            .into_iter()
            .map(|(k, at)| (Key::from(&k[..]), at))
            .collect()
    }

    fn stats(&self) -> StoreStats {
        let st = self.db.stats();
        StoreStats {
            engine: "lsm",
            keys: st.live_keys,
            keys_with_ttl: st.keys_with_ttl,
            // As the Python engine counts it (lsm.py `stats()`): memtables plus tables.
            data_bytes: st.memtable_bytes + st.sstable_bytes,
        }
    }

    // -- replication: velocity_lsm::Db's log is the replication log (stream v2) ----------

    fn log_position(&self) -> (u64, u64) {
        self.db.last_seq()
    }

    fn raw_batches_since(&self, seq: u64) -> Result<Vec<Bytes>, StoreError> {
        if seq >= self.db.last_seq().1 {
            return Ok(Vec::new());
        }
        let iter = self.db.batches_since(seq).map_err(log_error)?;
        iter.map(|b| b.map_err(log_error)).collect()
    }

    fn apply_replicated(&self, raw: Bytes) -> Result<Commit, StoreError> {
        let c = self.db.apply_replicated(raw).map_err(|e| match e {
            velocity_lsm::Error::SeqGap { .. } | velocity_lsm::Error::InvalidArgument(_) => {
                StoreError::BadBatch(e.to_string())
            }
            other => write_error(other),
        })?;
        Ok(Commit {
            seq: c.seq,
            durable: durability(&c),
        })
    }

    fn full_copy(&self) -> Result<FullCopy, StoreError> {
        // One sequence number: the snapshot's files stay readable while it is walked.
        let snap = self.db.snapshot();
        let position = (snap.epoch(), snap.seq());
        let records = snap
            .iter_from(b"")
            .map(|r| r.map(|(k, rec)| (Key::from(&k[..]), to_core(rec))).map_err(read_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((position, records))
    }

    fn install_copy(&self, position: (u64, u64), mut records: Vec<(Key, Record)>) -> Result<(), StoreError> {
        // velocity-lsm builds tables from keys in strictly increasing order; a memory
        // primary sends its shards' keys unordered.
        records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        records.dedup_by(|a, b| a.0 == b.0);
        let entries = records.into_iter().map(|(k, r)| {
            Ok((
                Bytes::copy_from_slice(&k),
                velocity_lsm::Record {
                    kind: r.kind,
                    value: Bytes::copy_from_slice(&r.value),
                    expire_at_ms: r.expire_at_ms,
                },
            ))
        });
        self.db
            .install_copy(position.0, position.1, entries)
            .map_err(write_error)
    }

    fn needs_full_copy(&self) -> bool {
        self.db.needs_full_copy()
    }

    fn backlog_span(&self) -> (u64, u64, u64) {
        let st = self.db.stats();
        (st.backlog_bytes, st.backlog_first_seq, st.last_seq)
    }

    fn durable_seq(&self) -> u64 {
        self.db.durable_seq()
    }

    fn last_epoch(&self) -> u64 {
        self.db.last_seq().0
    }

    fn wait_durable(&self, seq: u64) -> crate::store::DurabilityWait {
        let fut = self.db.wait_synced(seq);
        Box::pin(async move { fut.await.map_err(write_error) })
    }

    fn set_appendfsync(&self, p: &str) -> Result<(), StoreError> {
        self.db.set_fsync(policy(p).map_err(StoreError::InvalidSetting)?);
        Ok(())
    }

    fn engine_stats(&self) -> Option<velocity_lsm::Stats> {
        Some(self.db.stats())
    }

    /// Syncs what was appended; the engine's threads stop and the directory lock
    /// is released when the store is dropped (`Db`'s drop closes it).
    fn close(&self) -> Result<(), StoreError> {
        self.db.sync().map(|_| ()).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::sync::{Condvar, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use velocity_lsm::testing::{Fault, OpKind, SimFs};

    use super::*;
    use crate::keyspace::{Keyspace, Pending};
    use velocity_proto::ErrorCode;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "velocity-core-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ready(w: &mut Option<crate::store::DurabilityWait>) -> Option<Result<(), StoreError>> {
        let mut cx = Context::from_waker(Waker::noop());
        match w.as_mut()?.as_mut().poll(&mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), f)
                    .await
                    .expect("timed out")
            })
    }

    fn lsm(dir: &Path, fsync: &str) -> LsmStore {
        let mut s = LsmSettings::new(dir);
        s.appendfsync = fsync.into();
        LsmStore::open(&s).unwrap()
    }

    #[test]
    fn keyspace_over_lsm_survives_a_restart() {
        let d = TempDir::new("restart");
        {
            let ks = Keyspace::new(Box::new(lsm(&d.0, "always")));
            let p = &mut Pending::default();
            for i in 0..100 {
                assert!(ks.set(format!("k{i:03}").as_bytes(), 1, b"v", 0, 0, p).unwrap());
            }
            assert!(p.is_waiting(), "an always write waits for its fdatasync");
            block_on(p.take().unwrap()).unwrap();
            assert_eq!(ks.incr(b"n", 5, p).unwrap(), 5);
            assert!(ks.delete(b"k000", p).unwrap());
            ks.set(b"t", 0, b"x", 3_600_000, 0, p).unwrap();
            assert_eq!(ks.store().stats().keys, 101);
            assert_eq!(ks.store().stats().keys_with_ttl, 1);
            ks.store().close().unwrap();
        }
        let store = lsm(&d.0, "everysec");
        let ks = Keyspace::new(Box::new(store));
        let p = &mut Pending::default();
        assert!(ks.lookup(b"k000", p).unwrap().is_none());
        assert_eq!(&*ks.lookup(b"k001", p).unwrap().unwrap().value, b"v");
        assert_eq!(ks.incr(b"n", 1, p).unwrap(), 6);
        let (keys, next) = ks.scan(b"k", b"", 10, usize::MAX, p).unwrap();
        assert_eq!((keys.len(), &*keys[0]), (10, &b"k001"[..]));
        assert_eq!(&*next, b"k010");
        let got = ks.mget(&[b"k050", b"nope", b"t"], p).unwrap();
        assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
        assert!(!p.is_waiting(), "nothing waits under everysec");
        assert_eq!(ks.store().stats().engine, "lsm");
    }

    /// A gate on the WAL's fdatasyncs: while closed, a sync blocks (the SimFs
    /// hook runs on the group-commit thread).
    struct Gate(Mutex<bool>, Condvar);

    impl Gate {
        fn set(&self, open: bool) {
            *self.0.lock().unwrap() = open;
            self.1.notify_all();
        }
        fn pass(&self) {
            let mut open = self.0.lock().unwrap();
            while !*open {
                open = self.1.wait(open).unwrap();
            }
        }
    }

    fn gated(fsync: velocity_lsm::FsyncPolicy) -> (SimFs, Arc<Gate>, Keyspace) {
        let root = PathBuf::from("/sim");
        let fs = SimFs::new(&root);
        let mut opts = Options::new(root.join(STORAGE_DIR));
        opts.fs = Arc::new(fs.clone());
        opts.fsync = fsync;
        let db = Db::open(opts).unwrap();
        let gate = Arc::new(Gate(Mutex::new(true), Condvar::new()));
        let g = gate.clone();
        fs.set_fault(move |op| {
            if op.kind == OpKind::Sync && op.path.to_string_lossy().contains("wal-") {
                g.pass();
            }
            None
        });
        (fs, gate, Keyspace::new(Box::new(LsmStore::from_db(db))))
    }

    /// The read-hold rule (keyspace.rs): under `always` a read that shows a write
    /// whose fdatasync has not returned waits for it; reads of other keys do not.
    #[test]
    fn a_read_of_a_write_not_yet_durable_waits_for_it() {
        let (_fs, gate, ks) = gated(velocity_lsm::FsyncPolicy::Always);
        gate.set(false);
        let mut w = Pending::default();
        ks.set(b"held", 1, b"v1", 0, 0, &mut w).unwrap();
        let mut wait = w.take();
        assert!(ready(&mut wait).is_none(), "the write's reply waits for the sync");

        let mut r = Pending::default();
        assert_eq!(&*ks.lookup(b"held", &mut r).unwrap().unwrap().value, b"v1");
        let mut read_wait = r.take();
        assert!(read_wait.is_some(), "the read shows the write: it waits too");
        assert!(ready(&mut read_wait).is_none());
        // EXISTS, TTL, MGET, SCAN and a failed SET NX show it too.
        let mut r2 = Pending::default();
        assert!(ks.exists(b"held", &mut r2).unwrap());
        assert!(r2.is_waiting());
        let mut r3 = Pending::default();
        ks.mget(&[b"other", b"held"], &mut r3).unwrap();
        assert!(r3.is_waiting());
        let mut r4 = Pending::default();
        ks.scan(b"he", b"", 10, usize::MAX, &mut r4).unwrap();
        assert!(r4.is_waiting());
        let mut r5 = Pending::default();
        assert!(!ks
            .set(b"held", 1, b"v2", 0, crate::keyspace::SET_IF_ABSENT, &mut r5)
            .unwrap());
        assert!(r5.is_waiting(), "NX refused because of a write not yet durable");

        // A key of another stripe does not wait (no global head-of-line block).
        let other = (0..10_000)
            .map(|i| format!("o{i}"))
            .find(|k| {
                let mut p = Pending::default();
                ks.lookup(k.as_bytes(), &mut p).unwrap();
                !p.is_waiting()
            })
            .expect("some key lives in another stripe");
        let mut r6 = Pending::default();
        assert!(ks.lookup(other.as_bytes(), &mut r6).unwrap().is_none());
        assert!(!r6.is_waiting());

        gate.set(true);
        block_on(wait.take().unwrap()).unwrap();
        block_on(read_wait.take().unwrap()).unwrap();
        let mut r7 = Pending::default();
        ks.lookup(b"held", &mut r7).unwrap();
        assert!(!r7.is_waiting(), "durable now: nothing to wait for");
    }

    /// Under everysec a commit is acknowledged at once and reads never wait,
    /// even while the background sync is stuck.
    #[test]
    fn everysec_never_holds_replies() {
        let (_fs, gate, ks) = gated(velocity_lsm::FsyncPolicy::Everysec);
        gate.set(false);
        let mut p = Pending::default();
        ks.set(b"k", 1, b"v", 0, 0, &mut p).unwrap();
        assert!(!p.is_waiting());
        ks.lookup(b"k", &mut p).unwrap();
        assert!(!p.is_waiting());
        // Switching to always (live reload) holds the writes made from then on.
        ks.store().set_appendfsync("always").unwrap();
        ks.set(b"k", 1, b"w", 0, 0, &mut p).unwrap();
        assert!(p.is_waiting());
        assert!(ks.store().set_appendfsync("sometimes").is_err());
        gate.set(true);
        block_on(p.take().unwrap()).unwrap();
    }

    /// A failed fdatasync is final: the writes it covered are never acknowledged,
    /// later writes get WRITES_REFUSED, reads keep working.
    #[test]
    fn a_failed_sync_refuses_writes_and_keeps_reads() {
        let (fs, _gate, ks) = gated(velocity_lsm::FsyncPolicy::Always);
        let mut p = Pending::default();
        ks.set(b"before", 1, b"ok", 0, 0, &mut p).unwrap();
        block_on(p.take().unwrap()).unwrap();
        fs.set_fault(|op| (op.kind == OpKind::Sync).then_some(Fault::Fail(EIO)));
        ks.set(b"lost", 1, b"x", 0, 0, &mut p).unwrap_or(false);
        if let Some(w) = p.take() {
            assert!(block_on(w).is_err(), "never acknowledged");
        }
        let e = ks.set(b"after", 1, b"y", 0, 0, &mut p).unwrap_err();
        assert_eq!(e.code, ErrorCode::WritesRefused);
        assert_eq!(&*ks.lookup(b"before", &mut p).unwrap().unwrap().value, b"ok");
        let st = ks.store().engine_stats().unwrap();
        assert!(st.writes_refused && !st.write_error.is_empty());
    }

    /// Replication through the Store contract (issue 13): a replica applies the
    /// primary's raw batches (its log position follows, in the WAL, not in a user
    /// key), a full copy from a snapshot installs at the primary's position, a
    /// replica under `always` is handed the fdatasync to wait for before its ACK,
    /// and a primary whose backlog moved on answers `Compacted`.
    #[test]
    fn lsm_stores_replicate_batches_and_full_copies() {
        let (dp, dr, dc) = (TempDir::new("repl-p"), TempDir::new("repl-r"), TempDir::new("repl-c"));
        let mut ps = LsmSettings::new(&dp.0);
        ps.backlog_bytes = 1;
        let primary = Keyspace::new(Box::new(LsmStore::open(&ps).unwrap()));
        let p = &mut Pending::default();
        primary.set(b"a", 1, b"1", 0, 0, p).unwrap();
        primary.set(b"b", 1, b"2", 60_000, 0, p).unwrap();
        primary.delete(b"a", p).unwrap();
        assert_eq!(primary.store().log_position(), (1, 3));

        let replica = lsm(&dr.0, "always");
        let mut wait = None;
        for seq in 0..2 {
            // A backlog of one byte keeps the newest batch only: earlier ones are gone.
            let e = primary.store().raw_batches_since(seq).unwrap_err();
            assert!(matches!(e, StoreError::Compacted { oldest: 3, .. }), "{e}");
        }
        let copy = primary.store().full_copy().unwrap();
        assert_eq!(copy.0, (1, 3));
        assert_eq!(copy.1.len(), 1);
        replica.install_copy(copy.0, copy.1).unwrap();
        assert_eq!(replica.log_position(), (1, 3));
        primary.set(b"c", 1, b"3", 0, 0, p).unwrap();
        for raw in primary.store().raw_batches_since(3).unwrap() {
            let c = replica.apply_replicated(raw).unwrap();
            wait = c.durable;
        }
        assert!(primary.store().raw_batches_since(4).unwrap().is_empty());
        assert_eq!(replica.log_position(), (1, 4));
        block_on(wait.expect("an always replica waits for its fdatasync before acknowledging")).unwrap();
        assert!(replica.durable_seq() >= 4);
        assert_eq!(&*replica.get(b"c").unwrap().unwrap().value, b"3");
        assert_eq!(replica.get(b"b").unwrap().unwrap().expire_at_ms, {
            let r = primary.lookup(b"b", p).unwrap().unwrap();
            r.expire_at_ms
        });
        assert!(replica.get(b"a").unwrap().is_none());
        // A batch that does not continue the log is refused.
        let again = primary.store().raw_batches_since(3).unwrap().remove(0);
        assert!(matches!(replica.apply_replicated(again), Err(StoreError::BadBatch(_))));
        replica.close().unwrap();
        drop(replica);
        let replica = lsm(&dr.0, "everysec");
        assert_eq!(replica.log_position(), (1, 4), "the position survives a restart");

        // A memory primary's copy comes unordered: the LSM replica sorts it.
        let mem = crate::memory::MemoryStore::new();
        let muts = (0..50)
            .map(|i| Mutation {
                key: format!("m{i:02}").as_bytes().into(),
                record: Some(Record {
                    kind: 0,
                    value: b"v"[..].into(),
                    expire_at_ms: 0,
                }),
            })
            .collect();
        mem.commit(2, muts).unwrap();
        let (pos, recs) = mem.full_copy().unwrap();
        let other = lsm(&dc.0, "everysec");
        other.install_copy(pos, recs).unwrap();
        assert_eq!(other.log_position(), (2, 1));
        assert_eq!(other.scan_from(b"", 100).unwrap().len(), 50);
    }

    /// libc's EIO on Linux (the core does not depend on libc).
    const EIO: i32 = 5;
}
