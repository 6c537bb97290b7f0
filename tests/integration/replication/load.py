"""A write load that records exactly which writes were acknowledged.

Writers SET unique keys (each key written once, so "acknowledged" is a
precise claim: that key must exist with that value afterwards) and INCR a
shared counter. A write that fails or whose connection breaks is recorded
as "unknown": it may or may not have happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from vproto.errors import VelocityError

from tests.integration.replication.cluster import Node


@dataclass
class History:
    acked: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    incr_acked: int = 0
    incr_unknown: int = 0
    last_ack_at: float = 0.0
    first_error_at: float = 0.0
    max_gap_s: float = 0.0  # longest time without any acknowledgement (a write pause)
    errors: list[str] = field(default_factory=list)  # why writers stopped, for failure messages


async def write_load(node: Node, stop: asyncio.Event, writers: int = 8, prefix: str = "w") -> History:
    h = History()

    async def writer(w: int) -> None:
        n = 0
        async with node.pool(pool_size=1, timeout=3.0) as vdb:
            while not stop.is_set():
                key = f"{prefix}{w}:{n}"
                n += 1
                try:
                    await vdb.set(key, key)
                    h.acked[key] = key
                    await vdb.incr("counter")
                    h.incr_acked += 1
                    now = time.monotonic()
                    if h.last_ack_at:
                        h.max_gap_s = max(h.max_gap_s, now - h.last_ack_at)
                    h.last_ack_at = now
                except (VelocityError, ConnectionError, OSError, TimeoutError) as exc:
                    h.errors.append(f"{key}: {exc!r}")
                    h.unknown.add(key)
                    h.incr_unknown += 1
                    h.first_error_at = h.first_error_at or time.monotonic()
                    return

    tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks)
    return h
