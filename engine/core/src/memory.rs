//! In-memory storage (`--storage memory`): volatile, nothing survives a restart.
//!
//! The native counterpart of engine/velocity_engine/storage/memory.py. Keys are
//! spread over [`SHARDS`] shards by [`key_hash`]; each shard, behind its own
//! mutex, holds
//! - a hash table of (key, record) for point lookups: a GET touches the table's
//!   control bytes, one entry and the key's bytes, whatever the shard's size;
//! - the ordered set of its keys, for SCAN (the same key allocation, shared);
//! - the keys that carry a TTL with their expiry, for the active cycle.
//!
//! A batch locks the shards it touches in index order, so writers never
//! deadlock and no reader sees half a batch; `get_many` and `scan_from` lock in
//! the same order to read one state. Replacing the value of an existing key
//! touches only the hash table.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::memlog::MemLog;
use crate::store::{key_hash, Commit, FullCopy, Key, Mutation, Record, Store, StoreError, StoreStats};

/// Shards of the key space (a power of two).
pub const SHARDS: usize = 64;

struct Entry {
    key: Key,
    rec: Record,
}

#[derive(Default)]
struct Shard {
    table: HashTable<Entry>,
    order: BTreeSet<Key>,
    /// Keys with a TTL and their expiry (for the active expiry cycle).
    ttl: BTreeMap<Key, i64>,
    data_bytes: u64,
}

impl Shard {
    fn get(&self, hash: u64, key: &[u8]) -> Option<&Record> {
        self.table.find(hash, |e| &*e.key == key).map(|e| &e.rec)
    }

    fn apply(&mut self, hash: u64, m: Mutation) {
        let Mutation { key, record } = m;
        let found = self.table.find_entry(hash, |e| e.key == key);
        match (record, found) {
            (None, Ok(entry)) => {
                let (old, _) = entry.remove();
                self.data_bytes -= (old.key.len() + old.rec.value.len()) as u64;
                self.order.remove(&old.key);
                if old.rec.expire_at_ms != 0 {
                    self.ttl.remove(&old.key);
                }
            }
            (None, Err(_)) => {}
            (Some(rec), Ok(mut entry)) => {
                let e = entry.get_mut();
                self.data_bytes = self.data_bytes + rec.value.len() as u64 - e.rec.value.len() as u64;
                let (was, now) = (e.rec.expire_at_ms, rec.expire_at_ms);
                e.rec = rec;
                if now != 0 {
                    match self.ttl.get_mut(&e.key) {
                        Some(at) => *at = now,
                        None => {
                            self.ttl.insert(e.key.clone(), now);
                        }
                    }
                } else if was != 0 {
                    self.ttl.remove(&e.key);
                }
            }
            (Some(rec), Err(_)) => {
                self.data_bytes += (key.len() + rec.value.len()) as u64;
                if rec.expire_at_ms != 0 {
                    self.ttl.insert(key.clone(), rec.expire_at_ms);
                }
                self.order.insert(key.clone());
                self.table.insert_unique(hash, Entry { key, rec }, |e| key_hash(&e.key));
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
        Ok(self.lock(shard_of(h)).get(h, key).cloned())
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
                guards[pos].get(h, k).cloned()
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
            records.extend(g.table.iter().map(|e| (e.key.clone(), e.rec.clone())));
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
        // A k-way merge of the shards' ordered key sets, smallest key first.
        let mut heap = BinaryHeap::with_capacity(SHARDS);
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some(k) = it.next() {
                heap.push(Reverse((k, i)));
            }
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        while out.len() < limit {
            let Some(Reverse((k, i))) = heap.pop() else {
                break;
            };
            let h = key_hash(k);
            if let Some(rec) = guards[i].get(h, k) {
                out.push((k.clone(), rec.clone()));
            }
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
            for (k, at) in g.ttl.range::<[u8], _>((lower, Bound::Unbounded)) {
                if out.len() >= n {
                    exhausted = false;
                    break;
                }
                out.push((k.clone(), *at));
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
    fn get_many_reads_each_key() {
        let s = MemoryStore::new();
        s.commit(0, vec![put("a", "1", 0), put("c", "3", 0)]).unwrap();
        let got = s.get_many(&[b"a", b"b", b"c", b"a"]).unwrap();
        let vals: Vec<Option<&[u8]>> = got.iter().map(|r| r.as_ref().map(|r| &*r.value)).collect();
        assert_eq!(vals, vec![Some(&b"1"[..]), None, Some(b"3"), Some(b"1")]);
    }
}
