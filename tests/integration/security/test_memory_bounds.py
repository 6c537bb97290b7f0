"""Findings 2 and 3 (high): replies and unauthenticated input could exhaust memory.

Each attack runs against an engine in a memory cgroup whose limit the
unbounded behaviour exceeded many times over (it was OOM-killed); the engine
must survive (no OOM kill), answer correctly, and keep serving others.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode
from vproto.frame import Opcode, encode_frame
from vproto.values import ValueKind

from tests.support.cgroup import MemoryCgroup
from tests.support.engine_proc import EngineProcess, wait_until
from tests.support.raw import RawConnection, header

MiB = 1024 * 1024
LIMIT = 320 * MiB


@pytest.fixture
def caged(tmp_path: Path) -> Iterator[tuple[EngineProcess, MemoryCgroup]]:
    # Memory storage: the attack is on the request path, not the LSM's memtable.
    eng = EngineProcess(tmp_path / "e", extra_args=["--storage", "memory"],
                        env={"VELOCITY_MAX_UNAUTHENTICATED": "200"})
    with MemoryCgroup("mem", LIMIT) as cg, eng:
        assert eng.proc is not None
        cg.add(eng.proc.pid)
        yield eng, cg
        assert cg.oom_kills() == 0, "the engine was OOM-killed"
        assert eng.proc.poll() is None, f"the engine died:\n{eng.log()}"


def _rss(eng: EngineProcess) -> int:
    assert eng.proc is not None
    for line in Path(f"/proc/{eng.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fill(eng: EngineProcess, n: int, size: int) -> None:
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.token)
        for i in range(n):
            c.request(Opcode.SET, m.SetRequest(f"big:{i}".encode(), bytes([i % 256]) * size, ValueKind.BYTES).encode())
            op, _, _ = c.read_frame()
            assert op == Opcode.SET | 0x80


def _ping_ms(eng: EngineProcess) -> float:
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.token)
        t0 = time.perf_counter()
        c.request(Opcode.PING, m.PingRequest(b"x").encode())
        assert c.read_frame()[0] == Opcode.PING | 0x80
        return (time.perf_counter() - t0) * 1000


@pytest.mark.timeout(180)
def test_pipelined_gets_of_large_values_do_not_buffer_the_replies(caged: tuple[EngineProcess, MemoryCgroup]) -> None:
    eng, _ = caged
    _fill(eng, 8, 8 * MiB)
    base = _rss(eng)
    # 100 GETs of 8 MiB values in one write: 800 MiB of replies, 2.5x the cgroup's limit.
    frames = b"".join(encode_frame(Opcode.GET, 0, m.KeyRequest(f"big:{i % 8}".encode()).encode()) for i in range(100))
    with RawConnection(eng.port, eng.ca, timeout=60) as c:
        c.hello(eng.token)
        c.send(frames)
        # While this client reads nothing, the server holds at most a high-water mark of replies.
        wait_until(lambda: eng.http_status("/healthz") == 200, 10, what="health while the client stalls")
        assert _rss(eng) - base < 120 * MiB
        assert _ping_ms(eng) < 1000  # others are served meanwhile
        for i in range(100):
            op, _, body = c.read_frame()
            assert op == Opcode.GET | 0x80
            got = m.GetResponse.decode(body)
            assert got.found and len(got.value) == 8 * MiB and got.value[0] == i % 8


def test_mget_over_the_frame_limit_is_refused(caged: tuple[EngineProcess, MemoryCgroup]) -> None:
    eng, _ = caged
    _fill(eng, 20, 1 * MiB)
    keys = [m.Key(f"big:{i}".encode()) for i in range(20)]
    with RawConnection(eng.port, eng.ca) as c:
        c.hello(eng.token)
        c.request(Opcode.MGET, m.MGetRequest(keys).encode())  # ~20 MiB of reply, limit 16 MiB
        err = c.read_error()
        assert err.code == ErrorCode.INVALID_ARGUMENT and "frame limit" in err.message
        c.request(Opcode.MGET, m.MGetRequest(keys[:10]).encode())
        op, _, body = c.read_frame()
        assert op == Opcode.MGET | 0x80 and len(m.MGetResponse.decode(body).entries) == 10


def test_scan_pages_stay_under_the_frame_limit(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "e", extra_args=["--storage", "memory", "--max-frame-bytes", str(1 * MiB),
                                                   "--max-value-bytes", "1024"]) as eng:
        long_key = b"k" * 60_000
        with RawConnection(eng.port, eng.ca) as c:
            c.hello(eng.token)
            for i in range(40):  # 40 keys of 60 KB: 2.4 MB of keys, the frame limit is 1 MiB
                c.request(Opcode.SET, m.SetRequest(long_key + b"%02d" % i, b"v", ValueKind.BYTES).encode())
                assert c.read_frame()[0] == Opcode.SET | 0x80
            seen: list[bytes] = []
            cursor = b""
            while True:
                c.request(Opcode.SCAN, m.ScanRequest(prefix=b"k", cursor=cursor, count=10_000).encode())
                op, _, body = c.read_frame()
                assert op == Opcode.SCAN | 0x80 and len(body) <= 1 * MiB
                page = m.ScanResponse.decode(body)
                seen += [k.key for k in page.keys]
                if not page.next_cursor:
                    break
                cursor = page.next_cursor
            assert len(seen) == 40 and seen == sorted(seen)


def test_unauthenticated_connections_cannot_send_large_frames(caged: tuple[EngineProcess, MemoryCgroup]) -> None:
    eng, _ = caged
    base = _rss(eng)
    ctx = ssl.create_default_context(cafile=str(eng.ca))
    socks = []
    try:
        for _ in range(70):  # 70 x 16 MiB once killed an engine under a 1 GiB limit
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", eng.port), timeout=10),
                                server_hostname="localhost")
            s.sendall(header(Opcode.SET, 0, 16 * MiB - 1) + b"x" * 65536)
            socks.append(s)
        for s in socks:  # each is answered with an error and closed at the header
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except (ConnectionResetError, ssl.SSLError):
                pass
            assert data[:4] == b"VELO" and data[4] == Opcode.ERROR
    finally:
        for s in socks:
            s.close()
    assert _rss(eng) - base < 64 * MiB
    assert _ping_ms(eng) < 1000


def test_compressed_frames_are_not_decompressed_before_hello(caged: tuple[EngineProcess, MemoryCgroup]) -> None:
    import zstandard

    eng, _ = caged
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (16 * MiB - 64))  # ~500 bytes on the wire
    assert len(bomb) < 4096
    with RawConnection(eng.port, eng.ca) as c:
        c.request(Opcode.HELLO, bomb, flags=1 << 2)
        err = c.read_error()
        assert err.code == ErrorCode.NOAUTH
        assert c.closed_by_server()


def test_unauthenticated_sockets_do_not_take_client_slots(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "e", extra_args=["--storage", "memory", "--max-connections", "5"],
                        env={"VELOCITY_MAX_UNAUTHENTICATED": "60"})
    with eng:
        idle = [RawConnection(eng.port, eng.ca) for _ in range(50)]  # TLS done, no HELLO
        try:
            for _ in range(4):  # real clients still get in (BUSY 19 of 22 times before)
                assert _ping_ms(eng) < 5000
            extra = [RawConnection(eng.port, eng.ca) for _ in range(10)]
            over = RawConnection(eng.port, eng.ca)  # the 61st waiting socket
            assert over.read_error().code == ErrorCode.BUSY
            over.close()
            for c in extra:
                c.close()
        finally:
            for c in idle:
                c.close()


def test_wrong_tokens_are_slowed_down_and_counted(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "e", extra_args=["--storage", "memory"]) as eng:
        t0 = time.monotonic()
        for _ in range(5):
            with RawConnection(eng.port, eng.ca) as c:
                c.request(Opcode.HELLO, m.HelloRequest(token="wrong-token-0123456789").encode())
                assert c.read_error().code == ErrorCode.AUTH_FAILED
        # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of back-off for one address (auth_throttle.py).
        assert time.monotonic() - t0 >= 3.0
        assert "velocity_auth_failures_total 5.0" in eng.metrics() or "velocity_auth_failures 5.0" in eng.metrics()
        assert _ping_ms(eng) < 1000  # the right token is never delayed
