"""Lease-based election against a real kube-apiserver (the harness's tier 1).

Three engines elect a primary through a coordination.k8s.io/v1 Lease; the
primary is killed with SIGKILL under a sync-mode write load; the replica
with the highest position takes the lease, and no acknowledged write is lost.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from tests.integration.replication.cluster import Cluster, Node
from tests.integration.replication.load import write_load
from tests.kube.kube_api import KubeAPI
from tests.support.engine_proc import wait_until


def _roles(nodes: list[Node]) -> dict[str, str]:
    out = {}
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                out[n.endpoint] = n.repl()["role"]
            except Exception:  # a node that is starting or busy: no answer this round
                out[n.endpoint] = "?"
    return out


def _primary(nodes: list[Node]) -> Node | None:
    roles = _roles(nodes)
    primaries = [n for n in nodes if roles.get(n.endpoint) == "primary"]
    assert len(primaries) <= 1, f"two primaries at once: {roles}"
    return primaries[0] if primaries else None


async def _contents(node: Node, keys: list[str]) -> list[Any]:
    async with node.pool() as vdb:
        out: list[Any] = []
        for i in range(0, len(keys), 500):
            out += await vdb.mget(keys[i : i + 500], stale_ok=True)
        return out


def test_lease_elects_one_primary_and_fails_over_without_losing_writes(cluster: Cluster, kube_api: KubeAPI) -> None:
    name = f"vrepl-{secrets.token_hex(3)}"
    args = (
        "--lease-name", name, "--lease-kubeconfig", str(kube_api.kubeconfig),
        "--lease-duration-s", "3", "--lease-renew-s", "0.5", "--replication-mode", "sync",
    )
    nodes = [cluster.node(n, *args) for n in ("a", "b", "c")]
    first = wait_until(lambda: _primary(nodes), 30, interval=0.2, what="a primary to be elected")
    wait_until(lambda: first.repl()["replicas_connected"] == 2, 30, interval=0.2, what="the others to follow it")
    assert kube_api.kubectl("get", "lease", name, "-o", "jsonpath={.spec.holderIdentity}") == first.endpoint

    async def load() -> Any:
        stop = asyncio.Event()
        task = asyncio.create_task(write_load(first, stop, writers=4))
        await asyncio.sleep(1.5)  # how long the load runs before the kill, not a synchronisation
        first.kill()
        return await asyncio.wait_for(task, 30)

    h = asyncio.run(load())
    assert len(h.acked) > 50
    t0 = time.monotonic()
    survivors = [n for n in nodes if n is not first]
    second = wait_until(lambda: _primary(survivors), 30, interval=0.1, what="a new primary")

    async def write() -> None:
        async with second.pool() as vdb:
            while True:
                try:
                    await vdb.set("after-failover", 1)
                    return
                except Exception:  # refused until the other replica follows (sync mode)
                    await asyncio.sleep(0.05)

    asyncio.run(write())
    print(f"lease failover: writes acknowledged again {time.monotonic() - t0:.2f}s after the kill")
    keys = sorted(h.acked)
    got = asyncio.run(_contents(second, keys))
    lost = [k for k, v in zip(keys, got, strict=True) if v != h.acked[k]]
    assert not lost, f"{len(lost)} acknowledged writes lost"
    # The old primary returns, sees the lease held by another node, and follows it.
    first.start()
    wait_until(lambda: first.repl().get("primary") == second.endpoint, 30, interval=0.2,
               what="the old primary to follow the lease holder")
    assert _primary(nodes) is second
