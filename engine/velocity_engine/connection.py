"""The asyncio Protocol for one client: a thin adapter between a transport,
the frame decoder and the dispatcher.

Flow control, in one place:
- input is bounded by the frame decoder (at most one frame in progress);
- output: when the transport's buffer passes the high-water mark asyncio
  calls pause_writing() and we stop reading the socket until it drains;
- durability: replies to writes may have to wait for the log to be synced
  (storage.sync_waiter()); later replies queue behind them so the client
  always reads replies in request order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from vproto.errors import (
    BusyError,
    InternalError,
    ShuttingDownError,
    TimeoutError_,
    VelocityError,
    WritesRefusedError,
)
from vproto.fastcodec import split_frames
from vproto.frame import FrameDecoder

from velocity_engine.dispatch import Dispatcher, Session, error_frame
from velocity_engine.storage.base import StorageError

if TYPE_CHECKING:
    from velocity_engine.server import Server

log = logging.getLogger(__name__)


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.dispatcher: Dispatcher = server.dispatcher
        self.stats = server.stats
        self.decoder = FrameDecoder(server.settings.max_frame_bytes)
        self.session = Session(conn=self)
        # Replication streams (velocity_engine/replication/manager.py) hook these.
        self.on_writable: Callable[[], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._closing = False
        self._held: asyncio.Future[None] | None = None
        self._held_out: list[bytes] = []
        self._frame_timer: asyncio.TimerHandle | None = None
        self._frames_seen = 0
        self._hello_timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = t = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        s = self.server.settings
        t.set_write_buffer_limits(high=s.write_buffer_high_bytes)
        if self.server.shutting_down:
            self._fatal(ShuttingDownError("server is shutting down"))
            return
        if len(self.server.connections) >= s.max_connections:
            self.stats.connections_rejected += 1
            self._fatal(BusyError(f"connection limit of {s.max_connections} reached", retry_after_ms=100))
            return
        self.server.connections.add(self)
        self.stats.connections = len(self.server.connections)
        self.stats.connections_total += 1
        if self.dispatcher.auth_required:
            self._hello_timer = asyncio.get_running_loop().call_later(s.handshake_timeout_s, self._hello_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (self._frame_timer, self._hello_timer):
            if timer is not None:
                timer.cancel()
        self.server.connections.discard(self)
        self.stats.connections = len(self.server.connections)
        self.server.connection_closed()
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.on_writable is not None:
            self.on_writable()
        if self.transport is not None and not self._closing and not self.server.shutting_down:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        stats = self.stats
        stats.bytes_in += len(data)
        decoder = self.decoder
        try:
            if decoder.pending:
                frames = decoder.feed(data)
            else:
                # Usual case: the read starts at a frame boundary; split it in
                # place and buffer only an incomplete tail.
                frames, used = split_frames(data, decoder.max_body)
                if used < len(data):
                    frames += decoder.feed(data[used:])
        except VelocityError as exc:
            self._fatal(exc)
            return
        if frames:
            self._frames_seen += len(frames)
            self._run(frames)
        if self.decoder.pending and self._frame_timer is None and not self._closing:
            self._arm_frame_timer()

    # -- request processing -------------------------------------------------------

    def _run(self, frames: list[tuple[int, int, bytes]]) -> None:
        handle = self.dispatcher.handle
        dispatcher = self.dispatcher
        session = self.session
        stats = self.stats
        clock = time.perf_counter
        out: list[bytes] = []
        fatal: VelocityError | None = None
        observe = stats.observe
        # One clock read per request: each one's service time runs from the end
        # of the previous one (the loop between them is part of serving it).
        t0 = clock()
        for opcode, flags, body in frames:
            try:
                # The fast handlers skip role_check: a replica never uses them.
                fast = session.fast
                f = fast[opcode] if fast is not None and not flags and dispatcher.role_check is None else None
                out.append(f(body) if f is not None else handle(session, opcode, flags, body))
            except VelocityError as exc:
                stats.errors[exc.code] += 1
                out.append(error_frame(exc))
                if exc.fatal:  # not the bare code: a malformed body (PROTOCOL) is not fatal
                    fatal = exc
                    break
            except StorageError as exc:
                err = WritesRefusedError(str(exc))
                stats.errors[err.code] += 1
                out.append(error_frame(err))
            except Exception:
                log.exception("internal error handling opcode 0x%02x from %s", opcode, self.peer)
                err2 = InternalError("internal error; see server log")
                stats.errors[err2.code] += 1
                out.append(error_frame(err2))
            t1 = clock()
            observe(opcode, t1 - t0)
            t0 = t1
        if self._hello_timer is not None and session.authed:
            self._hello_timer.cancel()
            self._hello_timer = None
        self._send(b"".join(out))
        if fatal is not None:
            self._close_after_flush(fatal)

    def _send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not data:  # no data: the requests were stream frames (replication)
            return
        waiter = self.server.keyspace.storage.sync_waiter()
        if self._held is None and waiter is None:
            self.stats.bytes_out += len(data)
            transport.write(data)
            return
        self._held_out.append(data)
        if waiter is not None and waiter is not self._held:
            # Syncs complete in order, so waiting for the newest covers the rest.
            self._held = waiter
            waiter.add_done_callback(self._release)

    def _release(self, fut: asyncio.Future[None]) -> None:
        if fut is not self._held:
            return
        self._held = None
        out, self._held_out = b"".join(self._held_out), []
        if fut.cancelled() or fut.exception() is not None:
            # The log could not be made durable: never acknowledge those writes.
            log.error("closing %s: replies withheld because the log sync failed", self.peer)
            self._abort()
            return
        if self.transport is not None and not self.transport.is_closing():
            self.stats.bytes_out += len(out)
            self.transport.write(out)
        if self._closing and self.transport is not None:
            self.transport.close()

    # -- closing ------------------------------------------------------------------

    def _fatal(self, exc: VelocityError) -> None:
        self.stats.errors[exc.code] += 1
        if self.transport is not None:
            self._send(error_frame(exc))
        self._close_after_flush(exc)

    def _close_after_flush(self, exc: VelocityError) -> None:
        log.debug("closing %s: %s", self.peer, exc)
        self._closing = True
        if self.transport is not None:
            self.transport.pause_reading()
            if self._held is None:
                self.transport.close()  # close() flushes buffered output first

    def _abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self) -> None:
        """Graceful: stop reading, let held replies go out, then close."""
        if self.transport is None or self._closing:
            return
        self._closing = True
        self.transport.pause_reading()
        if self._held is None:
            self.transport.close()

    # -- timers -------------------------------------------------------------------

    def _arm_frame_timer(self) -> None:
        seen = self._frames_seen
        timeout = self.server.settings.frame_timeout_s

        def fire() -> None:
            self._frame_timer = None
            if self._closing or not self.decoder.pending:
                return
            if self._frames_seen != seen:
                self._arm_frame_timer()  # progress was made: measure from now
                return
            self._fatal(TimeoutError_(f"incomplete frame for {timeout:g}s"))

        self._frame_timer = asyncio.get_running_loop().call_later(timeout, fire)

    def _hello_timeout(self) -> None:
        self._hello_timer = None
        if not self.session.authed and not self._closing:
            self._fatal(TimeoutError_("no HELLO within the handshake timeout"))
