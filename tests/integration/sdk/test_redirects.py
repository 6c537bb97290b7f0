"""The SDK's redirect following against scripted V-Proto peers on loopback.

Two peers that name each other as the primary are what clients see for a moment
during a hand-over (the old primary already names its successor, which has not
promoted yet). Real engines cannot be held in that state on demand, hence scripted
peers speaking real frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from velocity import VelocityPool
from velocity.pool import FENCED_RETRY_S
from vproto import messages as m
from vproto.errors import ErrorCode, RedirectError
from vproto.frame import RESPONSE_BIT, FrameDecoder, Opcode, encode_frame


@dataclass
class Peer:
    """Answers HELLO; answers SET with REDIRECT to `other` until `accept_after` SETs
    have been seen in total by every peer sharing `seen`, then with applied=True."""

    other: str = ""
    accept_after: int | None = None
    seen: list[int] = field(default_factory=lambda: [0])
    address: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for opcode, _flags, _body in decoder.feed(data):
                    writer.write(self.answer(opcode))
                await writer.drain()
        finally:
            writer.close()

    def answer(self, opcode: int) -> bytes:
        if opcode == Opcode.HELLO:
            return encode_frame(Opcode.HELLO | RESPONSE_BIT, 0, m.HelloResponse(node_id=self.address).encode())
        self.seen[0] += 1
        if self.accept_after is not None and self.seen[0] > self.accept_after:
            return encode_frame(Opcode.SET | RESPONSE_BIT, 0, m.SetResponse(applied=True).encode())
        error = m.ErrorResponse(code=ErrorCode.REDIRECT, message="not the primary", primary=self.other)
        return encode_frame(Opcode.ERROR, 0, error.encode())


@asynccontextmanager
async def ping_pong(accept_after: int | None) -> AsyncIterator[tuple[str, list[int]]]:
    seen = [0]
    a, b = Peer(accept_after=accept_after, seen=seen), Peer(accept_after=accept_after, seen=seen)
    servers = [await asyncio.start_server(p.handle, "127.0.0.1", 0) for p in (a, b)]
    a.address, b.address = (f"127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers)
    a.other, b.other = b.address, a.address
    try:
        yield a.address, seen
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()


def test_redirect_loop_during_a_hand_over_is_waited_out() -> None:
    """Ten redirects back and forth (more than MAX_REDIRECTS), then a node accepts."""

    async def go() -> tuple[bool, int]:
        async with ping_pong(accept_after=10) as (first, seen):
            async with VelocityPool(node=f"vdb://{first}", insecure=True, pool_size=1) as vdb:
                applied = await vdb.set("k", "v")
            return applied, seen[0]

    applied, seen = asyncio.run(go())
    assert applied is not False
    assert seen == 11


def test_endless_redirect_loop_gives_up_after_the_fenced_window() -> None:
    async def go() -> float:
        async with ping_pong(accept_after=None) as (first, _), \
                VelocityPool(node=f"vdb://{first}", insecure=True, pool_size=1) as vdb:
            start = time.monotonic()
            with pytest.raises(RedirectError):
                await vdb.set("k", "v")
            return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert FENCED_RETRY_S <= elapsed < FENCED_RETRY_S + 2.0
