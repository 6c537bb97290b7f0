"""Primary + replicas: convergence, redirects, stale reads, resume and full copy, lag figures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from velocity.connection import Connection, Endpoint
from velocity.pool import make_ssl_context
from vproto import fastcodec as fc
from vproto.errors import RedirectError
from vproto.frame import Consistency, Opcode

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until


async def _contents(node: Node, *, stale_ok: bool) -> dict[str, Any]:
    async with node.pool() as vdb:
        keys = [k async for k in vdb.scan("", count=1000, stale_ok=stale_ok)]
        values = await vdb.mget(keys, stale_ok=stale_ok) if keys else []
        return dict(zip(keys, values, strict=True))


def _primary_and_replica_with_keys(cluster: Cluster, n: int = 50) -> tuple[Node, Node]:
    """A primary and its replica, with k0..k{n-1} written on the primary."""
    p = cluster.node("p")
    r = cluster.node("r", "--replica-of", p.endpoint)

    async def write() -> None:
        async with p.pool() as vdb:
            await asyncio.gather(*(vdb.set(f"k{i}", i) for i in range(n)))

    asyncio.run(write())
    return p, r


async def _workload(node: Node) -> None:
    async with node.pool(pool_size=4) as vdb:
        await asyncio.gather(*(vdb.set(f"user:{i}", {"n": i}) for i in range(300)))
        await asyncio.gather(*(vdb.incr("counter") for _ in range(200)))
        await vdb.mset({f"batch:{i}": f"v{i}" for i in range(50)})
        await vdb.set("ttl:short", "gone soon", ttl="300ms")
        await vdb.set("ttl:long", "stays", ttl="1h")
        for i in range(0, 300, 3):
            await vdb.delete(f"user:{i}")
        assert await vdb.cas("user:1", {"n": 1}, {"n": "cas"})
        await vdb.expire("user:2", "1h")


def test_two_replicas_converge_with_the_primary(cluster: Cluster) -> None:
    p = cluster.node("p")
    r1 = cluster.node("r1", "--replica-of", p.endpoint)
    r2 = cluster.node("r2", "--replica-of", p.endpoint)
    asyncio.run(_workload(p))
    # The short TTL expires on the primary; its deletion reaches the replicas as a batch.
    wait_until(lambda: asyncio.run(_contents(p, stale_ok=False)).get("ttl:short") is None, 5, what="expiry")
    cluster.wait_caught_up(p, r1, r2)
    want = asyncio.run(_contents(p, stale_ok=False))
    assert want["counter"] == 200 and want["user:1"] == {"n": "cas"} and "user:0" not in want
    for r in (r1, r2):
        assert asyncio.run(_contents(r, stale_ok=True)) == want
        info = r.info()
        assert info["server"]["role"] == "replica" and info["keys"] == len(want)
    primary = p.repl()
    assert primary["replicas_connected"] == 2
    assert {x["state"] for x in primary["replicas"]} == {"streaming"}


def test_replica_redirects_writes_and_linearizable_reads(cluster: Cluster) -> None:
    p = cluster.node("p")
    r = cluster.node("r", "--replica-of", p.endpoint)

    async def go() -> None:
        ctx = make_ssl_context(r.ca)
        conn = await Connection.open(Endpoint.parse(r.endpoint), ssl_context=ctx, token=r.token)
        try:
            with pytest.raises(RedirectError) as exc:
                await conn.call(Opcode.SET, fc.encode_set_request(b"k", b"v", 0, 0, 0))
            assert exc.value.primary == p.endpoint
            with pytest.raises(RedirectError):
                await conn.call(Opcode.GET, fc.encode_key_request(b"k"))
            # Stale reads are served by the replica itself.
            body = await conn.call(Opcode.GET, fc.encode_key_request(b"k"), Consistency.STALE_OK)
            assert fc.decode_get_response(body)[0] is False
        finally:
            conn.close()
        # The SDK follows the redirect: a write sent to the replica lands on the primary.
        async with r.pool() as vdb:
            assert await vdb.set("via-replica", "yes")
            assert str(vdb.endpoint) == p.endpoint
            assert await vdb.get("via-replica") == "yes"

    asyncio.run(go())
    cluster.wait_caught_up(p, r)

    async def stale() -> Any:
        async with r.pool() as vdb:
            value = await vdb.get("via-replica", stale_ok=True)
            assert str(vdb.endpoint) == r.endpoint  # served locally, no redirect
            return value

    assert asyncio.run(stale()) == "yes"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restarted_replica_resumes_from_its_position(cluster: Cluster, how: str) -> None:
    p = cluster.node("p")
    r = cluster.node("r", "--replica-of", p.endpoint)

    async def write(lo: int, hi: int) -> None:
        async with p.pool() as vdb:
            await asyncio.gather(*(vdb.set(f"k{i}", i) for i in range(lo, hi)))

    asyncio.run(write(0, 200))
    cluster.wait_caught_up(p, r)
    if how == "sigterm":
        assert r.stop() == 0
    else:
        r.kill()
    asyncio.run(write(200, 400))
    r.start()  # no --replica-of needed twice, but the flag is in extra_args anyway
    seq = cluster.wait_caught_up(p, r)
    link = r.repl()["link"]
    assert link["full_copies"] == 0, "resumed from the backlog, no full copy"
    assert r.repl()["position"]["seq"] == seq
    got = asyncio.run(_contents(r, stale_ok=True))
    assert got == {f"k{i}": i for i in range(400)}


def test_a_replica_resuming_with_nothing_to_fetch_is_not_reported_behind(cluster: Cluster) -> None:
    """A replica that reconnects while no write comes holds everything: the primary counts its
    REPL_SYNC position as acknowledged (a switchover to it, which waits for that, found it
    at 0 on the native plane until the next write: the e2e scale-down waited minutes)."""
    p, r = _primary_and_replica_with_keys(cluster)
    seq = cluster.wait_caught_up(p, r)
    assert r.stop() == 0
    r.start()

    def acked() -> list[tuple[str, int]]:
        return [(x["state"], int(x["acked_seq"])) for x in p.repl().get("replicas", [])]

    wait_until(lambda: acked() == [("streaming", seq)], 15, what=f"the primary to count seq {seq} as acknowledged")
    assert p.seq() == seq, "no write happened meanwhile"


def test_replica_takes_a_full_copy_when_the_backlog_moved_on(cluster: Cluster) -> None:
    p = cluster.node("p", "--replication-backlog-bytes", "4096")
    r = cluster.node("r", "--replica-of", p.endpoint)

    async def write(lo: int, hi: int) -> None:
        async with p.pool() as vdb:
            for i in range(lo, hi):
                await vdb.set(f"k{i}", "x" * 100)
            for i in range(lo, hi, 2):
                await vdb.delete(f"k{i}")

    asyncio.run(write(0, 100))
    left_at = cluster.wait_caught_up(p, r)
    assert r.stop() == 0
    asyncio.run(write(100, 400))
    assert p.repl()["backlog"]["first_seq"] > left_at + 1
    r.start()
    cluster.wait_caught_up(p, r)
    assert r.repl()["link"]["full_copies"] == 1
    assert asyncio.run(_contents(r, stale_ok=True)) == asyncio.run(_contents(p, stale_ok=False))


def test_lag_and_role_are_exported(cluster: Cluster) -> None:
    p, r = _primary_and_replica_with_keys(cluster)
    cluster.wait_caught_up(p, r)
    wait_until(lambda: 'velocity_replicas_connected 1.0' in p.metrics(), 5, what="replica in metrics")
    pm, rm = p.metrics(), r.metrics()
    assert 'velocity_replication_role{role="primary"} 1.0' in pm
    assert 'velocity_replication_role{role="replica"} 1.0' in rm
    for name in ("velocity_replication_lag_records", "velocity_replication_lag_seconds",
                 "velocity_replication_backlog_bytes"):
        assert name in pm and name in rm
    assert "velocity_replication_lag_records 0.0" in rm
    # A replica whose primary is gone reports growing lag in seconds.
    p.kill()
    wait_until(lambda: r.repl()["lag_seconds"] > 1.0, 10, what="lag to grow after the primary died")
    assert r.repl()["link"]["link_up"] is False
