"""One client connection: HELLO, then pipelined requests matched to replies in order.

Requests queued in the same event-loop pass are written together (one TLS record,
one system call): tasks sharing a connection cost the server one read, not one each.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import os
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

from velocity.errors import CA_HINT, ConnectionClosedError, ConnectionError, TimeoutError, TLSError

_BuiltinTimeoutError = builtins.TimeoutError  # asyncio.wait_for raises it; ours shadows the name

__all__ = ["Connection", "ConnectionClosedError", "Endpoint", "make_ssl_context", "reply_body"]


def make_ssl_context(ca: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """A TLS 1.3 client context trusting `ca` (a PEM file), or the system store when None.

    An unreadable or malformed CA file raises TLSError naming the file."""
    try:
        ctx = ssl.create_default_context(cafile=os.fspath(ca) if ca is not None else None)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TLSError(f"cannot use CA file {os.fspath(ca) if ca is not None else ''}: {reason}") from None
    except ssl.SSLError as exc:
        raise TLSError(f"cannot use CA file {os.fspath(ca) if ca is not None else ''}: {exc.reason or exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


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
    """Thin adapter: bytes in go to the frame decoder, replies resolve waiting futures in order."""

    def __init__(self, max_body: int) -> None:
        self.decoder = FrameDecoder(max_body)
        self.waiting: collections.deque[tuple[int, asyncio.Future[tuple[int, int, bytes]]]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.error: Exception | None = None
        self.outgoing: list[bytes] = []  # frames queued this loop pass, written by flush()

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
            if not fut.done():  # done: its caller timed out or was cancelled
                fut.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionClosedError(f"connection lost: {exc}" if exc else "connection closed by the server"))

    def flush(self) -> None:
        out, self.outgoing = self.outgoing, []
        if self.transport is not None and self.error is None and out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

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
    """A single V-Proto connection. Safe for many concurrent requests of one event loop (pipelining)."""

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
        ca: str | os.PathLike[str] | None = None,
    ) -> Connection:
        """Connect, handshake TLS and say HELLO, all within `timeout` seconds.

        Raises TimeoutError, TLSError (with a hint naming `ca`), ConnectionError, or the
        server's coded error (AuthError for a wrong token, BusyError at its connection limit)."""
        loop = asyncio.get_running_loop()
        hostname = (server_name or endpoint.host) if ssl_context is not None else None
        deadline = loop.time() + timeout
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(max_body), endpoint.host, endpoint.port, ssl=ssl_context,
                    server_hostname=hostname,
                ),
                timeout,
            )
        except _BuiltinTimeoutError:
            raise TimeoutError(f"connecting to {endpoint} took longer than {timeout:g}s (connect timeout)") from None
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(_tls_message(endpoint, exc.verify_message or exc.reason or str(exc), ca)) from None
        except ssl.SSLError as exc:
            raise TLSError(_tls_message(endpoint, exc.reason or str(exc), ca)) from None
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {endpoint}: {exc.strerror or exc}") from None
        conn = cls(proto, endpoint)
        hello = m.HelloRequest(PROTOCOL_VERSION, token or "", client_name, FEATURE_ZSTD if compression else 0)
        try:
            body = await asyncio.wait_for(conn.call(Opcode.HELLO, hello.encode()), max(0.0, deadline - loop.time()))
        except _BuiltinTimeoutError:
            conn.close()
            raise TimeoutError(
                f"{endpoint} accepted the connection but did not answer HELLO within {timeout:g}s (connect timeout)"
            ) from None
        except ConnectionClosedError as exc:
            conn.close()
            if ssl_context is not None and "SSL" in str(exc):
                raise TLSError(_tls_message(endpoint, str(exc), ca)) from None
            raise
        except BaseException:
            conn.close()
            raise
        conn.hello = m.HelloResponse.decode(body)
        conn.zstd = bool(conn.hello.features & FEATURE_ZSTD)
        return conn

    @property
    def is_open(self) -> bool:
        """False once the connection failed or was closed."""
        return self._p.error is None

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._p.waiting)

    def send(self, opcode: int, body: bytes, consistency: int = 0) -> asyncio.Future[tuple[int, int, bytes]]:
        """Queue one request; the future resolves to the raw reply frame.

        Frames queued in one loop pass are written together at its end."""
        p = self._p
        if p.error is not None:
            raise p.error
        compression = Compression.NONE
        if self.zstd and len(body) > COMPRESSION_THRESHOLD:
            body = compress_body(body)
            compression = Compression.ZSTD
        fut: asyncio.Future[tuple[int, int, bytes]] = p.loop.create_future()
        p.waiting.append((opcode, fut))
        if not p.outgoing:
            p.loop.call_soon(p.flush)
        p.outgoing.append(encode_frame(opcode, make_flags(consistency, compression), body))
        return fut

    async def call(self, opcode: int, body: bytes, consistency: int = 0) -> bytes:
        """Send a request and return the reply body; ERROR replies raise typed errors."""
        rop, flags, rbody = await self.send(opcode, body, consistency)
        return reply_body(opcode, rop, flags, rbody)

    def close(self) -> None:
        """Close after writing what is queued; requests in flight fail with ConnectionClosedError."""
        self._p.flush()
        if self._p.transport is not None:
            self._p.transport.close()

    async def wait_closed(self) -> None:
        """Until the connection is closed."""
        await self._p.closed


def _tls_message(endpoint: Endpoint, reason: str, ca: str | os.PathLike[str] | None) -> str:
    trusted = f"the CA in {os.fspath(ca)}" if ca is not None else "the system's CA store (no CA file given)"
    return f"TLS with {endpoint} failed: {reason}; the server's certificate is checked against {trusted}: {CA_HINT}"


def reply_body(opcode: int, rop: int, flags: int, body: bytes) -> bytes:
    """The body of a reply to `opcode`, decompressed; an ERROR reply raises its typed error."""
    if flag_compression(flags):
        body = decompress_body(body, 1 << 30)
    if rop == Opcode.ERROR:
        err = m.ErrorResponse.decode(body)
        raise error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
    if rop != opcode | RESPONSE_BIT:
        raise ProtocolError(f"reply opcode 0x{rop:02x} does not answer request 0x{opcode:02x}")
    return body
