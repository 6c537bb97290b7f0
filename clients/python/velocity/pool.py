"""VelocityPool: the Python SDK's entry point.

    async with VelocityPool(node="vdb://127.0.0.1:2005", auth=token, ca="ca.crt") as vdb:
        await vdb.set("session:0xF1", {"active": True}, ttl="2h")
        await vdb.get("session:0xF1")          # -> {"active": True}
        await vdb.incr("counters:req_total")   # -> 1

A pool holds `pool_size` connections and spreads requests over them; each
connection pipelines, so thousands of concurrent awaits are fine. A dead
connection is replaced on next use. Reads are retried once on a fresh
connection after a connection failure; writes are not (their outcome is
unknown, and retrying INCR would count twice), they raise ConnectionError.
A REDIRECT from a replica (writes and linearizable reads go to the primary)
is followed transparently and the pool then stays pointed at the primary; past
MAX_REDIRECTS per request (two nodes naming each other for a moment during a
hand-over) the request pauses between redirects and gives up after
FENCED_RETRY_S. A node between roles (a primary stepping down) redirects
without naming a primary; requests then retry for up to FENCED_RETRY_S.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from vproto import fastcodec as fc
from vproto import messages as m
from vproto.errors import ProtocolError, RedirectError
from vproto.frame import Consistency, Opcode
from vproto.values import decode_value, encode_value

from velocity.connection import Connection, ConnectionClosedError, Endpoint
from velocity.durations import TtlLike, parse_ttl_ms

_MISSING = object()
MAX_REDIRECTS = 3
FENCED_RETRY_S = 2.0  # how long a request waits for a node without a primary to name one
REDIRECT_LOOP_PAUSE_S = 0.05  # between redirects past MAX_REDIRECTS, within FENCED_RETRY_S
KeyLike = str | bytes


def _key(key: KeyLike) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"keys are str or bytes, not {type(key).__name__}")


def _consistency(stale_ok: bool) -> int:
    """STALE_OK lets a replica answer a read (possibly behind the primary)."""
    return Consistency.STALE_OK if stale_ok else Consistency.LINEARIZABLE


def _ttl(ttl: TtlLike | None) -> int:
    return 0 if ttl is None else parse_ttl_ms(ttl)


def make_ssl_context(ca: str | os.PathLike[str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class VelocityPool:
    def __init__(
        self,
        node: str = "vdb://127.0.0.1:2005",
        auth: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        pool_size: int = 4,
        *,
        insecure: bool = False,
        server_name: str | None = None,
        timeout: float = 10.0,
        client_name: str = "velocity-py",
        compression: bool = True,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.endpoint = Endpoint.parse(node)
        self.token = auth if auth is not None else os.environ.get("VDB_TOKEN")
        self.insecure = insecure
        self._ssl = None if insecure else make_ssl_context(ca)
        self.server_name = server_name
        self.timeout = timeout
        self.client_name = client_name
        self.compression = compression
        self.pool_size = pool_size
        self._conns: list[Connection | None] = [None] * pool_size
        self._opening: list[asyncio.Future[Connection] | None] = [None] * pool_size
        self._next = 0
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> VelocityPool:
        """Open every connection now (errors surface here rather than on first use)."""
        await asyncio.gather(*(self._conn(i) for i in range(self.pool_size)))
        return self

    async def close(self) -> None:
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

    async def _open(self) -> Connection:
        return await Connection.open(
            self.endpoint,
            ssl_context=self._ssl,
            server_name=self.server_name,
            token=None if self.insecure else self.token,
            client_name=self.client_name,
            timeout=self.timeout,
            compression=self.compression,
        )

    async def _conn(self, i: int) -> Connection:
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
            pending = asyncio.ensure_future(self._open())
            self._opening[i] = pending
            try:
                c = await pending
            finally:
                self._opening[i] = None
            self._conns[i] = c
            return c
        return await asyncio.shield(pending)

    async def _call(self, opcode: int, body: bytes, *, retry: bool, consistency: int = 0) -> bytes:
        # A replica answers writes and linearizable reads with REDIRECT naming
        # the primary; nothing was executed, so following it is always safe.
        # A primary that is stepping down (switchover, fencing) answers REDIRECT
        # without a primary and a retry hint: wait and ask again, a little.
        redirects = 0
        loop = asyncio.get_running_loop()
        give_up = loop.time() + FENCED_RETRY_S
        while True:
            try:
                return await self._call_once(opcode, body, retry=retry, consistency=consistency)
            except RedirectError as exc:
                if exc.primary and (redirects < MAX_REDIRECTS or loop.time() < give_up):
                    # Past MAX_REDIRECTS the nodes are pointing at each other: a
                    # hand-over is half done (the old primary already names its
                    # successor, which has not promoted yet). Pause before asking again.
                    if redirects >= MAX_REDIRECTS:
                        await asyncio.sleep(REDIRECT_LOOP_PAUSE_S)
                    redirects += 1
                    self._redirect(exc.primary)
                elif not exc.primary and exc.retry_after_ms and loop.time() < give_up:
                    await asyncio.sleep(exc.retry_after_ms / 1000)
                else:
                    raise

    async def _call_once(self, opcode: int, body: bytes, *, retry: bool, consistency: int) -> bytes:
        i = self._next
        self._next = (i + 1) % self.pool_size
        conn = await self._conn(i)
        try:
            return await asyncio.wait_for(conn.call(opcode, body, consistency), self.timeout)
        except (ConnectionError, OSError):
            if not retry:
                raise
        conn = await self._conn(i)
        return await asyncio.wait_for(conn.call(opcode, body, consistency), self.timeout)

    def _redirect(self, primary: str) -> None:
        """Point the pool at `primary`; connections to the old node close once idle."""
        endpoint = Endpoint.parse(primary)
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

    # -- single key ----------------------------------------------------------------

    async def get(self, key: KeyLike, default: Any = None, *, stale_ok: bool = False) -> Any:
        """The value, decoded to the type it was stored as; `default` when missing."""
        body = await self._call(
            Opcode.GET,
            fc.encode_key_request(_key(key)),
            retry=True,
            consistency=Consistency.STALE_OK if stale_ok else Consistency.LINEARIZABLE,
        )
        found, kind, value = fc.decode_get_response(body)
        return decode_value(kind, value) if found else default

    async def set(
        self, key: KeyLike, value: Any, ttl: TtlLike | None = None, *, nx: bool = False, xx: bool = False
    ) -> bool:
        """Store a value. nx: only if absent; xx: only if present. Returns whether it was written."""
        if nx and xx:
            raise ValueError("nx and xx exclude each other")
        kind, data = encode_value(value)
        body = fc.encode_set_request(_key(key), data, kind, _ttl(ttl), 1 if nx else 2 if xx else 0)
        return fc.decode_bool(await self._call(Opcode.SET, body, retry=False))

    async def delete(self, key: KeyLike) -> bool:
        return fc.decode_bool(await self._call(Opcode.DEL, fc.encode_key_request(_key(key)), retry=False))

    async def exists(self, key: KeyLike) -> bool:
        return fc.decode_bool(await self._call(Opcode.EXISTS, fc.encode_key_request(_key(key)), retry=True))

    async def incr(self, key: KeyLike, by: int = 1) -> int:
        """Atomically add `by` (may be negative) and return the new value."""
        if isinstance(by, bool) or not isinstance(by, int):
            raise TypeError("by must be an int")
        return fc.decode_i64(await self._call(Opcode.INCR, fc.encode_incr_request(_key(key), by), retry=False))

    async def incrby(self, key: KeyLike, by: int) -> int:
        return await self.incr(key, by)

    async def decr(self, key: KeyLike, by: int = 1) -> int:
        return await self.incr(key, -by)

    decrby = decr

    async def expire(self, key: KeyLike, ttl: TtlLike) -> bool:
        body = m.ExpireRequest(_key(key), parse_ttl_ms(ttl)).encode()
        return fc.decode_bool(await self._call(Opcode.EXPIRE, body, retry=False))

    async def persist(self, key: KeyLike) -> bool:
        return fc.decode_bool(await self._call(Opcode.PERSIST, fc.encode_key_request(_key(key)), retry=False))

    async def pttl(self, key: KeyLike) -> int:
        """Milliseconds left; -1 when the key has no expiry, -2 when it does not exist."""
        return fc.decode_i64(await self._call(Opcode.TTL, fc.encode_key_request(_key(key)), retry=True))

    async def ttl(self, key: KeyLike) -> float | None:
        """Seconds left, or None when the key is missing or has no expiry."""
        ms = await self.pttl(key)
        return None if ms < 0 else ms / 1000

    async def cas(self, key: KeyLike, expected: Any, value: Any, ttl: TtlLike | None = None) -> bool:
        """Write `value` only if the current value equals `expected` (None: only if absent)."""
        ekind, edata = (0, b"") if expected is None else encode_value(expected)
        kind, data = encode_value(value)
        req = m.CasRequest(_key(key), edata, ekind, expected is None, data, kind, _ttl(ttl))
        return m.CasResponse.decode(await self._call(Opcode.CAS, req.encode(), retry=False)).applied

    # -- multi key -------------------------------------------------------------------

    async def mget(self, keys: Iterable[KeyLike], default: Any = None, *, stale_ok: bool = False) -> list[Any]:
        req = m.MGetRequest([m.Key(_key(k)) for k in keys])
        body = await self._call(Opcode.MGET, req.encode(), retry=True, consistency=_consistency(stale_ok))
        resp = m.MGetResponse.decode(body)
        return [decode_value(e.kind, e.value) if e.found else default for e in resp.entries]

    async def mset(self, mapping: Mapping[KeyLike, Any], ttl: TtlLike | None = None) -> None:
        """Write every pair atomically: all of them or, on error, none."""
        ttl_ms = _ttl(ttl)
        entries = []
        for k, v in mapping.items():
            kind, data = encode_value(v)
            entries.append(m.Entry(key=_key(k), kind=kind, value=data, ttl_ms=ttl_ms))
        await self._call(Opcode.MSET, m.MSetRequest(entries).encode(), retry=False)

    async def scan(self, prefix: KeyLike = b"", count: int = 100, *, stale_ok: bool = False) -> AsyncIterator[str]:
        """Every key with `prefix`, in byte order, fetched `count` at a time."""
        p = _key(prefix)
        cursor = b""
        while True:
            body = await self._call(
                Opcode.SCAN, m.ScanRequest(p, cursor, count).encode(), retry=True, consistency=_consistency(stale_ok)
            )
            resp = m.ScanResponse.decode(body)
            for k in resp.keys:
                yield k.key.decode("utf-8", "surrogateescape")
            if not resp.next_cursor:
                return
            cursor = resp.next_cursor

    # -- admin -------------------------------------------------------------------------

    async def ping(self, payload: bytes = b"") -> bytes:
        body = await self._call(Opcode.PING, m.PingRequest(payload).encode(), retry=True)
        return m.PingResponse.decode(body).payload

    async def info(self, section: str | None = None) -> dict[str, Any]:
        body = await self._call(Opcode.INFO, m.InfoRequest(section or "").encode(), retry=True)
        result: dict[str, Any] = json.loads(m.InfoResponse.decode(body).json)
        return result

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
        other = VelocityPool(
            target, self.token, None, 1, insecure=self.insecure, server_name=self.server_name,
            timeout=self.timeout, client_name=self.client_name,
        )
        other._ssl = self._ssl
        async with other:
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
        own = VelocityPool(
            str(self.endpoint), self.token, None, 1, insecure=self.insecure, server_name=self.server_name,
            timeout=max(self.timeout, 15.0), client_name=self.client_name,
        )
        own._ssl = self._ssl
        async with own:
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
        return f"VelocityPool({self.endpoint}, pool_size={self.pool_size})"


def read_token_file(path: str | os.PathLike[str]) -> str:
    return Path(path).read_text().strip()
