"""A blocking, byte-level V-Proto client for tests that must send what no SDK would.

It speaks through a real socket (TLS when given a CA) and exposes the raw
frames, so bad-input tests can send broken bytes and see exactly what the
server answers and whether it then closes the connection.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from types import TracebackType

from vproto import messages as m
from vproto.frame import HEADER, HEADER_SIZE, TRAILER_SIZE, FrameDecoder, Opcode, encode_frame


class RawConnection:
    def __init__(self, port: int, ca: Path | None = None, *, timeout: float = 10.0,
                 tls_version: ssl.TLSVersion | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ca is not None:
            ctx = ssl.create_default_context(cafile=str(ca))
            if tls_version is not None:
                ctx.minimum_version = ctx.maximum_version = tls_version
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self._frames: list[tuple[int, int, bytes]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, opcode: int, body: bytes = b"", flags: int = 0) -> None:
        self.send(encode_frame(opcode, flags, body))

    def hello(self, token: str) -> m.HelloResponse:
        self.request(Opcode.HELLO, m.HelloRequest(token=token, client_name="raw-test").encode())
        opcode, _, body = self.read_frame()
        assert opcode == Opcode.HELLO | 0x80, f"HELLO answered with opcode 0x{opcode:02x}: {body!r}"
        return m.HelloResponse.decode(body)

    def read_frame(self) -> tuple[int, int, bytes]:
        """The next frame; raises ConnectionError if the server closes first."""
        while not self._frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self._frames.extend(self.decoder.feed(data))
        return self._frames.pop(0)

    def read_error(self) -> m.ErrorResponse:
        opcode, _, body = self.read_frame()
        assert opcode == Opcode.ERROR, f"expected an ERROR frame, got opcode 0x{opcode:02x}"
        return m.ErrorResponse.decode(body)

    def closed_by_server(self) -> bool:
        """True if the server closed the connection (EOF or reset) within the socket timeout."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self._frames.extend(self.decoder.feed(data))
        except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def header(opcode: int, flags: int, length: int, magic: bytes = b"VELO") -> bytes:
    return HEADER.pack(magic, opcode, flags, length)


__all__ = ["HEADER_SIZE", "TRAILER_SIZE", "RawConnection", "header"]
