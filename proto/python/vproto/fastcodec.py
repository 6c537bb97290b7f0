"""Hand-written codec for the hot path: GET/SET/INCR/DEL and their replies.

Pure-Python flatbuffers costs ~25 us per encode+decode; this module does the
same work in about a microsecond by computing the layout that the reference
encoder (messages.py, flatc-generated code) would produce and packing it with
one struct call. tests/proto/test_fastcodec.py proves byte equality with the
reference for random inputs; any shape not handled here (an empty key or
value) falls back to the reference encoder.

Decoders accept any valid FlatBuffer (other SDKs lay tables out differently)
and check every offset, like reader.Table, but inline.

Layouts below are written in forward (memory) order; `p*` are alignment pads.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from vproto.errors import BadCrcError, FrameTooLargeError, ProtocolError, VelocityError
from vproto.frame import HEADER, HEADER_SIZE, MAGIC, TRAILER_SIZE, FrameError
from vproto.messages import (
    BoolResponse,
    GetResponse,
    IncrRequest,
    IncrResponse,
    KeyRequest,
    SetRequest,
    SetResponse,
)

_Unpack = Callable[[bytes, int], tuple[int]]
_u32: _Unpack = struct.Struct("<I").unpack_from
_i32: _Unpack = struct.Struct("<i").unpack_from
_u16: _Unpack = struct.Struct("<H").unpack_from
_hh: Callable[[bytes, int], tuple[int, int]] = struct.Struct("<HH").unpack_from
_q: _Unpack = struct.Struct("<q").unpack_from
_u32p = struct.Struct("<I").pack
_ZEROS = b"\x00" * 8
_HEADER_UNPACK = HEADER.unpack_from
_crc32 = zlib.crc32

# ---- encoders ---------------------------------------------------------------

# KeyRequest{key}:  root=12 | pad2 | vtable(6: 6,8,4) | soff=6 | uoff=4 | len | key | p
_KEY_HEAD = struct.Struct("<I2x3HiII")


def encode_key_request(key: bytes) -> bytes:
    n = len(key)
    if not n:
        return KeyRequest(key).encode()
    return b"".join((_KEY_HEAD.pack(12, 6, 8, 4, 6, 4, n), key, _ZEROS[: -n & 3]))


# IncrRequest{key, delta != 1}:
#   root=16 | pad4 | vtable(8: 8, objsize, 4, 8) | soff=8 | key uoff | delta | p1 | len | key | p
_INCR_HEAD = struct.Struct("<I4x4HiIqI")


def encode_incr_request(key: bytes, delta: int) -> bytes:
    n = len(key)
    if delta == 1:
        return encode_key_request(key)  # delta at its default is omitted: same bytes
    if not n:
        return IncrRequest(key, delta).encode()
    a = (-n & 3) + n + 4
    p1 = -a & 7
    head = _INCR_HEAD.pack(16, 8, p1 + 16, 4, 8, 8, p1 + 12, delta, 0)
    # The trailing I of the head is a placeholder for p1 padding plus length.
    return b"".join((head[:-4], _ZEROS[:p1], _u32p(n), key, _ZEROS[: -n & 3]))


# SetRequest: built from pieces; see the module docstring for the order.
_HH = struct.Struct("<HH").pack
_I = struct.Struct("<I").pack
_q_pack = struct.Struct("<q").pack


def encode_set_request(key: bytes, value: bytes, kind: int = 0, ttl_ms: int = 0, condition: int = 0) -> bytes:
    l1 = len(key)
    l2 = len(value)
    if not l1 or not l2:
        return SetRequest(key, value, kind, ttl_ms, condition).encode()
    pk = -l1 & 3
    pv = -l2 & 3
    ak = pk + l1 + 4
    av = ak + pv + l2 + 4
    if ttl_ms:
        p1 = -av & 7
        b = av + p1 + 16
        minalign = 8
    else:
        p1 = 0
        b = av + 8
        minalign = 4
    c = (1 if kind else 0) + (1 if condition else 0)
    t = b + (8 if c else 4)  # objectOffset
    s0, s1, s3 = b, b - 4, b - 8
    s4 = b + 1 if condition else 0
    s2 = b + c if kind else 0
    vo = [t - s0, t - s1, t - s2 if kind else 0, t - s3 if ttl_ms else 0, t - s4 if condition else 0]
    nf = 5
    while nf and vo[nf - 1] == 0 and nf > 2:
        nf -= 1
    vtsize = (nf + 2) * 2
    off = t + vtsize
    pad = -(off + 4) & (minalign - 1)
    root = vtsize + pad + 4
    parts = [
        _I(root),
        _ZEROS[:pad],
        struct.pack(f"<{nf + 2}H", vtsize, t - av, *vo[:nf]),
        _I(vtsize),
        _ZEROS[: -c & 3],
    ]
    if kind:
        parts.append(bytes((kind,)))
    if condition:
        parts.append(bytes((condition,)))
    parts.append(_I(b - ak))  # key uoffset
    parts.append(_I(4 if not ttl_ms else p1 + 12))  # value uoffset
    if ttl_ms:
        parts.append(_q_pack(ttl_ms))
        parts.append(_ZEROS[:p1])
    parts += (_I(l2), value, _ZEROS[:pv], _I(l1), key, _ZEROS[:pk])
    return b"".join(parts)


# GetResponse{found, kind?, value}:
#   root=16 | pad2 | vtable(10: 10, 12, vo0, vo1, 8) | soff=10 | pad | found/kind | uoff=4 | len | value | p
_GET_KIND = struct.Struct("<I2x5Hi2xBBII")
_GET_NOKIND = struct.Struct("<I2x5Hi3x?II")
GET_NOT_FOUND = GetResponse(False, 0, b"").encode()


def encode_get_response(found: bool, kind: int, value: bytes) -> bytes:
    n = len(value)
    if not found:
        if kind or n:
            return GetResponse(found, kind, value).encode()
        return GET_NOT_FOUND
    if not n:
        return GetResponse(found, kind, value).encode()
    if kind:
        head = _GET_KIND.pack(16, 10, 12, 6, 7, 8, 10, 1, kind, 4, n)
    else:
        head = _GET_NOKIND.pack(16, 10, 12, 7, 0, 8, 10, True, 4, n)
    return b"".join((head, value, _ZEROS[: -n & 3]))


# Replies whose only field is a scalar: a handful of constant buffers.
SET_APPLIED = SetResponse(True).encode()
SET_NOT_APPLIED = SetResponse(False).encode()
BOOL_TRUE = BoolResponse(True).encode()
BOOL_FALSE = BoolResponse(False).encode()

# IncrResponse{value}: its only field is 8 bytes at a fixed place, so the
# reference encoding of a probe value is the template for every non-zero value.
def _incr_response_template() -> tuple[bytes, int]:
    probe = IncrResponse(0x0102030405060708).encode()
    at = probe.index(struct.pack("<q", 0x0102030405060708))
    return probe, at


_INCR_TEMPLATE, _INCR_AT = _incr_response_template()
_INCR_ZERO: bytes = IncrResponse(0).encode()


def encode_incr_response(value: int) -> bytes:
    if value == 0:
        return _INCR_ZERO
    t = _INCR_TEMPLATE
    return b"".join((t[:_INCR_AT], _q_pack(value), t[_INCR_AT + 8 :]))


# ---- decoders ---------------------------------------------------------------


# Unpackers for a vtable with k field slots: (vtable length, object length, *k offsets).
_VT = [struct.Struct(f"<HH{k}H").unpack_from for k in range(9)]
_NO_SLOTS = [(0,) * k for k in range(9)]


def _fields(body: bytes, nslots: int) -> tuple[int, int, tuple[int, ...]]:
    """(table pos, object length, offsets of the first nslots fields; 0 = absent), all checked."""
    n = len(body)
    if n < 8:
        raise ProtocolError(f"body of {n} bytes is too short")
    root = _u32(body, 0)[0]
    if root + 4 > n:
        raise ProtocolError("root offset outside the body")
    vt = root - _i32(body, root)[0]
    if vt < 0 or vt + 4 > n:
        raise ProtocolError("vtable outside the body")
    vtlen, objlen = _hh(body, vt)
    if vtlen < 4 or vtlen & 1 or vt + vtlen > n or objlen < 4 or root + objlen > n:
        raise ProtocolError("malformed vtable")
    k = (vtlen - 4) >> 1
    if k >= nslots:
        return root, objlen, _VT[nslots](body, vt)[2:]
    return root, objlen, _VT[k](body, vt)[2:] + _NO_SLOTS[nslots - k]


def _vec(body: bytes, root: int, objlen: int, off: int) -> bytes:
    """The [ubyte] vector a field at `off` points to (b"" when absent)."""
    if not off:
        return b""
    if off < 4 or off + 4 > objlen:
        raise ProtocolError("vector field lies outside its table")
    p = root + off
    v = p + _u32(body, p)[0]
    if v + 4 > len(body):
        raise ProtocolError("vector offset points outside the body")
    end = v + 4 + _u32(body, v)[0]
    if end > len(body):
        raise ProtocolError("vector runs past the body")
    return body[v + 4 : end]


def _byte(body: bytes, root: int, objlen: int, off: int) -> int:
    if not off:
        return 0
    if off < 4 or off >= objlen:
        raise ProtocolError("field lies outside its table")
    return body[root + off]


def _long(body: bytes, root: int, objlen: int, off: int, default: int) -> int:
    if not off:
        return default
    if off < 4 or off + 8 > objlen:
        raise ProtocolError("field lies outside its table")
    return _q(body, root + off)[0]


# Canonical-layout shortcuts. Every SDK we ship (and vbench) lays out a
# KeyRequest and a plain SetRequest exactly as the encoders above do, so the
# decoders first compare the fixed prefix (root offset, vtable, soffset and,
# for SET, the value's uoffset) in one step and then read the vector lengths
# directly: about half the cost of the general walk. With that prefix the
# general walk would visit the same offsets, so results and bounds checks are
# the same; any other layout takes the general path.
#   KeyRequest: root=12 | p2 | vtable(6,8,4) | soff=6 | uoff=4 | len | key | p
_KEY_PREFIX = _KEY_HEAD.pack(12, 6, 8, 4, 6, 4, 0)[:20]
#   SetRequest{key, value}: root=12 | vtable(8,12,4,8) | soff=8 | key uoff | value uoff=4
#                           | len | value | p | len | key | p
_SET_PREFIX = struct.pack("<I4Hi", 12, 8, 12, 4, 8, 8)
_SET_CANON: Callable[[bytes, int], tuple[bytes, int, int, int]] = struct.Struct("<16sIII").unpack_from


def _key_canonical(body: bytes) -> bytes | None:
    """The key of a canonical KeyRequest, or None if `body` is laid out otherwise."""
    if body[:20] != _KEY_PREFIX:
        return None
    end = 24 + _u32(body, 20)[0]
    if end > len(body):
        raise ProtocolError("vector runs past the body")
    return body[24:end]


def decode_key_request(body: bytes) -> bytes:
    if not body:
        return b""
    if len(body) >= 24:
        key = _key_canonical(body)
        if key is not None:
            return key
    root, objlen, (k,) = _fields(body, 1)
    return _vec(body, root, objlen, k)


def decode_set_request(body: bytes) -> tuple[bytes, bytes, int, int, int]:
    """(key, value, kind, ttl_ms, condition)"""
    if not body:
        return b"", b"", 0, 0, 0
    n = len(body)
    if n >= 28:
        prefix, kuo, vuo, vlen = _SET_CANON(body, 0)
        if prefix == _SET_PREFIX and vuo == 4:
            vend = 28 + vlen
            kpos = 16 + kuo
            if vend > n or kpos + 4 > n:
                raise ProtocolError("vector runs past the body")
            kend = kpos + 4 + _u32(body, kpos)[0]
            if kend > n:
                raise ProtocolError("vector runs past the body")
            return body[kpos + 4 : kend], body[28:vend], 0, 0, 0
    root, objlen, (k, v, kind, ttl, cond) = _fields(body, 5)
    return (
        _vec(body, root, objlen, k),
        _vec(body, root, objlen, v),
        _byte(body, root, objlen, kind),
        _long(body, root, objlen, ttl, 0),
        _byte(body, root, objlen, cond),
    )


def decode_incr_request(body: bytes) -> tuple[bytes, int]:
    if not body:
        return b"", 1
    if len(body) >= 24:
        key = _key_canonical(body)  # INCR by 1 omits delta: a KeyRequest layout
        if key is not None:
            return key, 1
    root, objlen, (k, delta) = _fields(body, 2)
    return _vec(body, root, objlen, k), _long(body, root, objlen, delta, 1)


def decode_get_response(body: bytes) -> tuple[bool, int, bytes]:
    if not body:
        return False, 0, b""
    root, objlen, (found, kind, value) = _fields(body, 3)
    return (
        bool(_byte(body, root, objlen, found)),
        _byte(body, root, objlen, kind),
        _vec(body, root, objlen, value),
    )


def decode_bool(body: bytes) -> bool:
    """BoolResponse.value / SetResponse.applied (both slot 0)."""
    if not body:
        return False
    root, objlen, (off,) = _fields(body, 1)
    return bool(_byte(body, root, objlen, off))


def decode_i64(body: bytes, default: int = 0) -> int:
    """IncrResponse.value / TtlResponse.ttl_ms (both slot 0)."""
    if not body:
        return default
    root, objlen, (off,) = _fields(body, 1)
    return _long(body, root, objlen, off, default)


# ---- framing ------------------------------------------------------------------

Frame = tuple[int, int, bytes]


def split_frames(data: bytes, max_body: int) -> tuple[list[Frame], int]:
    """Complete frames at the start of `data`, and how many bytes they span.

    The same checks, errors and results as vproto.frame.FrameDecoder.feed on
    an empty decoder, without copying `data` into the decoder's buffer first:
    the server calls this when nothing is pending (the common case: a read
    holds whole frames) and feeds only the tail to the decoder.
    """
    frames: list[Frame] = []
    pos = 0
    end = len(data)
    unpack = _HEADER_UNPACK
    crc32 = _crc32
    view = memoryview(data)
    while end - pos >= HEADER_SIZE:
        magic, opcode, flags, length = unpack(data, pos)
        if magic != MAGIC:
            raise FrameError(f"bad magic {bytes(magic)!r} at stream offset {pos}")
        if length > max_body:
            raise FrameTooLargeError(f"body of {length} bytes exceeds the limit of {max_body}")
        body_end = pos + HEADER_SIZE + length
        if body_end + TRAILER_SIZE > end:
            break
        if crc32(view[pos:body_end]) != _u32(data, body_end)[0]:
            raise BadCrcError(f"CRC mismatch in frame with opcode 0x{opcode:02x}")
        frames.append((opcode, flags, data[pos + HEADER_SIZE : body_end]))
        pos = body_end + TRAILER_SIZE
    return frames, pos


def frames_before_error(data: bytes, max_body: int) -> list[Frame]:
    """The complete, valid frames before the first bad one in `data`.

    Only for the error path: when split_frames (or FrameDecoder.feed) raised,
    the server still answers the requests that came before the bad frame in
    the same read, then the ERROR (docs/formats/protocol.md section 5).
    """
    frames: list[Frame] = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        magic, _, _, length = _HEADER_UNPACK(data, pos)
        if magic != MAGIC or length > max_body:
            break
        total = HEADER_SIZE + length + TRAILER_SIZE
        try:
            got, _ = split_frames(data[pos : pos + total], max_body)
        except VelocityError:
            break
        if not got:
            break
        frames += got
        pos += total
    return frames
