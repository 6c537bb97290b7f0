"""Scripted V-Proto peers on loopback for timeout and retry tests: a server that
accepts and never answers, one that answers HELLO and then nothing, one that
drops the first request's connection. Each runs in a thread with blocking
sockets, so both clients (asyncio and sync) can be pointed at it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from vproto import messages as m
from vproto.frame import RESPONSE_BIT, FrameDecoder, Opcode, encode_frame

# (opcode, connection number, frames seen so far on it) -> bytes to answer, b"" for nothing, None to close
Script = Callable[[int, int, int], bytes | None]


def silent(opcode: int, conn: int, seen: int) -> bytes | None:
    """Accepts, reads, never answers anything (not even HELLO)."""
    return b""


def hello_then_silent(opcode: int, conn: int, seen: int) -> bytes | None:
    if opcode == Opcode.HELLO:
        return encode_frame(Opcode.HELLO | RESPONSE_BIT, 0, m.HelloResponse(node_id="peer").encode())
    return b""


def drop_first_request(opcode: int, conn: int, seen: int) -> bytes | None:
    """HELLO is answered; the first request of connection 0 closes it; later ones get answers."""
    if opcode == Opcode.HELLO:
        return encode_frame(Opcode.HELLO | RESPONSE_BIT, 0, m.HelloResponse(node_id="peer").encode())
    if conn == 0:
        return None
    if opcode == Opcode.GET:
        return encode_frame(Opcode.GET | RESPONSE_BIT, 0, m.GetResponse(found=False).encode())
    return encode_frame(opcode | RESPONSE_BIT, 0, m.SetResponse(applied=True).encode())


class Peer:
    """A listener on 127.0.0.1 that answers per `script`; `requests` records every opcode received."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[int] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = False
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"vdb://127.0.0.1:{self.port}"

    def count(self, opcode: int) -> int:
        with self._lock:
            return self.requests.count(opcode)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                n = self.connections
                self.connections += 1
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client, n), daemon=True).start()

    def _serve(self, client: socket.socket, n: int) -> None:
        decoder = FrameDecoder()
        seen = 0
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                for opcode, _flags, _body in decoder.feed(data):
                    with self._lock:
                        self.requests.append(opcode)
                    answer = self.script(opcode, n, seen)
                    seen += 1
                    if answer is None:
                        client.close()
                        return
                    if answer:
                        client.sendall(answer)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        with self._lock:
            for c in self._clients:
                with contextlib.suppress(OSError):
                    c.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
