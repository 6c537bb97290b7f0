"""A token bucket for background writers (compaction), so foreground p99 holds.

Used from one background thread; `throttle(n)` sleeps that thread when it
has written more than `rate` bytes per second over the last burst window.
`cancel()` (from any thread) makes the next throttle raise Cancelled so a
long compaction stops promptly at shutdown.
"""

from __future__ import annotations

import threading
import time


class Cancelled(Exception):
    """The background job was asked to stop."""


class RateLimiter:
    def __init__(self, rate_bytes_per_s: int, burst_s: float = 0.1) -> None:
        self.rate = float(rate_bytes_per_s)
        self.capacity = self.rate * burst_s
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._stop = threading.Event()

    def throttle(self, nbytes: int) -> None:
        if self._stop.is_set():
            raise Cancelled("stopping")
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= nbytes
        # Wait for the deficit to refill; an Event wait so cancel() interrupts it.
        if self.tokens < 0 and self._stop.wait(-self.tokens / self.rate):
            raise Cancelled("stopping")

    def cancel(self) -> None:
        self._stop.set()
