//! The commit log of the memory store: sequence numbers and a bounded backlog of
//! encoded batches for the replication feed (docs/formats/replication.md,
//! stream version 2).
//!
//! A batch is encoded once, with velocity_lsm's batch codec (`epoch:u64 seq:u64
//! count:u32 entry*`, the WAL's record payload), before any lock is taken; its
//! sequence number is written into those bytes under the log's mutex, which the
//! store takes while it still holds the shards the batch touched. So the order
//! of the backlog is the order in which batches became visible on every key, and
//! a copy taken under every shard lock reflects exactly the log position read
//! under the same locks. A replica logs the bytes it receives as they are.
//!
//! Encoding starts with the first replica ([`MemLog::retain`], before its full
//! copy is taken): a node nobody ever replicated from pays nothing for the log
//! (tests/hotpath.rs, one noisy 2-core run: SET 188 ns without the log, about
//! 400-480 ns with it), and
//! a memory node's first replica needs a full copy anyway (nothing survived a
//! restart). A commit decides under its shard locks, so every batch numbered
//! after a copy's position carries its bytes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use velocity_lsm::batch;

use crate::store::{Mutation, StoreError};

/// Default backlog size (the Python engine's `replication_backlog_bytes`).
pub const DEFAULT_BACKLOG_BYTES: usize = 64 << 20;

struct Inner {
    /// Sequence number of `batches[0]` (the next batch's when empty).
    first: u64,
    batches: VecDeque<Bytes>,
    bytes: usize,
    cap: usize,
    /// Position of the newest batch.
    epoch: u64,
    seq: u64,
}

/// The log (thread-safe, one short mutex per commit).
pub struct MemLog {
    inner: Mutex<Inner>,
    /// Batches are encoded and kept (a replica connected once).
    retained: AtomicBool,
}

/// A batch encoded outside the locks, its sequence number still to be set.
pub struct Pending(batch::Encoded);

fn lsm_mutation(m: &Mutation) -> velocity_lsm::Mutation {
    // Zero-copy: the Bytes share the Arc'd key and value.
    let key = Bytes::from_owner(m.key.clone());
    match &m.record {
        Some(r) => velocity_lsm::Mutation::Put {
            key,
            record: velocity_lsm::Record {
                kind: r.kind,
                value: Bytes::from_owner(r.value.clone()),
                expire_at_ms: r.expire_at_ms,
            },
        },
        None => velocity_lsm::Mutation::Delete { key },
    }
}

