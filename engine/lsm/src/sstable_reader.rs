//! Reading an SSTable: point lookups and ordered iteration.
//!
//! Lifetime: a table is opened once (footer, filter and index are checked then)
//! and shared (`Arc<Table>`) by every version and snapshot that lists it; when
//! compaction replaces it, the engine removes the file at once and readers that
//! still hold the table keep reading through the open handle. A data block's CRC
//! is checked every time it is read from the file (cache misses); a mismatch is
//! an `Error::Corruption` naming file and offset, never wrong data.
//! Thread-safe: lookups from many threads share the block cache.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::block_cache::{Block, BlockCache};
use crate::bloom::may_contain;
use crate::entry_codec::{decode_entry, key_at};
use crate::error::{Error, Result};
use crate::fs::{FileSystem, ReadableFile};
use crate::record::Record;
use crate::sstable_format::*;

/// Bloom filter counters (for the `velocity_bloom_*` metrics).
#[derive(Debug, Default)]
pub struct BloomStats {
    /// Lookups the filter rejected.
    pub negative: AtomicU64,
    /// Lookups the filter let through.
    pub maybe: AtomicU64,
    /// Of those, lookups the table did not hold.
    pub false_positive: AtomicU64,
}

/// An open table.
pub struct Table {
    /// File number.
    pub number: u64,
    /// File path.
    pub path: PathBuf,
    file: Arc<dyn ReadableFile>,
    /// File size.
    pub size: u64,
    /// Entries, tombstones included.
    pub entries: u64,
    /// Smallest key.
    pub smallest: Bytes,
    /// Largest key.
    pub largest: Bytes,
    filter: Vec<u8>,
    last_keys: Vec<Bytes>,
    blocks: Vec<(u64, u32)>,
    cache: Arc<BlockCache>,
    bloom: Arc<BloomStats>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("number", &self.number)
            .field("size", &self.size)
            .finish()
    }
}

fn u32_at(b: &[u8], p: usize) -> u32 {
    u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]])
}

fn u64_at(b: &[u8], p: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[p..p + 8]);
    u64::from_le_bytes(x)
}

