"""A client given one seed (as a Service is) and redirected from it to the primary
returns to the seed when that primary dies, and finds the node promoted there.

Real engines: a primary and a replica; the client's seed is the replica, its writes
are redirected to the primary; the primary is SIGKILLed and the replica promoted.
Before the fix the clients kept dialling the dead primary until their deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from velocity import UnknownOutcomeError, Velocity, VelocityPool

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    cluster = Cluster(tmp_path)
    try:
        p = cluster.node("p")
        r = cluster.node("r", "--replica-of", p.endpoint)
        wait_until(lambda: p.repl()["replicas_connected"] == 1, 10, what="the replica to connect")
        yield p, r
    finally:
        cluster.close()


def _fail_over(p: Node, r: Node) -> None:
    p.kill()
    r.ctl("promote", check=True)


def _until_written(write: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            write()  # type: ignore[operator]
            return
        except (ConnectionError, TimeoutError, UnknownOutcomeError) as exc:
            # UnknownOutcomeError: a pooled connection to the dead primary took the write
            # (SET is idempotent, so retrying it is safe).
            assert time.monotonic() < deadline, f"{what}: never left the dead primary: {exc}"
            time.sleep(0.05)  # between attempts, as an application would


def test_async_pool_returns_to_its_seed(pair: tuple[Node, Node]) -> None:
    p, r = pair

    async def scenario() -> None:
        async with VelocityPool(node=r.endpoint, auth=r.token, ca=r.ca, timeout=2.0, connect_timeout=1.0) as vdb:
            await vdb.set("before", 1)
            assert vdb.endpoint.port == p.port, "the write was not redirected to the primary"
            _fail_over(p, r)
            deadline = time.monotonic() + 20
            while True:
                try:
                    await vdb.set("after", 1)
                    break
                except (ConnectionError, TimeoutError, UnknownOutcomeError) as exc:
                    assert time.monotonic() < deadline, f"never left the dead primary: {exc}"
                    await asyncio.sleep(0.05)  # between attempts, as an application would
            assert vdb.endpoint.port == r.port
            assert await vdb.get("after") == 1

    asyncio.run(scenario())


def test_sync_client_returns_to_its_seed(pair: tuple[Node, Node]) -> None:
    p, r = pair
    with Velocity(node=r.endpoint, auth=r.token, ca=r.ca, timeout=2.0, connect_timeout=1.0) as vdb:
        vdb.set("before", 1)
        assert vdb.endpoint.port == p.port, "the write was not redirected to the primary"
        _fail_over(p, r)
        _until_written(lambda: vdb.set("after", 1), "sync client")
        assert vdb.endpoint.port == r.port
        assert vdb.get("after") == 1
