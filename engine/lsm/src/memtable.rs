//! The memtable: the newest writes, in RAM, until they are flushed to an SSTable.
//!
//! A lock-free skiplist (crossbeam) of *versions*: the key is (user key, seq),
//! ordered by user key ascending and seq descending (LevelDB's internal key), so
//! a reader at sequence S finds the newest version with seq <= S with one seek.
//! Keeping versions is what makes a batch atomic to readers (a concurrent reader
//! at S never sees half of batch S+1) and snapshots consistent without copying.
//! Deletes are tombstones (`None`). Keys and values are usually slices of the
//! batch buffer that wrote them, so a write is encoded once and never copied.
//!
//! Threads: one writer at a time (the commit path, under the engine's commit
//! lock) and any number of concurrent readers. Once frozen, a memtable is only
//! read (by the flush thread, readers and snapshots).

use std::borrow::Borrow;
use std::cmp::Ordering as CmpOrdering;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::record::Record;

/// Rough bytes of skiplist node, key and record handles per version (on top of the batch bytes).
pub const ENTRY_OVERHEAD: usize = 112;

/// A version's key: user key and the sequence of the batch that wrote it.
#[derive(Debug, Clone)]
pub struct InternalKey {
    key: Bytes,
    seq: u64,
}

/// What the skiplist is searched with (owned keys and borrowed probes alike).
pub trait KeyView {
    /// (user key, seq).
    fn parts(&self) -> (&[u8], u64);
}

impl KeyView for InternalKey {
    fn parts(&self) -> (&[u8], u64) {
        (&self.key, self.seq)
    }
}

impl KeyView for (&[u8], u64) {
    fn parts(&self) -> (&[u8], u64) {
        (self.0, self.1)
    }
}

fn cmp_parts(a: (&[u8], u64), b: (&[u8], u64)) -> CmpOrdering {
    a.0.cmp(b.0).then_with(|| b.1.cmp(&a.1))
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for dyn KeyView + '_ {}
impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        cmp_parts(self.parts(), other.parts())
    }
}

impl PartialEq for InternalKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for InternalKey {}
impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        cmp_parts(self.parts(), other.parts())
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for InternalKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// The memtable.
pub struct Memtable {
    map: SkipMap<InternalKey, Option<Record>>,
    bytes: AtomicUsize,
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
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Add a version (commit path only). `charge`: bytes to account for it.
    ///
    /// Returns what this memtable held for the key below `seq`: `None` no older
    /// version, `Some(true)` a value, `Some(false)` a tombstone. The new node's
    /// successor in (key ascending, seq descending) order is that version, so the
    /// answer costs no second search (the commit path and replay count live keys
    /// with it). A version with the same (key, seq) is replaced and not reported:
    /// callers whose batch writes a key twice must look it up first.
    pub fn insert(&self, key: Bytes, seq: u64, rec: Option<Record>, charge: usize) -> Option<bool> {
        let e = self.map.insert(InternalKey { key, seq }, rec);
        self.bytes.fetch_add(charge + ENTRY_OVERHEAD, Ordering::Relaxed);
        let older = e.next()?;
        (older.key().key == e.key().key).then(|| older.value().is_some())
    }

    /// The newest version of `key` with seq <= `seq`: `None` = no version here,
    /// `Some(None)` = a tombstone.
    pub fn get(&self, key: &[u8], seq: u64) -> Option<Option<Record>> {
        let probe = (key, seq);
        let e = self.map.lower_bound(Bound::Included(&probe as &dyn KeyView))?;
        (e.key().key.as_ref() == key).then(|| e.value().clone())
    }

    /// Up to `max` (key, newest version <= seq) pairs with key > `after` (or >= `from`
    /// when `after` is None), in key order. The unit of the owned iterators.
    pub fn chunk(&self, from: &[u8], after: Option<&[u8]>, seq: u64, max: usize) -> Vec<(Bytes, Option<Record>)> {
        let mut out = Vec::with_capacity(max.min(256));
        let start = match after {
            Some(k) => {
                let probe = (k, 0u64);
                self.map.lower_bound(Bound::Excluded(&probe as &dyn KeyView))
            }
            None => {
                let probe = (from, u64::MAX);
                self.map.lower_bound(Bound::Included(&probe as &dyn KeyView))
            }
        };
        let mut cur = start;
        let mut last: Option<Bytes> = None;
        while let Some(e) = cur {
            let ik = e.key();
            let fresh = last.as_ref().is_none_or(|l| *l != ik.key);
            if fresh && ik.seq <= seq {
                if out.len() == max {
                    break;
                }
                out.push((ik.key.clone(), e.value().clone()));
                last = Some(ik.key.clone());
            }
            cur = e.next();
        }
        out
    }

    /// Every user key's newest version (a frozen memtable being flushed), in order.
    pub fn for_each_newest(
        &self,
        mut f: impl FnMut(&Bytes, Option<&Record>) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let mut last: Option<Bytes> = None;
        for e in self.map.iter() {
            let ik = e.key();
            if last.as_ref().is_some_and(|l| *l == ik.key) {
                continue;
            }
            f(&ik.key, e.value().as_ref())?;
            last = Some(ik.key.clone());
        }
        Ok(())
    }

    /// Approximate bytes held (batch bytes plus per-version overhead).
    pub fn approx_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
