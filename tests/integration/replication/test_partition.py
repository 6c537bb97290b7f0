"""Partitions with network namespaces (ip netns + veth): cut a link, heal it.

A replica behind a cut link falls behind and catches up after the heal; a
primary behind a cut link is replaced, cannot get its writes acknowledged
(sync mode), and steps down when the link heals.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.replication.cluster import Cluster, Node
from tests.integration.replication.load import write_load
from tests.integration.replication.netns import Veth, netns_available
from tests.support.engine_proc import wait_until

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for network namespaces")


async def _contents(node: Node) -> dict[str, Any]:
    async with node.pool() as vdb:
        keys = [k async for k in vdb.scan("", count=1000, stale_ok=True)]
        values = await vdb.mget(keys, stale_ok=True) if keys else []
        return dict(zip(keys, values, strict=True))


def _load_for(node: Node, seconds: float, during: Any = None) -> Any:
    async def go() -> Any:
        stop = asyncio.Event()
        task = asyncio.create_task(write_load(node, stop, writers=4))
        await asyncio.sleep(seconds)  # how long the load runs, not a synchronisation
        if during is not None:
            await asyncio.to_thread(during)
            await asyncio.sleep(seconds)
        stop.set()
        return await task

    return asyncio.run(go())


def test_partitioned_replica_falls_behind_then_catches_up(tmp_path: Path) -> None:
    with Veth("vra", "10.213.71") as net:
        cluster = Cluster(tmp_path / "c", names=(net.outer, net.inner))
        try:
            sync = ("--replication-mode", "sync", "--sync-replicas", "1")
            p = cluster.node("p", *sync, host=net.outer)
            far = cluster.node("far", "--replica-of", p.endpoint, host=net.inner, netns=net.ns)
            near = cluster.node("near", "--replica-of", p.endpoint)
            wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="both replicas")

            def partition() -> None:
                net.cut()
                # The far replica notices the silence; the primary keeps
                # acknowledging writes because the near replica acknowledges them.
                wait_until(lambda: far.http_status("/healthz") is None, 10, what="far side unreachable")

            h = _load_for(p, 1.5, partition)
            assert not h.unknown or len(h.acked) > 100
            seq = p.seq()
            assert near.seq() >= min(seq, max(0, seq - 50))
            net.heal()
            t0 = time.monotonic()
            cluster.wait_caught_up(p, far, near, timeout=30)
            print(f"partitioned replica caught up {time.monotonic() - t0:.2f}s after the heal")
            link = far.repl()["link"]
            assert link["link_up"] and link["lag_records"] == 0
            want = asyncio.run(_contents(p))
            assert all(want.get(k) == v for k, v in h.acked.items()), "an acknowledged write is missing"
            assert asyncio.run(_contents(far)) == want
        finally:
            cluster.close()


def test_partitioned_primary_is_replaced_and_steps_down_after_the_heal(tmp_path: Path) -> None:
    with Veth("vrb", "10.213.72") as net:
        cluster = Cluster(tmp_path / "c", names=(net.outer, net.inner))
        try:
            sync = ("--replication-mode", "sync", "--sync-replicas", "1", "--sync-timeout-s", "2")
            p = cluster.node("p", *sync, host=net.inner, netns=net.ns)
            r1 = cluster.node("r1", *sync, "--replica-of", p.endpoint, host=net.outer)
            r2 = cluster.node("r2", *sync, "--replica-of", p.endpoint, host=net.outer)
            wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="both replicas")
            before = _load_for(p, 1.5)
            assert len(before.acked) > 50
            net.cut()
            wait_until(lambda: not r1.repl()["link"]["link_up"], 10, what="r1 to notice")
            best, other = sorted((r1, r2), key=lambda n: n.seq(), reverse=True)
            best.ctl("promote", check=True)
            other.ctl("replicaof", best.endpoint, check=True)
            after = _load_for(best, 1.0)
            assert len(after.acked) > 50
            # Two writable primaries never acknowledge writes at the same time:
            # the old one cannot reach any replica, so in sync mode it acknowledges nothing.
            net.heal()
            wait_until(lambda: p.repl()["role"] == "replica", 15, what="the old primary to step down")
            cluster.wait_caught_up(best, other, p, timeout=30)
            want = asyncio.run(_contents(best))
            for h in (before, after):
                assert all(want.get(k) == v for k, v in h.acked.items()), "an acknowledged write is missing"
            assert asyncio.run(_contents(p)) == want
            assert p.repl()["epoch"] == 2
        finally:
            cluster.close()
