"""The SDK connection against a scripted peer on loopback: errors the server sends first."""

from __future__ import annotations

import asyncio

import pytest
from velocity.connection import Connection, Endpoint
from vproto import messages as m
from vproto.errors import BusyError, ErrorCode, ProtocolError, ShuttingDownError, VelocityError
from vproto.frame import Opcode, encode_frame


async def open_against(first_bytes: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(first_bytes)  # before reading anything, as a server at its limit does
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await Connection.open(Endpoint("127.0.0.1", port), ssl_context=None, timeout=5)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("code", "exc"), [(ErrorCode.BUSY, BusyError), (ErrorCode.SHUTTING_DOWN, ShuttingDownError)]
)
def test_error_sent_before_any_request_raises_its_typed_error(code: ErrorCode, exc: type[VelocityError]) -> None:
    frame = encode_frame(Opcode.ERROR, 0, m.ErrorResponse(code=code, message="go away").encode())
    with pytest.raises(exc, match="go away"):
        asyncio.run(open_against(frame))


def test_unsolicited_non_error_frame_is_a_protocol_error() -> None:
    frame = encode_frame(Opcode.PING | 0x80, 0, m.PingResponse(b"?").encode())
    with pytest.raises((ProtocolError, ConnectionError)):
        asyncio.run(open_against(frame))


def test_protocol_keeps_the_typed_error_when_nothing_was_outstanding() -> None:
    """The ordering the socket test cannot force: the error arrives before HELLO is queued."""
    from velocity.connection import _Protocol

    async def go() -> Exception | None:
        proto = _Protocol(1 << 20)
        busy = m.ErrorResponse(code=ErrorCode.BUSY, message="full").encode()
        proto.data_received(encode_frame(Opcode.ERROR, 0, busy))
        return proto.error

    assert isinstance(asyncio.run(go()), BusyError)
