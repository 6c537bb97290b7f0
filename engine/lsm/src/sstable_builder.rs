//! Writing one immutable SSTable from sorted entries.
//!
//! Used by the flush thread, the compaction thread, restores and checkpoints;
//! touches nothing shared. `finish()` fsyncs the file, but it only becomes part of
//! the database when a manifest naming it is published (a crash before that leaves
//! an orphan that start-up deletes); its directory entry is made durable by that
//! publication's directory fsync.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::bloom::{blake2b_64, build_filter_from_hashes};
use crate::entry_codec::encode_entry;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, WritableFile};
use crate::record::Record;
use crate::sstable_format::*;

const WRITE_CHUNK: usize = 64 * 1024;

/// What the manifest records about a finished table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// File number.
    pub number: u64,
    /// File size.
    pub size: u64,
    /// Entries (tombstones included).
    pub entries: u64,
    /// Smallest key.
    pub smallest: Bytes,
    /// Largest key.
    pub largest: Bytes,
}

/// `add()` keys in strictly increasing order, then `finish()` once (or `abort()`).
pub struct SSTableBuilder<'a> {
    fs: &'a dyn FileSystem,
    path: PathBuf,
    number: u64,
    file: Option<Arc<dyn WritableFile>>,
    throttle: Option<&'a (dyn Fn(usize) -> Result<()> + Sync)>,
    out: Vec<u8>,
    block: Vec<u8>,
    offsets: Vec<u32>,
    hashes: Vec<u64>,
    index: Vec<u8>,
    pos: u64,
    last: Option<Bytes>,
    smallest: Bytes,
}

impl<'a> SSTableBuilder<'a> {
    /// Create the file (truncating).
    pub fn create(fs: &'a dyn FileSystem, path: &Path, number: u64) -> Result<SSTableBuilder<'a>> {
        let file = fs
            .create(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(SSTableBuilder {
            fs,
            path: path.to_path_buf(),
            number,
            file: Some(file),
            throttle: None,
            out: Vec::with_capacity(WRITE_CHUNK + BLOCK_TARGET * 2),
            block: Vec::with_capacity(BLOCK_TARGET * 2),
            offsets: Vec::new(),
            hashes: Vec::new(),
            index: Vec::new(),
            pos: 0,
            last: None,
            smallest: Bytes::new(),
        })
    }

    /// Call `throttle(bytes)` for every block written (compaction's rate limit; it may cancel).
    pub fn with_throttle(mut self, throttle: &'a (dyn Fn(usize) -> Result<()> + Sync)) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Bytes produced so far.
    pub fn bytes_written(&self) -> u64 {
        self.pos + self.block.len() as u64
    }

    /// Entries added so far.
    pub fn entries(&self) -> usize {
        self.hashes.len()
    }

    /// Add the next entry (`None` = tombstone).
    pub fn add(&mut self, key: &Bytes, rec: Option<&Record>) -> Result<()> {
        if let Some(last) = &self.last {
            if key <= last {
                return Err(Error::InvalidArgument(
                    "SSTable keys must be added in strictly increasing order".into(),
                ));
            }
        } else {
            self.smallest = key.clone();
        }
        self.offsets.push(self.block.len() as u32);
        encode_entry(&mut self.block, key, rec);
        self.hashes.push(blake2b_64(key));
        self.last = Some(key.clone());
        if self.block.len() >= BLOCK_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.offsets.is_empty() {
            return Ok(());
        }
        let mut blk = std::mem::take(&mut self.block);
        for off in &self.offsets {
            blk.extend_from_slice(&off.to_le_bytes());
        }
        blk.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        let crc = crc32fast::hash(&blk);
        blk.extend_from_slice(&crc.to_le_bytes());
        let last = self.last.as_ref().expect("a block has a last key");
        self.index.extend_from_slice(&(last.len() as u32).to_le_bytes());
        self.index.extend_from_slice(last);
        self.index.extend_from_slice(&self.pos.to_le_bytes());
        self.index.extend_from_slice(&(blk.len() as u32).to_le_bytes());
        self.write(&blk)?;
        self.offsets.clear();
        blk.clear();
        self.block = blk;
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.out.extend_from_slice(data);
        self.pos += data.len() as u64;
        if self.out.len() >= WRITE_CHUNK {
            self.drain()?;
        }
        if let Some(t) = self.throttle {
            t(data.len())?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        let file = self.file.as_ref().ok_or(Error::Closed)?;
        file.append(&self.out)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.out.clear();
        Ok(())
    }

    /// Write filter, index and footer, fsync, close. The builder is spent.
    pub fn finish(mut self) -> Result<TableInfo> {
        let res = self.finish_inner();
        if res.is_err() {
            self.abort_inner();
        }
        res
    }

    fn finish_inner(&mut self) -> Result<TableInfo> {
        self.flush_block()?;
        let mut filt = build_filter_from_hashes(&self.hashes);
        let filter_off = self.pos;
        let fcrc = crc32fast::hash(&filt);
        filt.extend_from_slice(&fcrc.to_le_bytes());
        self.write(&filt)?;
        let index_off = self.pos;
        let mut index = std::mem::take(&mut self.index);
        let icrc = crc32fast::hash(&index);
        index.extend_from_slice(&icrc.to_le_bytes());
        self.write(&index)?;
        let mut footer = Vec::with_capacity(FOOTER_SIZE);
        footer.extend_from_slice(&index_off.to_le_bytes());
        footer.extend_from_slice(&((self.pos - index_off) as u32).to_le_bytes());
        footer.extend_from_slice(&filter_off.to_le_bytes());
        footer.extend_from_slice(&((index_off - filter_off) as u32).to_le_bytes());
        footer.extend_from_slice(&(self.hashes.len() as u64).to_le_bytes());
        footer.extend_from_slice(&VERSION.to_le_bytes());
        let crc = crc32fast::hash(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        assert_eq!(footer.len(), FOOTER_SIZE);
        self.write(&footer)?;
        self.drain()?;
        let file = self.file.take().ok_or(Error::Closed)?;
        file.sync_all()
            .map_err(|e| Error::io(format!("fsync of {}", self.path.display()), e))?;
        Ok(TableInfo {
            number: self.number,
            size: self.pos,
            entries: self.hashes.len() as u64,
            smallest: self.smallest.clone(),
            largest: self.last.clone().unwrap_or_default(),
        })
    }

    fn abort_inner(&mut self) {
        self.file = None;
        let _ = crate::fs::remove_if_exists(self.fs, &self.path);
    }

    /// Give up: close and remove the file.
    pub fn abort(mut self) {
        self.abort_inner();
    }
}
