"""V-Proto framing: encode/decode, incremental feeding, framing errors, zstd bodies."""

from __future__ import annotations

import struct
import zlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from vproto.errors import BadCrcError, ErrorCode, FrameTooLargeError, ProtocolError
from vproto.frame import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    TRAILER,
    TRAILER_SIZE,
    Compression,
    Consistency,
    FrameDecoder,
    FrameError,
    Opcode,
    compress_body,
    decompress_body,
    encode_frame,
    flag_compression,
    flag_consistency,
    make_flags,
    validate_flags,
)

Frame = tuple[int, int, bytes]


def test_layout_is_the_documented_one() -> None:
    body = b"\x01\x02\x03"
    data = encode_frame(Opcode.SET, 0x05, body)
    assert len(data) == HEADER_SIZE + len(body) + TRAILER_SIZE == 14 + 3 + 4
    assert data[:4] == b"VELO" == MAGIC
    assert data[4] == Opcode.SET and data[5] == 0x05
    assert struct.unpack_from("<Q", data, 6)[0] == 3
    assert data[14:17] == body
    assert struct.unpack_from("<I", data, 17)[0] == zlib.crc32(data[:17])


def test_crc_check_value() -> None:
    # Spec section 1: the CRC-32 check value of "123456789" is 0xCBF43926.
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_round_trip_and_empty_body() -> None:
    dec = FrameDecoder()
    assert dec.feed(encode_frame(Opcode.PING, 0, b"")) == [(Opcode.PING, 0, b"")]
    assert dec.feed(encode_frame(Opcode.GET | 0x80, 1, b"abc")) == [(0x90, 1, b"abc")]
    assert dec.pending == 0


frames_st = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200)), min_size=1, max_size=8
)


@settings(max_examples=100, deadline=None)
@given(frames=frames_st, data=st.data())
def test_any_chunking_yields_the_same_frames(frames: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(*f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = FrameDecoder()
    out: list[Frame] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += dec.feed(stream[prev:cut])
        prev = cut
    assert out == frames
    assert dec.pending == 0


def test_byte_by_byte() -> None:
    frames = [(Opcode.SET, 0, b"x" * 37), (Opcode.GET, 1, b""), (Opcode.PING, 0, b"\x00" * 5)]
    stream = b"".join(encode_frame(*f) for f in frames)
    dec = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(stream)):
        got = dec.feed(stream[i : i + 1])
        out += got
        # Only whole frames come out, and the buffer never holds more than one frame.
        assert dec.pending <= HEADER_SIZE + 37 + TRAILER_SIZE
    assert out == frames


def test_many_frames_in_one_chunk_plus_a_partial_one() -> None:
    full = [encode_frame(Opcode.INCR, 0, bytes([i]) * i) for i in range(50)]
    partial = encode_frame(Opcode.GET, 0, b"tail")
    dec = FrameDecoder()
    out = dec.feed(b"".join(full) + partial[:10])
    assert len(out) == 50 and [len(b) for _, _, b in out] == list(range(50))
    assert dec.pending == 10
    assert dec.feed(partial[10:]) == [(Opcode.GET, 0, b"tail")]


def test_bad_magic_is_a_frame_error() -> None:
    data = bytearray(encode_frame(Opcode.GET, 0, b"k"))
    data[:4] = b"VELP"
    with pytest.raises(FrameError, match="magic") as info:
        FrameDecoder().feed(bytes(data))
    assert info.value.code == ErrorCode.PROTOCOL


def test_bad_magic_detected_before_the_body_arrives() -> None:
    # A wrong header must fail fast, not wait for a body that may never come.
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"HTTP/1.1 200 OK\r\n")


def test_bad_crc() -> None:
    data = bytearray(encode_frame(Opcode.GET, 0, b"key"))
    data[-1] ^= 0x01
    with pytest.raises(BadCrcError) as info:
        FrameDecoder().feed(bytes(data))
    assert info.value.code == ErrorCode.BAD_CRC


