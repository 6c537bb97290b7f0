"""One client connection: HELLO, then pipelined requests matched to replies in order."""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import cast

from vproto import messages as m
from vproto.errors import ProtocolError, VelocityError, error_from_wire
from vproto.frame import (
    COMPRESSION_THRESHOLD,
    FEATURE_ZSTD,
    PROTOCOL_VERSION,
    RESPONSE_BIT,
    Compression,
    FrameDecoder,
    Opcode,
    compress_body,
    decompress_body,
    encode_frame,
    flag_compression,
    make_flags,
)


class ConnectionClosedError(ConnectionError):
    """The connection went away; requests in flight have an unknown outcome."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        rest = url.removeprefix("vdb://")
        if "://" in rest:
            raise ValueError(f"endpoint {url!r}: only vdb://HOST:PORT is supported")
        host, sep, port = rest.rpartition(":")
        if not sep:
            host, port = rest, "2005"
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"endpoint {url!r} is not vdb://HOST:PORT")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"vdb://{self.host}:{self.port}"


class _Protocol(asyncio.Protocol):
    def __init__(self, max_body: int) -> None:
        self.decoder = FrameDecoder(max_body)
        self.waiting: collections.deque[tuple[int, asyncio.Future[tuple[int, int, bytes]]]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except VelocityError as exc:
            self._fail(exc)
            return
        waiting = self.waiting
        for frame in frames:
            if not waiting:
                # A server may speak first only to say why it is closing (BUSY at its
                # connection limit, SHUTTING_DOWN, a handshake TIMEOUT): raise that error.
                self._fail(_unsolicited(frame))
                return
            _, fut = waiting.popleft()
            if not fut.done():
                fut.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionClosedError(f"connection lost: {exc}" if exc else "connection closed by the server"))

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
        while self.waiting:
            _, fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(self.error)
        if self.transport is not None:
            self.transport.abort()
        if not self.closed.done():
            self.closed.set_result(None)


def _unsolicited(frame: tuple[int, int, bytes]) -> Exception:
    opcode, _, body = frame
    if opcode == Opcode.ERROR:
        try:
            err = m.ErrorResponse.decode(body)
        except VelocityError:
            pass
        else:
            return error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
    return ProtocolError(f"reply (opcode 0x{opcode:02x}) received with no request outstanding")


class Connection:
    """A single V-Proto connection. Safe for many concurrent requests (pipelining)."""

    def __init__(self, proto: _Protocol, endpoint: Endpoint) -> None:
        self._p = proto
        self.endpoint = endpoint
        self.zstd = False
        self.hello: m.HelloResponse | None = None

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        *,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None = None,
        token: str | None = None,
        client_name: str = "velocity-py",
        timeout: float = 10.0,
        max_body: int = 64 * 1024 * 1024,
        compression: bool = True,
    ) -> Connection:
        loop = asyncio.get_running_loop()
        hostname = (server_name or endpoint.host) if ssl_context is not None else None
        _, proto = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Protocol(max_body), endpoint.host, endpoint.port, ssl=ssl_context, server_hostname=hostname
            ),
            timeout,
        )
        conn = cls(proto, endpoint)
        hello = m.HelloRequest(PROTOCOL_VERSION, token or "", client_name, FEATURE_ZSTD if compression else 0)
        try:
            body = await asyncio.wait_for(conn.call(Opcode.HELLO, hello.encode()), timeout)
        except BaseException:
            conn.close()
            raise
        conn.hello = m.HelloResponse.decode(body)
        conn.zstd = bool(conn.hello.features & FEATURE_ZSTD)
        return conn

    @property
    def is_open(self) -> bool:
        return self._p.error is None

    @property
    def in_flight(self) -> int:
        return len(self._p.waiting)

    def send(self, opcode: int, body: bytes, consistency: int = 0) -> asyncio.Future[tuple[int, int, bytes]]:
        """Queue one request; the future resolves to the raw reply frame."""
        p = self._p
        if p.error is not None:
            raise p.error
        compression = Compression.NONE
        if self.zstd and len(body) > COMPRESSION_THRESHOLD:
            body = compress_body(body)
            compression = Compression.ZSTD
        fut: asyncio.Future[tuple[int, int, bytes]] = asyncio.get_running_loop().create_future()
        p.waiting.append((opcode, fut))
        assert p.transport is not None
        p.transport.write(encode_frame(opcode, make_flags(consistency, compression), body))
        return fut

    async def call(self, opcode: int, body: bytes, consistency: int = 0) -> bytes:
        """Send a request and return the reply body; ERROR replies raise typed errors."""
        rop, flags, rbody = await self.send(opcode, body, consistency)
        return reply_body(opcode, rop, flags, rbody)

    def close(self) -> None:
        if self._p.transport is not None:
            self._p.transport.close()

    async def wait_closed(self) -> None:
        await self._p.closed


def reply_body(opcode: int, rop: int, flags: int, body: bytes) -> bytes:
    if flag_compression(flags):
        body = decompress_body(body, 1 << 30)
    if rop == Opcode.ERROR:
        err = m.ErrorResponse.decode(body)
        raise error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
    if rop != opcode | RESPONSE_BIT:
        raise ProtocolError(f"reply opcode 0x{rop:02x} does not answer request 0x{opcode:02x}")
    return body
