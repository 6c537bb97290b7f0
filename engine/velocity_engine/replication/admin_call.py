"""One request to another node, for node-to-node admin (fencing a deposed primary)."""

from __future__ import annotations

import asyncio
import ssl

from vproto import messages as m
from vproto.errors import error_from_wire
from vproto.frame import PROTOCOL_VERSION, RESPONSE_BIT, FrameDecoder, Opcode, encode_frame

from velocity_engine.replication.errors import StreamFormatError

TIMEOUT_S = 3.0


def split_endpoint(url: str) -> tuple[str, int]:
    rest = url.removeprefix("vdb://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint {url!r} is not vdb://HOST:PORT")
    return host.strip("[]"), int(port)


async def admin_call(
    endpoint: str, opcode: int, body: bytes, *, token: str | None, ssl_context: ssl.SSLContext | None
) -> bytes:
    """HELLO, one request, its reply body; an ERROR reply raises the typed VelocityError."""
    host, port = split_endpoint(endpoint)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=host if ssl_context else None),
        TIMEOUT_S,
    )
    try:
        hello = m.HelloRequest(PROTOCOL_VERSION, token or "", "velocity-engine admin", 0)
        writer.write(encode_frame(Opcode.HELLO, 0, hello.encode()))
        writer.write(encode_frame(opcode, 0, body))
        decoder = FrameDecoder()
        replies: list[tuple[int, int, bytes]] = []
        while len(replies) < 2:
            data = await asyncio.wait_for(reader.read(65536), TIMEOUT_S)
            if not data:
                raise ConnectionError(f"{endpoint} closed the connection")
            replies += decoder.feed(data)
            for rop, _, rbody in replies:
                if rop == Opcode.ERROR:
                    err = m.ErrorResponse.decode(rbody)
                    raise error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
        rop, _, rbody = replies[1]
        if rop != opcode | RESPONSE_BIT:
            raise StreamFormatError(f"{endpoint} answered 0x{opcode:02x} with opcode 0x{rop:02x}")
        return rbody
    finally:
        writer.close()
