"""Timeouts mean what they say (issue 16): against a server that accepts and never
answers, both clients give up within 10 % of the setting, never retry a timed-out
request, never retry a write, and retry a read whose connection broke."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import velocity
from velocity import UnknownOutcomeError, Velocity, VelocityPool, WriteTimeoutError
from vproto.frame import Opcode

from tests.integration.sdk.peers import Peer, drop_first_request, hello_then_silent, silent
from tests.support.engine_proc import CTL

SETTING = 1.0


def timed_async(fn: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, float]:
    async def go() -> tuple[BaseException | None, float]:
        t0 = time.monotonic()
        try:
            await fn()
        except Exception as exc:
            return exc, time.monotonic() - t0
        return None, time.monotonic() - t0

    return asyncio.run(go())


def timed(fn: Callable[[], Any]) -> tuple[BaseException | None, float]:
    t0 = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return exc, time.monotonic() - t0
    return None, time.monotonic() - t0


def within_10_percent(elapsed: float) -> bool:
    return SETTING * 0.9 <= elapsed <= SETTING * 1.1


def test_async_read_against_a_silent_server_times_out_once() -> None:
    with Peer(silent) as peer:

        async def go() -> None:
            async with VelocityPool.from_url(f"vdb+insecure://127.0.0.1:{peer.port}?timeout={SETTING}") as vdb:
                await vdb.get("k")

        # connect() itself waits for HELLO: bounded by connect_timeout, which defaults to the timeout
        exc, elapsed = timed_async(go)
        assert isinstance(exc, velocity.TimeoutError) and isinstance(exc, TimeoutError), exc
        assert "HELLO" in str(exc) and "1s" in str(exc)
        assert within_10_percent(elapsed), elapsed


def test_async_write_times_out_within_the_setting_and_is_not_retried() -> None:
    with Peer(hello_then_silent) as peer:
        vdb = VelocityPool(peer.endpoint, insecure=True, timeout=SETTING, pool_size=1)

        async def write() -> None:
            await vdb.connect()
            try:
                await vdb.set("k", "v")
            finally:
                await vdb.close()

        exc, elapsed = timed_async(write)
        assert isinstance(exc, WriteTimeoutError), exc
        assert isinstance(exc, UnknownOutcomeError) and isinstance(exc, velocity.TimeoutError)
        assert "may have been applied" in str(exc)
        assert within_10_percent(elapsed), elapsed
        assert peer.count(Opcode.SET) == 1


def test_async_read_timeout_is_not_retried_either() -> None:
    with Peer(hello_then_silent) as peer:
        vdb = VelocityPool(peer.endpoint, insecure=True, timeout=SETTING, pool_size=2, retries=3)

        async def read() -> None:
            try:
                await vdb.get("k")
            finally:
                await vdb.close()

        exc, elapsed = timed_async(read)
        assert type(exc) is velocity.TimeoutError, exc
        assert within_10_percent(elapsed), elapsed
        assert peer.count(Opcode.GET) == 1


def test_broken_connection_read_retried_write_reports_unknown_outcome() -> None:
    async def read(peer: Peer) -> Any:
        async with VelocityPool(peer.endpoint, insecure=True, pool_size=1, timeout=5) as vdb:
            return await vdb.get("k", "default")  # first connection dropped: retried on a new one

    async def write(peer: Peer) -> None:
        async with VelocityPool(peer.endpoint, insecure=True, pool_size=1, timeout=5) as vdb:
            await vdb.set("k", "v")

    with Peer(drop_first_request) as peer:
        assert asyncio.run(read(peer)) == "default"
        assert peer.count(Opcode.GET) == 2
    with Peer(drop_first_request) as peer:
        with pytest.raises(UnknownOutcomeError, match="may have been applied"):
            asyncio.run(write(peer))
        assert peer.count(Opcode.SET) == 1


def test_sync_client_times_out_within_the_setting() -> None:
    with Peer(silent) as peer:
        vdb = Velocity(peer.endpoint, insecure=True, timeout=SETTING)
        exc, elapsed = timed(lambda: vdb.get("k"))
        assert isinstance(exc, velocity.TimeoutError), exc
        assert within_10_percent(elapsed), elapsed


def test_sync_write_times_out_once_and_is_not_retried() -> None:
    with Peer(hello_then_silent) as peer:
        vdb = Velocity(peer.endpoint, insecure=True, timeout=SETTING, retries=3)
        exc, elapsed = timed(lambda: vdb.incr("k"))
        assert isinstance(exc, WriteTimeoutError), exc
        assert within_10_percent(elapsed), elapsed
        assert peer.count(Opcode.INCR) == 1
        vdb.close()


def test_sync_broken_connection_read_retried_write_not() -> None:
    with Peer(drop_first_request) as peer:
        vdb = Velocity(peer.endpoint, insecure=True, timeout=5)
        assert vdb.get("k", "default") == "default"
        assert peer.count(Opcode.GET) == 2
    with Peer(drop_first_request) as peer:
        vdb = Velocity(peer.endpoint, insecure=True, timeout=5)
        with pytest.raises(UnknownOutcomeError, match="may have been applied"):
            vdb.set("k", "v")
        assert peer.count(Opcode.SET) == 1


def test_velocityctl_against_a_silent_server_names_the_timeout() -> None:
    with Peer(silent) as peer:
        t0 = time.monotonic()
        r = subprocess.run([CTL, "--endpoint", peer.endpoint, "--insecure", "--timeout", str(SETTING), "ping"],
                           capture_output=True, timeout=30)
        elapsed = time.monotonic() - t0
    assert r.returncode == 2
    line = r.stderr.decode().strip()
    assert line.startswith("velocityctl: timed out: ") and "HELLO" in line, line
    assert elapsed < SETTING * 1.1 + 2.0  # plus interpreter start-up


def test_pipelines_share_one_deadline_and_writes_are_not_retried() -> None:
    with Peer(hello_then_silent) as peer:
        vdb = VelocityPool(peer.endpoint, insecure=True, timeout=SETTING, pool_size=1)

        async def go() -> None:
            try:
                await vdb.pipeline().set("a", 1).incr("b").get("c").execute()
            finally:
                await vdb.close()

        exc, elapsed = timed_async(go)
        assert isinstance(exc, WriteTimeoutError), exc
        assert within_10_percent(elapsed), elapsed
        assert (peer.count(Opcode.SET), peer.count(Opcode.INCR), peer.count(Opcode.GET)) == (1, 1, 1)

        sync = Velocity(peer.endpoint, insecure=True, timeout=SETTING)
        exc, elapsed = timed(lambda: sync.pipeline().get("x").exists("y").execute())
        assert type(exc) is velocity.TimeoutError, exc  # reads only: a plain timeout
        assert within_10_percent(elapsed), elapsed
        assert peer.count(Opcode.EXISTS) == 1


def test_pipeline_of_reads_is_retried_after_a_broken_connection() -> None:
    with Peer(drop_first_request) as peer:
        sync = Velocity(peer.endpoint, insecure=True, timeout=5)
        assert sync.pipeline().get("a", 1).get("b", 2).execute() == [1, 2]
    with Peer(drop_first_request) as peer, pytest.raises(UnknownOutcomeError):
        Velocity(peer.endpoint, insecure=True, timeout=5).pipeline().get("a").set("b", 1).execute()
