"""Write-ahead log layout (normative spec: docs/formats/wal.md).

    segment := file_header record*
    file_header (16 bytes) := magic "VWAL" | version:u16 | reserved:u16 | segment_number:u64
    record := header_crc:u32 | length:u32 | type:u8 | payload_crc:u32 | payload[length]
    header_crc  := CRC-32 (zlib) of the 9 bytes length | type | payload_crc
    payload_crc := CRC-32 (zlib) of payload
    type   := 1 BATCH: payload is entry* (entry_codec.py), applied atomically

The header has its own checksum so a damaged length is recognised as damage
and never mistaken for a record cut off by a crash. No 32 KiB blocks: a
record is never split, so a torn write can only damage the tail, and a
reader never needs to resynchronise after corruption (we refuse to start
instead of skipping). See the doc for the reasoning.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"VWAL"
VERSION = 1
FILE_HEADER = struct.Struct("<4sHHQ")
FILE_HEADER_SIZE = FILE_HEADER.size  # 16
RECORD_HEADER = struct.Struct("<IIBI")  # header_crc, length, type, payload_crc
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 13
TYPE_BATCH = 1
RECORD_TYPES = frozenset({TYPE_BATCH})
MAX_RECORD_BYTES = 1 << 31  # sanity bound for a length read from disk

_CHECKED = struct.Struct("<IBI")  # the header bytes header_crc covers


def file_header(segment: int) -> bytes:
    out = FILE_HEADER.pack(MAGIC, VERSION, 0, segment)
    assert len(out) == FILE_HEADER_SIZE
    return out


def header_crc(length: int, rtype: int, payload_crc: int) -> int:
    return zlib.crc32(_CHECKED.pack(length, rtype, payload_crc))


def encode_record(rtype: int, payload: bytes) -> bytes:
    n = len(payload)
    pcrc = zlib.crc32(payload)
    out = RECORD_HEADER.pack(header_crc(n, rtype, pcrc), n, rtype, pcrc) + payload
    assert len(out) == RECORD_HEADER_SIZE + n
    return out
