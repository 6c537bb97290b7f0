"""Drive a steady, mixed load into a live engine with the Python SDK, from a thread.

Every request opcode the dashboards break down by is exercised, and one request in a
while is a deliberate WRONG_TYPE (INCR on a JSON value) so the error panels have data.
Values are a few hundred bytes and some GETs miss, so a small memtable flushes, tables
compact and bloom filters answer: every storage panel has something to show.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from vproto.errors import WrongTypeError


class LoadDriver:
    """Runs `workers` SDK loops against `pool_factory()` until the context exits.

    `ops` and `wrong_type` count completed requests and provoked errors; `failure`
    holds an unexpected exception, which `__exit__` re-raises so a broken load is never
    mistaken for a quiet engine.
    """

    def __init__(self, pool_factory: Any, workers: int = 4) -> None:
        self.pool_factory = pool_factory
        self.workers = workers
        self.ops = 0
        self.wrong_type = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="velocity-load", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by __exit__ / check()
            self.failure = e

    async def _main(self) -> None:
        async with self.pool_factory() as vdb:
            await vdb.set("load:json", {"kind": "json"})
            await asyncio.gather(*(self._worker(vdb, w) for w in range(self.workers)))

    async def _worker(self, vdb: Any, w: int) -> None:
        i = 0
        while not self._stop.is_set():
            key = f"load:{w}:{i % 4096}"  # enough distinct keys to fill a memtable
            await vdb.set(key, f"value-{i}-" + "x" * 200, ttl="1h")
            await vdb.get(key)
            await vdb.get(f"load:missing:{w}:{i}")  # absent everywhere: exercises the bloom filters
            await vdb.exists(key)
            await vdb.incr(f"load:counter:{w}")
            await vdb.mset({f"load:m:{w}:{j}": j for j in range(4)})
            await vdb.mget([f"load:m:{w}:{j}" for j in range(4)])
            await vdb.expire(key, 3600)
            await vdb.ttl(key)
            await vdb.persist(key)
            await vdb.cas(key, f"value-{i}-" + "x" * 200, f"value-{i + 1}")
            await vdb.delete(f"load:m:{w}:0")
            self.ops += 12
            if i % 16 == 0:
                seen = 0
                async for _ in vdb.scan(f"load:{w}:", count=16):
                    seen += 1
                    if seen == 16:  # one page is enough to exercise SCAN
                        break
                await vdb.ping()
                await vdb.info()
                try:
                    await vdb.incr("load:json")
                except WrongTypeError:
                    self.wrong_type += 1
            i += 1

    def check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"load driver failed: {self.failure!r}") from self.failure

    def __enter__(self) -> LoadDriver:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(30)
        if et is None:
            self.check()
