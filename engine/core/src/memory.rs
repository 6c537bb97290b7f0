//! In-memory storage (`--storage memory`): volatile, nothing survives a restart.
//!
//! The native counterpart of engine/velocity_engine/storage/memory.py. Each
//! record is one allocation, a [`RecordBuf`] (header, key, value;
//! record_buf.rs), and every index holds the same 8-byte pointer to it. Keys
//! are spread over [`SHARDS`] shards by [`key_hash`]; each shard, behind its
//! own mutex, holds
//! - a hash table of records for point lookups, the key compared inside the
//!   record: a GET touches the table's control bytes, one slot and the record,
//!   whatever the shard's size; it returns the value as a shared view (no copy);
//! - the records ordered by key, for SCAN;
//! - the records that carry a TTL, ordered by key, for the active cycle (the
//!   expiry is read from the record).
//!
//! A batch locks the shards it touches in index order, so writers never
//! deadlock and no reader sees half a batch; `get_many` and `scan_from` lock in
//! the same order to read one state. Replacing the value of an existing key
//! writes it into the record in place when the size and the presence of an
//! expiry stay and no reader holds the record; otherwise it builds a new record
//! and swaps the pointer in the table and the ordered indexes (a search of
//! each). docs/benchmarks.md "Memory per key" has the sizes.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::memlog::MemLog;
use crate::record_buf::{ByKey, RecordBuf, Value};
use crate::store::{key_hash, Commit, FullCopy, Key, Mutation, Record, Store, StoreError, StoreStats};

/// Shards of the key space (a power of two).
pub const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    /// Every record, found by the hash of its key.
    table: HashTable<RecordBuf>,
    /// Every record, in key order (SCAN).
    order: BTreeSet<ByKey>,
    /// The records with a TTL, in key order (the active expiry cycle).
    ttl: BTreeSet<ByKey>,
    data_bytes: u64,
}

/// What a read returns: the record's fields, its value shared with the store.
fn record_of(r: &RecordBuf) -> Record {
    Record {
        kind: r.kind(),
        value: Value::of(r.clone()),
        expire_at_ms: r.expire_at_ms(),
    }
}

impl Shard {
    fn get(&self, hash: u64, key: &[u8]) -> Option<&RecordBuf> {
        self.table.find(hash, |r| r.key() == key)
    }

    fn apply(&mut self, hash: u64, m: Mutation) {
        let Mutation { key, record } = m;
        let found = self.table.find_entry(hash, |r| r.key() == &*key);
        match (record, found) {
            (None, Ok(entry)) => {
                let (old, _) = entry.remove();
                self.data_bytes -= old.data_len() as u64;
                self.order.remove(old.key());
                if old.expire_at_ms() != 0 {
                    self.ttl.remove(old.key());
                }
            }
            (None, Err(_)) => {}
            (Some(rec), Ok(mut entry)) => {
                let held = if entry.get().expire_at_ms() != 0 { 3 } else { 2 };
                // SAFETY: the table, `order` and (with an expiry) `ttl` hold one
                // handle each, `held` in all, and this thread holds the shard
                // mutably (its lock): no other thread can use them meanwhile.
                #[allow(unsafe_code)]
                let done = unsafe {
                    entry
                        .get()
                        .overwrite_in_place(held, rec.kind, &rec.value, rec.expire_at_ms)
                };
                if done {
                    return;
                }
                let new = RecordBuf::new(&key, rec.kind, &rec.value, rec.expire_at_ms);
                let old = std::mem::replace(entry.get_mut(), new.clone());
                self.data_bytes = self.data_bytes + new.data_len() as u64 - old.data_len() as u64;
                if rec.expire_at_ms != 0 {
                    self.ttl.replace(ByKey(new.clone()));
                } else if old.expire_at_ms() != 0 {
                    self.ttl.remove(old.key());
                }
                self.order.replace(ByKey(new));
            }
            (Some(rec), Err(_)) => {
                let new = RecordBuf::new(&key, rec.kind, &rec.value, rec.expire_at_ms);
                self.data_bytes += new.data_len() as u64;
                if rec.expire_at_ms != 0 {
                    self.ttl.insert(ByKey(new.clone()));
                }
                self.order.insert(ByKey(new.clone()));
                self.table.insert_unique(hash, new, |r| key_hash(r.key()));
            }
        }
    }
}

/// Volatile storage shared by every worker thread.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Sequence numbers and the replication backlog (memlog.rs).
    log: MemLog,
    /// Active expiry's place: (shard, last key visited in it).
    expiry_cursor: Mutex<(usize, Option<Key>)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The shard of a key's hash: middle bits, because the shard's hash table uses
