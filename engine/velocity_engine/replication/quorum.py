"""Sync mode: a write is acknowledged once enough replicas have it durably.

Replicas acknowledge a sequence number after their own storage made it as
durable as its policy promises. The quorum position is the highest seq that
at least `required` replicas acknowledged; a waiter for seq s completes
when the quorum position reaches s, and waiters complete in seq order.
Usually they are asked for in seq order too; one asked for out of order
(a connection waiting for its own, older write) is slotted into place. A
waiter not satisfied within `timeout_s` fails with NotEnoughReplicasError:
the write's outcome is unknown to its client (it is in the primary's log
and may still reach replicas), never falsely acknowledged.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque

from vproto.errors import NotEnoughReplicasError


class SyncQuorum:
    def __init__(self, required: int, timeout_s: float) -> None:
        self.required = required
        self.timeout_s = timeout_s
        self.position = 0
        self._waiters: deque[tuple[int, float, asyncio.Future[None]]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def waiter(self, seq: int) -> asyncio.Future[None] | None:
        fut: asyncio.Future[None]
        if seq <= self.position:
            return None
        w = self._waiters
        if w and w[-1][0] == seq:
            return w[-1][2]
        if w and w[-1][0] > seq:
            i = bisect.bisect_left(w, seq, key=lambda e: e[0])
            if i < len(w) and w[i][0] == seq:
                return w[i][2]
            fut = asyncio.get_running_loop().create_future()
            # Its write is older than the next one's: it times out with it (times stay sorted).
            w.insert(i, (seq, w[i][1], fut))
            return fut
        fut = asyncio.get_running_loop().create_future()
        w.append((seq, time.monotonic(), fut))
        return fut

    def update(self, acked: list[int]) -> None:
        """Recompute from every connected replica's acknowledged seq."""
        if len(acked) < self.required:
            return
        pos = sorted(acked, reverse=True)[self.required - 1]
        if pos <= self.position:
            return
        self.position = pos
        w = self._waiters
        while w and w[0][0] <= pos:
            fut = w.popleft()[2]
            if not fut.done():
                fut.set_result(None)

    def expire(self) -> int:
        """Fail waiters older than the timeout; returns how many."""
        limit = time.monotonic() - self.timeout_s
        w = self._waiters
        n = 0
        while w and w[0][1] < limit:
            seq, _, fut = w.popleft()
            if not fut.done():
                fut.set_exception(NotEnoughReplicasError(
                    f"write {seq} was not acknowledged by {self.required} replica(s) within {self.timeout_s:g}s"
                ))
            n += 1
        return n

    def fail_all(self, reason: str) -> None:
        w = self._waiters
        while w:
            _, _, fut = w.popleft()
            if not fut.done():
                fut.set_exception(NotEnoughReplicasError(reason))

    def reset(self, position: int) -> None:
        self.fail_all("replication was reset")
        self.position = position
