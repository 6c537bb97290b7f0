"""SSTable layout constants (normative spec: docs/formats/sstable.md).

    table        := data_block+ filter_block index_block footer
    data_block   := entry* offsets:u32[n] n:u32 crc:u32      (crc: CRC-32 of everything before it in the block)
    filter_block := bloom_bits k:u8 crc:u32
    index_block  := (klen:u32 last_key[klen] offset:u64 size:u32)* crc:u32
    footer (48)  := index_off:u64 index_size:u32 filter_off:u64 filter_size:u32
                    entries:u64 version:u32 footer_crc:u32 magic:"VELOSST1"

`size` fields count a block's bytes including its trailing crc. Entries are
entry_codec entries (tombstones included), sorted by key, keys unique.
The per-entry offset array lets a reader binary-search a block in place
(memoryview over the mmap) without decoding it.
"""

from __future__ import annotations

import struct

MAGIC = b"VELOSST1"
VERSION = 1
FOOTER = struct.Struct("<QIQIQII8s")
FOOTER_SIZE = FOOTER.size  # 48
FOOTER_CHECKED = FOOTER_SIZE - 12  # footer_crc covers the first 36 bytes
U32 = struct.Struct("<I")
INDEX_TAIL = struct.Struct("<QI")  # offset, size after each index key
BLOCK_TARGET = 4096
