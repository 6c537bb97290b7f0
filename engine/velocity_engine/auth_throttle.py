"""Slowing down wrong tokens: the answer to a failed HELLO is delayed.

Per peer address the delay doubles with each failure (BASE_S, 2 * BASE_S, ...
up to CAP_S) and is forgotten after FORGET_S without one; when failures from
all peers together pass GLOBAL_PER_S in a second, every failure waits CAP_S.
The connection keeps its pre-HELLO slot while it waits (at most
max_unauthenticated of them exist), so guessing is bounded by
max_unauthenticated / delay tries per second whatever the attacker does.
A right token is never delayed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

BASE_S = 0.1
CAP_S = 2.0
FORGET_S = 60.0
GLOBAL_PER_S = 50
MAX_PEERS = 4096  # remembered addresses; the oldest is forgotten first


class AuthThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._peers: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._second = 0
        self._in_second = 0
        self.delayed_total = 0  # failures answered late (a metric)

    def failure(self, peer: str) -> float:
        """Record a failed HELLO from `peer` (an address, no port); the delay before answering it."""
        now = self._clock()
        count, last = self._peers.pop(peer, (0, now))
        count = 1 if now - last > FORGET_S else count + 1
        self._peers[peer] = (count, now)
        if len(self._peers) > MAX_PEERS:
            self._peers.popitem(last=False)
        second = int(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        delay = CAP_S if self._in_second > GLOBAL_PER_S else min(BASE_S * 2 ** (count - 1), CAP_S)
        self.delayed_total += 1
        return delay
