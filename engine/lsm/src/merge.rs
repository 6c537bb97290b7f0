//! Merging sorted sources where the newest version of a key wins.
//!
//! Each source yields (key, record-or-tombstone) in strictly increasing key order;
//! sources are given newest first. The merge yields every key once, with the
//! version from the newest source that has it (tombstones included: the caller
//! decides whether to drop them). The first error of any source ends the merge.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;

use crate::error::Result;
use crate::record::Record;

/// One entry of a source: a key and its record, or `None` for a tombstone.
pub type Entry = (Bytes, Option<Record>);
/// A sorted source.
pub type Source = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// The merge (an iterator).
pub struct MergeNewestFirst {
    sources: Vec<Source>,
    heads: Vec<Option<Option<Record>>>,
    heap: BinaryHeap<Reverse<(Bytes, usize)>>,
    failed: bool,
    started: bool,
}

impl MergeNewestFirst {
    /// Merge `sources`, newest first.
    pub fn new(sources: Vec<Source>) -> MergeNewestFirst {
        let n = sources.len();
        MergeNewestFirst {
            sources,
            heads: vec![None; n],
            heap: BinaryHeap::new(),
            failed: false,
            started: false,
        }
    }

    fn pull(&mut self, i: usize) -> Result<()> {
        match self.sources[i].next() {
            Some(Ok((k, r))) => {
                self.heads[i] = Some(r);
                self.heap.push(Reverse((k, i)));
            }
            Some(Err(e)) => return Err(e),
            None => self.heads[i] = None,
        }
        Ok(())
    }
}

impl Iterator for MergeNewestFirst {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if let Err(e) = self.pull(i) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let Reverse((key, i)) = self.heap.pop()?;
        let rec = self.heads[i].take().flatten();
        if let Err(e) = self.pull(i) {
            self.failed = true;
            return Some(Err(e));
        }
        // Older versions of the same key sit at the top of the heap now: skip them.
        while let Some(Reverse((k, _))) = self.heap.peek() {
            if *k != key {
                break;
            }
            let Some(Reverse((_, j))) = self.heap.pop() else { break };
            self.heads[j] = None;
            if let Err(e) = self.pull(j) {
                self.failed = true;
                return Some(Err(e));
            }
        }
        Some(Ok((key, rec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(items: &[(&'static str, Option<&'static str>)]) -> Source {
        let v: Vec<Result<Entry>> = items
            .iter()
            .map(|(k, v)| {
                Ok((
                    Bytes::from_static(k.as_bytes()),
                    v.map(|v| Record::new(0, v.as_bytes())),
                ))
            })
            .collect();
        Box::new(v.into_iter())
    }

    #[test]
    fn newest_source_wins_and_every_key_comes_once() {
        let m = MergeNewestFirst::new(vec![
            src(&[("b", Some("new")), ("d", None)]),
            src(&[
                ("a", Some("old")),
                ("b", Some("old")),
                ("d", Some("old")),
                ("e", Some("old")),
            ]),
        ]);
        let out: Vec<(String, Option<String>)> = m
            .map(|r| r.unwrap())
            .map(|(k, r)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    r.map(|r| String::from_utf8(r.value.to_vec()).unwrap()),
                )
            })
            .collect();
        assert_eq!(
            out,
            vec![
                ("a".into(), Some("old".into())),
                ("b".into(), Some("new".into())),
                ("d".into(), None),
                ("e".into(), Some("old".into()))
            ]
        );
    }
}
