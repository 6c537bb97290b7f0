"""Velocity: the synchronous, thread-safe client (redis-py's `redis.Redis` to VelocityPool's `redis.asyncio`).

    from velocity import Velocity

    vdb = Velocity.from_url("vdb://:TOKEN@db.example:2005?ca=/etc/vdb/ca.crt")
    vdb.set("session:0xF1", {"active": True}, ttl="2h")
    vdb.get("session:0xF1")            # -> {"active": True}

For scripts, Django/Flask handlers and notebooks: no event loop is involved. Each
call borrows a blocking connection from a pool (opened on demand, at most
`pool_size` kept idle), so any number of threads may share one client. Timeouts,
retries, redirects and errors behave as VelocityPool's (docs/python-sdk.md).
The admin operations (snapshot, promote, switchover...) run VelocityPool on a
private event loop in a helper thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from vproto import messages as m
from vproto.errors import RedirectError
from vproto.frame import (
    COMPRESSION_THRESHOLD,
    FEATURE_ZSTD,
    PROTOCOL_VERSION,
    RESPONSE_BIT,
    Compression,
    FrameDecoder,
    Opcode,
    compress_body,
    encode_frame,
    make_flags,
)

from velocity import commands as _c
from velocity import config as _config
from velocity.commands import KeyLike, KeyMapping
from velocity.connection import Endpoint, _tls_message, make_ssl_context, reply_body
from velocity.durations import TtlLike
from velocity.errors import (
    ConnectionClosedError,
    ConnectionError,
    TimeoutError,
    TLSError,
    UnknownOutcomeError,
    WriteTimeoutError,
)
from velocity.pipeline import Pipeline
from velocity.pool import DEFAULT_POOL_SIZE, FENCED_RETRY_S, MAX_REDIRECTS, REDIRECT_LOOP_PAUSE_S, VelocityPool

__all__ = ["Velocity"]

T = TypeVar("T")
_MAX_BODY = 64 * 1024 * 1024
builtins_timeout = socket.timeout  # the builtin TimeoutError (ours shadows the name here)


class _Expired(Exception):
    """The request's deadline passed while waiting for its reply."""


