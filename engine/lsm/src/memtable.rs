//! The memtable: the newest writes, in RAM, until they are flushed to an SSTable.
//!
//! Two structures over the same versions:
//! - a hash index (hashbrown, in [`SHARDS`] read-write-locked shards) from user
//!   key to its versions, newest first: point reads (GET, the read of INCR's
//!   read-modify-write, the commit path's "did the key exist") cost one hash
//!   probe instead of a skiplist search;
//! - the user keys, for ordered iteration (SCAN, snapshots, the flush): a key
//!   this memtable has not seen is appended to an unsorted list (a push under a
//!   mutex, no search); the first ordered read that needs the keys moves the list
//!   into a lock-free skiplist (crossbeam), and the flush of a frozen memtable
//!   sorts the list instead (no skiplist is built when nothing scanned). Once a
//!   memtable has been read in order, the writer inserts its new keys into the
//!   skiplist itself (as before the list existed), so only the first ordered read
//!   of a memtable pays for the keys listed until then. Overwrites only touch the
//!   hash index.
//!
//! Versions are (seq, record): a reader at sequence S takes the newest version
//! with seq <= S. Keeping versions is what makes a batch atomic to readers (a
//! concurrent reader at S never sees half of batch S+1) and snapshots consistent
//! without copying. Deletes are tombstones (`None`). Keys and values are usually
//! slices of the batch buffer that wrote them, so a write is encoded once and
//! never copied.
//!
//! Threads: one writer at a time (the commit path, under the engine's commit
//! lock) and any number of concurrent readers. The writer appends a new key to
//! the unsorted list before its version becomes visible in the index (and before
//! the engine publishes its sequence); an ordered read first moves every listed
//! key into the skiplist (under the drain lock, so a second reader waits for the
//! keys a first one took), then iterates: it finds every key whose version its
//! sequence can see, and skips a key whose versions are all newer. Once frozen, a
//! memtable is only read (by the flush thread, readers and snapshots).

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use crossbeam_skiplist::SkipSet;
use hashbrown::HashTable;

use crate::record::Record;

/// Rough bytes of index entry, skiplist node and record handles per version (on top
/// of the batch bytes).
pub const ENTRY_OVERHEAD: usize = 112;

/// Shards of the hash index (a power of two): a resize rehashes one shard only.
pub const SHARDS: usize = 16;

/// One version: the sequence of the batch that wrote it and the record (`None`: a tombstone).
type Version = (u64, Option<Record>);

/// A key's versions in this memtable: the newest inline (most keys have one),
/// older ones in ascending seq order.
struct Versions {
    key: Bytes,
    hash: u64,
    newest: Version,
    older: Vec<Version>,
}

impl Versions {
    /// The newest version with seq <= `seq`.
    fn at(&self, seq: u64) -> Option<&Version> {
        if self.newest.0 <= seq {
            return Some(&self.newest);
        }
        self.older.iter().rev().find(|v| v.0 <= seq)
    }
}

/// The index hash of a key (multiply-rotate over 8-byte words, then a finalizer
/// that spreads the bits hashbrown uses: the low ones pick the bucket, the top
/// seven are the tag).
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 29)
}

/// The memtable.
pub struct Memtable {
    index: [RwLock<HashTable<Versions>>; SHARDS],
    /// Keys in order: those the ordered reads have moved out of `unsorted`.
    keys: SkipSet<Bytes>,
    /// Keys new to this memtable and not yet in `keys`, in arrival order. With
    /// `drain` held (a drain in progress holds it) every key of the memtable is in
    /// exactly one of the two.
    unsorted: Mutex<Vec<Bytes>>,
    /// Held while keys move from `unsorted` to `keys` (taken before `unsorted`).
    drain: Mutex<()>,
    /// An ordered read has happened: from then on the writer inserts new keys
    /// into `keys` itself, so a memtable that is scanned pays one drain, not one
    /// per scan (a drain of N keys stalls its reader: ~185 ms for 300,000).
    scanned: AtomicBool,
    bytes: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable {
            index: std::array::from_fn(|_| RwLock::new(HashTable::new())),
            keys: SkipSet::new(),
            unsorted: Mutex::new(Vec::new()),
            drain: Mutex::new(()),
            scanned: AtomicBool::new(false),
            bytes: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> RwLockReadGuard<'_, HashTable<Versions>> {
        // Shard by the high bits (the table itself uses the low ones and the tag).
        let s = &self.index[(hash >> 40) as usize & (SHARDS - 1)];
        s.read().unwrap_or_else(|p| p.into_inner())
    }