impl Table {
    /// Open and check footer, filter and index.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        number: u64,
        cache: Arc<BlockCache>,
        bloom: Arc<BloomStats>,
    ) -> Result<Table> {
        let file = fs
            .open_read(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let size = file.size();
        let corrupt = |off: u64, why: String| Error::corruption(path, off, why);
        if size < FOOTER_SIZE as u64 {
            return Err(corrupt(0, format!("file of {size} bytes is shorter than a footer")));
        }
        let foot = size - FOOTER_SIZE as u64;
        let mut f = [0u8; FOOTER_SIZE];
        file.read_exact_at(&mut f, foot)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if &f[40..48] != MAGIC {
            return Err(corrupt(
                foot + 40,
                format!("bad magic {:?}, not an SSTable", &f[40..48]),
            ));
        }
        if crc32fast::hash(&f[..FOOTER_CHECKED]) != u32_at(&f, 36) {
            return Err(corrupt(foot, "footer checksum mismatch".into()));
        }
        let version = u32_at(&f, 32);
        if version != VERSION {
            return Err(corrupt(foot, format!("unsupported SSTable version {version}")));
        }
        let index_off = u64_at(&f, 0);
        let index_size = u32_at(&f, 8) as u64;
        let filter_off = u64_at(&f, 12);
        let filter_size = u32_at(&f, 20) as u64;
        let entries = u64_at(&f, 24);
        if !(filter_off <= index_off && filter_off + filter_size == index_off && index_off + index_size == foot) {
            return Err(corrupt(foot, "footer offsets are inconsistent".into()));
        }
        let read_checked = |off: u64, len: u64, what: &str| -> Result<Vec<u8>> {
            if len < 4 {
                return Err(corrupt(off, format!("{what} of {len} bytes does not fit the file")));
            }
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, off)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let body = buf.len() - 4;
            if crc32fast::hash(&buf[..body]) != u32_at(&buf, body) {
                return Err(corrupt(off, format!("{what} checksum mismatch")));
            }
            buf.truncate(body);
            Ok(buf)
        };
        let filter = read_checked(filter_off, filter_size, "filter block")?;
        let index = read_checked(index_off, index_size, "index block")?;
        let mut last_keys = Vec::new();
        let mut blocks = Vec::new();
        let mut pos = 0usize;
        let index = Bytes::from(index);
        while pos < index.len() {
            let bad = || corrupt(index_off + pos as u64, "index block does not parse".into());
            if pos + 4 > index.len() {
                return Err(bad());
            }
            let klen = u32_at(&index, pos) as usize;
            let kend = pos + 4 + klen;
            if kend + 12 > index.len() {
                return Err(bad());
            }
            last_keys.push(index.slice(pos + 4..kend));
            let off = u64_at(&index, kend);
            let bsize = u32_at(&index, kend + 8);
            if off + bsize as u64 > filter_off {
                return Err(bad());
            }
            blocks.push((off, bsize));
            pos = kend + 12;
        }
        let mut t = Table {
            number,
            path: path.to_path_buf(),
            file,
            size,
            entries,
            smallest: Bytes::new(),
            largest: last_keys.last().cloned().unwrap_or_default(),
            filter,
            last_keys,
            blocks,
            cache,
            bloom,
        };
        if !t.blocks.is_empty() {
            let b = t.read_block(0)?;
            let first = b.offsets.first().copied().unwrap_or(0) as usize;
            t.smallest = Bytes::copy_from_slice(t.key_in(&b, first, 0)?);
        }
        Ok(t)
    }

    fn corrupt(&self, off: u64, why: impl Into<String>) -> Error {
        Error::corruption(&self.path, off, why)
    }

    /// Read and verify block `i` from the file (no cache).
    fn read_block(&self, i: usize) -> Result<Arc<Block>> {
        let (off, size) = self.blocks[i];
        let mut buf = vec![0u8; size as usize];
        self.file
            .read_exact_at(&mut buf, off)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        if buf.len() < 8 {
            return Err(self.corrupt(off, format!("data block {i} too short")));
        }
        let body = buf.len() - 4;
        if crc32fast::hash(&buf[..body]) != u32_at(&buf, body) {
            return Err(self.corrupt(off, format!("data block {i} checksum mismatch")));
        }
        let n = u32_at(&buf, body - 4) as usize;
        let Some(start) = (body - 4).checked_sub(n.saturating_mul(4)) else {
            return Err(self.corrupt(off, format!("data block {i} claims {n} entries")));
        };
        let offsets: Vec<u32> = (0..n).map(|j| u32_at(&buf, start + 4 * j)).collect();
        if offsets.iter().any(|&o| o as usize >= start) {
            return Err(self.corrupt(off, format!("data block {i} has an entry offset out of bounds")));
        }
        Ok(Arc::new(Block {
            data: Bytes::from(buf),
            offsets,
            entries_end: start,
        }))
    }

    fn block(&self, i: usize, fill_cache: bool) -> Result<Arc<Block>> {
        if let Some(b) = self.cache.get(self.number, i as u32) {
            return Ok(b);
        }
        let b = self.read_block(i)?;
        if fill_cache {
            self.cache.insert(self.number, i as u32, b.clone());
        }
        Ok(b)
    }

    fn key_in<'b>(&self, b: &'b Block, off: usize, i: usize) -> Result<&'b [u8]> {
        key_at(&b.data[..b.entries_end], off).map_err(|e| self.corrupt(self.blocks[i].0 + off as u64, e.0))
    }

    fn decode_in(&self, b: &Block, off: usize, i: usize) -> Result<(Bytes, Option<Record>)> {
        let e = decode_entry(&b.data[..b.entries_end], off)
            .map_err(|e| self.corrupt(self.blocks[i].0 + off as u64, e.0))?;
        Ok((b.data.slice(e.key.clone()), e.record(&b.data)))
    }

    /// Index of the first entry of block `b` with key >= `key`.
    fn search(&self, b: &Block, key: &[u8], i: usize) -> Result<usize> {
        let (mut lo, mut hi) = (0, b.offsets.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key_in(b, b.offsets[mid] as usize, i)? < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Look a key up: `None` = not in this table, `Some(None)` = a tombstone.
    /// `hashes`: `bloom::key_hashes(key)`, computed once per lookup.
    pub fn get(&self, key: &[u8], hashes: (u64, u64)) -> Result<Option<Option<Record>>> {
        if !may_contain(&self.filter, hashes) {
            self.bloom.negative.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.bloom.maybe.fetch_add(1, Ordering::Relaxed);
        let i = self.last_keys.partition_point(|k| k.as_ref() < key);
        if i < self.last_keys.len() {
            let b = self.block(i, true)?;
            let j = self.search(&b, key, i)?;
            if j < b.offsets.len() && self.key_in(&b, b.offsets[j] as usize, i)? == key {
                return Ok(Some(self.decode_in(&b, b.offsets[j] as usize, i)?.1));
            }
        }
        self.bloom.false_positive.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    /// Entries with key >= `start`, in order. `fill_cache`: keep the blocks read in the cache
    /// (scans yes; compaction and snapshots no).
    pub fn iter_from(self: &Arc<Self>, start: &[u8], fill_cache: bool) -> TableIter {
        let block = self.last_keys.partition_point(|k| k.as_ref() < start);
        TableIter {
            table: self.clone(),
            block,
            current: None,
            pos: 0,
            seek: Some(Bytes::copy_from_slice(start)),
            fill_cache,
            failed: false,
        }
    }

    /// Check every block and entry (the check tool); returns the entry count.
    pub fn verify(self: &Arc<Self>) -> Result<u64> {
        let mut n = 0;
        for item in self.iter_from(b"", false) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.cache.drop_table(self.number);
    }
}

/// Ordered iteration over a table (owns an `Arc` of it).
pub struct TableIter {
    table: Arc<Table>,
    block: usize,
    current: Option<Arc<Block>>,
    pos: usize,
    seek: Option<Bytes>,
    fill_cache: bool,
    failed: bool,
}

impl Iterator for TableIter {
    type Item = Result<(Bytes, Option<Record>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if self.current.is_none() {
                if self.block >= self.table.blocks.len() {
                    return None;
                }
                let b = match self.table.block(self.block, self.fill_cache) {
                    Ok(b) => b,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                };
                self.pos = match self.seek.take() {
                    Some(start) => match self.table.search(&b, &start, self.block) {
                        Ok(p) => p,
                        Err(e) => {
                            self.failed = true;
                            return Some(Err(e));
                        }
                    },
                    None => 0,
                };
                self.current = Some(b);
            }
            let b = self.current.as_ref().expect("set above");
            if self.pos < b.offsets.len() {
                let off = b.offsets[self.pos] as usize;
                self.pos += 1;
                let r = self.table.decode_in(b, off, self.block);
                if r.is_err() {
                    self.failed = true;
                }
                return Some(r);
            }
            self.current = None;
            self.block += 1;
        }
    }
}
