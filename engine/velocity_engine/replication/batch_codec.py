"""Encoding of mutation batches on the replication stream (docs/formats/replication.md).

A batch is what one `Storage.apply()` call received, tagged with the epoch
and sequence number the primary gave it and the primary's wall clock:

    batch    := epoch:u64 seq:u64 time_ms:u64 count:u32 mutation{count}
    mutation := key_len:u32 key tag:u8 [kind:u8 expire_at_ms:u64 value_len:u32 value]
                (tag 0: delete, no more fields; tag 1: put)

All integers little-endian. A snapshot chunk is a bare sequence of
mutations (puts only) with no batch header. Records carry absolute expiry
times, so replaying a batch anywhere yields the same state.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from velocity_engine.replication.errors import StreamFormatError
from velocity_engine.storage.base import Mutation, Record

_BATCH_HEAD = struct.Struct("<QQQI")
_KEY_LEN = struct.Struct("<I")
_PUT_HEAD = struct.Struct("<BBQI")  # tag, kind, expire_at_ms, value_len
BATCH_HEAD_SIZE = _BATCH_HEAD.size  # 28
TIME_OFFSET = 16  # of time_ms in a batch
# The usual batch (one put) in one pack: batch header + key_len, then put header.
_ONE_HEAD = struct.Struct("<QQQII")
TAG_DELETE = 0
TAG_PUT = 1


@dataclass(frozen=True, slots=True)
class Batch:
    epoch: int
    seq: int
    time_ms: int
    mutations: tuple[Mutation, ...]
    raw: bytes = b""  # the batch's own encoding, as received (kept for the replica's backlog)


def encode_mutations(mutations: Sequence[Mutation], out: list[bytes]) -> None:
    """Append the encoding of each mutation to `out` (joined by the caller)."""
    pk = _KEY_LEN.pack
    pp = _PUT_HEAD.pack
    for key, rec in mutations:
        out.append(pk(len(key)))
        out.append(key)
        if rec is None:
            out.append(b"\x00")
        else:
            out.append(pp(TAG_PUT, rec.kind, rec.expire_at_ms, len(rec.value)))
            out.append(rec.value)


def encode_batch(epoch: int, seq: int, time_ms: int, mutations: Sequence[Mutation]) -> bytes:
    if len(mutations) == 1:  # hot path: one key, encoded on every write
        key, rec = mutations[0]
        head = _ONE_HEAD.pack(epoch, seq, time_ms, 1, len(key))
        if rec is None:
            return b"".join((head, key, b"\x00"))
        return b"".join((head, key, _PUT_HEAD.pack(TAG_PUT, rec.kind, rec.expire_at_ms, len(rec.value)), rec.value))
    out = [_BATCH_HEAD.pack(epoch, seq, time_ms, len(mutations))]
    encode_mutations(mutations, out)
    return b"".join(out)


def _decode_mutation(buf: bytes, pos: int) -> tuple[Mutation, int]:
    end = len(buf)
    if end - pos < 5:
        raise StreamFormatError(f"mutation header truncated at offset {pos} of {end}")
    (klen,) = _KEY_LEN.unpack_from(buf, pos)
    pos += 4
    if end - pos < klen + 1:
        raise StreamFormatError(f"key of {klen} bytes runs past the end ({end}) at offset {pos}")
    key = buf[pos : pos + klen]
    pos += klen
    tag = buf[pos]
    if tag == TAG_DELETE:
        return (key, None), pos + 1
    if tag != TAG_PUT:
        raise StreamFormatError(f"unknown mutation tag {tag} at offset {pos}")
    if end - pos < _PUT_HEAD.size:
        raise StreamFormatError(f"put header truncated at offset {pos} of {end}")
    _, kind, expire_at, vlen = _PUT_HEAD.unpack_from(buf, pos)
    pos += _PUT_HEAD.size
    if end - pos < vlen:
        raise StreamFormatError(f"value of {vlen} bytes runs past the end ({end}) at offset {pos}")
    return (key, Record(kind, buf[pos : pos + vlen], expire_at)), pos + vlen


def decode_mutations(buf: bytes) -> list[Mutation]:
    """Every mutation of a snapshot chunk."""
    out: list[Mutation] = []
    pos = 0
    while pos < len(buf):
        mut, pos = _decode_mutation(buf, pos)
        out.append(mut)
    return out


def decode_batches(buf: bytes) -> list[Batch]:
    """Every batch of a REPL_BATCHES body, in order."""
    out: list[Batch] = []
    pos = 0
    end = len(buf)
    while pos < end:
        if end - pos < BATCH_HEAD_SIZE:
            raise StreamFormatError(f"batch header truncated at offset {pos} of {end}")
        start = pos
        epoch, seq, time_ms, count = _BATCH_HEAD.unpack_from(buf, pos)
        pos += BATCH_HEAD_SIZE
        muts: list[Mutation] = []
        for _ in range(count):
            mut, pos = _decode_mutation(buf, pos)
            muts.append(mut)
        out.append(Batch(epoch, seq, time_ms, tuple(muts), buf[start:pos]))
    return out