    fn shard_mut(&self, hash: u64) -> RwLockWriteGuard<'_, HashTable<Versions>> {
        let s = &self.index[(hash >> 40) as usize & (SHARDS - 1)];
        s.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a version (commit path only). `charge`: bytes to account for it.
    ///
    /// Returns what this memtable held for the key below `seq`: `None` no older
    /// version, `Some(true)` a value, `Some(false)` a tombstone (found by the same
    /// index probe that adds the version, so the commit path and replay count live
    /// keys without a second search). A version with the same (key, seq) is
    /// replaced: callers whose batch writes a key twice must look it up first.
    pub fn insert(&self, key: Bytes, seq: u64, rec: Option<Record>, charge: usize) -> Option<bool> {
        let hash = key_hash(&key);
        self.bytes.fetch_add(charge + ENTRY_OVERHEAD, Ordering::Relaxed);
        let mut shard = self.shard_mut(hash);
        if let Some(v) = shard.find_mut(hash, |v| v.key == key) {
            if seq > v.newest.0 {
                let older = std::mem::replace(&mut v.newest, (seq, rec));
                let live = older.1.is_some();
                v.older.push(older);
                return Some(live);
            }
            // Not newer than the newest (a key written twice in one batch, or out of
            // order): keep the versions sorted, replacing one with the same seq.
            let mut all = std::mem::take(&mut v.older);
            all.push(std::mem::take(&mut v.newest));
            let below = all.iter().rev().find(|x| x.0 < seq).map(|x| x.1.is_some());
            match all.binary_search_by_key(&seq, |x| x.0) {
                Ok(i) => all[i] = (seq, rec),
                Err(i) => all.insert(i, (seq, rec)),
            }
            v.newest = all.pop().unwrap_or((0, None));
            v.older = all;
            return below;
        }
        // A new key: ordered (or listed for the ordered reads) before its version
        // can be read. A key listed after a reader took the list waits for the next
        // ordered read, which drains it first.
        if self.scanned.load(Ordering::Relaxed) {
            self.keys.insert(key.clone());
        } else {
            lock(&self.unsorted).push(key.clone());
        }
        shard.insert_unique(
            hash,
            Versions {
                key,
                hash,
                newest: (seq, rec),
                older: Vec::new(),
            },
            |v| v.hash,
        );
        None
    }

    /// The newest version of `key` with seq <= `seq`: `None` = no version here,
    /// `Some(None)` = a tombstone.
    pub fn get(&self, key: &[u8], seq: u64) -> Option<Option<Record>> {
        let hash = key_hash(key);
        let shard = self.shard(hash);
        let v = shard.find(hash, |v| v.key == key)?;
        v.at(seq).map(|x| x.1.clone())
    }

