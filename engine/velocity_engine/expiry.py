"""The active expiry cycle: find expired keys nobody touches.

Like Redis: a few times a second, sample keys that carry a TTL and delete the
expired ones; keep going while a large share of the sample was expired, but
never beyond a CPU budget, so latency holds when millions expire at once.
"""

from __future__ import annotations

import asyncio
import time

from velocity_engine.keyspace import Keyspace

SAMPLE = 20
REPEAT_IF_EXPIRED_SHARE = 0.25


def expiry_step(keyspace: Keyspace, budget_s: float) -> int:
    """One cycle within the budget; returns keys expired."""
    deadline = time.perf_counter() + budget_s
    total = 0
    while True:
        checked, gone = keyspace.expire_some(SAMPLE)
        total += gone
        if checked == 0 or gone < checked * REPEAT_IF_EXPIRED_SHARE or time.perf_counter() >= deadline:
            return total


async def active_expiry_loop(keyspace: Keyspace, hz: float, budget_s: float) -> None:
    period = 1.0 / hz
    while True:
        await asyncio.sleep(period)
        expiry_step(keyspace, budget_s)
