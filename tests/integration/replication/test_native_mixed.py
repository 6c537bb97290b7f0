"""A native node and a Python node in one cluster: replication stream version 2 against
version 1 (docs/formats/replication.md, "Version negotiation").

A native primary streams version 2 only: a Python replica is refused with a message that
names both versions, nothing is applied and the replica keeps retrying. A native replica
follows a Python primary in version 1 (the upgrade path, engine/core/src/replication/
stream_v1.rs), and two native nodes replicate in version 2. Real engine processes,
with the storage REPL_TEST_STORAGE names (LSM by default).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until

NATIVE = ("--data-plane", "native")
PYTHON = ("--data-plane", "python")


def _set(n: Node, key: str, value: int) -> None:
    async def go() -> None:
        async with n.pool() as vdb:
            assert await vdb.set(key, value)

    asyncio.run(go())


def _link_error(r: Node) -> str:
    link = r.repl().get("link") or {}
    return str(link.get("last_error", ""))


def _names_both_versions(msg: str) -> bool:
    return "version 1" in msg and "version 2" in msg


def test_native_primary_refuses_a_python_replica(cluster: Cluster) -> None:
    p = cluster.node("p", *NATIVE)
    _set(p, "k", 1)
    r = cluster.node("r", *PYTHON, "--replica-of", p.endpoint)
    wait_until(lambda: _names_both_versions(_link_error(r)), 15, what="the replica to report the refusal")
    msg = _link_error(r)
    assert "UNSUPPORTED_VERSION" in msg or "stream version" in msg, msg
    assert p.repl()["replicas_connected"] == 0
    assert r.repl()["seq"] == 0, "nothing was applied"
    assert p.info()["server"]["data_plane"] == "native"


async def _contents(node: Node) -> dict[str, Any]:
    async with node.pool() as vdb:
        keys = [k async for k in vdb.scan("", count=1000, stale_ok=True)]
        values = await vdb.mget(keys, stale_ok=True) if keys else []
        return dict(zip(keys, values, strict=True))


async def _workload(node: Node, tag: str) -> None:
    async with node.pool(pool_size=4) as vdb:
        await asyncio.gather(*(vdb.set(f"{tag}:user:{i}", {"n": i}) for i in range(200)))
        await asyncio.gather(*(vdb.incr(f"{tag}:counter") for _ in range(100)))
        await vdb.mset({f"{tag}:batch:{i}": f"v{i}" for i in range(50)})
        await vdb.set(f"{tag}:ttl", "stays", ttl="1h")
        for i in range(0, 200, 3):
            await vdb.delete(f"{tag}:user:{i}")


def test_a_native_replica_follows_a_python_primary_through_a_rolling_upgrade(cluster: Cluster) -> None:
    """The upgrade path (docs/operator/upgrade.md): replicas first, then a switchover to a
    native replica, then the old primary restarts native. No acknowledged write is lost."""
    p = cluster.node("p", *PYTHON)
    asyncio.run(_workload(p, "before"))
    r = cluster.node("r", *NATIVE, "--replica-of", p.endpoint)
    # A full copy in version 1, then batches in version 1, translated into the native log.
    asyncio.run(_workload(p, "during"))
    cluster.wait_caught_up(p, r)
    assert r.repl()["stream_version"] == 1 and r.repl()["link"]["link_up"] is True
    assert r.info()["server"]["data_plane"] == "native"
    want = asyncio.run(_contents(p))
    assert want["during:counter"] == 100 and "during:user:0" not in want
    assert asyncio.run(_contents(r)) == want, "the position record is not a user key on the native replica"

    # SIGKILL the native replica: it resumes from its own log, without a second full copy.
    r.kill()
    asyncio.run(_workload(p, "while-down"))
    r.start()
    cluster.wait_caught_up(p, r)
    assert r.repl()["link"]["full_copies"] == 0, r.repl()["link"]
    assert asyncio.run(_contents(r)) == asyncio.run(_contents(p))

    # Planned switchover run by the Python primary, to the native replica.
    p.ctl("switchover", r.endpoint, check=True)
    wait_until(lambda: r.repl()["role"] == "primary", 10, what="the native replica to be promoted")
    asyncio.run(_workload(r, "after"))
    want = asyncio.run(_contents(r))
    assert want["after:counter"] == 100 and want["before:counter"] == 100

    # The old primary restarts on the native plane (its Python-written directory migrates).
    p.kill()
    p.extra_args = [a for a in p.extra_args if a not in PYTHON] + [*NATIVE, "--replica-of", r.endpoint]
    p.start()
    cluster.wait_caught_up(r, p)
    assert p.repl()["stream_version"] == 2
    assert asyncio.run(_contents(p)) == want


def test_native_primary_and_replica_replicate_with_stream_version_2(cluster: Cluster) -> None:
    p = cluster.node("p", *NATIVE)
    r = cluster.node("r", *NATIVE, "--replica-of", p.endpoint)
    for i in range(20):
        _set(p, f"k{i}", i)
    cluster.wait_caught_up(p, r)
    assert r.repl()["stream_version"] == 2 and r.repl()["link"]["link_up"] is True
    assert p.repl()["replicas"][0]["state"] == "streaming"
