//! The newest batches, in memory, for the replication feed (`Db::batches_since`).
//!
//! Holds the raw batch bytes the WAL holds (shared buffers, no copy on the commit
//! path), bounded in bytes: the oldest go first. Batches replayed at start-up are
//! included (copied out of the segment buffers), so a replica can resume from a
//! restarted primary. Thread-safe (one short mutex per operation).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::error::{Error, Result};

struct Inner {
    first: u64,
    batches: VecDeque<Bytes>,
    bytes: usize,
    cap: usize,
}

/// The backlog.
pub struct Backlog {
    inner: Mutex<Inner>,
}

impl Backlog {
    /// Empty, expecting batch `next_seq` first.
    pub fn new(cap: usize, next_seq: u64) -> Backlog {
        Backlog {
            inner: Mutex::new(Inner {
                first: next_seq,
                batches: VecDeque::new(),
                bytes: 0,
                cap,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append batch `seq` (must be the next one).
    pub fn push(&self, seq: u64, raw: Bytes) {
        let mut b = self.lock();
        debug_assert_eq!(seq, b.first + b.batches.len() as u64);
        b.bytes += raw.len();
        b.batches.push_back(raw);
        while b.bytes > b.cap && b.batches.len() > 1 {
            if let Some(old) = b.batches.pop_front() {
                b.bytes -= old.len();
                b.first += 1;
            }
        }
    }

    /// Forget everything; the next batch is `next_seq` (a full copy was installed).
    pub fn reset(&self, next_seq: u64) {
        let mut b = self.lock();
        b.batches.clear();
        b.bytes = 0;
        b.first = next_seq;
    }

    /// Batch `seq`, if held.
    pub fn get(&self, seq: u64) -> Option<Bytes> {
        let b = self.lock();
        let i = seq.checked_sub(b.first)?;
        b.batches.get(i as usize).cloned()
    }

    /// (oldest seq held, batches, bytes).
    pub fn span(&self) -> (u64, usize, usize) {
        let b = self.lock();
        (b.first, b.batches.len(), b.bytes)
    }
}

/// The batches after a given one, up to the newest at the time of the call.
pub struct BatchIter {
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) next: u64,
    pub(crate) end: u64,
}

impl std::fmt::Debug for BatchIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

impl Iterator for BatchIter {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Result<Bytes>> {
        if self.next > self.end {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        match self.backlog.get(seq) {
            Some(b) => Some(Ok(b)),
            None => {
                self.next = self.end + 1;
                Some(Err(Error::Compacted {
                    requested: seq,
                    oldest: self.backlog.span().0,
                }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end + 1).saturating_sub(self.next) as usize;
        (0, Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_and_reports_it() {
        let b = Arc::new(Backlog::new(10, 1));
        for seq in 1..=5 {
            b.push(seq, Bytes::from(vec![0u8; 4]));
        }
        assert_eq!(b.span(), (4, 2, 8));
        assert!(b.get(3).is_none());
        let it = BatchIter {
            backlog: b.clone(),
            next: 4,
            end: 5,
        };
        assert_eq!(it.count(), 2);
        let mut it = BatchIter {
            backlog: b,
            next: 2,
            end: 5,
        };
        assert!(matches!(
            it.next(),
            Some(Err(Error::Compacted {
                requested: 2,
                oldest: 4
            }))
        ));
        assert!(it.next().is_none());
    }
}
