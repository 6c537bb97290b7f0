"""V-Proto framing: header, body, CRC32 trailer (docs/formats/protocol.md, "Frames").

Layout (all integers little-endian):

    offset  size  field
    0       4     magic "VELO" (56 45 4C 4F)
    4       1     opcode (u8)
    5       1     flags (u8): bits 0-1 consistency, bits 2-3 compression, 4-7 zero
    6       8     body length N (u64)
    14      N     body: one FlatBuffers root table (possibly compressed)
    14+N    4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [0, 14+N)

This module knows nothing of sockets: FrameDecoder is fed bytes and returns
complete frames, so it is tested with plain byte strings.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

from vproto.errors import BadCrcError, FrameTooLargeError, ProtocolError

MAGIC = b"VELO"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sBBQ")
HEADER_SIZE = HEADER.size  # 14
TRAILER = struct.Struct("<I")
TRAILER_SIZE = TRAILER.size  # 4
RESPONSE_BIT = 0x80

DEFAULT_MAX_BODY = 16 * 1024 * 1024
# Bodies larger than this are worth compressing when the peer accepts zstd.
COMPRESSION_THRESHOLD = 1024

_CONSISTENCY_MASK = 0x03
_COMPRESSION_MASK = 0x0C
_RESERVED_MASK = 0xF0

FEATURE_ZSTD = 0x1


class Opcode(IntEnum):
    """Request opcodes; a response carries `opcode | 0x80`, an error 0xFF."""

    HELLO = 0x01
    PING = 0x02
    INFO = 0x03
    GET = 0x10
    SET = 0x11
    DEL = 0x12
    EXISTS = 0x13
    INCR = 0x14
    EXPIRE = 0x15
    PERSIST = 0x16
    TTL = 0x17
    CAS = 0x18
    MGET = 0x20
    MSET = 0x21
    SCAN = 0x22
    # Snapshot transfer (docs/formats/protocol.md section 10).
    SNAPSHOT_BEGIN = 0x30
    SNAPSHOT_READ = 0x31
    # Replication (docs/formats/replication.md). SNAPSHOT, BATCHES and
    # HEARTBEAT flow from primary to replica and ACK back, without replies.
    REPL_SYNC = 0x40
    REPL_SNAPSHOT = 0x41
    REPL_BATCHES = 0x42
    REPL_HEARTBEAT = 0x43
    REPL_ACK = 0x44
    PROMOTE = 0x45
    REPLICA_OF = 0x46
    ERROR = 0xFF


REQUEST_OPCODES = frozenset(op for op in Opcode if op != Opcode.ERROR)


class Consistency(IntEnum):
    LINEARIZABLE = 0
    STALE_OK = 1


class Compression(IntEnum):
    NONE = 0
    ZSTD = 1


def make_flags(consistency: int = Consistency.LINEARIZABLE, compression: int = Compression.NONE) -> int:
    return (consistency & 0x03) | ((compression & 0x03) << 2)


def flag_consistency(flags: int) -> int:
    return flags & _CONSISTENCY_MASK


def flag_compression(flags: int) -> int:
    return (flags & _COMPRESSION_MASK) >> 2


class FrameError(ProtocolError):
    """Framing is lost (bad magic) or a frame breaks the rules of its header
    (reserved flags): the connection must close."""

    @property
    def fatal(self) -> bool:
        return True


def encode_frame(opcode: int, flags: int, body: bytes) -> bytes:
    """Serialise one frame. `body` is already compressed if flags say so."""
    head = HEADER.pack(MAGIC, opcode, flags, len(body))
    crc = zlib.crc32(body, zlib.crc32(head))
    return b"".join((head, body, TRAILER.pack(crc)))


def validate_flags(flags: int) -> None:
    # FrameError, not a plain ProtocolError: reserved flags are fatal (spec section 2).
    if flags & _RESERVED_MASK:
        raise FrameError(f"reserved flag bits set: 0x{flags:02x}")
    if flag_consistency(flags) > Consistency.STALE_OK:
        raise FrameError(f"unknown consistency level {flag_consistency(flags)}")
    if flag_compression(flags) > Compression.ZSTD:
        raise FrameError(f"unknown compression {flag_compression(flags)}")


_zstd_c = None
_zstd_d = None


def compress_body(body: bytes) -> bytes:
    global _zstd_c
    if _zstd_c is None:
        import zstandard

        _zstd_c = zstandard.ZstdCompressor(level=1)
    return bytes(_zstd_c.compress(body))


def decompress_body(body: bytes, limit: int) -> bytes:
    """Decompress a zstd body, refusing anything that would exceed `limit` bytes."""
    global _zstd_d
    import zstandard

    if _zstd_d is None:
        _zstd_d = zstandard.ZstdDecompressor()
    try:
        params = zstandard.get_frame_parameters(body)
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"bad zstd body: {exc}") from None
    if params.content_size == zstandard.CONTENTSIZE_UNKNOWN or params.content_size > limit:
        raise FrameTooLargeError(
            f"compressed body declares {params.content_size} bytes; limit {limit} (sizes must be declared)"
        )
    try:
        return bytes(_zstd_d.decompress(body, max_output_size=limit))
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"bad zstd body: {exc}") from None


class FrameDecoder:
    """Incremental frame parser.

    `feed()` appends bytes and returns every complete frame as
    (opcode, flags, body). It raises FrameError subclasses when the stream can
    no longer be trusted; the caller then answers with an error and closes.
    Memory is bounded: at most one frame of `max_body` plus header is held.
    """

    __slots__ = ("_buf", "max_body")

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._buf = bytearray()
        self.max_body = max_body

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete frame."""
        return len(self._buf)

    def take_buffer(self) -> bytes:
        """Everything buffered, removed (after an error: to salvage the frames before it)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        end = len(buf)
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        while end - pos >= HEADER_SIZE:
            magic, opcode, flags, length = unpack(buf, pos)
            if magic != MAGIC:
                raise FrameError(f"bad magic {bytes(magic)!r} at stream offset {pos}")
            if length > self.max_body:
                raise FrameTooLargeError(f"body of {length} bytes exceeds the limit of {self.max_body}")
            total = HEADER_SIZE + length + TRAILER_SIZE
            if end - pos < total:
                break
            body_end = pos + HEADER_SIZE + length
            view = memoryview(buf)
            try:
                (crc,) = TRAILER.unpack_from(buf, body_end)
                if crc32(view[pos:body_end]) != crc:
                    raise BadCrcError(f"CRC mismatch in frame with opcode 0x{opcode:02x}")
                frames.append((opcode, flags, bytes(view[pos + HEADER_SIZE : body_end])))
            finally:
                view.release()
            pos += total
        if pos:
            del buf[:pos]
        return frames
