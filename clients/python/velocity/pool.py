"""VelocityPool: the Python SDK's asyncio client.

    async with VelocityPool("vdb://127.0.0.1:2005", auth=token, ca="ca.crt") as vdb:
        await vdb.set("session:0xF1", {"active": True}, ttl="2h")
        await vdb.get("session:0xF1")          # -> {"active": True}
        await vdb.incr("counters:req_total")   # -> 1

A pool holds `pool_size` connections and spreads requests over them; each
connection pipelines, so thousands of concurrent awaits are fine. A dead
connection is replaced on next use.

Timeouts and retries (docs/python-sdk.md):
- `connect_timeout` bounds each connection attempt (TCP, TLS and HELLO);
- `timeout` is the caller's deadline for a whole call: connecting, retries and
  redirects included. When it passes the call raises TimeoutError, and a write
  raises WriteTimeoutError (it may have been applied). A timeout is never retried.
- A read whose connection broke is retried up to `retries` times on a fresh
  connection, after `retry_backoff` seconds (doubling), only while the deadline
  allows. A write whose connection broke after it was sent raises
  UnknownOutcomeError: retrying INCR would count twice. A connection that could
  not be opened sent nothing, so that failure is retried for writes too.

A REDIRECT from a replica (writes and linearizable reads go to the primary)
is followed transparently and the pool then stays pointed at the primary; past
MAX_REDIRECTS per request (two nodes naming each other for a moment during a
hand-over) the request pauses between redirects and gives up after
FENCED_RETRY_S. A node between roles (a primary stepping down) redirects
without naming a primary; requests then retry for up to FENCED_RETRY_S.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from vproto import messages as m
from vproto.errors import ProtocolError, RedirectError
from vproto.frame import RESPONSE_BIT, Opcode

from velocity import commands as _c
from velocity import config as _config
from velocity.commands import KeyLike, KeyMapping
from velocity.connection import Connection, Endpoint, make_ssl_context, reply_body
from velocity.durations import TtlLike
from velocity.errors import (
    ConnectionClosedError,
    ConnectionError,
    TimeoutError,
    UnknownOutcomeError,
    WriteTimeoutError,
)

if TYPE_CHECKING:
    from velocity.pipeline import AsyncPipeline

__all__ = ["FENCED_RETRY_S", "MAX_REDIRECTS", "VelocityPool", "make_ssl_context", "read_token_file"]

MAX_REDIRECTS = 3
FENCED_RETRY_S = 2.0  # how long a request waits for a node without a primary to name one
REDIRECT_LOOP_PAUSE_S = 0.05  # between redirects past MAX_REDIRECTS, within FENCED_RETRY_S
DEFAULT_POOL_SIZE = 4
T = TypeVar("T")
read_token_file = _config.read_token_file


class _Expired(Exception):
    """Set on a request's future when the caller's deadline passes."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


