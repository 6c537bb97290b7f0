"""Untrusted bodies: random or mutated bytes raise ProtocolError, never anything else.

Python's flatbuffers runtime has no verifier, so vproto.reader and the fast
decoders check every offset themselves. An IndexError or struct.error here would
become an INTERNAL error (or worse) on the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vproto import fastcodec as fc
from vproto import messages as m
from vproto.errors import ProtocolError
from vproto.frame import RESPONSE_BIT, Opcode
from vproto.values import encode_int

OPCODES = sorted(
    {int(op) for op in m.BODIES} | {int(op) | RESPONSE_BIT for op in m.BODIES} | {int(Opcode.ERROR)}
)

FAST_DECODERS: list[Callable[[bytes], Any]] = [
    fc.decode_key_request,
    fc.decode_set_request,
    fc.decode_incr_request,
    fc.decode_get_response,
    fc.decode_bool,
    fc.decode_i64,
]

# Valid bodies of every shape, to mutate: mutations of real layouts reach much
# deeper into the reader than uniformly random bytes.
SEEDS: list[tuple[int, bytes]] = [
    (Opcode.HELLO, m.HelloRequest(1, "token-0123456789abcdef", "t", 1).encode()),
    (Opcode.HELLO | RESPONSE_BIT, m.HelloResponse(1, "0.1.0", "node", 0, 1 << 24, 1 << 16, 1 << 23, 1).encode()),
    (Opcode.PING, m.PingRequest(b"payload").encode()),
    (Opcode.GET, m.KeyRequest(b"some:key").encode()),
    (Opcode.GET | RESPONSE_BIT, m.GetResponse(True, 3, b'{"a":1}').encode()),
    (Opcode.SET, m.SetRequest(b"key", b"value", 1, 7_200_000, 1).encode()),
    (Opcode.INCR, m.IncrRequest(b"ctr", -5).encode()),
    (Opcode.INCR | RESPONSE_BIT, m.IncrResponse(12345).encode()),
    (Opcode.EXPIRE, m.ExpireRequest(b"k", 30_000).encode()),
    (Opcode.CAS, m.CasRequest(b"k", b"v1", 1, False, b"v2", 1, 10).encode()),
    (Opcode.CAS | RESPONSE_BIT, m.CasResponse(False, True, 1, b"v9").encode()),
    (Opcode.MGET, m.MGetRequest([m.Key(b"a"), m.Key(b"bb"), m.Key(b"ccc")]).encode()),
    (Opcode.MGET | RESPONSE_BIT, m.MGetResponse([m.Entry(b"a", True, 2, encode_int(7)), m.Entry(b"b")]).encode()),
    (Opcode.MSET, m.MSetRequest([m.Entry(b"a", False, 1, b"x"), m.Entry(b"b", False, 0, b"y", 5)]).encode()),
    (Opcode.SCAN, m.ScanRequest(b"user:", b"user:2", 10).encode()),
    (Opcode.SCAN | RESPONSE_BIT, m.ScanResponse([m.Key(b"user:1"), m.Key(b"user:2")], b"user:2").encode()),
    (Opcode.INFO | RESPONSE_BIT, m.InfoResponse('{"keys":1}').encode()),
    (Opcode.ERROR, m.ErrorResponse(14, "not the primary", "vdb://a:1", 50).encode()),
]


def _decode_everything(opcode: int, body: bytes) -> None:
    """Every decoder that could see `body`; only ProtocolError may escape."""
    with contextlib.suppress(ProtocolError):
        m.decode_body(opcode, body)
    for dec in FAST_DECODERS:
        with contextlib.suppress(ProtocolError):
            dec(body)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    opcode, body = draw(st.sampled_from(SEEDS))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["set", "u32", "truncate", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if action == "set":
            data[i] = draw(st.integers(0, 255))
        elif action == "u32":
            # Offsets and lengths are u32: plant extreme ones.
            word = draw(st.sampled_from([0, 1, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, len(data), len(data) - 2]))
            data[i : i + 4] = (word & 0xFFFFFFFF).to_bytes(4, "little")
        elif action == "truncate":
            del data[i:]
        elif action == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i : i + draw(st.integers(1, 8))]
    return opcode, bytes(data)


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(case=mutated())
def test_mutated_bodies_raise_only_protocol_error(case: tuple[int, bytes]) -> None:
    _decode_everything(*case)


@FUZZ
@given(opcode=st.sampled_from(OPCODES), body=st.binary(max_size=64))
def test_random_bodies_raise_only_protocol_error(opcode: int, body: bytes) -> None:
    _decode_everything(opcode, body)


@settings(max_examples=300, deadline=None)
@given(
    opcode=st.sampled_from(OPCODES),
    root=st.integers(0, 64),
    vt_delta=st.integers(-2**31, 2**31 - 1),
    vtlen=st.integers(0, 0xFFFF),
    objlen=st.integers(0, 0xFFFF),
    rest=st.binary(max_size=48),
)
def test_hostile_headers(opcode: int, root: int, vt_delta: int, vtlen: int, objlen: int, rest: bytes) -> None:
    """Bodies whose root offset, vtable offset and vtable sizes are chosen adversarially."""
    body = bytearray(root.to_bytes(4, "little") + rest)
    if root + 4 <= len(body):
        body[root : root + 4] = vt_delta.to_bytes(4, "little", signed=True)
    body += vtlen.to_bytes(2, "little") + objlen.to_bytes(2, "little")
    _decode_everything(opcode, bytes(body))


@pytest.mark.parametrize("opcode,body", SEEDS, ids=[f"0x{op:02x}" for op, _ in SEEDS])
def test_seeds_are_valid(opcode: int, body: bytes) -> None:
    """The fuzz seeds themselves decode (otherwise the fuzzing above proves little)."""
    assert m.decode_body(opcode, body).encode() == body


def test_known_malformed_bodies() -> None:
    key = m.KeyRequest(b"k").encode()
    for bad in (b"\x01", b"\x00\x00\x00", key[:6], b"\xff\xff\xff\xff" + key[4:]):
        with pytest.raises(ProtocolError):
            m.decode_body(Opcode.GET, bad)
        with pytest.raises(ProtocolError):
            fc.decode_key_request(bad)


def test_invalid_utf8_string_is_protocol_error() -> None:
    body = m.InfoResponse("ok").encode().replace(b"ok", b"\xff\xfe")
    with pytest.raises(ProtocolError, match="UTF-8"):
        m.decode_body(Opcode.INFO | RESPONSE_BIT, body)
