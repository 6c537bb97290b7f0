"""The fault scenarios of the linearizability suite (docs/replication.md, "Linearizability").

Three engines in sync mode (sync_replicas 1), eight recording clients
(recorder.py). Each scenario is a coroutine that runs while the clients
record; it injects its fault into real processes (SIGKILL, SIGSTOP, ip
netns link down), fails over the way an operator would (wait until both
replicas lost their link, PROMOTE the one with the highest seq, point the
other at it), and routes clients, some of them on purpose to the node that
must not answer (a returning old primary).

`scale` stretches the load phases: 1 for `make test` (tens of thousands of
operations per scenario), larger for `make test-linearizability`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.integration.linearizability.recorder import Recorder, Router
from tests.integration.replication.cluster import Cluster, Node
from tests.integration.replication.netns import Veth
from tests.support.engine_proc import wait_until

SYNC = ("--replication-mode", "sync", "--sync-replicas", "1", "--sync-timeout-s", "2")
STICKY = (0, 1, 2)  # the clients sent to a returning old primary on purpose


@dataclass
class Context:
    cluster: Cluster
    primary: Node
    replicas: tuple[Node, Node]
    router: Router
    recorder: Recorder
    scale: float
    notes: dict[str, Any] = field(default_factory=dict)

    async def load(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.scale)  # how long the clients run: not a synchronisation

    async def poll(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        return await asyncio.to_thread(wait_until, predicate, timeout, 0.05, what)


def start_cluster(cluster: Cluster, netns: Veth | None = None) -> tuple[Node, Node, Node]:
    """A sync-mode primary (inside `netns` if given) and two replicas, all streaming."""
    host = "127.0.0.1"
    p = cluster.node("p", *SYNC) if netns is None else None
    if netns is not None:
        host = netns.outer
        p = cluster.node("p", *SYNC, host=netns.inner, netns=netns.ns)
    assert p is not None
    r1 = cluster.node("r1", *SYNC, "--replica-of", p.endpoint, host=host)
    r2 = cluster.node("r2", *SYNC, "--replica-of", p.endpoint, host=host)
    wait_until(lambda: p.repl()["replicas_connected"] == 2, 20, what="both replicas to stream")
    wait_until(lambda: p.repl().get("reads_provable_s", 0) != 0, 10, what="the primary to prove its reads")
    return p, r1, r2


def _signal(node: Node, sig: signal.Signals) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, sig)


async def fail_over(ctx: Context) -> Node:
    """The operator's manual failover: both replicas lost the primary; promote the most advanced."""
    r1, r2 = ctx.replicas

    def lost() -> bool:
        return not r1.repl()["link"]["link_up"] and not r2.repl()["link"]["link_up"]

    await ctx.poll(lost, 15, "both replicas to lose the primary")
    best, other = sorted((r1, r2), key=lambda n: n.seq(), reverse=True)
    await asyncio.to_thread(best.ctl, "promote", check=True)
    await asyncio.to_thread(other.ctl, "replicaof", best.endpoint, check=True)
    ctx.notes["promoted_after_s"] = round(time.monotonic() - ctx.recorder.marks["fault"], 3)
    ctx.recorder.mark("promoted")  # first_ack_after_s["promoted"]: until the new primary's first ack
    ctx.router.primary = best
    return best


async def visit_old_primary(ctx: Context, old: Node, seconds: float) -> None:
    """Send a few clients to the deposed primary: it must not answer what it cannot prove."""
    ctx.router.overrides = dict.fromkeys(STICKY, old)
    await asyncio.sleep(seconds)  # how long they stay there
    ctx.router.overrides = {}


# -- the scenarios -------------------------------------------------------------------------------

async def no_fault(ctx: Context) -> None:
    await ctx.load(16)


async def kill_primary(ctx: Context) -> None:
    await ctx.load(6)
    ctx.recorder.mark("fault")
    await asyncio.to_thread(ctx.primary.kill)
    await fail_over(ctx)
    await ctx.load(8)


async def pause_primary(ctx: Context) -> None:
    p = ctx.primary
    await ctx.load(6)
    ctx.recorder.mark("fault")
    _signal(p, signal.SIGSTOP)
    try:
        best = await fail_over(ctx)
        await ctx.load(3)
    finally:
        ctx.router.overrides = dict.fromkeys(STICKY, p)  # waiting for it as it wakes up
        _signal(p, signal.SIGCONT)
    ctx.recorder.mark("resumed")
    await visit_old_primary(ctx, p, 3)
    await ctx.poll(lambda: p.repl()["role"] == "replica", 20, "the paused primary to step down")
    await ctx.load(4)
    ctx.notes["new_primary"] = best.endpoint


async def restart_old_primary(ctx: Context) -> None:
    p = ctx.primary
    await ctx.load(5)
    ctx.recorder.mark("fault")
    await asyncio.to_thread(p.kill)
    best = await fail_over(ctx)
    await ctx.load(4)
    # The old primary comes back on its data directory with the flags it had, and
    # some clients are already knocking: they reach it before its successor does.
    ctx.router.overrides = dict.fromkeys(STICKY, p)
    await asyncio.to_thread(p.start)
    ctx.recorder.mark("restarted")
    await ctx.poll(lambda: p.repl()["role"] == "replica", 20, "the restarted old primary to be fenced")
    ctx.notes["old_primary_fenced_after_s"] = round(time.monotonic() - ctx.recorder.marks["restarted"], 3)
    await visit_old_primary(ctx, p, 2)
    await ctx.load(3)
    ctx.notes["new_primary"] = best.endpoint


async def replicas_paused(ctx: Context) -> None:
    p = ctx.primary
    r1, r2 = ctx.replicas
    await ctx.load(5)
    ctx.recorder.mark("fault")
    for r in (r1, r2):
        _signal(r, signal.SIGSTOP)
    try:
        await asyncio.sleep(4)  # the fault lasts this long (longer than sync_timeout_s)
    finally:
        for r in (r1, r2):
            _signal(r, signal.SIGCONT)
    ctx.recorder.mark("resumed")
    # Liveness: the replicas get back in and writes are acknowledged again.
    await ctx.poll(lambda: p.repl()["replicas_connected"] == 2, 30, "both replicas to stream again")
    ctx.notes["replicas_back_after_s"] = round(time.monotonic() - ctx.recorder.marks["resumed"], 3)
    await ctx.load(6)


def partition(veth: Veth) -> Callable[[Context], Awaitable[None]]:
    async def run(ctx: Context) -> None:
        p = ctx.primary
        await ctx.load(5)
        ctx.recorder.mark("fault")
        await asyncio.to_thread(veth.cut)  # the primary alone on its side, clients on the other
        try:
            best = await fail_over(ctx)
            await ctx.load(4)
        finally:
            ctx.router.overrides = dict.fromkeys(STICKY, p)  # waiting for it as the link comes back
            await asyncio.to_thread(veth.heal)
        ctx.recorder.mark("healed")
        await visit_old_primary(ctx, p, 3)
        await ctx.poll(lambda: p.repl()["role"] == "replica", 20, "the partitioned primary to step down")
        await ctx.load(3)
        ctx.notes["new_primary"] = best.endpoint

    return run


SCENARIOS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "no_fault": no_fault,
    "kill_primary": kill_primary,
    "pause_primary": pause_primary,
    "restart_old_primary": restart_old_primary,
    "replicas_paused": replicas_paused,
}
