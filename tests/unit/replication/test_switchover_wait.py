"""switchover.wait_acked: the catch-up step of a planned switchover, with stand-in feeds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from velocity_engine.replication.errors import SwitchoverError
from velocity_engine.replication.switchover import wait_acked


@dataclass(eq=False)
class _Feed:
    endpoint: str
    acked_seq: int


@dataclass
class _Repl:
    feeds: dict[int, Any] = field(default_factory=dict)
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self, feed: _Feed, seq: int) -> None:
        feed.acked_seq = seq
        self.acked.set()


def test_returns_once_every_feed_acknowledged() -> None:
    async def run() -> None:
        repl = _Repl()
        a, b = _Feed("vdb://a:1", 5), _Feed("vdb://b:1", 7)
        repl.feeds = {1: a, 2: b}
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, repl.ack, a, 9)
        loop.call_later(0.04, repl.ack, b, 10)
        await wait_acked(repl, [a, b], 9, timeout=2)  # type: ignore[arg-type]
        assert a.acked_seq == 9 and b.acked_seq == 10

    asyncio.run(run())


def test_times_out_naming_the_lagging_replica() -> None:
    async def run() -> None:
        repl = _Repl()
        a = _Feed("vdb://slow:1", 3)
        repl.feeds = {1: a}
        with pytest.raises(SwitchoverError, match=r"vdb://slow:1 at 3"):
            await wait_acked(repl, [a], 4, timeout=0.05)  # type: ignore[arg-type]

    asyncio.run(run())


def test_fails_when_the_replica_disconnects() -> None:
    async def run() -> None:
        repl = _Repl()
        a = _Feed("vdb://gone:1", 3)
        repl.feeds = {1: a}
        asyncio.get_running_loop().call_later(0.02, repl.feeds.clear)
        with pytest.raises(SwitchoverError, match="disconnected"):
            await wait_acked(repl, [a], 4, timeout=2)  # type: ignore[arg-type]

    asyncio.run(run())
