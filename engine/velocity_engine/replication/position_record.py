"""The log position stored inside the data, atomically with every batch.

Each batch a node applies carries one extra mutation: the reserved key
POSITION_KEY with the (epoch, seq) of that batch. The storage applies a
batch atomically, so after any crash the data and its position agree
exactly; a restarted node knows precisely which batches it holds, which is
what lets it resume, and what lets a deposed primary find out that it holds
batches nobody else has (docs/formats/replication.md, "Position record").

Value layout: epoch:u64 seq:u64 flags:u8, little-endian. Flag bit 0
(INCOMPLETE) is set while a full copy is being loaded: such data must be
copied again from scratch.
"""

from __future__ import annotations

import struct

from velocity_engine.storage.base import Record

# Sorts after every printable key; hidden from SCAN and key counts.
POSITION_KEY = b"\xff\xffvelocity/replication/position"
_VALUE = struct.Struct("<QQB")
INCOMPLETE = 0x1
pack_position = _VALUE.pack  # (epoch, seq, flags) -> value bytes


def position_record(epoch: int, seq: int, flags: int = 0) -> Record:
    return Record(0, _VALUE.pack(epoch, seq, flags), 0)


def read_position(rec: Record | None) -> tuple[int, int, int] | None:
    """(epoch, seq, flags), or None when the data holds no (valid) position."""
    if rec is None or len(rec.value) != _VALUE.size:
        return None
    epoch, seq, flags = _VALUE.unpack(rec.value)
    return int(epoch), int(seq), int(flags)
