"""A bounds-checked FlatBuffers table reader for untrusted bodies.

Python's flatbuffers runtime has no verifier: its generated accessors trust
every offset. Bodies arrive from the network, so everything the server (and
SDK) decodes goes through this reader, which checks each offset against the
buffer and raises ProtocolError instead of reading out of bounds.

An empty body is accepted and reads as a table whose fields all hold their
defaults (handy for PING and INFO).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from vproto.errors import ProtocolError

_Unpack = Callable[[bytes, int], tuple[int]]
_U16: _Unpack = struct.Struct("<H").unpack_from
_U32: _Unpack = struct.Struct("<I").unpack_from
_I32: _Unpack = struct.Struct("<i").unpack_from

_SCALARS = {
    "bool": struct.Struct("<?"),
    "u8": struct.Struct("<B"),
    "u16": struct.Struct("<H"),
    "u32": struct.Struct("<I"),
    "u64": struct.Struct("<Q"),
    "i64": struct.Struct("<q"),
}


class Table:
    """One table inside `buf` at `pos` (validated on construction)."""

    __slots__ = ("buf", "objlen", "pos", "vt", "vtlen")

    def __init__(self, buf: bytes, pos: int) -> None:
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise ProtocolError(f"table offset {pos} outside body of {n} bytes")
        vt = pos - _I32(buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise ProtocolError(f"vtable offset {vt} outside body of {n} bytes")
        vtlen, objlen = struct.unpack_from("<HH", buf, vt)
        if vtlen < 4 or vtlen & 1 or vt + vtlen > n or objlen < 4 or pos + objlen > n:
            raise ProtocolError("malformed vtable")
        self.buf = buf
        self.pos = pos
        self.vt = vt
        self.vtlen = vtlen
        self.objlen = objlen

    @classmethod
    def root(cls, buf: bytes) -> Table:
        if not buf:
            return _EMPTY
        if len(buf) < 4:
            raise ProtocolError(f"body of {len(buf)} bytes is too short for a FlatBuffer")
        return cls(buf, _U32(buf, 0)[0])

    def _field(self, slot: int, size: int) -> int:
        """Absolute position of field `slot`, or 0 when absent."""
        o = 4 + 2 * slot
        if o >= self.vtlen:
            return 0
        off = _U16(self.buf, self.vt + o)[0]
        if off == 0:
            return 0
        if off < 4 or off + size > self.objlen:
            raise ProtocolError(f"field {slot} lies outside its table")
        return self.pos + off

    def scalar(self, slot: int, kind: str, default: int | bool = 0) -> int | bool:
        st = _SCALARS[kind]
        p = self._field(slot, st.size)
        if not p:
            return default
        value: int | bool = st.unpack_from(self.buf, p)[0]
        return value

    def _deref(self, slot: int) -> int:
        """Position of the vector/table an offset field points at, or -1 when absent."""
        p = self._field(slot, 4)
        if not p:
            return -1
        target = p + _U32(self.buf, p)[0]
        if target + 4 > len(self.buf):
            raise ProtocolError(f"field {slot} points outside the body")
        return target

    def vector_bounds(self, slot: int, elem_size: int = 1) -> tuple[int, int] | None:
        v = self._deref(slot)
        if v < 0:
            return None
        count = _U32(self.buf, v)[0]
        start = v + 4
        if start + count * elem_size > len(self.buf):
            raise ProtocolError(f"vector in field {slot} runs past the body")
        return start, count

    def bytes(self, slot: int) -> bytes | None:
        b = self.vector_bounds(slot)
        if b is None:
            return None
        start, count = b
        return bytes(self.buf[start : start + count])

    def string(self, slot: int) -> str:
        raw = self.bytes(slot)
        if raw is None:
            return ""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"field {slot} is not valid UTF-8") from None

    def tables(self, slot: int) -> list[Table]:
        b = self.vector_bounds(slot, 4)
        if b is None:
            return []
        start, count = b
        out = []
        for i in range(count):
            p = start + 4 * i
            out.append(Table(self.buf, p + _U32(self.buf, p)[0]))
        return out


class _EmptyTable(Table):
    """The table of an empty body: every field absent."""

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.vt = 0
        self.vtlen = 0
        self.objlen = 0


_EMPTY = _EmptyTable()
