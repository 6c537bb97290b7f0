//! SSTable layout constants (normative spec: docs/formats/sstable.md, version 1).
//!
//! ```text
//! table        := data_block+ filter_block index_block footer
//! data_block   := entry* offsets:u32[n] n:u32 crc:u32      (crc: CRC-32 of everything before it in the block)
//! filter_block := bloom_bits k:u8 crc:u32
//! index_block  := (klen:u32 last_key[klen] offset:u64 size:u32)* crc:u32
//! footer (48)  := index_off:u64 index_size:u32 filter_off:u64 filter_size:u32
//!                 entries:u64 version:u32 footer_crc:u32 magic:"VELOSST1"
//! ```
//! `size` fields count a block's bytes including its trailing crc. The native
//! engine reads and writes this version unchanged.

/// Footer magic.
pub const MAGIC: &[u8; 8] = b"VELOSST1";
/// Table format version.
pub const VERSION: u32 = 1;
/// Footer size.
pub const FOOTER_SIZE: usize = 48;
/// Bytes the footer CRC covers.
pub const FOOTER_CHECKED: usize = 36;
/// A data block is closed once its entries reach this many bytes.
pub const BLOCK_TARGET: usize = 4096;
