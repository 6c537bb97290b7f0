"""The byte layout of one key/record, shared by the WAL, SSTables and snapshots.

    entry  := op:u8  klen:u32  key[klen]  (op == PUT: kind:u8  expire_at_ms:i64  vlen:u32  value[vlen])
    op     := 0 DELETE (a tombstone) | 1 PUT

All integers little-endian. One layout for every file means one decoder to
fuzz; see docs/formats/wal.md section "Entries".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from velocity_engine.storage.base import Mutation, Record

OP_DELETE = 0
OP_PUT = 1

_KEY_HEAD = struct.Struct("<BI")  # op, klen
_PUT_HEAD = struct.Struct("<BqI")  # kind, expire_at_ms, vlen
KEY_HEAD_SIZE = _KEY_HEAD.size  # 5
PUT_HEAD_SIZE = _PUT_HEAD.size  # 13


class EntryFormatError(ValueError):
    """The bytes do not hold a well-formed entry (the caller adds file and offset)."""


def encode_entry(key: bytes, rec: Record | None, out: bytearray) -> None:
    """Append the encoding of (key, rec) to out; rec None is a tombstone."""
    if rec is None:
        out += _KEY_HEAD.pack(OP_DELETE, len(key))
        out += key
        return
    out += _KEY_HEAD.pack(OP_PUT, len(key))
    out += key
    out += _PUT_HEAD.pack(rec.kind, rec.expire_at_ms, len(rec.value))
    out += rec.value


def encoded_size(key: bytes, rec: Record | None) -> int:
    return KEY_HEAD_SIZE + len(key) + (0 if rec is None else PUT_HEAD_SIZE + len(rec.value))


def decode_entry(buf: bytes | memoryview, pos: int) -> tuple[bytes, Record | None, int]:
    """Decode the entry at pos; returns (key, record or None, position after it)."""
    end = len(buf)
    if pos + KEY_HEAD_SIZE > end:
        raise EntryFormatError("entry header runs past the end")
    op, klen = _KEY_HEAD.unpack_from(buf, pos)
    pos += KEY_HEAD_SIZE
    if pos + klen > end:
        raise EntryFormatError(f"key of {klen} bytes runs past the end")
    key = bytes(buf[pos : pos + klen])
    pos += klen
    if op == OP_DELETE:
        return key, None, pos
    if op != OP_PUT:
        raise EntryFormatError(f"unknown entry op {op}")
    if pos + PUT_HEAD_SIZE > end:
        raise EntryFormatError("value header runs past the end")
    kind, expire_at_ms, vlen = _PUT_HEAD.unpack_from(buf, pos)
    pos += PUT_HEAD_SIZE
    if pos + vlen > end:
        raise EntryFormatError(f"value of {vlen} bytes runs past the end")
    value = bytes(buf[pos : pos + vlen])
    return key, Record(kind, value, expire_at_ms), pos + vlen


def iter_entries(
    buf: bytes | memoryview, pos: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, Record | None]]:
    stop = len(buf) if end is None else end
    view = memoryview(buf)[:stop]
    while pos < stop:
        key, rec, pos = decode_entry(view, pos)
        yield key, rec


def encode_batch(mutations: Sequence[Mutation]) -> bytes:
    out = bytearray()
    for key, rec in mutations:
        encode_entry(key, rec, out)
    return bytes(out)
