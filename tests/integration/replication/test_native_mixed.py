"""A native node and a Python node in one cluster: replication stream version 2 against
version 1 (docs/formats/replication.md, "Version negotiation").

The two data planes speak different stream versions and refuse each other, each side with
a message that names both versions; nothing is applied and the replica keeps retrying. A
native primary with a native replica replicates (stream version 2). Real engine processes,
with the storage REPL_TEST_STORAGE names (LSM by default).
"""

from __future__ import annotations

import asyncio

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


def test_python_primary_refuses_a_native_replica(cluster: Cluster) -> None:
    p = cluster.node("p", *PYTHON)
    _set(p, "k", 1)
    r = cluster.node("r", *NATIVE, "--replica-of", p.endpoint)
    wait_until(lambda: _names_both_versions(_link_error(r)), 15, what="the replica to report the refusal")
    assert "Python data plane" in _link_error(r)
    assert r.repl()["seq"] == 0, "nothing was applied"
    assert r.info()["server"]["data_plane"] == "native"
    assert "replicas_connected" not in p.repl() or p.repl()["replicas_connected"] == 0


def test_native_primary_and_replica_replicate_with_stream_version_2(cluster: Cluster) -> None:
    p = cluster.node("p", *NATIVE)
    r = cluster.node("r", *NATIVE, "--replica-of", p.endpoint)
    for i in range(20):
        _set(p, f"k{i}", i)
    cluster.wait_caught_up(p, r)
    assert r.repl()["stream_version"] == 2 and r.repl()["link"]["link_up"] is True
    assert p.repl()["replicas"][0]["state"] == "streaming"
