"""Pipelines: many commands in one write, their replies read together (redis-py's
`pipeline(transaction=False)`).

    async with vdb.pipeline() as pipe:          # VelocityPool
        pipe.get("a").incr("hits").set("b", 1)
        a, hits, written = await pipe.execute()

    with vdb.pipeline() as pipe:                # Velocity (sync)
        pipe.get("a").incr("hits")
        a, hits = pipe.execute()

Not a transaction: other clients' commands may run between these. The commands go
out on one connection in order and are answered in order, so one pipeline costs one
round trip and, on each side, one system call per direction instead of one per
command. The whole batch has one deadline (`timeout`). A batch of reads only is
retried after a broken connection like a single read; a batch with a write raises
UnknownOutcomeError. A command answered with REDIRECT (sent to a replica) was not
executed and is re-sent alone to the primary. With `raise_on_error` (the default)
the first failed command's error is raised after every reply is in; otherwise its
exception object takes its place in the result list.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from vproto.errors import RedirectError, VelocityError

from velocity import commands as _c
from velocity.commands import KeyLike, KeyMapping
from velocity.connection import reply_body
from velocity.durations import TtlLike
from velocity.errors import ConnectionClosedError, ConnectionError, TimeoutError, UnknownOutcomeError, WriteTimeoutError

if TYPE_CHECKING:
    from velocity.client import Velocity
    from velocity.pool import VelocityPool

__all__ = ["AsyncPipeline", "Pipeline"]


class _Commands:
    """The queueing methods both pipelines share; each returns the pipeline, for chaining."""

    def __init__(self) -> None:
        self._cmds: list[_c.Cmd[Any]] = []

    def __len__(self) -> int:
        return len(self._cmds)

    def _add(self, cmd: _c.Cmd[Any]) -> Self:
        self._cmds.append(cmd)
        return self

    def get(self, key: KeyLike, default: Any = None, *, stale_ok: bool = False) -> Self:
        """Queue GET (see the client's `get`)."""
        return self._add(_c.get(key, default, stale_ok))

    def set(self, key: KeyLike, value: Any, ttl: TtlLike | None = None, *, nx: bool = False, xx: bool = False) -> Self:
        """Queue SET (see the client's `set`)."""
        return self._add(_c.set_(key, value, ttl, nx, xx))

    def delete(self, key: KeyLike) -> Self:
        """Queue DEL."""
        return self._add(_c.delete(key))

    def exists(self, key: KeyLike) -> Self:
        """Queue EXISTS."""
        return self._add(_c.exists(key))

    def incr(self, key: KeyLike, by: int = 1) -> Self:
        """Queue INCR by `by`."""
        return self._add(_c.incr(key, by))

    def decr(self, key: KeyLike, by: int = 1) -> Self:
        """Queue INCR by `-by`."""
        return self._add(_c.incr(key, -by))

    def expire(self, key: KeyLike, ttl: TtlLike) -> Self:
        """Queue EXPIRE."""
        return self._add(_c.expire(key, ttl))

    def persist(self, key: KeyLike) -> Self:
        """Queue PERSIST."""
        return self._add(_c.persist(key))

    def pttl(self, key: KeyLike) -> Self:
        """Queue TTL in milliseconds (-1 no expiry, -2 missing)."""
        return self._add(_c.pttl(key))

    def cas(self, key: KeyLike, expected: Any, value: Any, ttl: TtlLike | None = None) -> Self:
        """Queue a compare-and-set."""
        return self._add(_c.cas(key, expected, value, ttl))

    def mget(self, keys: Iterable[KeyLike], default: Any = None, *, stale_ok: bool = False) -> Self:
        """Queue MGET; its result is a list."""
        return self._add(_c.mget(keys, default, stale_ok))

    def mset(self, mapping: KeyMapping, ttl: TtlLike | None = None) -> Self:
        """Queue an atomic MSET; its result is None."""
        return self._add(_c.mset(mapping, ttl))


def _expire_all(futs: list[Any]) -> None:
    from velocity.pool import _expire

    for f in futs:
        _expire(f)


def _decode(cmd: _c.Cmd[Any], frame: tuple[int, int, bytes]) -> Any:
    rop, flags, body = frame
    return cmd.decode(reply_body(cmd.opcode, rop, flags, body))


class AsyncPipeline(_Commands):
    """A batch of commands for a VelocityPool; `await execute()` sends them and returns the results."""

    def __init__(self, pool: VelocityPool, raise_on_error: bool = True) -> None:
        super().__init__()
        self._pool = pool
        self.raise_on_error = raise_on_error

    async def execute(self) -> list[Any]:
        """Send the queued commands in one write; their results, in order. The queue is emptied."""
        import asyncio

        from velocity.pool import _Expired

        cmds, self._cmds = self._cmds, []
        if not cmds:
            return []
        pool = self._pool
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool.timeout
        reads_only = all(c.read for c in cmds)
        failures = 0
        while True:
            i = pool._next
            pool._next = (i + 1) % pool.pool_size
            try:
                conn = await pool._conn(i, deadline)
                futs = [conn.send(c.opcode, c.body, c.consistency) for c in cmds]
            except TimeoutError:
                raise
            except (ConnectionError, OSError) as exc:  # nothing was sent
                failures += 1
                await pool._backoff(exc, failures, deadline)
                continue
            timer = loop.call_later(max(0.0, deadline - loop.time()), _expire_all, futs)
            try:
                frames = [await f for f in futs]
            except _Expired:
                what = f"pipeline of {len(cmds)} to {conn.endpoint} not answered within {pool.timeout:g}s (timeout)"
                if reads_only:
                    raise TimeoutError(what) from None
                raise WriteTimeoutError(f"{what}; its writes may have been applied") from None
            except ConnectionClosedError as exc:
                if not reads_only:
                    raise UnknownOutcomeError(f"{exc} after a pipeline with writes was sent; they may have been "
                                              "applied") from None
                failures += 1
                await pool._backoff(exc, failures, deadline)
                continue
            finally:
                timer.cancel()
            break
        results: list[Any] = []
        for cmd, frame in zip(cmds, frames, strict=True):
            try:
                results.append(_decode(cmd, frame))
            except RedirectError:
                try:
                    results.append(await pool._run(cmd))  # not executed there: send it to the primary
                except VelocityError as exc:
                    results.append(exc)
            except VelocityError as exc:
                results.append(exc)
        return _finish(results, self.raise_on_error)

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cmds = []  # commands not executed are dropped, as in redis-py


class Pipeline(_Commands):
    """A batch of commands for a Velocity (sync) client; `execute()` sends them and returns the results."""

    def __init__(self, client: Velocity, raise_on_error: bool = True) -> None:
        super().__init__()
        self._client = client
        self.raise_on_error = raise_on_error

    def execute(self) -> list[Any]:
        """Send the queued commands in one write; their results, in order. The queue is emptied."""
        from velocity.client import _Expired

        cmds, self._cmds = self._cmds, []
        if not cmds:
            return []
        client = self._client
        deadline = time.monotonic() + client.timeout
        reads_only = all(c.read for c in cmds)
        failures = 0
        while True:
            try:
                conn = client._checkout(deadline)
            except TimeoutError:
                raise
            except ConnectionError as exc:
                failures += 1
                client._backoff(exc, failures, deadline)
                continue
            try:
                frames = conn.roundtrips(cmds, deadline)
            except _Expired:
                conn.close()
                what = f"pipeline of {len(cmds)} to {conn.endpoint} not answered within {client.timeout:g}s (timeout)"
                if reads_only:
                    raise TimeoutError(what) from None
                raise WriteTimeoutError(f"{what}; its writes may have been applied") from None
            except ConnectionClosedError as exc:
                conn.close()
                if not reads_only:
                    raise UnknownOutcomeError(f"{exc} after a pipeline with writes was sent; they may have been "
                                              "applied") from None
                failures += 1
                client._backoff(exc, failures, deadline)
                continue
            except BaseException:
                conn.close()
                raise
            client._checkin(conn)
            break
        results: list[Any] = []
        for cmd, frame in zip(cmds, frames, strict=True):
            try:
                results.append(_decode(cmd, frame))
            except RedirectError:
                try:
                    results.append(client._run(cmd))
                except VelocityError as exc:
                    results.append(exc)
            except VelocityError as exc:
                results.append(exc)
        return _finish(results, self.raise_on_error)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._cmds = []


def _finish(results: list[Any], raise_on_error: bool) -> list[Any]:
    if raise_on_error:
        for r in results:
            if isinstance(r, VelocityError):
                raise r
    return results