def test_crc_covers_header_and_body() -> None:
    for pos in (4, 5, HEADER_SIZE):  # opcode, flags, body
        data = bytearray(encode_frame(Opcode.GET, 0, b"key"))
        data[pos] ^= 0x40
        with pytest.raises(BadCrcError):
            FrameDecoder().feed(bytes(data))


def test_oversize_length_refused_from_the_header_alone() -> None:
    dec = FrameDecoder(max_body=1024)
    head = HEADER.pack(MAGIC, Opcode.SET, 0, 1025)
    with pytest.raises(FrameTooLargeError) as info:
        dec.feed(head)
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE
    # Exactly at the limit is fine.
    ok = encode_frame(Opcode.SET, 0, b"z" * 1024)
    assert FrameDecoder(max_body=1024).feed(ok) == [(Opcode.SET, 0, b"z" * 1024)]


def test_u64_length_beyond_any_limit() -> None:
    with pytest.raises(FrameTooLargeError):
        FrameDecoder().feed(HEADER.pack(MAGIC, Opcode.GET, 0, 2**64 - 1))


# ---- flags -----------------------------------------------------------------------


def test_flags_helpers() -> None:
    f = make_flags(Consistency.STALE_OK, Compression.ZSTD)
    assert f == 0b0101
    assert flag_consistency(f) == Consistency.STALE_OK
    assert flag_compression(f) == Compression.ZSTD
    validate_flags(f)
    validate_flags(0)


@pytest.mark.parametrize("flags", [0x10, 0x20, 0x40, 0x80, 0xF0, 0x02, 0x03, 0x08, 0x0C])
def test_reserved_flags_rejected(flags: int) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_flags(flags)
    assert info.value.code == ErrorCode.PROTOCOL
    # Spec section 2: reserved flags are fatal, like lost framing.
    assert info.value.fatal


# ---- compression ---------------------------------------------------------------


def test_zstd_round_trip() -> None:
    body = b"velocity " * 1000
    packed = compress_body(body)
    assert len(packed) < len(body)
    assert decompress_body(packed, len(body)) == body
    # The compressed body travels as a normal frame with the compression flag.
    frame = encode_frame(Opcode.SET, make_flags(compression=Compression.ZSTD), packed)
    [(_op, flags, got)] = FrameDecoder().feed(frame)
    assert flag_compression(flags) == Compression.ZSTD and decompress_body(got, 1 << 20) == body


def test_decompression_bomb_refused_by_declared_size() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 64 * 1024  # a small frame ...
    with pytest.raises(FrameTooLargeError) as info:  # ... that would expand to 64 MiB
        decompress_body(bomb, 16 * 1024 * 1024)
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_zstd_without_declared_size_refused() -> None:
    cobj = zstandard.ZstdCompressor().compressobj()
    streamed = cobj.compress(b"\x00" * 100_000) + cobj.flush()
    assert zstandard.get_frame_parameters(streamed).content_size == zstandard.CONTENTSIZE_UNKNOWN
    with pytest.raises(FrameTooLargeError):
        decompress_body(streamed, 16 * 1024 * 1024)


def test_zstd_lying_about_its_size_refused() -> None:
    """A header that declares a small size over a large payload must not expand."""
    real = zstandard.ZstdCompressor(write_content_size=True).compress(b"\x00" * 1_000_000)
    params = zstandard.get_frame_parameters(real)
    assert params.content_size == 1_000_000
    small = zstandard.ZstdCompressor(write_content_size=True).compress(b"\x00" * 100)
    # Splice: the small frame's header (declares 100 bytes) over the big frame's blocks.
    hdr_len = zstandard.frame_header_size(small)
    lying = small[:hdr_len] + real[zstandard.frame_header_size(real) :]
    with pytest.raises(ProtocolError):
        decompress_body(lying, 1000)


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"not zstd at all", b"\x28\xb5\x2f\xfd"])
def test_garbage_zstd_is_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        decompress_body(garbage, 1 << 20)


def test_trailer_struct() -> None:
    assert TRAILER.size == 4 and HEADER.size == 14
