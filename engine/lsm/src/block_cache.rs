//! A bounded cache of verified SSTable blocks, shared by all tables of a database.
//!
//! An entry is a data block whose CRC was checked, with its entry offsets
//! unpacked, so a cached lookup is a binary search and nothing else. The bound is
//! on block bytes. Sixteen shards, each a CLOCK (second-chance) ring under its own
//! mutex, so concurrent readers rarely meet. Thread-safe.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

const SHARDS: usize = 16;

/// A verified data block.
#[derive(Debug)]
pub struct Block {
    /// The block's bytes (entries, offsets, count, crc).
    pub data: Bytes,
    /// Offset of each entry from the block start.
    pub offsets: Vec<u32>,
    /// Where the entries end (the offset array begins).
    pub entries_end: usize,
}

type Key = (u64, u32);

#[derive(Default)]
struct Shard {
    map: HashMap<Key, (Arc<Block>, bool)>,
    ring: VecDeque<Key>,
    used: usize,
}

/// The cache. `capacity` 0 disables it.
pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

fn charge(b: &Block) -> usize {
    b.data.len() + b.offsets.len() * 4 + 64
}

impl BlockCache {
    /// A cache holding at most about `capacity` bytes of blocks.
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity / SHARDS,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: Key) -> &Mutex<Shard> {
        let h = key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (key.1 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    /// The cached block, if any.
    pub fn get(&self, table: u64, block: u32) -> Option<Arc<Block>> {
        let key = (table, block);
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        match s.map.get_mut(&key) {
            Some((b, referenced)) => {
                *referenced = true;
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(b.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Cache a block (evicting others to stay in bounds).
    pub fn insert(&self, table: u64, block: u32, b: Arc<Block>) {
        let size = charge(&b);
        if size > self.per_shard {
            return;
        }
        let key = (table, block);
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if s.map.contains_key(&key) {
            return;
        }
        s.used += size;
        s.map.insert(key, (b, false));
        s.ring.push_back(key);
        while s.used > self.per_shard {
            let Some(k) = s.ring.pop_front() else { break };
            match s.map.get_mut(&k) {
                Some((_, referenced)) if *referenced => {
                    *referenced = false;
                    s.ring.push_back(k);
                }
                Some(_) => {
                    if let Some((old, _)) = s.map.remove(&k) {
                        s.used -= charge(&old);
                    }
                }
                None => {}
            }
        }
    }

    /// Forget every block of a table (it was deleted).
    pub fn drop_table(&self, table: u64) {
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = s.map.len();
            let mut freed = 0;
            s.map.retain(|k, (b, _)| {
                let keep = k.0 != table;
                if !keep {
                    freed += charge(b);
                }
                keep
            });
            if s.map.len() != before {
                s.used -= freed;
                let Shard { ring, map, .. } = &mut *s;
                ring.retain(|k| map.contains_key(k));
            }
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).used as u64)
            .sum()
    }

    /// (hits, misses) so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Arc<Block> {
        Arc::new(Block {
            data: Bytes::from(vec![0u8; n]),
            offsets: vec![],
            entries_end: 0,
        })
    }

    #[test]
    fn stays_within_its_bound_and_keeps_hot_blocks() {
        let c = BlockCache::new(16 * 10_000);
        for i in 0..1000 {
            c.insert(1, i, block(1000));
            assert!(c.get(1, 0).is_some() || i == 0, "the hot block 0 stays (second chance)");
        }
        assert!(c.used() <= 16 * 10_000);
        c.drop_table(1);
        assert_eq!(c.used(), 0);
    }
}
