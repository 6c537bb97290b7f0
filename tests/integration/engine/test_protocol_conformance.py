"""Server bugs found by a client written from docs/formats/protocol.md alone (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode, encode_frame

from tests.support.engine_proc import EngineProcess
from tests.support.raw import RawConnection, header


@pytest.mark.parametrize("bad", ["crc", "magic"])
def test_requests_before_a_bad_frame_in_the_same_read_are_answered(shared_engine: EngineProcess, bad: str) -> None:
    good = b"".join(encode_frame(Opcode.PING, 0, m.PingRequest(b"%d" % i).encode()) for i in range(3))
    broken = bytearray(encode_frame(Opcode.PING, 0, m.PingRequest(b"x").encode()))
    if bad == "crc":
        broken[-1] ^= 0xFF
    else:
        broken[:4] = b"NOPE"
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        c.send(good + bytes(broken))  # one write: usually one read on the server
        for i in range(3):
            op, _, body = c.read_frame()
            assert op == Opcode.PING | 0x80 and m.PingResponse.decode(body).payload == b"%d" % i
        err = c.read_error()
        assert err.code == (ErrorCode.BAD_CRC if bad == "crc" else ErrorCode.PROTOCOL)
        assert c.closed_by_server()


def test_a_frame_larger_than_a_hello_before_hello_is_refused(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.send(header(Opcode.HELLO, 0, 5000) + b"\0" * 5000)
        assert c.read_error().code == ErrorCode.PROTOCOL
        assert c.closed_by_server()


def test_hello_reports_the_role(tmp_path: Path) -> None:
    from tests.integration.replication.cluster import Cluster

    c = Cluster(tmp_path)
    try:
        p = c.node("p")
        r = c.node("r", "--replica-of", p.endpoint)
        c.wait_caught_up(p, r)
        for node, role in ((p, 0), (r, 1)):
            with RawConnection(node.port, node.ca) as raw:
                assert raw.hello(node.token_file.read_text().strip()).role == role
    finally:
        c.close()