/// the low bits (bucket) and the top seven (the tag compared before any key).
/// Taking the shard from the top bits would leave the tags of a shard's keys
/// nearly all alike and turn every probe into key comparisons.
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_backlog(crate::memlog::DEFAULT_BACKLOG_BYTES)
    }

    /// A store whose replication backlog holds about `backlog_bytes` of batches.
    pub fn with_backlog(backlog_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            log: MemLog::new(backlog_bytes),
            expiry_cursor: Mutex::new((0, None)),
        }
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A panic while a shard was held leaves it consistent enough to serve
        // (each apply is a few map operations): do not poison every later call.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the given shard indices (sorted, distinct) in order.
    fn lock_all(&self, idx: &[usize]) -> Vec<MutexGuard<'_, Shard>> {
        idx.iter().map(|&i| self.lock(i)).collect()
    }
}

fn sorted_distinct(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v.dedup();
    v
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let h = key_hash(key);
        Ok(self.lock(shard_of(h)).get(h, key).map(record_of))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Record>>, StoreError> {
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        let order = sorted_distinct(hashes.iter().map(|&h| shard_of(h)).collect());
        let guards = self.lock_all(&order);
        Ok(keys
            .iter()
            .zip(&hashes)
            .map(|(k, &h)| {
                let pos = order.binary_search(&shard_of(h)).unwrap_or_default();
                guards[pos].get(h, k).map(record_of)
            })
            .collect())
    }

    fn commit(&self, epoch: u64, mutations: Vec<Mutation>) -> Result<Commit, StoreError> {
        // Encoded before any lock once the log is retained; numbered while the
        // touched shards are held; the rare commit that meets the switch to
        // retained encodes under its locks (memlog.rs).
        let mut encoded = match self.log.retained() {
            true => Some(MemLog::encode(epoch, &mutations)?),
            false => None,
        };
        let mut mutations = mutations;
        if mutations.len() == 1 {
            if let Some(m) = mutations.pop() {
                let h = key_hash(&m.key);
                let mut shard = self.lock(shard_of(h));
                if encoded.is_none() && self.log.retained() {
                    encoded = Some(MemLog::encode(epoch, std::slice::from_ref(&m))?);
                }
                shard.apply(h, m);
                let seq = self.log.append(epoch, encoded);
                return Ok(Commit { seq, durable: None });
            }
        }
        let hashes: Vec<u64> = mutations.iter().map(|m| key_hash(&m.key)).collect();
        let order = sorted_distinct(hashes.iter().map(|&h| shard_of(h)).collect());
        let mut guards = self.lock_all(&order);
        if encoded.is_none() && self.log.retained() {
            encoded = Some(MemLog::encode(epoch, &mutations)?);
        }
        let seq = self.log.append(epoch, encoded);
        for (m, h) in mutations.into_iter().zip(hashes) {
            let pos = order.binary_search(&shard_of(h)).unwrap_or_default();
            guards[pos].apply(h, m);
        }
        Ok(Commit { seq, durable: None })
    }

    fn log_position(&self) -> (u64, u64) {
        self.log.position()
    }

    fn raw_batches_since(&self, seq: u64) -> Result<Vec<bytes::Bytes>, StoreError> {
        self.log.since(seq)
    }

    fn retain_log(&self) {
        self.log.retain();
    }

    fn apply_replicated(&self, raw: bytes::Bytes) -> Result<Commit, StoreError> {
        let parsed = velocity_lsm::batch::parse(&raw).map_err(StoreError::BadBatch)?;
        let mutations: Vec<Mutation> = parsed
            .entries
            .iter()
            .map(|e| Mutation {
                key: raw[e.key.clone()].into(),
                record: e.put.as_ref().map(|(kind, at, v)| Record {
                    kind: *kind,
                    value: raw[v.clone()].into(),
                    expire_at_ms: *at,
                }),
            })
            .collect();
        let hashes: Vec<u64> = mutations.iter().map(|m| key_hash(&m.key)).collect();
        let order = sorted_distinct(hashes.iter().map(|&h| shard_of(h)).collect());
        let mut guards = self.lock_all(&order);
        let (epoch, seq) = self.log.check_next(&raw)?;
        for (m, h) in mutations.into_iter().zip(hashes) {
            let pos = order.binary_search(&shard_of(h)).unwrap_or_default();
            guards[pos].apply(h, m);
        }
        self.log.append_raw(epoch, seq, raw);
        Ok(Commit { seq, durable: None })
    }

    fn full_copy(&self) -> Result<FullCopy, StoreError> {
        let all: Vec<usize> = (0..SHARDS).collect();
        let guards = self.lock_all(&all);
        // Under every shard lock: no batch is half applied, and the log position is
        // exactly the one the records reflect (batches are numbered under shard locks).
        let position = self.log.position();
        let mut records = Vec::new();
        for g in &guards {
            records.extend(g.table.iter().map(|r| (Key::from(r.key()), record_of(r))));
        }
        Ok((position, records))
    }

    fn install_copy(&self, position: (u64, u64), records: Vec<(Key, Record)>) -> Result<(), StoreError> {
        let all: Vec<usize> = (0..SHARDS).collect();
        let mut guards = self.lock_all(&all);
        for g in guards.iter_mut() {
            **g = Shard::default();
        }
        for (key, rec) in records {
            let h = key_hash(&key);
            guards[shard_of(h)].apply(h, Mutation { key, record: Some(rec) });
        }
        self.log.reset(position);
        Ok(())
    }

    fn backlog_span(&self) -> (u64, u64, u64) {
        self.log.span()
    }

    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Vec<(Key, Record)>, StoreError> {
        let all: Vec<usize> = (0..SHARDS).collect();
        let guards = self.lock_all(&all);
        let mut iters: Vec<_> = guards
            .iter()
            .map(|g| g.order.range::<[u8], _>((Bound::Included(start), Bound::Unbounded)))
            .collect();
        // A k-way merge of the shards' ordered sets, smallest key first.
        let mut heap = BinaryHeap::with_capacity(SHARDS);
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some(r) = it.next() {
                heap.push(Reverse((r, i)));
            }
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        while out.len() < limit {
            let Some(Reverse((r, i))) = heap.pop() else {
                break;
            };
            out.push((Key::from(r.0.key()), record_of(&r.0)));
            if let Some(next) = iters[i].next() {
                heap.push(Reverse((next, i)));
            }
        }
        Ok(out)
    }

    fn expiring_sample(&self, n: usize) -> Vec<(Key, i64)> {
        let mut cursor = self.expiry_cursor.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(n);
        for _ in 0..=SHARDS {
            if out.len() >= n {
                break;
            }
            let (shard, last) = &mut *cursor;
            let g = self.lock(*shard);
            let lower = match last.as_deref() {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            let mut exhausted = true;
            for r in g.ttl.range::<[u8], _>((lower, Bound::Unbounded)) {
                if out.len() >= n {
                    exhausted = false;
                    break;
                }
                out.push((Key::from(r.0.key()), r.0.expire_at_ms()));
            }
            if exhausted {
                *shard = (*shard + 1) % SHARDS;
                *last = None;
            } else {
                *last = out.last().map(|(k, _)| k.clone());
            }
        }
        out
    }

    fn stats(&self) -> StoreStats {
        let mut st = StoreStats {
            engine: "memory",
            ..StoreStats::default()
        };
        for i in 0..SHARDS {
            let g = self.lock(i);
            st.keys += g.table.len() as u64;
            st.keys_with_ttl += g.ttl.len() as u64;
            st.data_bytes += g.data_bytes;
        }
        st
    }

    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn put(key: &str, value: &str, at: i64) -> Mutation {
        Mutation {
            key: key.as_bytes().into(),
            record: Some(Record {
                kind: 1,
                value: value.as_bytes().into(),
                expire_at_ms: at,
            }),
        }
    }

    fn del(key: &str) -> Mutation {
        Mutation {
            key: key.as_bytes().into(),
            record: None,
        }
    }

    #[test]
    fn counts_follow_writes_and_deletes() {
        let s = MemoryStore::new();
        s.commit(0, vec![put("a", "xyz", 0), put("b", "1", 99)]).unwrap();
        s.commit(0, vec![put("a", "x", 5)]).unwrap();
        let st = s.stats();
        assert_eq!((st.keys, st.keys_with_ttl, st.data_bytes), (2, 2, 4));
        s.commit(0, vec![put("a", "x", 0), del("b"), del("missing")]).unwrap();
        let st = s.stats();
        assert_eq!((st.keys, st.keys_with_ttl, st.data_bytes), (1, 0, 2));
        assert_eq!(
            s.scan_from(b"", 10).unwrap().len(),
            1,
            "the ordered set follows the table"
        );
    }

    #[test]
    fn scan_merges_shards_in_byte_order() {
        let s = MemoryStore::new();
        let keys: Vec<String> = (0..500).map(|i| format!("k{i:04}")).collect();
        let batch = keys.iter().rev().map(|k| put(k, "v", 0)).collect();
        s.commit(0, batch).unwrap();
        let got: Vec<Key> = s.scan_from(b"k0100", 50).unwrap().into_iter().map(|(k, _)| k).collect();
        let want: Vec<Key> = keys[100..150].iter().map(|k| Arc::from(k.as_bytes())).collect();
        assert_eq!(got, want);
        assert_eq!(s.scan_from(b"k", 10_000).unwrap().len(), 500);
    }

    #[test]
    fn expiring_sample_visits_every_ttl_key_once_per_cycle() {
        let s = MemoryStore::new();
        let batch = (0..300).map(|i| put(&format!("t{i}"), "v", 1000 + i)).collect();
        s.commit(0, batch).unwrap();
        s.commit(0, vec![put("plain", "v", 0)]).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..15 {
            for (k, _) in s.expiring_sample(20) {
                assert!(seen.insert(k), "a key was visited twice within a cycle");
            }
        }
        assert_eq!(seen.len(), 300);
    }

    #[test]
    fn the_log_keeps_bytes_from_the_first_replica_on() {
        let s = MemoryStore::new();
        s.commit(1, vec![put("a", "1", 0)]).unwrap();
        s.commit(1, vec![put("b", "2", 0), del("a")]).unwrap();
        assert!(s.raw_batches_since(0).is_err(), "nothing retained before a replica");
        s.retain_log();
        let ((epoch, at), records) = s.full_copy().unwrap();
        assert_eq!((epoch, at, records.len()), (1, 2, 1));
        s.commit(2, vec![put("c", "3", 5)]).unwrap();
        let raw = s.raw_batches_since(at).unwrap();
        assert_eq!(raw.len(), 1);
        // A replica that installs the copy and applies the batch holds the same state.
        let r = MemoryStore::new();
        r.install_copy((epoch, at), records).unwrap();
        r.apply_replicated(raw[0].clone()).unwrap();
        assert_eq!(r.log_position(), (2, 3));
        assert_eq!(r.scan_from(b"", 10), s.scan_from(b"", 10));
        assert!(r.apply_replicated(raw[0].clone()).is_err(), "batch 3 twice");
        assert_eq!(
            r.raw_batches_since(2).unwrap(),
            raw,
            "the replica logs the bytes as received"
        );
    }

    #[test]
    fn an_overwrite_swaps_the_record_in_every_index() {
        let s = MemoryStore::new();
        s.commit(0, vec![put("a", "old", 0), put("b", "x", 0)]).unwrap();
        let held = s.get(b"a").unwrap().unwrap();
        s.commit(0, vec![put("a", "newer", 77)]).unwrap();
        assert_eq!(&*held.value, b"old", "a value read before stays as it was");
        let got = s.get(b"a").unwrap().unwrap();
        assert_eq!((&*got.value, got.expire_at_ms), (&b"newer"[..], 77));
        let again = s.get(b"a").unwrap().unwrap();
        assert_eq!(again.value.as_ptr(), got.value.as_ptr(), "reads share the stored bytes");
        assert_eq!(s.expiring_sample(10), vec![(Key::from(&b"a"[..]), 77)]);
        let scanned = s.scan_from(b"", 10).unwrap();
        assert_eq!(scanned[0], (Key::from(&b"a"[..]), got));
        s.commit(0, vec![put("a", "n", 0)]).unwrap();
        assert!(s.expiring_sample(10).is_empty(), "the TTL set follows the overwrite");
        drop((held, again, scanned));
        let before = s.get(b"b").unwrap().unwrap().value.as_ptr();
        s.commit(0, vec![put("b", "y", 0), put("a", "m", 0)]).unwrap();
        let after = s.get(b"b").unwrap().unwrap();
        assert_eq!((&*after.value, after.value.as_ptr()), (&b"y"[..], before), "in place");
        let st = s.stats();
        assert_eq!((st.keys, st.keys_with_ttl, st.data_bytes), (2, 0, 4));
        assert_eq!(s.scan_from(b"", 10).unwrap().len(), 2);
    }

    #[test]
    fn long_keys_and_values_round_trip() {
        let s = MemoryStore::new();
        let key = "k".repeat(300);
        let value = "v".repeat(70_000);
        s.commit(0, vec![put(&key, &value, 5), put("short", "", 0)]).unwrap();
        let got = s.get(key.as_bytes()).unwrap().unwrap();
        assert_eq!((got.value.len(), got.expire_at_ms, got.kind), (70_000, 5, 1));
        assert_eq!(&*s.get(b"short").unwrap().unwrap().value, b"");
        assert_eq!(s.stats().data_bytes, 70_305);
    }

    #[test]
    fn get_many_reads_each_key() {
        let s = MemoryStore::new();
        s.commit(0, vec![put("a", "1", 0), put("c", "3", 0)]).unwrap();
        let got = s.get_many(&[b"a", b"b", b"c", b"a"]).unwrap();
        let vals: Vec<Option<&[u8]>> = got.iter().map(|r| r.as_ref().map(|r| &*r.value)).collect();
        assert_eq!(vals, vec![Some(&b"1"[..]), None, Some(b"3"), Some(b"1")]);
    }
}
