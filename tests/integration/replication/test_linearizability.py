"""A recorded history of concurrent register operations across a failover is linearizable.

Four clients read, write and compare-and-set one key on a sync-mode primary;
the primary is killed with SIGKILL, the most up-to-date replica is promoted
and the clients move to it. Every operation's call and return times are
recorded (an operation whose outcome is unknown returns at infinity) and the
history is checked with linearizability.check: a lost acknowledged write, a
stale read or a split brain would each make it fail.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

from velocity import VelocityPool
from vproto.errors import NotEnoughReplicasError, RedirectError, VelocityError

from tests.integration.replication.cluster import Cluster, Node
from tests.integration.replication.linearizability import CAS, READ, WRITE, Op, check
from tests.support.engine_proc import wait_until

KEY = "register"


async def _client(c: int, target: dict[str, Node], stop: asyncio.Event, history: list[Op]) -> None:
    loop = asyncio.get_running_loop()
    rnd = random.Random(c)
    n = 0
    last: Any = None
    pool: VelocityPool | None = None
    while not stop.is_set():
        if pool is None:
            node = target["primary"]
            try:
                pool = await VelocityPool(node.endpoint, auth=node.token, ca=node.ca, pool_size=1, timeout=3).connect()
            except (OSError, VelocityError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
        await asyncio.sleep(0.01)  # pacing keeps the history small enough to check quickly
        r = rnd.random()
        n += 1
        value = f"{c}-{n}"
        t0 = loop.time()
        try:
            if r < 0.35:
                last = await pool.get(KEY)
                history.append(Op(c, t0, loop.time(), READ, result=last))
            elif r < 0.7:
                await pool.set(KEY, value)
                history.append(Op(c, t0, loop.time(), WRITE, value))
            else:
                ok = await pool.cas(KEY, last, value)
                history.append(Op(c, t0, loop.time(), CAS, (last, value), ok))
        except (NotEnoughReplicasError, RedirectError):
            pass  # refused: nothing was executed
        except (VelocityError, ConnectionError, OSError, TimeoutError):
            if r >= 0.35:  # a write whose fate is unknown; a failed read has no effect
                arg = value if r < 0.7 else (last, value)
                history.append(Op(c, t0, math.inf, WRITE if r < 0.7 else CAS, arg))
            await pool.close()
            pool = None
    if pool is not None:
        await pool.close()


def test_register_history_across_a_failover_is_linearizable(cluster: Cluster) -> None:
    sync = ("--replication-mode", "sync", "--sync-replicas", "1")
    p = cluster.node("p", *sync)
    r1 = cluster.node("r1", *sync, "--replica-of", p.endpoint)
    r2 = cluster.node("r2", *sync, "--replica-of", p.endpoint)
    wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="replicas to connect")
    target = {"primary": p}
    target_time: dict[str, float] = {}
    history: list[Op] = []

    async def go() -> None:
        stop = asyncio.Event()
        clients = [asyncio.create_task(_client(c, target, stop, history)) for c in range(4)]
        await asyncio.sleep(1.5)  # load before the failure, not a synchronisation
        p.kill()
        await asyncio.to_thread(
            wait_until, lambda: not r1.repl()["link"]["link_up"] and not r2.repl()["link"]["link_up"], 10
        )
        best, other = sorted((r1, r2), key=lambda n: n.seq(), reverse=True)
        async with best.admin_pool() as a, other.admin_pool() as b:
            await a.promote()
            await b.replica_of(best.endpoint)
        target["primary"] = best
        promoted = target_time["promoted"] = asyncio.get_running_loop().time()
        # Load after the failover until enough operations completed on the new primary
        # (it takes writes only once the old primary's read proof has surely expired).
        deadline = promoted + 20
        while sum(1 for o in history if o.known and o.call > promoted) < 100:
            assert asyncio.get_running_loop().time() < deadline, "the new primary served too little"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*clients)

    asyncio.run(go())
    known = [o for o in history if o.known]
    after = [o for o in known if o.call > target_time["promoted"]]
    unknown = len(history) - len(known)
    print(f"{len(history)} operations ({unknown} with unknown outcome), {len(after)} after the failover")
    assert len(known) > 100 and len(after) > 20, "too few operations completed"
    assert any(o.kind == READ for o in history) and any(o.kind == CAS and o.result for o in history)
    assert check(history), "the history is not linearizable"
