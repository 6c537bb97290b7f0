"""Metrics and health endpoints, TTL expiry, the connection limit, graceful shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from velocity import VelocityPool
from vproto import messages as m
from vproto.errors import BusyError, ErrorCode, WrongTypeError
from vproto.frame import Opcode

from tests.support.engine_proc import EngineProcess, wait_until
from tests.support.raw import RawConnection


def sample(text: str, name: str, labels: str = "") -> float | None:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def test_health_and_readiness(shared_engine: EngineProcess) -> None:
    assert shared_engine.http_get("/healthz")[0] == 200
    assert shared_engine.http_get("/readyz")[0] == 200
    assert shared_engine.http_get("/nope")[0] == 404


def test_metrics_count_requests_errors_connections_and_bytes(shared_engine: EngineProcess) -> None:
    async def go() -> None:
        async with shared_engine.pool() as vdb:
            for i in range(7):
                await vdb.set(f"m:{i}", i)
            await vdb.get("m:1")
            await vdb.set("m:json", {"a": 1})
            with pytest.raises(WrongTypeError):
                await vdb.incr("m:json")

    before = shared_engine.metrics()
    asyncio.run(go())
    after = shared_engine.metrics()

    def delta(name: str, labels: str = "") -> float:
        return (sample(after, name, labels) or 0.0) - (sample(before, name, labels) or 0.0)

    assert delta("velocity_requests_total", '{op="set"}') == 8
    assert delta("velocity_requests_total", '{op="get"}') == 1
    assert delta("velocity_request_duration_seconds_count", '{op="set"}') == 8
    assert delta("velocity_errors_total", '{code="WRONG_TYPE"}') == 1
    assert delta("velocity_connections_accepted_total") >= 1
    assert delta("velocity_received_bytes_total") > 0 and delta("velocity_sent_bytes_total") > 0
    assert (sample(after, "velocity_keys") or 0) >= 8
    assert 'le="0.001"' in after, "latency histogram buckets are missing"


def test_keys_expire_lazily_and_actively(tmp_path: Path) -> None:
    """Keys with a TTL vanish on access and, without any access, through the active cycle."""
    with EngineProcess(tmp_path / "ttl") as eng:

        async def go() -> None:
            async with eng.pool() as vdb:
                await vdb.mset({f"short:{i}": i for i in range(200)}, ttl="300ms")
                await vdb.set("long", 1, ttl="1h")
                await vdb.set("forever", 1)
                # Active expiry: the key count drops with no reads of the keys at all.
                wait_until(lambda: sample(eng.metrics(), "velocity_keys") == 2, timeout=10, what="active expiry")
                assert await vdb.mget([f"short:{i}" for i in range(200)]) == [None] * 200
                assert await vdb.get("long") == 1
                await vdb.set("lazy", "v", ttl="50ms")
                await asyncio.sleep(0.06)  # the TTL under test; the read below must see it expired
                assert await vdb.get("lazy") is None
                assert await vdb.pttl("lazy") == -2
                assert await vdb.exists("lazy") is False

        asyncio.run(go())


def test_connection_limit_answers_busy(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "busy", extra_args=["--max-connections", "2"]) as eng:
        a, b = RawConnection(eng.port, eng.ca), RawConnection(eng.port, eng.ca)
        a.hello(eng.token)
        b.hello(eng.token)
        with RawConnection(eng.port, eng.ca) as c:
            # A connection takes a client slot when its HELLO succeeds (docs/security.md).
            c.request(Opcode.HELLO, m.HelloRequest(token=eng.token).encode())
            assert c.read_error().code == ErrorCode.BUSY
            assert c.closed_by_server()

        async def over_limit() -> None:
            with pytest.raises(BusyError):
                async with eng.pool() as vdb:
                    await vdb.ping()

        asyncio.run(over_limit())
        a.close()
        wait_until(lambda: sample(eng.metrics(), "velocity_connections") == 1, what="connection count to drop")
        with RawConnection(eng.port, eng.ca) as c:
            c.hello(eng.token)  # room again
        b.close()
        assert (sample(eng.metrics(), "velocity_connections_rejected_total") or 0) >= 2


def test_sigterm_drains_in_flight_requests_and_exits_cleanly(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "shutdown")
    with eng:

        async def go() -> list[bool]:
            vdb = VelocityPool(node=eng.endpoint, auth=eng.token, ca=str(eng.ca), pool_size=1)
            await vdb.connect()
            try:
                pending = [asyncio.ensure_future(vdb.set(f"k{i}", i)) for i in range(2000)]
                await pending[0]  # the server is now working through the batch
                assert eng.proc is not None
                eng.proc.send_signal(signal.SIGTERM)
                done = await asyncio.gather(*pending, return_exceptions=True)
                return [r is True for r in done]
            finally:
                await vdb.close()

        results = asyncio.run(go())
        assert eng.proc is not None
        assert eng.proc.wait(15) == 0, eng.log()
        # Replies may stop at the shutdown point, but every reply that arrived is a success,
        # and the ones that arrived form a prefix (nothing answered out of order).
        answered = results.index(False) if False in results else len(results)
        assert all(results[:answered]) and answered > 0
        assert "stopped" in eng.log()
