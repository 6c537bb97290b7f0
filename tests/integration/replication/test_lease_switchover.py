"""Planned changes of primary under Lease election, against a real kube-apiserver (tier 1).

Three engines elect their primary with a coordination.k8s.io/v1 Lease. Under
an SDK write load that records every acknowledged write:

- a planned switchover moves the Lease (holder, epoch + 1) and the role to
  the chosen replica, loses no acknowledged write, fails no write, and
  pauses writes briefly (measured);
- SIGTERM of the Lease holder hands over to a replica before the process
  exits (sync and async mode): no acknowledged write lost, a replica holds
  the Lease when the old primary is gone;
- a switchover to a replica that is frozen (SIGSTOP) or gone fails cleanly:
  the old primary keeps the Lease and serves writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from vproto.errors import InvalidArgumentError

from tests.integration.replication.cluster import Cluster, Node
from tests.integration.replication.load import History, write_load
from tests.kube.kube_api import KubeAPI
from tests.support.engine_proc import wait_until


def _lease(kube_api: KubeAPI, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kube_api.kubectl("get", "lease", name, "-o", "json"))
    return out


def _holder(kube_api: KubeAPI, name: str) -> tuple[str, int]:
    lease = _lease(kube_api, name)
    epoch = int(lease["metadata"].get("annotations", {}).get("vdb.io/epoch", "0"))
    return lease["spec"].get("holderIdentity") or "", epoch


def _primary(nodes: list[Node]) -> Node | None:
    roles = {}
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                roles[n.endpoint] = n.repl()["role"]
            except Exception:  # starting or stopping: no answer this round
                roles[n.endpoint] = "?"
    primaries = [n for n in nodes if roles.get(n.endpoint) == "primary"]
    assert len(primaries) <= 1, f"two primaries at once: {roles}"
    return primaries[0] if primaries else None


def _primary_is(nodes: list[Node], node: Node) -> bool:
    return _primary(nodes) is node


def _metric(node: Node, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", node.metrics(), re.M)
    assert m is not None, f"{name} not exported by {node.endpoint}"
    return float(m.group(1))


async def _lost(node: Node, h: History) -> list[str]:
    keys = sorted(h.acked)
    got: list[Any] = []
    async with node.pool() as vdb:
        for i in range(0, len(keys), 500):
            got += await vdb.mget(keys[i : i + 500], stale_ok=True)
    return [k for k, v in zip(keys, got, strict=True) if v != h.acked[k]]


@pytest.fixture
def lease_cluster(cluster: Cluster, kube_api: KubeAPI, request: pytest.FixtureRequest) -> Iterator[Any]:
    """(lease name, nodes, the elected primary): three engines, replicas connected."""
    # "async", "sync" (1 replica must acknowledge) or "sync2" (both replicas must)
    mode = getattr(request, "param", "async")
    name = f"vsw-{secrets.token_hex(3)}"
    args = (
        "--lease-name", name, "--lease-kubeconfig", str(kube_api.kubeconfig),
        "--lease-duration-s", "4", "--lease-renew-s", "0.5", "--replication-mode", mode.rstrip("2"),
        "--sync-replicas", "2" if mode == "sync2" else "1",
    )
    nodes = [cluster.node(n, *args) for n in ("a", "b", "c")]
    first = wait_until(lambda: _primary(nodes), 30, interval=0.2, what="a primary to be elected")
    wait_until(lambda: first.repl()["replicas_connected"] == 2, 30, interval=0.2, what="the others to follow it")
    yield name, nodes, first
    for n in nodes:  # resume any node a test froze (SIGSTOP), so that nothing stays stopped
        if n.proc is not None and n.proc.poll() is None:
            os.kill(n.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("lease_cluster", ["async", "sync2"], indirect=True)
def test_switchover_moves_the_lease_and_loses_no_write(lease_cluster: Any, kube_api: KubeAPI) -> None:
    name, nodes, first = lease_cluster
    target = next(n for n in nodes if n is not first)
    holder, epoch = _holder(kube_api, name)
    assert holder == first.endpoint

    async def run() -> tuple[History, tuple[int, int, float]]:
        stop = asyncio.Event()
        task = asyncio.create_task(write_load(first, stop, writers=4))
        try:
            await asyncio.sleep(1.0)  # load before the switchover, not a synchronisation
            async with first.admin_pool() as vdb:
                result = await vdb.switchover(target.endpoint)
            await asyncio.sleep(1.0)  # load on the new primary
        finally:
            stop.set()
        return await asyncio.wait_for(task, 30), result

    h, (new_epoch, _seq, pause_s) = asyncio.run(run())
    report = first.repl()["switchover"]
    mode = f"{first.repl()['mode']}, sync replicas {first.repl()['sync_replicas']}"
    print(f"lease switchover ({mode}): writes paused {pause_s * 1000:.1f} ms (engine: catch-up"
          f" {report['catch_up_ms']}, "
          f"Lease CAS {report['lease_ms']}, promote {report['promote_ms']}), longest gap seen by writers "
          f"{h.max_gap_s * 1000:.0f} ms, {len(h.acked)} writes acknowledged")
    assert len(h.acked) > 50
    assert not h.unknown, f"writes failed during a planned switchover: {sorted(h.unknown)[:5]}"
    assert _holder(kube_api, name) == (target.endpoint, epoch + 1)
    assert new_epoch == epoch + 1 and target.repl()["epoch"] == epoch + 1
    assert _primary_is(nodes, target)
    assert pause_s < 1.0
    assert not asyncio.run(_lost(target, h))

    async def counter() -> Any:
        async with target.pool() as vdb:
            return await vdb.get("counter")

    assert asyncio.run(counter()) == h.incr_acked
    # The old primary follows the new one (resuming, no full copy), the third node too.
    wait_until(lambda: first.repl().get("primary") == target.endpoint, 10, interval=0.1, what="old primary follows")
    wait_until(lambda: target.repl()["replicas_connected"] == 2, 10, interval=0.1, what="both replicas follow")
    assert first.repl()["link"]["full_copies"] == 0
    # Lease-agent metrics: who holds it, who handed it over, who acquired it.
    assert _metric(target, "velocity_lease_holder") == 1.0
    assert _metric(first, "velocity_lease_holder") == 0.0
    assert _metric(first, "velocity_lease_handovers_total") == 1.0
    assert _metric(target, "velocity_lease_acquisitions_total") == 1.0
    assert _metric(target, "velocity_lease_renewals_total") >= 1.0
    assert _metric(target, "velocity_lease_last_renew_timestamp_seconds") > time.time() - 10


@pytest.mark.parametrize("lease_cluster", ["async", "sync"], indirect=True)
def test_sigterm_of_the_lease_holder_hands_over(lease_cluster: Any, kube_api: KubeAPI) -> None:
    name, nodes, first = lease_cluster
    _, epoch = _holder(kube_api, name)
    survivors = [n for n in nodes if n is not first]
    timings: dict[str, float] = {}

    async def run() -> History:
        stop = asyncio.Event()
        task = asyncio.create_task(write_load(first, stop, writers=4))
        try:
            await asyncio.sleep(1.0)  # load before the stop, not a synchronisation
            t0 = time.monotonic()
            await asyncio.to_thread(first.stop)  # SIGTERM, until the process has exited
            timings["exit"] = time.monotonic() - t0
            await asyncio.sleep(1.0)  # load on the successor
        finally:
            stop.set()
        return await asyncio.wait_for(task, 30)

    h = asyncio.run(run())
    holder, new_epoch = _holder(kube_api, name)
    second = next(n for n in survivors if n.endpoint == holder)  # a replica holds it as soon as the primary is gone
    assert new_epoch == epoch + 1
    assert _primary_is(survivors, second)
    print(f"SIGTERM handover ({second.repl()['mode']}): old primary exited {timings['exit']:.2f}s after SIGTERM "
          f"holding no Lease; longest gap seen by writers {h.max_gap_s * 1000:.0f} ms; "
          f"{len(h.acked)} acknowledged, {len(h.unknown)} unknown {h.errors}")
    assert len(h.acked) > 50
    assert timings["exit"] < 5
    # Clients were redirected to the successor, not cut off; in sync mode they waited
    # (retryable REDIRECT) while the replicas reconnected to it.
    assert not h.errors, h.errors
    assert not asyncio.run(_lost(second, h)), "acknowledged writes lost"
    # The stopped node's member Lease is withdrawn (not alive): a later election does not wait for it.
    members = json.loads(kube_api.kubectl("get", "lease", "-l", f"vdb.io/lease={name}", "-o", "json"))["items"]
    renewed = {m["spec"]["holderIdentity"]: m["spec"]["renewTime"] for m in members}
    assert renewed[first.endpoint].startswith("1970-01-01"), renewed


def test_switchover_to_a_lagging_or_gone_replica_fails_cleanly(lease_cluster: Any, kube_api: KubeAPI) -> None:
    name, nodes, first = lease_cluster
    lagging, gone = (n for n in nodes if n is not first)
    _, epoch = _holder(kube_api, name)
    assert lagging.proc is not None
    os.kill(lagging.proc.pid, signal.SIGSTOP)  # connected, but acknowledges nothing
    try:
        async def attempt(target: Node) -> tuple[str, float]:
            async with first.admin_pool() as vdb:
                await vdb.set("before", 1)
                t0 = time.monotonic()
                with pytest.raises(InvalidArgumentError) as err:
                    await vdb.switchover(target.endpoint)
                took = time.monotonic() - t0
                await vdb.set("after", 2)  # the old primary still takes writes
                assert await vdb.get("after") == 2
                return str(err.value), took

        msg, took = asyncio.run(attempt(lagging))
        # Caught by the pre-flight PING, before any fence (the catch-up timeout behind it:
        # tests/unit/replication/test_switchover_wait.py).
        assert "did not answer PING" in msg, msg
        assert took < 4, f"a failed switchover took {took:.1f}s"
    finally:
        os.kill(lagging.proc.pid, signal.SIGCONT)
    assert _holder(kube_api, name) == (first.endpoint, epoch)
    assert _primary_is(nodes, first) and first.repl()["switchover"]["state"] == "failed"
    gone.kill()
    wait_until(lambda: first.repl()["replicas_connected"] == 1, 10, interval=0.1, what="the killed replica to drop")
    msg, _ = asyncio.run(attempt(gone))
    assert "not a replica streaming" in msg, msg
    assert _holder(kube_api, name) == (first.endpoint, epoch)
    assert _primary_is(nodes, first)

    async def bare_fence() -> None:  # the client-driven fence would fight the Lease agent
        async with first.admin_pool() as vdb:
            with pytest.raises(InvalidArgumentError, match="use switchover"):
                await vdb.fence()
            await vdb.set("still", 3)

    asyncio.run(bare_fence())


def test_sigterm_without_a_successor_releases_the_lease(cluster: Cluster, kube_api: KubeAPI) -> None:
    """The only replica is frozen (SIGSTOP) and behind: the stopping primary cannot hand over,
    so it releases the Lease; once the replica runs again it takes the Lease at its next
    round, not a whole lease duration later (async mode: the writes it never received are
    lost, as with any failover to a replica that is behind)."""
    name = f"vrel-{secrets.token_hex(3)}"
    args = (
        "--lease-name", name, "--lease-kubeconfig", str(kube_api.kubeconfig),
        "--lease-duration-s", "6", "--lease-renew-s", "0.5",
    )
    nodes = [cluster.node(n, *args) for n in ("a", "b")]
    first = wait_until(lambda: _primary(nodes), 30, interval=0.2, what="a primary to be elected")
    wait_until(lambda: first.repl()["replicas_connected"] == 1, 30, interval=0.2, what="the replica to follow")
    replica = next(n for n in nodes if n is not first)
    _, epoch = _holder(kube_api, name)

    async def write() -> None:
        async with first.pool() as vdb:
            await vdb.mset({f"k{i}": i for i in range(100)})

    asyncio.run(write())
    cluster.wait_caught_up(first, replica)
    assert replica.proc is not None
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        async def more() -> None:  # the frozen replica does not have these: it cannot take over
            async with first.pool() as vdb:
                await vdb.mset({f"late{i}": i for i in range(10)})

        asyncio.run(more())
        t0 = time.monotonic()
        first.stop()
        stopped_in = time.monotonic() - t0
        assert _holder(kube_api, name) == ("", epoch), "the stopping primary released the Lease"
        assert _in_log(first, "released Lease")
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    t1 = time.monotonic()
    wait_until(lambda: _holder(kube_api, name)[0] == replica.endpoint, 10, interval=0.05,
               what="the replica to take the released Lease")
    took = time.monotonic() - t1
    print(f"Lease release on SIGTERM: primary stopped in {stopped_in:.2f}s (1 s pre-flight PING of the frozen "
          f"replica and 1.5 s catch-up wait included); the replica held the Lease {took:.2f}s after it resumed "
          "(lease duration 6 s)")
    assert stopped_in < 6
    assert took < 3, f"the released Lease was taken after {took:.2f}s"
    assert _holder(kube_api, name)[1] == epoch + 1

    async def read() -> list[Any]:
        async with replica.pool() as vdb:
            out: list[Any] = await vdb.mget([f"k{i}" for i in range(100)])
            return out

    assert asyncio.run(read()) == list(range(100))


def _in_log(node: Node, text: str) -> bool:
    return text in node.log_path.read_text(errors="replace")
