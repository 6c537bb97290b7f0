"""Typed values: how Python objects map to (ValueKind, bytes) on the wire.

    bytes/bytearray/memoryview -> Bytes
    str                        -> String (UTF-8)
    int (not bool)             -> Int (8 bytes, signed, little-endian)
    anything else JSON can say -> Json (UTF-8, compact)

bool, float, None, dict and list are JSON so that `True` comes back as `True`.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

_Q = struct.Struct("<q")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class ValueKind(IntEnum):
    BYTES = 0
    STRING = 1
    INT = 2
    JSON = 3


def encode_int(n: int) -> bytes:
    return _Q.pack(n)


def decode_int(data: bytes) -> int:
    if len(data) != 8:
        raise ValueError(f"an Int value must be 8 bytes, got {len(data)}")
    return int(_Q.unpack(data)[0])


def encode_value(value: Any) -> tuple[int, bytes]:
    if isinstance(value, bytes | bytearray | memoryview):
        return ValueKind.BYTES, bytes(value)
    if isinstance(value, str):
        return ValueKind.STRING, value.encode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer {value} does not fit in 64 bits; store it as a string")
        return ValueKind.INT, _Q.pack(value)
    try:
        return ValueKind.JSON, json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot store a {type(value).__name__}: {exc}") from None


def decode_value(kind: int, data: bytes) -> Any:
    if kind == ValueKind.BYTES:
        return data
    if kind == ValueKind.STRING:
        return data.decode("utf-8")
    if kind == ValueKind.INT:
        return decode_int(data)
    if kind == ValueKind.JSON:
        return json.loads(data)
    return data  # unknown future kinds come back as raw bytes
