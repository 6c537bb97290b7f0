"""Concurrent GET/SET/INCR clients that record a history for the checker (tests/linearizability/checker).

Each client has its own connection and runs one operation at a time on one
of a few keys; every operation is written as one JSON line with its call and
return times (time.monotonic_ns, one clock for every client and every
process of this machine):

- a completed operation: status "ok" with what it returned;
- a write (SET, INCR) whose outcome the client cannot know (the connection
  broke, a timeout, NOT_ENOUGH_REPLICAS after the write was queued): status
  "unknown", no return time; the checker lets it take effect at any moment
  after its call, or never;
- a request refused before it ran (REDIRECT) or a failed read: not recorded
  (it had no effect).

Clients are routed by a Router that the scenario changes (failover: the new
primary; a test of a returning old primary: some clients to it on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from velocity import VelocityPool
from vproto.errors import RedirectError, VelocityError

from tests.integration.replication.cluster import Node

KEYS = tuple(f"k{i}" for i in range(5))
CLIENT_TIMEOUT_S = 3.0
CLOSE_TIMEOUT_S = 0.5  # closing TLS towards a frozen or cut-off node waits for it: do not


async def _drop(pool: VelocityPool) -> None:
    """Close without waiting on a peer that cannot answer (SIGSTOP, partition)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)


@dataclass
class Router:
    """Which node each client talks to; the scenario changes it as the cluster changes."""

    primary: Node
    overrides: dict[int, Node] = field(default_factory=dict)

    def node_for(self, client: int) -> Node:
        return self.overrides.get(client, self.primary)


@dataclass
class Counts:
    ops: int = 0
    ok: int = 0
    unknown: int = 0
    refused: int = 0
    failed_reads: int = 0
    first_ack_after: dict[str, float] = field(default_factory=dict)  # mark -> monotonic time of first ack


class Recorder:
    """Runs `clients` clients until stopped, appending every operation to `path` (JSON Lines)."""

    def __init__(self, path: Path, router: Router, clients: int = 8, seed: int = 1) -> None:
        self.path = path
        self.router = router
        self.clients = clients
        self.seed = seed
        self.counts = Counts()
        self.marks: dict[str, float] = {}  # name -> monotonic time: "first ack after this" is measured
        self._out: IO[str] | None = None
        self._stop = asyncio.Event()

    def mark(self, name: str) -> None:
        """Remember now; counts.first_ack_after[name] will hold the first acknowledged write after it."""
        self.marks[name] = time.monotonic()

    def _write(self, rec: dict[str, Any]) -> None:
        assert self._out is not None
        self._out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        c = self.counts
        c.ops += 1
        if rec["status"] == "ok":
            c.ok += 1
            if rec["op"] != "get":
                now = time.monotonic()
                for name, t in self.marks.items():
                    if name not in c.first_ack_after and rec["call"] / 1e9 > t:
                        c.first_ack_after[name] = now - t
        else:
            c.unknown += 1

    async def run(self, until: Callable[[], Any]) -> Counts:
        """Record while `until` (a coroutine function: the scenario) runs."""
        with open(self.path, "w") as out:
            self._out = out
            tasks = [asyncio.create_task(self._client(c)) for c in range(self.clients)]
            try:
                await until()
            finally:
                self._stop.set()
                await asyncio.gather(*tasks)
                self._out = None
        return self.counts

    async def _client(self, c: int) -> None:
        rnd = random.Random(self.seed * 1000 + c)
        n = 0
        pool: VelocityPool | None = None
        node: Node | None = None
        try:
            while not self._stop.is_set():
                want = self.router.node_for(c)
                if pool is None or want is not node:
                    if pool is not None:
                        await _drop(pool)
                        pool = None
                    node = want
                    try:
                        pool = await VelocityPool(node.endpoint, auth=node.token, ca=node.ca, pool_size=1,
                                                  timeout=CLIENT_TIMEOUT_S, connect_timeout=1.0,
                                                  retries=0).connect()
                    except (OSError, VelocityError, TimeoutError):
                        await asyncio.sleep(0.05)  # the node is down or unreachable: ask the router again
                        continue
                n += 1
                if not await self._one(c, n, rnd, pool):
                    await _drop(pool)
                    pool = None
        finally:
            if pool is not None:
                await _drop(pool)

    async def _one(self, c: int, n: int, rnd: random.Random, pool: VelocityPool) -> bool:
        """One operation; False when the connection should be replaced."""
        key = rnd.choice(KEYS)
        r = rnd.random()
        op = "get" if r < 0.4 else "set" if r < 0.7 else "incr"
        value = (c + 1) * 10_000_000 + n
        rec: dict[str, Any] = {"client": c, "op": op, "key": key, "value": value if op == "set" else None}
        call = time.monotonic_ns()
        try:
            if op == "get":
                result = await pool.get(key)
            elif op == "set":
                await pool.set(key, value)
                result = None
            else:
                result = await pool.incr(key)
        except RedirectError:
            self.counts.refused += 1  # refused before it ran: no effect
            await asyncio.sleep(0.01)
            return False
        except (VelocityError, ConnectionError, OSError, TimeoutError):
            if op == "get":
                self.counts.failed_reads += 1
            else:
                self._write({**rec, "call": call, "return": None, "result": None, "status": "unknown"})
            return False
        ret = time.monotonic_ns()
        if result is not None and not isinstance(result, int):
            raise AssertionError(f"{op} {key} returned {result!r}: this workload stores integers only")
        self._write({**rec, "call": call, "return": ret, "result": result, "status": "ok"})
        return True
