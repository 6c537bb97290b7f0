"""Bad input gets a clear error, never crashes the server and never hurts other clients.

Each test talks raw bytes over a real TLS connection (tests/support/raw.py),
checks the exact error code, whether the server closed the connection as the
spec says (docs/formats/protocol.md, "Errors"), and that a second, well-behaved
client kept working throughout.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode, encode_frame

from tests.support.engine_proc import EngineProcess
from tests.support.raw import RawConnection, header

MAX_FRAME = 64 * 1024


@pytest.fixture(scope="module")
def strict_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine with a small frame limit and a short frame timeout, to test both quickly."""
    eng = EngineProcess(
        tmp_path_factory.mktemp("strict"),
        extra_args=["--max-frame-bytes", str(MAX_FRAME), "--max-value-bytes", str(MAX_FRAME // 2)],
        env={"VELOCITY_MAX_KEY_BYTES": "1024", "VELOCITY_FRAME_TIMEOUT_S": "0.5", "VELOCITY_HANDSHAKE_TIMEOUT_S": "1"},
    )
    with eng:
        yield eng


def authed(eng: EngineProcess) -> RawConnection:
    conn = RawConnection(eng.port, eng.ca)
    conn.hello(eng.token)
    return conn


def healthy(eng: EngineProcess) -> None:
    """A separate client still gets correct answers."""

    async def go() -> None:
        async with eng.pool() as vdb:
            await vdb.set("canary", "alive")
            assert await vdb.get("canary") == "alive"

    asyncio.run(go())
    assert eng.proc is not None and eng.proc.poll() is None


def counter(eng: EngineProcess, code: ErrorCode) -> float:
    pattern = rf'^velocity_errors_total{{code="{code.name}"}} (\S+)$'
    found = re.search(pattern, eng.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def test_bad_magic_is_fatal(strict_engine: EngineProcess) -> None:
    with authed(strict_engine) as c:
        c.send(b"HTTP" + encode_frame(Opcode.PING, 0, b"")[4:])
        err = c.read_error()
        assert err.code == ErrorCode.PROTOCOL and "magic" in err.message
        assert c.closed_by_server()
    healthy(strict_engine)


def test_bad_crc_is_fatal(strict_engine: EngineProcess) -> None:
    frame = bytearray(encode_frame(Opcode.GET, 0, m.KeyRequest(b"k").encode()))
    frame[-1] ^= 0xFF
    with authed(strict_engine) as c:
        c.send(bytes(frame))
        assert c.read_error().code == ErrorCode.BAD_CRC
        assert c.closed_by_server()
    healthy(strict_engine)


def test_oversize_length_is_refused_before_the_body_arrives(strict_engine: EngineProcess) -> None:
    with authed(strict_engine) as c:
        c.send(header(Opcode.SET, 0, MAX_FRAME + 1))  # no body sent: the header alone must be enough
        err = c.read_error()
        assert err.code == ErrorCode.FRAME_TOO_LARGE and str(MAX_FRAME) in err.message
        assert c.closed_by_server()
    with authed(strict_engine) as c:
        c.send(header(Opcode.SET, 0, 2**64 - 1))
        assert c.read_error().code == ErrorCode.FRAME_TOO_LARGE
    healthy(strict_engine)


def test_unknown_opcode_is_answered_and_the_connection_continues(strict_engine: EngineProcess) -> None:
    with authed(strict_engine) as c:
        c.request(0x7E, b"")
        err = c.read_error()
        assert err.code == ErrorCode.UNKNOWN_OPCODE and "0x7e" in err.message.lower()
        c.request(Opcode.PING, m.PingRequest(b"after").encode())
        opcode, _, body = c.read_frame()
        assert opcode == Opcode.PING | 0x80 and m.PingResponse.decode(body).payload == b"after"


@pytest.mark.parametrize(
    "body",
    [b"\x01", b"\xff\xff\xff\x7f" + b"\x00" * 12, os.urandom(64), b"\x0c\x00\x00\x00" + b"\x00" * 4],
    ids=["one-byte", "root-offset-out-of-range", "random", "vtable-out-of-range"],
)
@pytest.mark.parametrize("opcode", [Opcode.GET, Opcode.SET, Opcode.INCR, Opcode.MSET, Opcode.SCAN, Opcode.CAS])
def test_malformed_body_is_an_error_not_a_crash(strict_engine: EngineProcess, opcode: Opcode, body: bytes) -> None:
    with authed(strict_engine) as c:
        c.request(opcode, body)
        opcode_back, _, reply = c.read_frame()
        if opcode_back == Opcode.ERROR:
            err = m.ErrorResponse.decode(reply)
            assert err.code in (ErrorCode.PROTOCOL, ErrorCode.INVALID_ARGUMENT), err
        # Either way (random bytes may happen to decode) the connection goes on.
        c.request(Opcode.PING, m.PingRequest(b"x").encode())
        assert c.read_frame()[0] == Opcode.PING | 0x80
    assert counter(strict_engine, ErrorCode.INTERNAL) == 0


def test_reserved_flag_bits_are_refused(strict_engine: EngineProcess) -> None:
    with authed(strict_engine) as c:
        c.request(Opcode.PING, m.PingRequest().encode(), flags=0x10)
        assert c.read_error().code == ErrorCode.PROTOCOL
        assert c.closed_by_server()


def test_half_frame_then_silence_times_out(strict_engine: EngineProcess) -> None:
    frame = encode_frame(Opcode.SET, 0, m.SetRequest(b"half", b"v").encode())
    before = counter(strict_engine, ErrorCode.TIMEOUT)
    with authed(strict_engine) as c:
        c.send(frame[: len(frame) // 2])
        err = c.read_error()  # arrives after frame_timeout_s (0.5 s here)
        assert err.code == ErrorCode.TIMEOUT
        assert c.closed_by_server()
    assert counter(strict_engine, ErrorCode.TIMEOUT) == before + 1
    healthy(strict_engine)


def test_a_slow_but_progressing_client_is_not_cut_off(strict_engine: EngineProcess) -> None:
    """Frames trickling in byte by byte are fine as long as each completes in time."""
    with authed(strict_engine) as c:
        for i in range(20):
            for part in (encode_frame(Opcode.PING, 0, m.PingRequest(b"%d" % i).encode()),):
                c.send(part[:7])
                c.send(part[7:])
            assert m.PingResponse.decode(c.read_frame()[2]).payload == b"%d" % i


def test_garbage_flood_does_not_hurt_others(strict_engine: EngineProcess) -> None:
    for _ in range(20):
        with RawConnection(strict_engine.port, strict_engine.ca) as c:
            c.send(os.urandom(4096))
            assert c.closed_by_server()
    healthy(strict_engine)


def test_every_invalid_vector_gets_the_documented_error(strict_engine: EngineProcess) -> None:
    """The shared invalid vectors (proto/vectors/frames.json) against the real server."""
    import json

    vectors = json.loads((Path(__file__).resolve().parents[3] / "proto/vectors/frames.json").read_text())
    assert len(vectors["invalid"]) >= 5
    for vec in vectors["invalid"]:
        with authed(strict_engine) as c:
            c.send(bytes.fromhex(vec["frame_hex"]))
            err = c.read_error()
            assert err.code == ErrorCode[vec["error"]], vec["description"]
    healthy(strict_engine)
