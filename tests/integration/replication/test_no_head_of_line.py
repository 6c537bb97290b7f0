"""Issue 12, liveness: a sync-mode write waiting for its acknowledgement holds back only the
replies behind it on its own connection.

Before: with both replicas paused (SIGSTOP) while a write waited, every reply on every
connection waited for it (INFO, other keys, the replicas' own reconnect handshakes), so the
primary never recovered. Now other connections keep flowing, a read of the waiting key waits
(nobody reads a write that could still be lost), the write fails after sync_timeout_s when
nobody acknowledges it, and the replicas reconnect and catch up.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode
from vproto.values import ValueKind

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until
from tests.support.raw import RawConnection

SYNC = ("--replication-mode", "sync", "--sync-replicas", "1", "--sync-timeout-s", "3")


def _raw(n: Node, timeout: float = 10.0) -> RawConnection:
    c = RawConnection(n.port, n.ca, timeout=timeout)
    c.hello(n.token_file.read_text().strip())
    return c


def _set(c: RawConnection, key: bytes, value: bytes) -> None:
    c.request(Opcode.SET, m.SetRequest(key, value, ValueKind.BYTES).encode())


def test_a_waiting_sync_write_blocks_nobody_else(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        p = c.node("p", *SYNC)
        r1 = c.node("r1", "--replica-of", p.endpoint)
        r2 = c.node("r2", "--replica-of", p.endpoint)
        with _raw(p) as w:
            _set(w, b"other", b"1")
            assert w.read_frame()[0] == Opcode.SET | 0x80
        c.wait_caught_up(p, r1, r2)
        paused = [r1, r2]
        for r in paused:
            assert r.proc is not None
            os.kill(r.proc.pid, signal.SIGSTOP)
        try:
            writer = _raw(p)
            _set(writer, b"k", b"v")  # waits for an acknowledgement nobody can send
            t0 = time.monotonic()
            with _raw(p, timeout=2.0) as other:  # a new connection: HELLO is answered
                other.request(Opcode.INFO, m.InfoRequest("").encode())
                assert other.read_frame()[0] == Opcode.INFO | 0x80
                other.request(Opcode.GET, m.KeyRequest(b"other").encode())
                op, _, body = other.read_frame()
                assert op == Opcode.GET | 0x80 and m.GetResponse.decode(body).value == b"1"
            assert time.monotonic() - t0 < 2.0
            reader = _raw(p)
            reader.request(Opcode.GET, m.KeyRequest(b"k").encode())  # waits with the write
            # Nobody acknowledges within sync_timeout_s (3 s): the write fails, outcome unknown.
            err = writer.read_error()
            assert err.code in (ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.TIMEOUT), err
            assert time.monotonic() - t0 < 10.0
            op, _, body = reader.read_frame()
            assert op in (Opcode.GET | 0x80, Opcode.ERROR)  # never a reply before the write settled
            writer.close()
            reader.close()
        finally:
            for r in paused:
                assert r.proc is not None
                os.kill(r.proc.pid, signal.SIGCONT)

        # The replicas reconnect (or resume) and catch up; writes are acknowledged again.
        def write_ok() -> bool:
            with _raw(p) as w2:
                _set(w2, b"after", b"2")
                return w2.read_frame()[0] == Opcode.SET | 0x80

        wait_until(write_ok, 30, interval=0.2, what="a sync write to be acknowledged after the pause")
        c.wait_caught_up(p, r1, r2, timeout=30)
    finally:
        c.close()
