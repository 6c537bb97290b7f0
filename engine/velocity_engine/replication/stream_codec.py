"""Hot-path encoder for REPL_BATCHES bodies (a ReplBatches table with one byte vector).

The primary frames batches on every write; building the table through the
FlatBuffers builder costs ~10 us a frame in Python. For this one shape the
canonical layout (docs/formats/protocol.md, "Canonical encoding") is fixed:

    offset  bytes                      what
    0       0c 00 00 00                root offset -> table at 12
    4       00 00                      padding
    6       06 00 08 00 04 00          vtable: 6 bytes, table 8 bytes, field 0 at +4
    12      06 00 00 00                table: soffset to the vtable (12 - 6)
    16      04 00 00 00                field 0: uoffset -> vector at 20
    20      n:u32 data[n] pad          the vector, padded to 4 bytes

tests/unit/replication/test_stream_codec.py checks it byte for byte against
the generated builder (vproto.messages.ReplBatches.encode).
"""

from __future__ import annotations

import struct

_PREFIX = bytes.fromhex("0c000000" "0000" "0600" "0800" "0400" "06000000" "04000000")
_LEN = struct.Struct("<I")
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def encode_repl_batches(data: bytes) -> bytes:
    """The canonical ReplBatches body for non-empty `data`."""
    n = len(data)
    assert n > 0, "an empty ReplBatches has a different (field omitted) layout"
    body = b"".join((_PREFIX, _LEN.pack(n), data, _PAD[n % 4]))
    assert len(body) == 24 + n + (-n % 4)
    return body