    /// Up to `max` (key, newest version <= seq) pairs with key > `after` (or >= `from`
    /// when `after` is None), in key order. The unit of the owned iterators.
    pub fn chunk(&self, from: &[u8], after: Option<&[u8]>, seq: u64, max: usize) -> Vec<(Bytes, Option<Record>)> {
        let mut out = Vec::with_capacity(max.min(256));
        if max == 0 {
            return out;
        }
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Included(from),
        };
        self.sort_new_keys();
        for e in self.keys.range::<[u8], _>((lower, Bound::Unbounded)) {
            if let Some(r) = self.get(e.value(), seq) {
                out.push((e.value().clone(), r));
                if out.len() == max {
                    break;
                }
            }
        }
        out
    }

    /// Move the keys new since the last ordered read into the skiplist. Every key
    /// listed before this call (in particular every key of a batch whose sequence
    /// the caller loaded before calling) is in the skiplist when it returns.
    fn sort_new_keys(&self) {
        self.scanned.store(true, Ordering::Relaxed);
        let _draining = lock(&self.drain);
        let mut new = std::mem::take(&mut *lock(&self.unsorted));
        // Sorted, the inserts walk the list front to back (warmer caches).
        new.sort_unstable();
        for k in new {
            self.keys.insert(k);
        }
    }

    /// Every user key's newest version (a frozen memtable being flushed), in order.
    ///
    /// The keys no ordered read has moved into the skiplist are sorted in place (a
    /// frozen memtable gets no new ones; on a live one, keys added during the walk
    /// may be missed) and merged with the skiplist's; a memtable nothing scanned
    /// builds no skiplist at all.
    pub fn for_each_newest(
        &self,
        mut f: impl FnMut(&Bytes, Option<&Record>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let listed: Vec<Bytes> = {
            let _draining = lock(&self.drain);
            let mut u = lock(&self.unsorted);
            u.sort_unstable();
            u.clone()
        };
        let mut emit = |key: &Bytes| -> crate::Result<()> {
            let hash = key_hash(key);
            let shard = self.shard(hash);
            if let Some(v) = shard.find(hash, |v| v.key == *key) {
                f(key, v.newest.1.as_ref())?;
            }
            Ok(())
        };
        // A reader may move listed keys into the skiplist meanwhile: a key met in
        // both is emitted once.
        let mut listed = listed.iter().peekable();
        for e in self.keys.iter() {
            let key = e.value();
            while let Some(k) = listed.next_if(|k| *k <= key) {
                if k != key {
                    emit(k)?;
                }
            }
            emit(key)?;
        }
        for k in listed {
            emit(k)?;
        }
        Ok(())
    }

    /// Approximate bytes held (batch bytes plus per-version overhead).
    pub fn approx_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        // Every insert charges bytes before its key can be read, and a memtable
        // holds keys exactly when something was inserted. Not the key sets: during
        // a drain a key is in neither `keys` nor `unsorted`.
        self.bytes.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two reader threads run `check(memtable, s)` at each sequence s the writer has
    /// published (s >= 1) while the writer's batch s (1..=n) writes `key(s)` = s.
    fn readers_during_writes(
        n: u64,
        key: impl Fn(u64) -> String,
        check: impl Fn(&Memtable, u64) + Send + Sync + 'static,
    ) {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let m = Arc::new(Memtable::new());
        let published = Arc::new(AtomicU64::new(0));
        let check = Arc::new(check);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, published, check) = (m.clone(), published.clone(), check.clone());
                std::thread::spawn(move || {
                    while published.load(Ordering::Acquire) < n {
                        let s = published.load(Ordering::Acquire);
                        if s > 0 {
                            check(&m, s);
                        }
                    }
                })
            })
            .collect();
        for s in 1..=n {
            m.insert(
                Bytes::from(key(s)),
                s,
                Some(Record::new(0, Bytes::from(s.to_string()))),
                1,
            );
            published.store(s, Ordering::Release);
        }
        for r in readers {
            r.join().unwrap();
        }
    }

    fn rec(v: &str) -> Option<Record> {
        Some(Record::new(0, Bytes::copy_from_slice(v.as_bytes())))
    }

    #[test]
    fn readers_see_the_newest_version_at_their_seq() {
        let m = Memtable::new();
        assert_eq!(m.insert(Bytes::from_static(b"k"), 1, rec("one"), 10), None);
        assert_eq!(m.insert(Bytes::from_static(b"k"), 3, None, 10), Some(true));
        assert_eq!(m.insert(Bytes::from_static(b"k"), 5, rec("five"), 10), Some(false));
        assert_eq!(m.insert(Bytes::from_static(b"ka"), 2, rec("ka"), 10), None);
        assert_eq!(m.insert(Bytes::from_static(b"j"), 4, rec("j"), 10), None);
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(m.get(b"k", 2), Some(rec("one")));
        assert_eq!(m.get(b"k", 4), Some(None));
        assert_eq!(m.get(b"k", u64::MAX), Some(rec("five")));
        assert_eq!(m.get(b"i", u64::MAX), None);
        assert_eq!(m.get(b"kb", u64::MAX), None);
        let all = m.chunk(b"k", None, 4, 10);
        assert_eq!(
            all,
            vec![(Bytes::from_static(b"k"), None), (Bytes::from_static(b"ka"), rec("ka"))]
        );
        let after = m.chunk(b"k", Some(b"k"), u64::MAX, 10);
        assert_eq!(after.len(), 1);
        let first = m.chunk(b"k", None, u64::MAX, 1);
        assert_eq!(first, vec![(Bytes::from_static(b"k"), rec("five"))]);
        let mut seen = Vec::new();
        m.for_each_newest(|k, r| {
            if k.as_ref() != b"j" {
                seen.push((k.clone(), r.cloned()));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (Bytes::from_static(b"k"), rec("five")),
                (Bytes::from_static(b"ka"), rec("ka"))
            ]
        );
    }

    /// Against a model (every version in a BTreeMap): point reads at every
    /// sequence, chunks from every start, the flush walk; keys written twice in one
    /// batch (same seq) keep the last write.
    #[test]
    fn matches_a_model_of_versions() {
        use std::collections::BTreeMap;
        let m = Memtable::new();
        let mut model: BTreeMap<(Vec<u8>, u64), Option<Record>> = BTreeMap::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seq = 0;
        for _ in 0..3000 {
            if next() % 4 != 0 {
                seq += 1;
            }
            let key = format!("k{:02}", next() % 40).into_bytes();
            let r = next();
            let rec = (r % 5 != 0).then(|| Record::new((r % 3) as u8, Bytes::from(format!("v{r}"))));
            m.insert(Bytes::from(key.clone()), seq.max(1), rec.clone(), 1);
            model.insert((key, seq.max(1)), rec);
        }
        let newest = |k: &[u8], at: u64| {
            model
                .range((k.to_vec(), 0)..=(k.to_vec(), at))
                .next_back()
                .map(|(_, r)| r.clone())
        };
        for s in (0..=seq + 1).step_by(7) {
            for i in 0..42 {
                let k = format!("k{i:02}").into_bytes();
                assert_eq!(m.get(&k, s), newest(&k, s), "key {i} at {s}");
            }
            let want: Vec<(Bytes, Option<Record>)> = (0..40)
                .filter_map(|i| {
                    let k = format!("k{i:02}").into_bytes();
                    newest(&k, s).map(|r| (Bytes::from(k), r))
                })
                .collect();
            assert_eq!(m.chunk(b"", None, s, usize::MAX), want);
            assert_eq!(
                m.chunk(b"k10", None, s, 5),
                want.iter()
                    .filter(|e| e.0[..] >= b"k10"[..])
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                m.chunk(b"", Some(b"k10"), s, 3),
                want.iter()
                    .filter(|e| e.0[..] > b"k10"[..])
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
            );
        }
        let mut walked = Vec::new();
        m.for_each_newest(|k, r| {
            walked.push((k.clone(), r.cloned()));
            Ok(())
        })
        .unwrap();
        let want: Vec<_> = (0..40)
            .filter_map(|i| {
                let k = format!("k{i:02}").into_bytes();
                newest(&k, u64::MAX).map(|r| (Bytes::from(k), r))
            })
            .collect();
        assert_eq!(walked, want);
    }

    /// Readers on other threads while the writer adds versions: a reader at a
    /// published sequence sees exactly the versions up to it.
    #[test]
    fn concurrent_readers_see_published_versions() {
        readers_during_writes(
            20_000,
            |s| format!("k{:03}", s % 100),
            |m, s| {
                // Batch s wrote key (s % 100) with value s.
                let k = format!("k{:03}", s % 100);
                let got = m.get(k.as_bytes(), s).unwrap().unwrap();
                assert_eq!(got.value, Bytes::from(s.to_string()));
                let all = m.chunk(b"", None, s, usize::MAX);
                assert_eq!(all.len() as u64, s.min(100));
            },
        );
    }

    /// The flush walk merges the keys an ordered read moved into the skiplist with
    /// those still unsorted: every key once, in order, whichever side it is on.
    #[test]
    fn flush_walk_merges_sorted_and_unsorted_keys() {
        let m = Memtable::new();
        for i in [5, 1, 9, 3] {
            m.insert(Bytes::from(format!("k{i}")), i, rec("x"), 1);
        }
        // k1, k3, k5, k9 now sorted; the next keys listed after the drain (as by a
        // writer that read `scanned` before the reader set it).
        assert_eq!(m.chunk(b"", None, u64::MAX, 1).len(), 1);
        m.scanned.store(false, Ordering::Relaxed);
        for (s, i) in [(10, 7), (11, 0), (12, 4), (13, 8)] {
            m.insert(Bytes::from(format!("k{i}")), s, rec("y"), 1);
        }
        m.insert(Bytes::from_static(b"k5"), 14, None, 1); // an overwrite adds no key
        let mut walked = Vec::new();
        m.for_each_newest(|k, r| {
            walked.push((String::from_utf8(k.to_vec()).unwrap(), r.is_some()));
            Ok(())
        })
        .unwrap();
        let want: Vec<_> = [0, 1, 3, 4, 5, 7, 8, 9]
            .iter()
            .map(|i| (format!("k{i}"), *i != 5))
            .collect();
        assert_eq!(walked, want);
        assert!(!m.is_empty());
        assert!(Memtable::new().is_empty());
        // Mid-drain the keys are in neither set: the memtable is still not empty.
        let fresh = Memtable::new();
        fresh.insert(Bytes::from_static(b"a"), 1, rec("x"), 1);
        {
            let _draining = lock(&fresh.drain);
            let taken = std::mem::take(&mut *lock(&fresh.unsorted));
            assert!(fresh.keys.is_empty() && !taken.is_empty());
            assert!(!fresh.is_empty());
        }
        // Scanned once: later new keys go straight into the skiplist.
        m.chunk(b"", None, u64::MAX, 1);
        assert!(lock(&m.unsorted).is_empty());
        m.insert(Bytes::from_static(b"k6"), 15, rec("z"), 1);
        assert!(lock(&m.unsorted).is_empty());
        let keys: Vec<Bytes> = m.chunk(b"k5", None, u64::MAX, 3).into_iter().map(|e| e.0).collect();
        assert_eq!(keys, vec![&b"k5"[..], b"k6", b"k7"]);
    }

    /// Readers scanning at the published sequence while the writer adds a new key
    /// per batch (each one unsorted until a reader moves it): a reader at S sees
    /// exactly the S keys written up to S, in order.
    #[test]
    fn scans_see_every_new_key_published_before_them() {
        // Key order unrelated to arrival order.
        let key = |s: u64| format!("k{:08}", s.wrapping_mul(2_654_435_761) % 100_000_000);
        readers_during_writes(3000, key, |m, s| {
            let all = m.chunk(b"", None, s, usize::MAX);
            assert_eq!(all.len() as u64, s);
            assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
            // A page from the middle: the keys after it, in order.
            if s > 2 {
                let page = m.chunk(b"", Some(&all[0].0), s, 2);
                assert_eq!(page, all[1..3].to_vec());
            }
        });
    }

    /// A flush walk while a reader moves the unsorted keys into the skiplist (the
    /// reader drains once the walk has begun): every key exactly once, in order.
    #[test]
    fn flush_walk_during_a_scan_emits_each_key_once() {
        use std::sync::atomic::AtomicU8;
        use std::sync::Arc;
        let m = Arc::new(Memtable::new());
        for s in 1..=2000u64 {
            let k = format!("k{:08}", s.wrapping_mul(2_654_435_761) % 100_000_000);
            m.insert(Bytes::from(k), s, rec("v"), 1);
            if s % 500 == 250 {
                m.chunk(b"", None, u64::MAX, 1); // some keys sorted, the newest 250 not
                m.scanned.store(false, Ordering::Relaxed); // (as if listed before the drain)
            }
        }
        let step = Arc::new(AtomicU8::new(0)); // 1: the walk began, 2: the reader drained
        let scanner = {
            let (m, step) = (m.clone(), step.clone());
            std::thread::spawn(move || {
                while step.load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
                m.chunk(b"", None, u64::MAX, 1);
                step.store(2, Ordering::Release);
            })
        };
        let mut walked: Vec<Bytes> = Vec::new();
        m.for_each_newest(|k, _| {
            if walked.is_empty() {
                step.store(1, Ordering::Release);
                while step.load(Ordering::Acquire) != 2 {
                    std::thread::yield_now();
                }
            }
            walked.push(k.clone());
            Ok(())
        })
        .unwrap();
        scanner.join().unwrap();
        assert_eq!(walked.len(), 2000);
        assert!(walked.windows(2).all(|w| w[0] < w[1]));
    }
}
