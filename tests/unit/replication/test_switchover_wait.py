"""switchover.wait_acked: the catch-up step of a planned switchover, with a stand-in host."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest
from velocity_engine.replication.errors import SwitchoverError
from velocity_engine.replication.lease_host import ReplicaLink
from velocity_engine.replication.switchover import wait_acked


@dataclass
class _Host:
    """The two LeaseHost calls wait_acked makes: links() and wait_for_ack()."""

    feeds: dict[int, ReplicaLink] = field(default_factory=dict)
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    def links(self) -> list[ReplicaLink]:
        return list(self.feeds.values())

    async def wait_for_ack(self, timeout: float) -> None:
        self.acked.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.acked.wait(), timeout)

    def ack(self, key: int, seq: int) -> None:
        self.feeds[key] = self.feeds[key]._replace(acked_seq=seq)
        self.acked.set()


def _link(key: int, endpoint: str, acked: int) -> ReplicaLink:
    return ReplicaLink(key, endpoint, True, acked)


def test_returns_once_every_feed_acknowledged() -> None:
    async def run() -> None:
        host = _Host()
        a, b = _link(1, "vdb://a:1", 5), _link(2, "vdb://b:1", 7)
        host.feeds = {1: a, 2: b}
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, host.ack, 1, 9)
        loop.call_later(0.04, host.ack, 2, 10)
        await wait_acked(host, [a, b], 9, timeout=2)  # type: ignore[arg-type]
        assert host.feeds[1].acked_seq == 9 and host.feeds[2].acked_seq == 10

    asyncio.run(run())


def test_times_out_naming_the_lagging_replica() -> None:
    async def run() -> None:
        host = _Host()
        a = _link(1, "vdb://slow:1", 3)
        host.feeds = {1: a}
        with pytest.raises(SwitchoverError, match=r"vdb://slow:1 at 3"):
            await wait_acked(host, [a], 4, timeout=0.05)  # type: ignore[arg-type]

    asyncio.run(run())


def test_fails_when_the_replica_disconnects() -> None:
    async def run() -> None:
        host = _Host()
        a = _link(1, "vdb://gone:1", 3)
        host.feeds = {1: a}
        asyncio.get_running_loop().call_later(0.02, host.feeds.clear)
        with pytest.raises(SwitchoverError, match="disconnected"):
            await wait_acked(host, [a], 4, timeout=2)  # type: ignore[arg-type]

    asyncio.run(run())


def test_a_reconnected_replica_is_another_feed() -> None:
    async def run() -> None:
        host = _Host()
        a = _link(1, "vdb://flaky:1", 3)
        host.feeds = {1: a}

        def reconnect() -> None:
            host.feeds = {2: _link(2, "vdb://flaky:1", 3)}

        asyncio.get_running_loop().call_later(0.02, reconnect)
        with pytest.raises(SwitchoverError, match="disconnected"):
            await wait_acked(host, [a], 4, timeout=2)  # type: ignore[arg-type]

    asyncio.run(run())