class _SyncConnection:
    """One blocking V-Proto connection, used by one thread at a time (Velocity checks it out)."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint, timeout: float) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.decoder = FrameDecoder(_MAX_BODY)
        self.frames: list[tuple[int, int, bytes]] = []
        self.zstd = False
        self.sock_timeout = timeout

    @classmethod
    def open(cls, endpoint: Endpoint, ctx: ssl.SSLContext | None, *, server_name: str | None, token: str | None,
             client_name: str, timeout: float, request_timeout: float, ca: str | None,
             compression: bool) -> _SyncConnection:
        deadline = time.monotonic() + timeout
        try:
            raw = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        except builtins_timeout:
            raise TimeoutError(f"connecting to {endpoint} took longer than {timeout:g}s (connect timeout)") from None
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {endpoint}: {exc.strerror or exc}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        try:
            if ctx is not None:
                sock = ctx.wrap_socket(raw, server_hostname=server_name or endpoint.host)
        except builtins_timeout:
            raw.close()
            raise TimeoutError(f"TLS handshake with {endpoint} took over {timeout:g}s (connect timeout)") from None
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise TLSError(_tls_message(endpoint, exc.verify_message or exc.reason or str(exc), ca)) from None
        except ssl.SSLError as exc:
            raw.close()
            raise TLSError(_tls_message(endpoint, exc.reason or str(exc), ca)) from None
        except OSError as exc:
            raw.close()
            raise ConnectionError(f"cannot connect to {endpoint}: {exc.strerror or exc}") from None
        conn = cls(sock, endpoint, timeout)
        hello = m.HelloRequest(PROTOCOL_VERSION, token or "", client_name, FEATURE_ZSTD if compression else 0)
        try:
            rop, flags, body = conn.roundtrip(Opcode.HELLO, hello.encode(), 0, deadline)
            hello_resp = m.HelloResponse.decode(reply_body(Opcode.HELLO, rop, flags, body))
        except _Expired:
            conn.close()
            raise TimeoutError(
                f"{endpoint} accepted the connection but did not answer HELLO within {timeout:g}s (connect timeout)"
            ) from None
        except BaseException:
            conn.close()
            raise
        conn.zstd = bool(hello_resp.features & FEATURE_ZSTD)
        conn.set_timeout(request_timeout)
        return conn

    def set_timeout(self, timeout: float) -> None:
        if timeout != self.sock_timeout:
            self.sock.settimeout(timeout)
            self.sock_timeout = timeout

    def roundtrip(self, opcode: int, body: bytes, consistency: int, deadline: float) -> tuple[int, int, bytes]:
        """Send one request and wait for its reply frame until `deadline` (time.monotonic()).

        Raises _Expired at the deadline and ConnectionClosedError if the connection breaks;
        after either the connection must be discarded."""
        compression = Compression.NONE
        if self.zstd and len(body) > COMPRESSION_THRESHOLD:
            body = compress_body(body)
            compression = Compression.ZSTD
        try:
            self.sock.sendall(encode_frame(opcode, make_flags(consistency, compression), body))
            while not self.frames:
                data = self.sock.recv(262144)
                if not data:
                    raise ConnectionClosedError("connection closed by the server")
                self.frames.extend(self.decoder.feed(data))
                if not self.frames:  # a large reply in pieces: the deadline, not the socket timeout, rules
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _Expired
                    self.set_timeout(remaining)
        except builtins_timeout:
            raise _Expired from None
        except ConnectionClosedError:
            raise
        except OSError as exc:  # ssl.SSLError is one too
            raise ConnectionClosedError(f"connection lost: {exc}") from None
        return self.frames.pop(0)

    def roundtrips(self, cmds: list[_c.Cmd[Any]], deadline: float) -> list[tuple[int, int, bytes]]:
        """Send every command in one write, then read one reply frame per command (a pipeline)."""
        out = []
        for c in cmds:
            body, compression = c.body, Compression.NONE
            if self.zstd and len(body) > COMPRESSION_THRESHOLD:
                body, compression = compress_body(body), Compression.ZSTD
            out.append(encode_frame(c.opcode, make_flags(c.consistency, compression), body))
        try:
            self.sock.sendall(b"".join(out))
            while len(self.frames) < len(cmds):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Expired
                self.set_timeout(remaining)
                data = self.sock.recv(262144)
                if not data:
                    raise ConnectionClosedError("connection closed by the server")
                self.frames.extend(self.decoder.feed(data))
        except builtins_timeout:
            raise _Expired from None
        except ConnectionClosedError:
            raise
        except OSError as exc:
            raise ConnectionClosedError(f"connection lost: {exc}") from None
        frames, self.frames = self.frames[: len(cmds)], self.frames[len(cmds):]
        return frames

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Velocity:
    """The synchronous client: thread safe, same methods as VelocityPool, without `await`.

    Safe to share between threads; each call uses one connection of its own for
    its duration. Close it (or use `with Velocity(...) as vdb:`) to release the sockets.
    """

    def __init__(
        self,
        node: str | None = None,
        auth: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        pool_size: int | None = None,
        *,
        insecure: bool | None = None,
        server_name: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retries: int | None = None,
        retry_backoff: float | None = None,
        token_file: str | os.PathLike[str] | None = None,
        client_name: str = "velocity-py-sync",
        compression: bool = True,
    ) -> None:
        """Same arguments, defaults and environment variables as VelocityPool.

        pool_size is how many idle connections are kept for reuse (more are opened
        while more threads call at once). Nothing connects until the first call."""
        self.config = _config.resolve(
            node,
            {
                "token": auth, "token_file": os.fspath(token_file) if token_file is not None else None,
                "ca": ca, "pool_size": pool_size, "insecure": insecure, "server_name": server_name,
                "timeout": timeout, "connect_timeout": connect_timeout, "retries": retries,
                "retry_backoff": retry_backoff,
            },
        )  # fmt: skip
        cfg = self.config
        self.endpoint = Endpoint.parse(cfg.endpoint)
        # Where the client returns when the primary a REDIRECT named becomes unreachable.
        self._seed = self.endpoint
        self.token = None if cfg.insecure else cfg.resolved_token()
        self._ssl = None if cfg.insecure else make_ssl_context(cfg.ca)
        self.timeout = cfg.timeout
        self.connect_timeout = cfg.connect_timeout
        self.retries = cfg.retries
        self.retry_backoff = cfg.retry_backoff
        self.pool_size = cfg.pool_size if cfg.pool_size is not None else DEFAULT_POOL_SIZE
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.client_name = client_name
        self.compression = compression
        self._idle: list[_SyncConnection] = []  # list.append/pop are atomic: no lock needed
        self._closed = False

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> Velocity:
        """A client configured by a URL (README, "The Python SDK"); None reads VDB_ENDPOINT & co.

        `kwargs` are the constructor's keyword arguments and win over the URL."""
        return cls(url, **kwargs)

    # -- lifecycle ---------------------------------------------------------------

    def connect(self) -> Velocity:
        """Open one connection now, so that configuration errors surface here; returns self."""
        conn = self._checkout(time.monotonic() + self.connect_timeout)
        self._checkin(conn)
        return self

    def close(self) -> None:
        """Close the idle connections; calls still running close theirs when they finish."""
        self._closed = True
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break

    def __enter__(self) -> Velocity:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        """`Velocity(vdb://HOST:PORT)`; never shows the token."""
        return f"Velocity({self.endpoint})"

    # -- requests ------------------------------------------------------------------

    def _checkout(self, deadline: float) -> _SyncConnection:
        if self._closed:
            raise ConnectionClosedError("client is closed")
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if conn.endpoint == self.endpoint:
                return conn
            conn.close()  # opened before a redirect
        timeout = min(self.connect_timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise TimeoutError(f"no time left to connect to {self.endpoint} (timeout {self.timeout:g}s)")
        return _SyncConnection.open(
            self.endpoint, self._ssl, server_name=self.config.server_name, token=self.token,
            client_name=self.client_name, timeout=timeout, request_timeout=self.timeout, ca=self.config.ca,
            compression=self.compression,
        )  # fmt: skip

    def _checkin(self, conn: _SyncConnection) -> None:
        conn.set_timeout(self.timeout)
        if self._closed or len(self._idle) >= self.pool_size:
            conn.close()
        else:
            self._idle.append(conn)

    def _attempt(self, opcode: int, body: bytes, read: bool, consistency: int, deadline: float) -> bytes:
        failures = 0
        while True:
            try:
                conn = self._checkout(deadline)
            except (ConnectionError, TimeoutError) as exc:  # nothing was sent: safe to retry, read or write
                if self.endpoint != self._seed:
                    self.endpoint = self._seed  # the redirected-to primary is gone: ask the seed again
                    continue
                if isinstance(exc, TimeoutError):
                    raise
                failures += 1
                self._backoff(exc, failures, deadline)
                continue
            remaining = deadline - time.monotonic()
            if remaining < conn.sock_timeout - 0.005:  # a retry or a redirect used some of the deadline
                conn.set_timeout(max(remaining, 0.001))
            try:
                rop, flags, rbody = conn.roundtrip(opcode, body, consistency, deadline)
            except _Expired:
                conn.close()
                what = f"request 0x{opcode:02x} to {conn.endpoint} got no reply within {self.timeout:g}s (timeout)"
                if read:
                    raise TimeoutError(what) from None
                raise WriteTimeoutError(f"{what}; the write may have been applied") from None
            except ConnectionClosedError as exc:
                conn.close()
                if not read:
                    raise UnknownOutcomeError(f"{exc} after the write was sent; it may have been applied") from None
                failures += 1
                self._backoff(exc, failures, deadline)
                continue
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            if rop == opcode | RESPONSE_BIT and not flags:
                return rbody
            return reply_body(opcode, rop, flags, rbody)

    def _backoff(self, exc: ConnectionError, failures: int, deadline: float) -> None:
        pause = self.retry_backoff * (2 ** (failures - 1))
        if failures > self.retries or time.monotonic() + pause >= deadline:
            raise exc
        time.sleep(pause)

    def _call(self, opcode: int, body: bytes, read: bool, consistency: int) -> bytes:
        now = time.monotonic()
        deadline = now + self.timeout
        give_up = min(deadline, now + FENCED_RETRY_S)
        redirects = 0
        while True:
            try:
                return self._attempt(opcode, body, read, consistency, deadline)
            except RedirectError as exc:
                if exc.primary and (redirects < MAX_REDIRECTS or time.monotonic() < give_up):
                    if redirects >= MAX_REDIRECTS:
                        time.sleep(REDIRECT_LOOP_PAUSE_S)
                    redirects += 1
                    self.endpoint = Endpoint.parse(exc.primary)
                elif not exc.primary and exc.retry_after_ms and time.monotonic() < give_up:
                    time.sleep(min(exc.retry_after_ms / 1000, max(0.0, give_up - time.monotonic())))
                else:
                    raise

    def _run(self, cmd: _c.Cmd[T]) -> T:
        return cmd.decode(self._call(cmd.opcode, cmd.body, cmd.read, cmd.consistency))

    def _run_async(self, fn: Callable[[VelocityPool], Awaitable[T]]) -> T:
        """Run `fn` with a one-connection VelocityPool on a private event loop in a helper thread
        (works from any thread, also one whose event loop is running, as in a notebook)."""
        import asyncio

        result: list[T] = []
        error: list[BaseException] = []

        async def go() -> None:
            pool = VelocityPool.__new__(VelocityPool)
            pool._init(_config.ClientConfig(**{**self.config.__dict__, "endpoint": str(self.endpoint),
                                               "token": self.token, "token_file": None, "pool_size": 1}),
                       self.client_name, self.compression)
            async with pool:
                result.append(await fn(pool))

        def thread() -> None:
            try:
                asyncio.run(go())
            except BaseException as exc:
                error.append(exc)

        t = threading.Thread(target=thread, name="velocity-admin", daemon=True)
        t.start()
        t.join()
        if error:
            raise error[0]
        return result[0]

    def pipeline(self, *, raise_on_error: bool = True) -> Pipeline:
        """A batch of commands sent in one write (velocity.pipeline): `pipe.get(k).incr(c)`, then
        `pipe.execute()` returns their results in order. Not a transaction."""
        return Pipeline(self, raise_on_error)

    # -- single key ----------------------------------------------------------------

    def get(self, key: KeyLike, default: Any = None, *, stale_ok: bool = False) -> Any:
        """The value, decoded to the type it was stored as; `default` when missing.

        stale_ok: a replica may answer (possibly behind the primary)."""
        return self._run(_c.get(key, default, stale_ok))

    def set(self, key: KeyLike, value: Any, ttl: TtlLike | None = None, *, nx: bool = False, xx: bool = False) -> bool:
        """Store a value. nx: only if absent; xx: only if present. Returns whether it was written."""
        return self._run(_c.set_(key, value, ttl, nx, xx))

    def delete(self, key: KeyLike) -> bool:
        """Delete `key`; returns whether it existed."""
        return self._run(_c.delete(key))

    def exists(self, key: KeyLike) -> bool:
        """Whether `key` exists (and has not expired)."""
        return self._run(_c.exists(key))

    def incr(self, key: KeyLike, by: int = 1) -> int:
        """Atomically add `by` (may be negative) and return the new value."""
        return self._run(_c.incr(key, by))

    def incrby(self, key: KeyLike, by: int) -> int:
        """Same as `incr(key, by)` (the redis-py name)."""
        return self.incr(key, by)

    def decr(self, key: KeyLike, by: int = 1) -> int:
        """Atomically subtract `by` and return the new value (`decrby` is the same)."""
        return self.incr(key, -by)

    decrby = decr

    def expire(self, key: KeyLike, ttl: TtlLike) -> bool:
        """Make `key` expire after `ttl` (seconds, or "30s", "2h"...); False when the key does not exist."""
        return self._run(_c.expire(key, ttl))

    def persist(self, key: KeyLike) -> bool:
        """Remove `key`'s expiry; returns whether it had one."""
        return self._run(_c.persist(key))

    def pttl(self, key: KeyLike) -> int:
        """Milliseconds left; -1 when the key has no expiry, -2 when it does not exist."""
        return self._run(_c.pttl(key))

    def ttl(self, key: KeyLike) -> float | None:
        """Seconds left, or None when the key is missing or has no expiry."""
        ms = self.pttl(key)
        return None if ms < 0 else ms / 1000

    def cas(self, key: KeyLike, expected: Any, value: Any, ttl: TtlLike | None = None) -> bool:
        """Write `value` only if the current value equals `expected` (None: only if absent)."""
        return self._run(_c.cas(key, expected, value, ttl))

    # -- multi key -------------------------------------------------------------------

    def mget(self, keys: Iterable[KeyLike], default: Any = None, *, stale_ok: bool = False) -> list[Any]:
        """The values of `keys`, in order, in one request; `default` for each missing key."""
        return self._run(_c.mget(keys, default, stale_ok))

    def mset(self, mapping: KeyMapping, ttl: TtlLike | None = None) -> None:
        """Write every pair atomically: all of them or, on error, none."""
        self._run(_c.mset(mapping, ttl))

    def scan(self, prefix: KeyLike = b"", count: int = 100, *, stale_ok: bool = False) -> Iterator[str]:
        """Every key with `prefix`, in byte order, fetched `count` at a time (a lazy iterator)."""
        p = _c.key_bytes(prefix)
        cursor = b""
        while True:
            keys, cursor = self._run(_c.scan_page(p, cursor, count, stale_ok))
            yield from keys
            if not cursor:
                return

    # -- admin -------------------------------------------------------------------------

    def ping(self, payload: bytes = b"") -> bytes:
        """Round trip to the server; returns `payload` echoed back."""
        return self._run(_c.ping(payload))

    def info(self, section: str | None = None) -> dict[str, Any]:
        """The server's INFO document (version, clients, keys, memory, replication...), or one section of it."""
        return self._run(_c.info(section))

    def snapshot(self, dest: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None) -> int:
        """Download a consistent snapshot to `dest` (see VelocityPool.snapshot); returns its size. Admin token."""
        return self._run_async(lambda p: p.snapshot(dest, progress))

    def promote(self, min_epoch: int = 0) -> tuple[int, int]:
        """Make the node the primary of a new epoch; returns (epoch, seq). Admin token."""
        return self._run_async(lambda p: p.promote(min_epoch))

    def fence(self) -> int:
        """Stop the primary taking writes while it keeps streaming; returns its epoch. Admin token."""
        return self._run_async(lambda p: p.fence())

    def switchover(self, target: str, catch_up_timeout: float = 5.0) -> tuple[int, int, float]:
        """Planned switchover to replica `target` (see VelocityPool.switchover). Admin token."""
        return self._run_async(lambda p: p.switchover(target, catch_up_timeout))

    def replica_of(self, primary: str, epoch: int = 0) -> int:
        """Make the node follow `primary` (vdb://HOST:PORT); returns the node's epoch. Admin token."""
        return self._run_async(lambda p: p.replica_of(primary, epoch))
