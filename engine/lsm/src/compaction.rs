//! Tiered compaction: which tables to merge, and the merge itself.
//!
//! Policy (docs/storage.md has the reasoning and numbers; the same as the Python
//! engine): a flush makes a tier-0 table. Tables are kept oldest first and their
//! tiers never increase from older to newer. When `FANOUT` tables of one tier sit
//! next to each other they are merged into one table of the next tier.
//!
//! Dropping data is safe only when nothing older can hold the key: tombstones and
//! expired values are dropped only by a merge that includes the oldest table.
//! Otherwise an expired value becomes a tombstone (it still shadows older
//! versions, but its value bytes go).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Result;
use crate::manifest::TableMeta;
use crate::merge::{MergeNewestFirst, Source};
use crate::sstable_builder::{SSTableBuilder, TableInfo};
use crate::sstable_reader::Table;

/// Tables of one tier merged at once.
pub const FANOUT: usize = 4;

/// `[start, end)` of a run of >= `FANOUT` adjacent same-tier tables, newest run first.
pub fn pick(tables: &[TableMeta]) -> Option<(usize, usize)> {
    let mut j = tables.len() as isize - 1;
    while j >= 0 {
        let ju = j as usize;
        let mut k = ju;
        while k > 0 && tables[k - 1].tier == tables[ju].tier {
            k -= 1;
        }
        if ju - k + 1 >= FANOUT {
            return Some((k, ju + 1));
        }
        j = k as isize - 1;
    }
    None
}

/// What a merge did.
pub struct MergeResult {
    /// The new table, `None` when every entry was dropped.
    pub info: Option<TableInfo>,
    /// Keys whose expired value was dropped or turned into a tombstone.
    pub dropped_expired: Vec<Bytes>,
    /// Time it took.
    pub duration: Duration,
    /// Input bytes.
    pub bytes_read: u64,
}

/// Merge `inputs` (oldest first) into `builder` (finished here, or aborted when empty).
pub fn merge_tables(
    inputs: &[Arc<Table>],
    builder: SSTableBuilder<'_>,
    includes_oldest: bool,
    now_ms: i64,
) -> Result<MergeResult> {
    let t0 = Instant::now();
    let sources: Vec<Source> = inputs
        .iter()
        .rev()
        .map(|t| Box::new(t.iter_from(b"", false)) as Source)
        .collect();
    let mut builder = builder;
    let mut dropped = Vec::new();
    for item in MergeNewestFirst::new(sources) {
        let (key, rec) = match item {
            Ok(x) => x,
            Err(e) => {
                builder.abort();
                return Err(e);
            }
        };
        let rec = match rec {
            None if includes_oldest => continue,
            Some(r) if r.is_expired_at(now_ms) => {
                dropped.push(Bytes::copy_from_slice(&key));
                if includes_oldest {
                    continue;
                }
                None
            }
            other => other,
        };
        if let Err(e) = builder.add(&key, rec.as_ref()) {
            builder.abort();
            return Err(e);
        }
    }
    let bytes_read = inputs.iter().map(|t| t.size).sum();
    if builder.entries() == 0 {
        builder.abort();
        return Ok(MergeResult {
            info: None,
            dropped_expired: dropped,
            duration: t0.elapsed(),
            bytes_read,
        });
    }
    let info = builder.finish()?;
    Ok(MergeResult {
        info: Some(info),
        dropped_expired: dropped,
        duration: t0.elapsed(),
        bytes_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(tier: u32) -> TableMeta {
        TableMeta {
            number: 0,
            tier,
            size: 0,
            entries: 0,
            smallest: Bytes::new(),
            largest: Bytes::new(),
        }
    }

    #[test]
    fn picks_the_newest_full_run() {
        let t = |tiers: &[u32]| tiers.iter().map(|&x| meta(x)).collect::<Vec<_>>();
        assert_eq!(pick(&t(&[0, 0, 0])), None);
        assert_eq!(pick(&t(&[0, 0, 0, 0])), Some((0, 4)));
        assert_eq!(pick(&t(&[2, 1, 1, 1, 1, 0])), Some((1, 5)));
        assert_eq!(pick(&t(&[1, 1, 1, 1, 0, 0, 0, 0])), Some((4, 8)));
    }
}
