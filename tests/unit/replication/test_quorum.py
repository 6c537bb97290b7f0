from __future__ import annotations

import asyncio
import time

import pytest
from velocity_engine.replication.quorum import SyncQuorum
from vproto.errors import NotEnoughReplicasError


def test_waiters_complete_in_order_when_enough_replicas_ack() -> None:
    async def go() -> None:
        q = SyncQuorum(required=2, timeout_s=5)
        w5, w7 = q.waiter(5), q.waiter(7)
        assert w5 is not None and w7 is not None and q.waiter(7) is w7
        q.update([9])  # one replica is not enough
        assert not w5.done()
        q.update([9, 6])
        assert w5.done() and not w7.done()
        q.update([9, 8])
        assert w7.done() and q.waiter(8) is None

    asyncio.run(go())


def test_unacknowledged_writes_fail_after_the_timeout() -> None:
    async def go() -> None:
        q = SyncQuorum(required=1, timeout_s=0.01)
        w = q.waiter(1)
        assert w is not None
        deadline = time.monotonic() + 0.01
        while time.monotonic() < deadline:
            pass
        assert q.expire() == 1
        with pytest.raises(NotEnoughReplicasError, match="within"):
            await w

    asyncio.run(go())


def test_a_waiter_asked_for_out_of_order_is_slotted_in() -> None:
    """A connection may ask for its own, older write after another asked for a newer one (issue 12)."""

    async def go() -> None:
        q = SyncQuorum(required=1, timeout_s=5)
        w9 = q.waiter(9)
        w4 = q.waiter(4)
        assert w9 is not None and w4 is not None and w4 is not w9
        assert q.waiter(4) is w4
        q.update([5])
        assert w4.done() and not w9.done()
        q.update([9])
        assert w9.done()

    asyncio.run(go())