impl MemLog {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                first: 1,
                batches: VecDeque::new(),
                bytes: 0,
                cap,
                epoch: 0,
                seq: 0,
            }),
            retained: AtomicBool::new(false),
        }
    }

    /// Keep encoded batches from now on (called before a replica's copy is taken).
    pub fn retain(&self) {
        self.retained.store(true, Ordering::Release);
    }

    pub fn retained(&self) -> bool {
        self.retained.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encodes a batch of `epoch` (no lock held).
    pub fn encode(epoch: u64, mutations: &[Mutation]) -> Result<Pending, StoreError> {
        let muts: Vec<velocity_lsm::Mutation> = mutations.iter().map(lsm_mutation).collect();
        batch::encode(0, epoch, &muts)
            .map(Pending)
            .map_err(|e| StoreError::WritesRefused(e.to_string()))
    }

    /// Numbers a batch of `epoch` and appends its bytes if it has them (see
    /// [`MemLog::retain`]); the caller holds the shards it touches.
    pub fn append(&self, epoch: u64, pending: Option<Pending>) -> u64 {
        let mut g = self.lock();
        let seq = g.seq + 1;
        g.seq = seq;
        g.epoch = epoch;
        match pending {
            Some(Pending(mut enc)) => {
                enc.set_seq(seq);
                push(&mut g, Bytes::from(enc.buf));
            }
            // Not retained: nothing is held, the next batch would be the first.
            None => g.first = seq + 1,
        }
        seq
    }

    /// Checks that `raw` is the next batch; returns its header. Nothing is changed.
    pub fn check_next(&self, raw: &[u8]) -> Result<(u64, u64), StoreError> {
        let (epoch, seq) = batch::header(raw).ok_or_else(|| StoreError::BadBatch("shorter than its header".into()))?;
        let have = self.lock().seq;
        if seq != have + 1 {
            return Err(StoreError::BadBatch(format!(
                "batch {seq} does not follow this node's position {have}"
            )));
        }
        Ok((epoch, seq))
    }

    /// Appends a replicated batch (checked by [`MemLog::check_next`] under the same shard locks).
    pub fn append_raw(&self, epoch: u64, seq: u64, raw: Bytes) {
        self.retain();
        let mut g = self.lock();
        g.seq = seq;
        g.epoch = epoch;
        push(&mut g, raw);
    }

    /// The encoded batches after `seq`, up to the newest.
    pub fn since(&self, seq: u64) -> Result<Vec<Bytes>, StoreError> {
        let g = self.lock();
        if seq >= g.seq {
            return Ok(Vec::new());
        }
        if seq + 1 < g.first {
            return Err(StoreError::Compacted {
                requested: seq + 1,
                oldest: g.first,
            });
        }
        let from = (seq + 1 - g.first) as usize;
        Ok(g.batches.range(from..).cloned().collect())
    }

    pub fn position(&self) -> (u64, u64) {
        let g = self.lock();
        (g.epoch, g.seq)
    }

    /// Forgets the backlog; the log continues after `position` (a full copy).
    pub fn reset(&self, position: (u64, u64)) {
        let mut g = self.lock();
        g.batches.clear();
        g.bytes = 0;
        (g.epoch, g.seq) = position;
        g.first = position.1 + 1;
    }

    /// (bytes held, first seq held, last seq).
    pub fn span(&self) -> (u64, u64, u64) {
        let g = self.lock();
        (g.bytes as u64, g.first, g.seq)
    }
}

fn push(g: &mut Inner, raw: Bytes) {
    g.bytes += raw.len();
    g.batches.push_back(raw);
    // Keep at least the newest batch whatever its size: a replica one batch behind resumes.
    while g.bytes > g.cap && g.batches.len() > 1 {
        if let Some(old) = g.batches.pop_front() {
            g.bytes -= old.len();
            g.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;

    fn put(k: &str) -> Mutation {
        Mutation {
            key: k.as_bytes().into(),
            record: Some(Record {
                kind: 1,
                value: b"value".as_slice().into(),
                expire_at_ms: 7,
            }),
        }
    }

    #[test]
    fn encodes_with_the_lsm_codec_and_evicts_the_oldest() {
        let log = MemLog::new(100);
        assert_eq!(log.append(3, None), 1, "not retained: numbered, no bytes");
        assert!(matches!(
            log.since(0),
            Err(StoreError::Compacted {
                requested: 1,
                oldest: 2
            })
        ));
        log.retain();
        for i in 1..5 {
            let p = MemLog::encode(3, &[put(&format!("k{i}"))]).unwrap();
            assert_eq!(log.append(3, Some(p)), i + 1);
        }
        assert_eq!(log.position(), (3, 5));
        let raw = log.since(4).unwrap();
        assert_eq!(raw.len(), 1);
        let parsed = batch::parse(&raw[0]).unwrap();
        assert_eq!((parsed.epoch, parsed.seq, parsed.entries.len()), (3, 5, 1));
        assert_eq!(&raw[0][parsed.entries[0].key.clone()], b"k4");
        // 4 retained batches of 44 bytes, capped at 100: batches 2 and 3 are gone.
        assert!(matches!(
            log.since(0),
            Err(StoreError::Compacted {
                requested: 1,
                oldest: 4
            })
        ));
        assert_eq!(log.since(3).unwrap().len(), 2);
        assert!(log.since(5).unwrap().is_empty());
        assert!(log.check_next(&raw[0]).is_err(), "batch 5 again does not follow 5");
        log.reset((9, 40));
        assert_eq!(log.span(), (0, 41, 40));
    }
}