class VelocityPool:
    """The asyncio client: a pool of pipelined connections to one Velocity server (or its primary).

    Safe for any number of concurrent tasks of the event loop it is used from; use
    one pool per loop (`Velocity` is the synchronous, thread-safe client).
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
        client_name: str = "velocity-py",
        compression: bool = True,
    ) -> None:
        """Configure the pool; nothing connects until `connect()` or the first request.

        node: `vdb://HOST:PORT` or a full URL (README, "The Python SDK"); default
        VDB_ENDPOINT, else vdb://127.0.0.1:2005. auth: the token (default VDB_TOKEN,
        else the file `token_file` / VDB_TOKEN_FILE). ca: CA certificate file to trust
        (default VDB_CA, else the system store). insecure: plaintext without a token.
        timeout: seconds per call (10; VDB_TIMEOUT), connect_timeout: seconds per
        connection attempt (5), retries / retry_backoff: for reads whose connection
        broke (1 retry after 0.05 s). Keyword arguments win over the URL, which wins
        over the environment. Raises ConfigurationError or TLSError (unusable CA file).
        """
        cfg = _config.resolve(
            node,
            {
                "token": auth, "token_file": os.fspath(token_file) if token_file is not None else None,
                "ca": ca, "pool_size": pool_size, "insecure": insecure, "server_name": server_name,
                "timeout": timeout, "connect_timeout": connect_timeout, "retries": retries,
                "retry_backoff": retry_backoff,
            },
        )  # fmt: skip
        self._init(cfg, client_name, compression)

    def _init(self, cfg: _config.ClientConfig, client_name: str, compression: bool) -> None:
        size = cfg.pool_size if cfg.pool_size is not None else DEFAULT_POOL_SIZE
        if size < 1:
            raise ValueError("pool_size must be at least 1")
        self.config = cfg
        self.endpoint = Endpoint.parse(cfg.endpoint)
        # The configured endpoint (often a Service): where the pool returns when the
        # primary a REDIRECT named becomes unreachable.
        self._seed = self.endpoint
        self.insecure = cfg.insecure
        self.token = None if cfg.insecure else cfg.resolved_token()
        self.ca = cfg.ca
        self._ssl = None if cfg.insecure else make_ssl_context(cfg.ca)
        self.server_name = cfg.server_name
        self.timeout = cfg.timeout
        self.connect_timeout = cfg.connect_timeout
        self.retries = cfg.retries
        self.retry_backoff = cfg.retry_backoff
        self.client_name = client_name
        self.compression = compression
        self.pool_size = size
        self._conns: list[Connection | None] = [None] * size
        self._opening: list[asyncio.Future[Connection] | None] = [None] * size
        self._next = 0
        self._closed = False

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> VelocityPool:
        """A pool configured by a URL (README, "The Python SDK"); None reads VDB_ENDPOINT & co.

        `kwargs` are the constructor's keyword arguments and win over the URL."""
        return cls(url, **kwargs)

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> VelocityPool:
        """Open every connection now (errors surface here rather than on first use)."""
        await asyncio.gather(*(self._conn(i) for i in range(self.pool_size)))
        return self

    async def close(self) -> None:
        """Close every connection; requests still in flight fail with ConnectionClosedError."""
        self._closed = True
        conns = [c for c in self._conns if c is not None]
        self._conns = [None] * self.pool_size
        for c in conns:
            c.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)

    async def __aenter__(self) -> VelocityPool:
        return await self.connect()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _open(self, timeout: float) -> Connection:
        return await Connection.open(
            self.endpoint,
            ssl_context=self._ssl,
            server_name=self.server_name,
            token=self.token,
            client_name=self.client_name,
            timeout=timeout,
            compression=self.compression,
            ca=self.ca,
        )

    async def _conn(self, i: int, deadline: float | None = None) -> Connection:
        if self._closed:
            raise ConnectionClosedError("pool is closed")
        c = self._conns[i]
        if c is not None and c.is_open:
            if c.endpoint == self.endpoint:
                return c
            self._conns[i] = None  # opened before a redirect
            self._retire(c)
        pending = self._opening[i]
        if pending is None:
            timeout = self.connect_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - asyncio.get_running_loop().time())
            pending = asyncio.ensure_future(self._open(timeout))
            self._opening[i] = pending
            try:
                c = await pending
            finally:
                self._opening[i] = None
            self._conns[i] = c
            return c
        return await asyncio.shield(pending)

    async def _call(self, opcode: int, body: bytes, *, retry: bool, consistency: int = 0) -> bytes:
        """One request within `timeout`, following redirects; `retry`: it is a read (retried after
        a broken connection)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            return await self._attempt(loop, opcode, body, retry, consistency, start + self.timeout)
        except RedirectError as exc:
            return await self._follow(exc, loop, opcode, body, retry, consistency, start)

    async def _follow(
        self, exc: RedirectError, loop: asyncio.AbstractEventLoop, opcode: int, body: bytes, read: bool,
        consistency: int, start: float,
    ) -> bytes:
        # A replica answers writes and linearizable reads with REDIRECT naming
        # the primary; nothing was executed, so following it is always safe.
        # A primary that is stepping down (switchover, fencing) answers REDIRECT
        # without a primary and a retry hint: wait and ask again, a little.
        deadline = start + self.timeout
        give_up = min(deadline, start + FENCED_RETRY_S)
        redirects = 0
        while True:
            if exc.primary and (redirects < MAX_REDIRECTS or loop.time() < give_up):
                # Past MAX_REDIRECTS the nodes are pointing at each other: a
                # hand-over is half done (the old primary already names its
                # successor, which has not promoted yet). Pause before asking again.
                if redirects >= MAX_REDIRECTS:
                    await asyncio.sleep(REDIRECT_LOOP_PAUSE_S)
                redirects += 1
                self._redirect(exc.primary)
            elif not exc.primary and exc.retry_after_ms and loop.time() < give_up:
                await asyncio.sleep(min(exc.retry_after_ms / 1000, max(0.0, give_up - loop.time())))
            else:
                raise exc
            try:
                return await self._attempt(loop, opcode, body, read, consistency, deadline)
            except RedirectError as again:
                exc = again

    async def _call_once(self, opcode: int, body: bytes, *, retry: bool, consistency: int = 0) -> bytes:
        """One request without following redirects (admin opcodes act on the node they reach)."""
        loop = asyncio.get_running_loop()
        return await self._attempt(loop, opcode, body, retry, consistency, loop.time() + self.timeout)

    async def _attempt(
        self, loop: asyncio.AbstractEventLoop, opcode: int, body: bytes, read: bool, consistency: int, deadline: float
    ) -> bytes:
        failures = 0
        while True:
            i = self._next
            self._next = (i + 1) % self.pool_size
            c = self._conns[i]
            try:
                if c is None or not c.is_open or c.endpoint != self.endpoint:
                    c = await self._conn(i, deadline)
                conn = c
                fut = conn.send(opcode, body, consistency)
            except (ConnectionError, OSError) as exc:
                # Nothing was sent: retrying is safe for reads and writes alike.
                if self._back_to_seed():
                    continue  # the redirected-to primary is gone: ask the seed who is primary now
                if isinstance(exc, TimeoutError):
                    raise
                failures += 1
                await self._backoff(exc, failures, deadline)
                continue
            remaining = deadline - loop.time()
            timer = loop.call_later(remaining, _expire, fut)
            try:
                rop, flags, rbody = await fut
            except _Expired:
                what = f"request 0x{opcode:02x} to {conn.endpoint} got no reply within {self.timeout:g}s (timeout)"
                if read:
                    raise TimeoutError(what) from None
                raise WriteTimeoutError(f"{what}; the write may have been applied") from None
            except ConnectionClosedError as exc:
                if not read:
                    raise UnknownOutcomeError(f"{exc} after the write was sent; it may have been applied") from None
                failures += 1
                await self._backoff(exc, failures, deadline)
                continue
            finally:
                timer.cancel()
            if rop == opcode | RESPONSE_BIT and not flags:
                return rbody  # the common case, without a call
            return reply_body(opcode, rop, flags, rbody)

    async def _backoff(self, exc: BaseException, failures: int, deadline: float) -> None:
        """Sleep before retry number `failures`, or re-raise `exc` if retries or time are used up."""
        loop = asyncio.get_running_loop()
        pause = self.retry_backoff * (2 ** (failures - 1))
        if failures > self.retries or loop.time() + pause >= deadline:
            if isinstance(exc, ConnectionError):
                raise exc
            raise ConnectionError(f"cannot reach {self.endpoint}: {exc}") from exc
        await asyncio.sleep(pause)

    def _back_to_seed(self) -> bool:
        """After a REDIRECT moved the pool off its seed: move it back (True), else False."""
        if self.endpoint == self._seed:
            return False
        self._point_at(self._seed)
        return True

    def _redirect(self, primary: str) -> None:
        """Point the pool at `primary`; connections to the old node close once idle."""
        self._point_at(Endpoint.parse(primary))

    def _point_at(self, endpoint: Endpoint) -> None:
        if endpoint == self.endpoint:
            return
        self.endpoint = endpoint
        for i, c in enumerate(self._conns):
            if c is not None:
                self._conns[i] = None
                self._retire(c)

    def _retire(self, c: Connection) -> None:
        if c.in_flight == 0:
            c.close()
            return
        # Requests still in flight on it get their replies first.
        asyncio.get_running_loop().call_later(self.timeout, c.close)

    def _sibling(self, node: str, timeout: float | None = None) -> VelocityPool:
        """A one-connection pool to `node` with this pool's credentials and TLS settings."""
        cfg = _config.ClientConfig(
            endpoint=str(Endpoint.parse(node)), token=self.token, ca=self.ca, insecure=self.insecure,
            server_name=self.server_name, timeout=timeout or self.timeout, connect_timeout=self.connect_timeout,
            pool_size=1, retries=self.retries, retry_backoff=self.retry_backoff,
        )  # fmt: skip
        other = VelocityPool.__new__(VelocityPool)
        other._init(cfg, self.client_name, self.compression)
        other._ssl = self._ssl
        return other

    async def _run(self, cmd: _c.Cmd[T]) -> T:
        # _call inlined: one coroutine less per request on the hot path
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            body = await self._attempt(loop, cmd.opcode, cmd.body, cmd.read, cmd.consistency, start + self.timeout)
        except RedirectError as exc:
            body = await self._follow(exc, loop, cmd.opcode, cmd.body, cmd.read, cmd.consistency, start)
        return cmd.decode(body)

    def pipeline(self, *, raise_on_error: bool = True) -> AsyncPipeline:
        """A batch of commands sent in one write (velocity.pipeline): `pipe.get(k).incr(c)`, then
        `await pipe.execute()` returns their results in order. Not a transaction."""
        from velocity.pipeline import AsyncPipeline

        return AsyncPipeline(self, raise_on_error)

    # -- single key ----------------------------------------------------------------

    async def get(self, key: KeyLike, default: Any = None, *, stale_ok: bool = False) -> Any:
        """The value, decoded to the type it was stored as; `default` when missing.

        stale_ok: a replica may answer (possibly behind the primary)."""
        return await self._run(_c.get(key, default, stale_ok))

    async def set(
        self, key: KeyLike, value: Any, ttl: TtlLike | None = None, *, nx: bool = False, xx: bool = False
    ) -> bool:
        """Store a value. nx: only if absent; xx: only if present. Returns whether it was written."""
        return await self._run(_c.set_(key, value, ttl, nx, xx))

    async def delete(self, key: KeyLike) -> bool:
        """Delete `key`; returns whether it existed."""
        return await self._run(_c.delete(key))

    async def exists(self, key: KeyLike) -> bool:
        """Whether `key` exists (and has not expired)."""
        return await self._run(_c.exists(key))

    async def incr(self, key: KeyLike, by: int = 1) -> int:
        """Atomically add `by` (may be negative) and return the new value."""
        return await self._run(_c.incr(key, by))

    async def incrby(self, key: KeyLike, by: int) -> int:
        """Same as `incr(key, by)` (the redis-py name)."""
        return await self.incr(key, by)

    async def decr(self, key: KeyLike, by: int = 1) -> int:
        """Atomically subtract `by` and return the new value (`decrby` is the same)."""
        return await self.incr(key, -by)

    decrby = decr

    async def expire(self, key: KeyLike, ttl: TtlLike) -> bool:
        """Make `key` expire after `ttl` (seconds, or "30s", "2h"...); False when the key does not exist."""
        return await self._run(_c.expire(key, ttl))

    async def persist(self, key: KeyLike) -> bool:
        """Remove `key`'s expiry; returns whether it had one."""
        return await self._run(_c.persist(key))

    async def pttl(self, key: KeyLike) -> int:
        """Milliseconds left; -1 when the key has no expiry, -2 when it does not exist."""
        return await self._run(_c.pttl(key))

    async def ttl(self, key: KeyLike) -> float | None:
        """Seconds left, or None when the key is missing or has no expiry."""
        ms = await self.pttl(key)
        return None if ms < 0 else ms / 1000

    async def cas(self, key: KeyLike, expected: Any, value: Any, ttl: TtlLike | None = None) -> bool:
        """Write `value` only if the current value equals `expected` (None: only if absent)."""
        return await self._run(_c.cas(key, expected, value, ttl))

    # -- multi key -------------------------------------------------------------------

    async def mget(self, keys: Iterable[KeyLike], default: Any = None, *, stale_ok: bool = False) -> list[Any]:
        """The values of `keys`, in order, in one request; `default` for each missing key."""
        return await self._run(_c.mget(keys, default, stale_ok))

    async def mset(self, mapping: KeyMapping, ttl: TtlLike | None = None) -> None:
        """Write every pair atomically: all of them or, on error, none."""
        await self._run(_c.mset(mapping, ttl))

    async def scan(self, prefix: KeyLike = b"", count: int = 100, *, stale_ok: bool = False) -> AsyncIterator[str]:
        """Every key with `prefix`, in byte order, fetched `count` at a time."""
        p = _c.key_bytes(prefix)
        cursor = b""
        while True:
            keys, cursor = await self._run(_c.scan_page(p, cursor, count, stale_ok))
            for k in keys:
                yield k
            if not cursor:
                return

    # -- admin -------------------------------------------------------------------------

    async def ping(self, payload: bytes = b"") -> bytes:
        """Round trip to the server; returns `payload` echoed back."""
        return await self._run(_c.ping(payload))

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """The server's INFO document (version, clients, keys, memory, replication...), or one section of it."""
        return await self._run(_c.info(section))

    # -- snapshots (docs/formats/snapshot.md) -------------------------------------------

    async def snapshot(
        self,
        dest: str | os.PathLike[str],
        progress: Callable[[int, int], None] | None = None,
        *,
        chunk_bytes: int = 4 * 1024 * 1024,
        poll_s: float = 0.05,
    ) -> int:
        """Download a consistent point-in-time snapshot of the server's data to `dest`.

        The file is checked against its whole-file CRC before it is renamed into
        place; returns its size. `progress(done, total)` is called per chunk.
        """
        begin = m.SnapshotBeginResponse.decode(await self._call(Opcode.SNAPSHOT_BEGIN, b"", retry=False))
        path = Path(dest)
        part = path.with_name(path.name + ".part")
        offset, size = 0, -1
        crc, held = 0, b""  # the last 12 bytes (crc + magic) are not covered by the crc
        try:
            with open(part, "wb") as fh:
                while size < 0 or offset < size:
                    req = m.SnapshotReadRequest(begin.snapshot_id, offset, chunk_bytes)
                    r = m.SnapshotReadResponse.decode(await self._call(Opcode.SNAPSHOT_READ, req.encode(), retry=False))
                    if not r.ready:
                        await asyncio.sleep(poll_s)  # the server is still writing it
                        continue
                    if not r.data and offset < r.size:
                        raise ProtocolError(f"snapshot read at {offset} of {r.size} returned no data")
                    size = r.size
                    fh.write(r.data)
                    offset += len(r.data)
                    buf = held + r.data
                    crc = zlib.crc32(buf[:-12], crc)
                    held = buf[-12:]
                    if progress is not None:
                        progress(offset, size)
                fh.flush()
                os.fsync(fh.fileno())
            if len(held) != 12 or held[4:] != b"VSNAPEND" or int.from_bytes(held[:4], "little") != crc:
                raise ProtocolError("downloaded snapshot fails its whole-file checksum")
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return size

    # -- replication admin (docs/replication.md) ----------------------------------------

    async def promote(self, min_epoch: int = 0) -> tuple[int, int]:
        """Make the node this pool talks to the primary of a new epoch; returns (epoch, seq)."""
        body = await self._call_once(Opcode.PROMOTE, m.PromoteRequest(min_epoch).encode(), retry=False, consistency=0)
        resp = m.PromoteResponse.decode(body)
        return resp.epoch, resp.seq

    async def fence(self) -> int:
        """Stop the primary taking writes while it keeps streaming (switchover, step 1); returns its epoch."""
        body = await self._call_once(Opcode.REPLICA_OF, m.ReplicaOfRequest("", 0).encode(), retry=False, consistency=0)
        return m.ReplicaOfResponse.decode(body).epoch

    async def switchover(self, target: str, catch_up_timeout: float = 5.0) -> tuple[int, int, float]:
        """Planned switchover from the node this pool talks to (the primary) to replica `target`.

        1. fence the primary: it refuses writes (REDIRECT) but keeps streaming;
        2. wait until `target` has applied everything the primary holds;
        3. promote `target`; it then tells the old primary to follow it.
        No acknowledged write is lost. Returns (epoch, seq, seconds writes were refused).

        Under Lease election (INFO replication.lease set) the primary runs the whole
        switchover itself, Lease compare-and-swap included (docs/replication.md); its
        own catch-up bound applies instead of `catch_up_timeout`.
        """
        if (await self.info("replication"))["replication"].get("lease"):
            return await self._lease_switchover(target)
        loop = asyncio.get_running_loop()
        async with self._sibling(target) as other:
            t0 = loop.time()
            await self.fence()
            final = (await self.info("replication"))["replication"]["seq"]
            deadline = t0 + catch_up_timeout
            while (await other.info("replication"))["replication"]["seq"] < final:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"{target} did not reach seq {final} within {catch_up_timeout}s; the old primary is "
                        "fenced: promote it again (velocityctl promote) or retry"
                    )
                await asyncio.sleep(0.005)  # polling a remote position; there is nothing to wait on locally
            epoch, seq = await other.promote()
            return epoch, seq, loop.time() - t0

    async def _lease_switchover(self, target: str) -> tuple[int, int, float]:
        # A connection of its own: the reply comes when the switchover is over, and
        # nothing else may be pipelined behind it.
        async with self._sibling(str(self.endpoint), max(self.timeout, 15.0)) as own:
            req = m.ReplicaOfRequest(str(Endpoint.parse(target)), 0)
            await own._call_once(Opcode.REPLICA_OF, req.encode(), retry=False, consistency=0)
            report = (await own.info("replication"))["replication"]["switchover"]
        return int(report["epoch"]), int(report["seq"]), float(report["pause_ms"]) / 1000

    async def replica_of(self, primary: str, epoch: int = 0) -> int:
        """Make the node follow `primary` (vdb://HOST:PORT); returns the node's epoch."""
        req = m.ReplicaOfRequest(str(Endpoint.parse(primary)), epoch)
        body = await self._call_once(Opcode.REPLICA_OF, req.encode(), retry=False, consistency=0)
        return m.ReplicaOfResponse.decode(body).epoch

    def __repr__(self) -> str:
        """`VelocityPool(vdb://HOST:PORT, pool_size=N)`; never shows the token."""
        return f"VelocityPool({self.endpoint}, pool_size={self.pool_size})"

