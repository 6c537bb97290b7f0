"""Atomicity under real concurrency: many connections, many processes, exact totals."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from velocity import VelocityPool

from tests.support.engine_proc import EngineProcess

CLIENT = """
import asyncio, sys
from velocity import VelocityPool

async def main():
    port, ca, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    async with VelocityPool(node=f"vdb://127.0.0.1:{port}", auth=token, ca=ca, pool_size=4) as vdb:
        await asyncio.gather(*(vdb.incr("counter", 1) for _ in range(n)))
        await asyncio.gather(*(vdb.incr("counter:neg", -3) for _ in range(n)))

asyncio.run(main())
"""


def test_concurrent_incr_from_many_connections_gives_exact_totals(shared_engine: EngineProcess) -> None:
    clients, per_client, tasks = 16, 250, 8

    async def worker(vdb: VelocityPool) -> list[int]:
        seen: list[int] = []
        for _ in range(per_client // tasks):
            seen.extend(await asyncio.gather(*(vdb.incr("shared:counter") for _ in range(tasks))))
        return seen

    async def go() -> tuple[list[int], int]:
        pools = [shared_engine.pool() for _ in range(clients)]
        for p in pools:
            await p.connect()
        try:
            results = await asyncio.gather(*(worker(p) for p in pools))
            return [v for r in results for v in r], await pools[0].get("shared:counter")
        finally:
            for p in pools:
                await p.close()

    seen, final = asyncio.run(go())
    total = clients * (per_client // tasks) * tasks
    assert final == total
    # Every reply is a distinct value: no two increments observed the same state.
    assert sorted(seen) == list(range(1, total + 1))


def test_concurrent_incr_from_separate_processes(shared_engine: EngineProcess) -> None:
    procs, n = 4, 500
    args = [str(shared_engine.port), str(shared_engine.ca), shared_engine.token, str(n)]
    running = [subprocess.Popen([sys.executable, "-c", CLIENT, *args]) for _ in range(procs)]
    assert [p.wait(120) for p in running] == [0] * procs

    async def go() -> tuple[int, int]:
        async with shared_engine.pool() as vdb:
            return await vdb.get("counter"), await vdb.get("counter:neg")

    assert asyncio.run(go()) == (procs * n, -3 * procs * n)


def test_pipelined_replies_come_back_in_request_order(shared_engine: EngineProcess) -> None:
    async def go() -> list[object]:
        async with shared_engine.pool(pool_size=1) as vdb:
            writes = [vdb.set(f"order:{i}", i) for i in range(500)]
            reads = [vdb.get(f"order:{i}") for i in range(500)]
            await asyncio.gather(*writes)
            return list(await asyncio.gather(*reads))

    assert asyncio.run(go()) == list(range(500))
