"""The asyncio Protocol for one client: a thin adapter between a transport,
the frame decoder and the dispatcher.

Before HELLO (auth on), a connection is on probation: it sits in the server's
`unauthenticated` set (bounded by max_unauthenticated, never a client slot),
only one frame of at most PRE_AUTH_MAX_BODY bytes is parsed, nothing is
decompressed, and a wrong token is answered late (auth_throttle.py). A good
HELLO moves it into `connections`, where max_connections applies.

Flow control, in one place:
- input is bounded by the frame decoder (at most one frame in progress) and
  by reading no more while requests wait in `_queue`;
- output: requests run one at a time; once the replies not yet taken by the
  kernel (the transport's buffer plus replies held for durability) pass the
  high-water mark, the rest of a pipeline waits in `_queue` and reading
  pauses, whatever the size of each reply, until the output drains;
- durability: a reply to a write, or to a read of a key whose last write is
  not yet durable, waits for storage.sync_waiter(); later replies on the same
  connection queue behind it so the client reads replies in request order.
  Other connections are not held back. If the wait fails (fsync error, no
  replica acknowledgement in time) each held reply becomes that error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from vproto.errors import (
    AuthFailedError,
    BusyError,
    InternalError,
    ShuttingDownError,
    TimeoutError_,
    VelocityError,
    WritesRefusedError,
)
from vproto.fastcodec import frames_before_error, split_frames
from vproto.frame import HEADER, HEADER_SIZE, MAGIC, TRAILER_SIZE, FrameDecoder, FrameError

from velocity_engine.dispatch import Dispatcher, Session, error_frame
from velocity_engine.storage.base import StorageError

if TYPE_CHECKING:
    from velocity_engine.server import Server

log = logging.getLogger(__name__)

Frame = tuple[int, int, bytes]

# Largest frame body accepted before a successful HELLO: a HELLO is a few hundred bytes.
PRE_AUTH_MAX_BODY = 4096


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.dispatcher: Dispatcher = server.dispatcher
        self.stats = server.stats
        self.decoder = FrameDecoder(server.settings.max_frame_bytes)
        self.session = Session(conn=self)
        self.high_water = server.settings.write_buffer_high_bytes
        # Replication streams (velocity_engine/replication/manager.py) hook these.
        self.on_writable: Callable[[], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.peer_host = "?"
        self._closing = False
        self._counted = False  # holds a client slot (in server.connections)
        self._held: asyncio.Future[None] | None = None
        self._held_out: list[bytes] = []  # reply frames waiting for _held, in order
        self._held_bytes = 0
        self._queue: deque[Frame] = deque()  # requests waiting for the output to drain
        self._writing_paused = False
        self._preauth = b""
        self._pending_error: VelocityError | None = None  # a stream error answered after _queue
        self._frame_timer: asyncio.TimerHandle | None = None
        self._frames_seen = 0
        self._hello_timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = t = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.peer_host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        s = self.server.settings
        t.set_write_buffer_limits(high=self.high_water)
        if self.server.shutting_down:
            self._fatal(ShuttingDownError("server is shutting down"))
            return
        self.dispatcher.open_session(self.session)
        if not self.session.authed:
            waiting = self.server.unauthenticated
            if len(waiting) >= s.max_unauthenticated:
                self.stats.connections_rejected += 1
                self._fatal(BusyError(
                    f"{s.max_unauthenticated} connections are already waiting to authenticate", retry_after_ms=100
                ))
                return
            waiting.add(self)
            self._hello_timer = asyncio.get_running_loop().call_later(s.handshake_timeout_s, self._hello_timeout)
        elif not self._take_slot():
            return

    def _take_slot(self) -> bool:
        """Count this connection against max_connections; BUSY and close when full."""
        s = self.server.settings
        if len(self.server.connections) >= s.max_connections:
            self.stats.connections_rejected += 1
            self._fatal(BusyError(f"connection limit of {s.max_connections} reached", retry_after_ms=100))
            return False
        self._counted = True
        self.server.connections.add(self)
        self.stats.connections = len(self.server.connections)
        self.stats.connections_total += 1
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._queue.clear()
        for timer in (self._frame_timer, self._hello_timer):
            if timer is not None:
                timer.cancel()
        self.server.unauthenticated.discard(self)
        if self._counted:
            self.server.connections.discard(self)
            self.stats.connections = len(self.server.connections)
            self.server.connection_closed()
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.on_writable is not None:
            self.on_writable()
        self._continue()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.stats.bytes_in += len(data)
        if not self.session.authed:
            self._received_before_hello(data)
            return
        self._received(data)

    # -- framing -----------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        decoder = self.decoder
        pending_before = decoder.pending
        try:
            if pending_before:
                frames = decoder.feed(data)
            else:
                # Usual case: the read starts at a frame boundary; split it in
                # place and buffer only an incomplete tail.
                frames, used = split_frames(data, decoder.max_body)
                if used < len(data):
                    frames += decoder.feed(data[used:])
        except VelocityError as exc:
            # Requests before the bad frame in this read are still answered, then the error.
            raw = decoder.take_buffer()
            self._frames_then_error(frames_before_error(raw if pending_before else data, decoder.max_body), exc)
            return
        if frames:
            self._frames_seen += len(frames)
            if self._queue or self._output_full():
                self._queue.extend(frames)
                self._pause_input()
            else:
                self._run(frames)
        if self.decoder.pending and self._frame_timer is None and not self._closing:
            self._arm_frame_timer()

    def _received_before_hello(self, data: bytes) -> None:
        """At most one small frame is parsed before a successful HELLO; the rest waits for it."""
        buf = self._preauth = self._preauth + data
        if len(buf) < HEADER_SIZE:
            self._arm_frame_timer_if_needed()
            return
        magic, _, _, length = HEADER.unpack_from(buf, 0)
        if magic != MAGIC or length > PRE_AUTH_MAX_BODY:
            what = "bad magic" if magic != MAGIC else f"a frame body of {length} bytes before HELLO"
            self._fatal(FrameError(f"{what}: only a HELLO of up to {PRE_AUTH_MAX_BODY} bytes is accepted first"))
            return
        total = HEADER_SIZE + length + TRAILER_SIZE
        if len(buf) < total:
            self._arm_frame_timer_if_needed()
            return
        self._preauth = b""
        try:
            frames, _ = split_frames(buf[:total], PRE_AUTH_MAX_BODY)
        except VelocityError as exc:
            self._fatal(exc)
            return
        self._frames_seen += 1
        self._run(frames)
        rest = buf[total:]
        if self.session.authed and not self._closing:
            self.decoder.max_body = self.server.settings.max_frame_bytes
            if rest:
                self._received(rest)
        elif rest and not self._closing:
            self._preauth = rest  # a HELLO answered later (wrong token): the connection closes then

    # -- request processing -------------------------------------------------------

    def _frames_then_error(self, frames: list[Frame], exc: VelocityError) -> None:
        if frames:
            self._queue.extend(frames)
        self._queue.append((-1, 0, b""))  # marker: the stream error comes after the queued requests
        self._pending_error = exc
        self._continue()

    def _run(self, frames: list[Frame] | deque[Frame]) -> None:
        """Run requests in order until done or the output is full (the rest waits in _queue)."""
        dispatcher = self.dispatcher
        handle = dispatcher.handle
        session = self.session
        stats = self.stats
        ks = self.server.keyspace
        clock = time.perf_counter
        observe = stats.observe
        high = self.high_water
        out: list[bytes] = []
        size = 0
        fatal: VelocityError | None = None
        writes0 = ks.writes
        ks.read_unsettled = False
        i = 0  # requests taken from `frames`
        counted = self._counted
        # One clock read per request: each one's service time runs from the end
        # of the previous one (the loop between them is part of serving it).
        t0 = clock()
        # A snapshot of the queue: closing the connection clears it while we iterate.
        for opcode, flags, body in frames if isinstance(frames, list) else list(frames):
            i += 1
            if opcode < 0:  # the stream error after the last good frame (_frames_then_error)
                fatal = self._pending_error or InternalError("stream error")
                stats.errors[fatal.code] += 1
                out.append(error_frame(fatal))
                break
            try:
                # The fast handlers skip role_check: a replica never uses them.
                fast = session.fast
                f = fast[opcode] if fast is not None and not flags and dispatcher.role_check is None else None
                reply = f(body) if f is not None else handle(session, opcode, flags, body)
            except VelocityError as exc:
                if isinstance(exc, AuthFailedError):
                    self._auth_failed(exc)
                    return
                stats.errors[exc.code] += 1
                reply = error_frame(exc)
                if exc.fatal:  # not the bare code: a malformed body (PROTOCOL) is not fatal
                    fatal = exc
            except StorageError as exc:
                err = WritesRefusedError(str(exc))
                stats.errors[err.code] += 1
                reply = error_frame(err)
            except Exception:
                log.exception("internal error handling opcode 0x%02x from %s", opcode, self.peer)
                err2 = InternalError("internal error; see server log")
                stats.errors[err2.code] += 1
                reply = error_frame(err2)
            t1 = clock()
            observe(opcode, t1 - t0)
            t0 = t1
            out.append(reply)
            if not counted and session.authed:  # the HELLO that ends probation
                if not self._authenticated():
                    return
                counted = True
            if fatal is not None:
                break
            size += len(reply)
            if size >= high:
                # Hand this much to the transport (or the durability hold) before going on.
                self._send(out, ks.writes != writes0, ks.read_unsettled)
                out, size = [], 0
                writes0 = ks.writes
                ks.read_unsettled = False
                if self._output_full():
                    break
        if isinstance(frames, deque):
            for _ in range(min(i, len(frames))):
                frames.popleft()
        elif i < len(frames):
            self._queue.extend(frames[i:])
        if self._queue and fatal is None:
            self._pause_input()
        self._send(out, ks.writes != writes0, ks.read_unsettled)
        if fatal is not None:
            self._queue.clear()
            self._close_after_flush(fatal)

    def _authenticated(self) -> bool:
        """After a good HELLO: leave probation, take a client slot (False: BUSY, closing)."""
        self.server.unauthenticated.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        return self._take_slot()

    def _auth_failed(self, exc: AuthFailedError) -> None:
        """Answer a wrong token late (auth_throttle.py), then close."""
        self.stats.errors[exc.code] += 1
        self._closing = True
        self._preauth = b""
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        transport = self.transport
        if transport is None:
            return
        transport.pause_reading()
        delay = self.server.auth_throttle.failure(self.peer_host)
        frame = error_frame(exc)

        def answer() -> None:
            if not transport.is_closing():
                transport.write(frame)
                transport.close()

        asyncio.get_running_loop().call_later(delay, answer)

    def _output_full(self) -> bool:
        # The transport calls pause_writing() from write() once its buffer passes the mark.
        return self._writing_paused or self._held_bytes >= self.high_water

    def _pause_input(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def _continue(self) -> None:
        """The output drained (or a hold ended): run what waits, then read again."""
        if self._closing or self.transport is None:
            return
        if self._queue and not self._output_full():
            self._run(self._queue)
        if not self._queue and not self._output_full() and not self._closing and not self.server.shutting_down:
            self.transport.resume_reading()

    def _send(self, out: list[bytes], wrote: bool, read_unsettled: bool) -> None:
        """Send reply frames, or hold them until what they depend on is durable: this
        connection's newest write, or (for a read of a key whose write is pending) every
        write so far."""
        transport = self.transport
        if transport is None or not out:
            return
        ks = self.server.keyspace
        storage = self.server.replication.storage  # numbers every batch: the keyspace's storage
        wait = wrote or read_unsettled
        if wrote:
            waiter = storage.sync_waiter_for(storage.seq)
        elif read_unsettled:
            waiter = storage.sync_waiter()
        else:
            waiter = None
        if wait and waiter is None and ks.unsettled:
            # Nothing anywhere waits for durability: every write so far is settled.
            ks.unsettled.clear()
        if self._held is None and waiter is None:
            data = b"".join(out)
            if data:  # nothing: the requests were stream frames (replication)
                self.stats.bytes_out += len(data)
                transport.write(data)
            return
        self._held_out += out
        self._held_bytes += sum(len(f) for f in out)
        if waiter is not None and waiter is not self._held:
            # Syncs complete in order, so waiting for the newest covers the rest.
            self._held = waiter
            mark = ks.writes
            waiter.add_done_callback(lambda fut: self._release(fut, mark))

    def _release(self, fut: asyncio.Future[None], mark: int) -> None:
        self.server.keyspace.settle(mark)
        if fut is not self._held:
            return
        self._held = None
        frames, self._held_out, self._held_bytes = self._held_out, [], 0
        if fut.cancelled() or fut.exception() is not None:
            exc = fut.exception() if not fut.cancelled() else None
            if not isinstance(exc, VelocityError):
                # The log could not be made durable: never acknowledge those writes.
                log.error("closing %s: replies withheld because the log sync failed", self.peer)
                self._abort()
                return
            # Not acknowledged in time (sync replication): each held reply becomes the error;
            # the client cannot know whether its writes happened.
            frames = [error_frame(exc)] * sum(1 for f in frames if f)
        data = b"".join(frames)
        if self.transport is not None and not self.transport.is_closing() and data:
            self.stats.bytes_out += len(data)
            self.transport.write(data)
        if self._closing and self.transport is not None:
            self.transport.close()
            return
        self._continue()

    # -- closing ------------------------------------------------------------------

    def _fatal(self, exc: VelocityError) -> None:
        self.stats.errors[exc.code] += 1
        if self.transport is not None:
            self._send([error_frame(exc)], False, False)
        self._close_after_flush(exc)

    def _close_after_flush(self, exc: VelocityError) -> None:
        log.debug("closing %s: %s", self.peer, exc)
        self._closing = True
        self._queue.clear()
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
        self._queue.clear()
        self.transport.pause_reading()
        if self._held is None:
            self.transport.close()

    # -- timers -------------------------------------------------------------------

    def _arm_frame_timer_if_needed(self) -> None:
        if self._frame_timer is None and not self._closing:
            self._arm_frame_timer()

    def _arm_frame_timer(self) -> None:
        seen = self._frames_seen
        timeout = self.server.settings.frame_timeout_s

        def fire() -> None:
            self._frame_timer = None
            if self._closing or not (self.decoder.pending or self._preauth):
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
