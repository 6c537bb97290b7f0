"""The shortcuts the hot path takes (vproto.fastcodec) against the general code.

- split_frames() returns what FrameDecoder.feed() returns, and raises the same
  error types, for any stream of good or damaged frames;
- the canonical-layout decoders (KeyRequest, SetRequest) agree with the
  reference decoder and reject a canonical prefix whose lengths run past the
  body, as the general walk does.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vproto import fastcodec as fc
from vproto import messages as m
from vproto.errors import FrameTooLargeError, ProtocolError, VelocityError
from vproto.frame import FrameDecoder, Opcode, encode_frame

EXAMPLES = settings(max_examples=300, deadline=None)
MAX_BODY = 4096

frames = st.lists(
    st.tuples(st.sampled_from([int(op) for op in Opcode]), st.integers(0, 255), st.binary(max_size=64)),
    max_size=6,
)


def _reference(data: bytes) -> tuple[list[tuple[int, int, bytes]], int] | type[VelocityError]:
    dec = FrameDecoder(MAX_BODY)
    try:
        out = dec.feed(data)
    except VelocityError as exc:
        return type(exc)
    return out, len(data) - dec.pending


def _fast(data: bytes) -> tuple[list[tuple[int, int, bytes]], int] | type[VelocityError]:
    try:
        return fc.split_frames(data, MAX_BODY)
    except VelocityError as exc:
        return type(exc)


@EXAMPLES
@given(frames=frames, cut=st.integers(0, 10_000), flip=st.one_of(st.none(), st.integers(0, 10_000)))
def test_split_frames_matches_the_decoder(frames: list[tuple[int, int, bytes]], cut: int, flip: int | None) -> None:
    data = bytearray(b"".join(encode_frame(op, fl, body) for op, fl, body in frames))
    if flip is not None and data:
        data[flip % len(data)] ^= 0x41  # damage one byte: magic, length, body or CRC
    stream = bytes(data[: len(data) - cut % (len(data) + 1)])  # and maybe cut the tail
    assert _fast(stream) == _reference(stream)


def test_split_frames_refuses_an_oversize_header_before_the_body_arrives() -> None:
    head = encode_frame(Opcode.SET, 0, b"x" * (MAX_BODY + 1))[:14]
    assert _fast(head) == _reference(head) == FrameTooLargeError


keys = st.binary(min_size=1, max_size=80)


@EXAMPLES
@given(key=keys, value=st.binary(min_size=1, max_size=200))
def test_canonical_bodies_decode_like_the_reference(key: bytes, value: bytes) -> None:
    body = fc.encode_key_request(key)
    assert fc.decode_key_request(body) == m.KeyRequest.decode(body).key == key
    assert fc.decode_incr_request(body) == (key, 1)
    body = fc.encode_set_request(key, value)
    ref = m.SetRequest.decode(body)
    assert fc.decode_set_request(body) == (ref.key, ref.value, ref.kind, ref.ttl_ms, ref.condition)
    assert (ref.key, ref.value) == (key, value)


@pytest.mark.parametrize("drop", [1, 3, 4, 5])
def test_canonical_key_request_cut_short_is_refused(drop: int) -> None:
    body = fc.encode_key_request(b"0123456789")[: -drop - 2]  # the key's bytes run past the end
    with pytest.raises(ProtocolError):
        fc.decode_key_request(body)
    with pytest.raises(ProtocolError):
        m.KeyRequest.decode(body)


@pytest.mark.parametrize("drop", [1, 4, 9, 40])
def test_canonical_set_request_cut_short_is_refused(drop: int) -> None:
    body = fc.encode_set_request(b"0123456789", b"v" * 32)[: -drop - 2]
    with pytest.raises(ProtocolError):
        fc.decode_set_request(body)


def test_set_request_with_a_huge_value_length_is_refused() -> None:
    body = bytearray(fc.encode_set_request(b"k", b"value"))
    body[24:28] = (1 << 31).to_bytes(4, "little")  # the value's length field
    with pytest.raises(ProtocolError):
        fc.decode_set_request(bytes(body))
