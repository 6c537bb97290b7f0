"""Server bugs found by a client written from docs/formats/protocol.md alone (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard
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


# ---- points the spec left unstated (protocol.md now says each; issue 13) ----------

EMPTY_TABLE = bytes.fromhex("080000000400040004000000")


def _reply(c: RawConnection, opcode: int, body: bytes = b"", flags: int = 0) -> tuple[int, int, bytes]:
    c.request(opcode, body, flags)
    return c.read_frame()


def _error(c: RawConnection, opcode: int, body: bytes = b"", flags: int = 0) -> m.ErrorResponse:
    c.request(opcode, body, flags)
    return c.read_error()


@pytest.mark.parametrize("body", [b"", EMPTY_TABLE], ids=["N=0", "empty-table"])
def test_an_empty_body_is_either_no_bytes_or_an_empty_table_and_replies_carry_a_table(
    shared_engine: EngineProcess, body: bytes
) -> None:
    assert m.PingRequest().encode() == EMPTY_TABLE
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        op, flags, reply = _reply(c, Opcode.PING, body)
        assert (op, flags, reply) == (Opcode.PING | 0x80, 0, EMPTY_TABLE)
        op, _, reply = _reply(c, Opcode.INFO, body)
        assert op == Opcode.INFO | 0x80 and "server" in json.loads(m.InfoResponse.decode(reply).json)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        # Each frame is wrong in several ways; the first check in the documented order decides.
        (b"NOPE" + header(Opcode.PING, 0x10, 1 << 40)[4:], ErrorCode.PROTOCOL),  # magic before length
        (header(Opcode.PING, 0x10, 1 << 40), ErrorCode.FRAME_TOO_LARGE),  # length before flags
        (bytes(encode_frame(Opcode.PING, 0x10, b"")[:-1]) + b"\0", ErrorCode.BAD_CRC),  # CRC before flags
        (encode_frame(0x77, 0x10, b""), ErrorCode.PROTOCOL),  # flags before the opcode
    ],
    ids=["magic", "length", "crc", "flags"],
)
def test_header_checks_run_in_the_documented_order(shared_engine: EngineProcess, frame: bytes, code: int) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        c.send(frame)
        assert c.read_error().code == code
        assert c.closed_by_server()


def test_an_unassigned_kind_is_stored_and_returned_unchanged(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        op, _, _ = _reply(c, Opcode.SET, m.SetRequest(key=b"kind:9", value=b"opaque", kind=9).encode())
        assert op == Opcode.SET | 0x80
        _, _, body = _reply(c, Opcode.GET, m.KeyRequest(key=b"kind:9").encode())
        assert m.GetResponse.decode(body) == m.GetResponse(found=True, kind=9, value=b"opaque")
        err = _error(c, Opcode.INCR, m.IncrRequest(key=b"kind:9").encode())
        assert err.code == ErrorCode.WRONG_TYPE and "kind 9" in err.message


def test_an_int_value_must_be_eight_bytes(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        for opcode, body in (
            (Opcode.SET, m.SetRequest(key=b"int:4", value=b"\1\0\0\0", kind=2).encode()),
            (Opcode.MSET, m.MSetRequest(entries=[m.Entry(key=b"int:4", value=b"\1\0\0\0", kind=2)]).encode()),
        ):
            assert _error(c, opcode, body).code == ErrorCode.INVALID_ARGUMENT
        _, _, body = _reply(c, Opcode.EXISTS, m.KeyRequest(key=b"int:4").encode())
        assert m.BoolResponse.decode(body).value is False


def test_mset_replies_true_or_fails_whole_with_the_first_invalid_entrys_error(shared_engine: EngineProcess) -> None:
    entries = [
        m.Entry(key=b"mset:a", value=b"1"),
        m.Entry(key=b"mset:" + b"k" * 70_000, value=b"2"),  # KEY_TOO_LARGE, listed first
        m.Entry(key=b"", value=b"3"),  # INVALID_ARGUMENT
    ]
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        assert _error(c, Opcode.MSET, m.MSetRequest(entries=entries).encode()).code == ErrorCode.KEY_TOO_LARGE
        _, _, body = _reply(c, Opcode.EXISTS, m.KeyRequest(key=b"mset:a").encode())
        assert m.BoolResponse.decode(body).value is False, "a failed MSET wrote an entry"
        assert _error(c, Opcode.MSET, m.MSetRequest(entries=[]).encode()).code == ErrorCode.INVALID_ARGUMENT
        op, _, body = _reply(c, Opcode.MSET, m.MSetRequest(entries=entries[:1]).encode())
        assert op == Opcode.MSET | 0x80 and m.BoolResponse.decode(body).value is True


INFO_SECTIONS = {
    "server",
    "clients",
    "keys",
    "memory",
    "stats",
    "latency",
    "storage",
    "persistence",
    "replication",
    "config",
    "limits",
}


def test_info_is_a_json_object_of_sections_and_a_section_selects_one(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        _, _, body = _reply(c, Opcode.INFO)
        info = json.loads(m.InfoResponse.decode(body).json)
        assert set(info) >= INFO_SECTIONS
        assert info["server"]["role"] == "primary" and info["replication"]["role"] == "primary"
        assert info["limits"]["max_frame_bytes"] == 16 * 1024 * 1024
        _, _, body = _reply(c, Opcode.INFO, m.InfoRequest(section="limits").encode())
        assert json.loads(m.InfoResponse.decode(body).json) == {"limits": info["limits"]}
        err = _error(c, Opcode.INFO, m.InfoRequest(section="nope").encode())
        assert err.code == ErrorCode.INVALID_ARGUMENT
        _, _, body = _reply(c, Opcode.PING)  # not fatal
        assert body == EMPTY_TABLE


def test_scan_count_above_ten_thousand_is_refused(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        too_many = m.ScanRequest(prefix=b"", count=10_001).encode()
        assert _error(c, Opcode.SCAN, too_many).code == ErrorCode.INVALID_ARGUMENT
        op, _, _ = _reply(c, Opcode.SCAN, m.ScanRequest(prefix=b"", count=10_000).encode())
        assert op == Opcode.SCAN | 0x80


def test_zstd_from_a_session_that_did_not_negotiate_it_is_accepted_and_replies_stay_plain(
    shared_engine: EngineProcess,
) -> None:
    payload = b"z" * 4000
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        assert c.hello(shared_engine.token).features == 0
        body = zstandard.ZstdCompressor(write_content_size=True).compress(m.PingRequest(payload).encode())
        op, flags, reply = _reply(c, Opcode.PING, body, flags=1 << 2)
        assert op == Opcode.PING | 0x80 and flags == 0, "a reply was compressed for a session that did not ask"
        assert m.PingResponse.decode(reply).payload == payload


def test_a_second_hello_takes_the_new_tokens_role(shared_engine: EngineProcess) -> None:
    with RawConnection(shared_engine.port, shared_engine.ca) as c:
        c.hello(shared_engine.token)
        assert _error(c, Opcode.PROMOTE, m.PromoteRequest().encode()).code == ErrorCode.PERMISSION_DENIED
        c.hello(shared_engine.admin_token)
        op, _, _ = _reply(c, Opcode.PING)
        assert op == Opcode.PING | 0x80
        c.request(Opcode.HELLO, m.HelloRequest(token="not-the-token-at-all").encode())
        assert c.read_error().code == ErrorCode.AUTH_FAILED
        assert c.closed_by_server()
