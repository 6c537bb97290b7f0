"""Regression tests for issue 12: reads a primary cannot prove, and the sync-mode wedge.

Each one fails on the engine before the fix:

- a primary restarted from its state file after a failover answered GETs with
  pre-failover values until its successor fenced it: it now serves nothing
  until its role is confirmed (its replicas reconnect, or PROMOTE);
- a primary frozen (SIGSTOP) through a failover answered GETs with stale
  values as soon as it woke up: it now refuses linearizable reads once it has
  not heard from its sync quorum within the read lease;
- both replicas paused in sync mode while a write waited for them wedged the
  primary: nothing, not even the replicas' reconnect handshakes, got a reply.

The new primary is kept frozen in the first two, so that its fencing cannot
hide the bug: the deposed node must refuse on its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from vproto.errors import NotEnoughReplicasError, RedirectError, VelocityError

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until

SYNC = ("--replication-mode", "sync", "--sync-replicas", "1", "--sync-timeout-s", "2")


def _three(cluster: Cluster) -> tuple[Node, Node, Node]:
    p = cluster.node("p", *SYNC)
    r1 = cluster.node("r1", *SYNC, "--replica-of", p.endpoint)
    r2 = cluster.node("r2", *SYNC, "--replica-of", p.endpoint)
    wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="both replicas")
    return p, r1, r2


def _set(node: Node, key: str, value: int) -> None:
    async def go() -> None:
        async with node.pool() as vdb:
            await vdb.set(key, value)

    asyncio.run(go())


def _get(node: Node, key: str) -> object:
    async def go() -> object:
        async with node.pool(timeout=3) as vdb:
            return await vdb.get(key)

    return asyncio.run(go())


def _fail_over(r1: Node, r2: Node) -> Node:
    wait_until(lambda: not r1.repl()["link"]["link_up"] and not r2.repl()["link"]["link_up"], 15,
               what="both replicas to lose the primary")
    best, other = sorted((r1, r2), key=lambda n: n.seq(), reverse=True)
    best.ctl("promote", check=True)
    other.ctl("replicaof", best.endpoint, check=True)
    wait_until(lambda: best.repl()["replicas_connected"] == 1, 15, what="the other replica to follow the new primary")
    return best


def _signal(node: Node, sig: signal.Signals) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, sig)


def test_issue12_restarted_old_primary_serves_nothing_until_confirmed(cluster: Cluster) -> None:
    p, r1, r2 = _three(cluster)
    _set(p, "k", 1)
    p.kill()
    best = _fail_over(r1, r2)
    _set(best, "k", 2)  # acknowledged by the new primary (and its replica)
    _signal(best, signal.SIGSTOP)  # it cannot fence the old primary now
    try:
        p.start()  # the same flags as before: it comes back as "primary, epoch 1"
        with pytest.raises(RedirectError, match="has not re-established its role"):
            _get(p, "k")  # before the fix: 1, a stale read
        info = p.repl()
        assert info["role"] == "primary" and info["confirmed"] is False
        with pytest.raises(RedirectError):
            _set(p, "k", 3)
    finally:
        _signal(best, signal.SIGCONT)
    wait_until(lambda: p.repl()["role"] == "replica", 15, what="the new primary to fence the old one")
    assert _get(p, "k") == 2  # REDIRECT to the new primary, followed by the SDK


def test_issue12_restarted_primary_is_confirmed_by_its_replicas(cluster: Cluster) -> None:
    p, _, _ = _three(cluster)
    _set(p, "k", 1)
    p.kill()
    p.start()  # no failover happened: its replicas come back to it
    wait_until(lambda: p.repl()["confirmed"], 15, what="the replicas to confirm the restarted primary")
    assert _get(p, "k") == 1
    _set(p, "k", 2)
    assert p.repl()["epoch"] == 1


def test_issue12_primary_frozen_through_a_failover_refuses_reads_when_it_wakes(cluster: Cluster) -> None:
    p, r1, r2 = _three(cluster)
    _set(p, "k", 1)
    _signal(p, signal.SIGSTOP)
    try:
        best = _fail_over(r1, r2)
        _set(best, "k", 2)
        _signal(best, signal.SIGSTOP)  # no fencing: the old primary must know by itself
    finally:
        _signal(p, signal.SIGCONT)
    try:
        with pytest.raises(RedirectError, match="cannot prove it is still the primary"):
            _get(p, "k")  # before the fix: 1, a stale read
    finally:
        _signal(best, signal.SIGCONT)
    wait_until(lambda: p.repl()["role"] == "replica", 15, what="the new primary to fence the old one")
    assert _get(p, "k") == 2


def test_issue12_both_replicas_paused_in_sync_mode_do_not_wedge_the_primary(cluster: Cluster) -> None:
    p, r1, r2 = _three(cluster)

    async def write_during_pause() -> None:
        async with p.pool(timeout=10) as vdb:
            t0 = time.monotonic()
            with pytest.raises((NotEnoughReplicasError, VelocityError, ConnectionError)):
                await vdb.set("stuck", 1)  # no replica can acknowledge it: fails, outcome unknown
            assert time.monotonic() - t0 < 8, "the write must fail within about sync_timeout_s"

    for r in (r1, r2):
        _signal(r, signal.SIGSTOP)
    try:
        asyncio.run(write_during_pause())
        assert p.http_status("/healthz") == 200
        assert p.repl()["role"] == "primary"  # INFO answers while the write waits
    finally:
        for r in (r1, r2):
            _signal(r, signal.SIGCONT)
    t0 = time.monotonic()
    wait_until(lambda: p.repl()["replicas_connected"] == 2, 20, what="both replicas to reconnect")
    _set(p, "after", 1)
    print(f"replicas back and a write acknowledged {time.monotonic() - t0:.2f}s after the pause ended")
    cluster.wait_caught_up(p, r1, r2)
