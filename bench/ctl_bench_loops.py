#!/usr/bin/env python3
"""Why `velocityctl bench` was slower than the SDK: the same load loop on asyncio's default
event loop (what velocityctl used) and on uvloop (what it uses now), and the SDK's own
request path (16 tasks over the default 4-connection pool), alternated in one run.

    .venv/bin/python bench/ctl_bench_loops.py --endpoint vdb://127.0.0.1:2005 --ca CA --token-file FILE

Prints ops/s and the client process's CPU share per run (1.0 = one full core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from velocity import VelocityPool
from velocity.bench import run_bench


def pool(args: argparse.Namespace, size: int) -> VelocityPool:
    if args.insecure:
        return VelocityPool(args.endpoint, insecure=True, pool_size=size)
    return VelocityPool(args.endpoint, ca=args.ca, token_file=args.token_file, pool_size=size)


async def ctl_bench(args: argparse.Namespace, op: str, pipeline: int) -> dict[str, Any]:
    rows = await run_bench(pool(args, 50), [op], args.requests, 50, pipeline, 64, 10_000, progress=False)
    return {"ops_per_sec": rows[0]["ops_per_sec"], "client_cpu": rows[0]["client_cpu"]}


async def sdk_tasks(args: argparse.Namespace, op: str, pipeline: int) -> dict[str, Any]:
    keys = [f"bench:{i:08d}" for i in range(10_000)]
    value = b"x" * 64
    per_task = args.requests // 16
    async with pool(args, 4) as vdb:

        async def task(t: int) -> None:
            for i in range(per_task):
                k = keys[(t * 7919 + i) % len(keys)]
                await (vdb.get(k) if op == "get" else vdb.set(k, value))

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(task(t) for t in range(16)))
        elapsed = time.perf_counter() - t0
    return {"ops_per_sec": per_task * 16 / elapsed, "client_cpu": round((time.process_time() - cpu0) / elapsed, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--token-file")
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    runners: dict[str, Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]] = {
        "asyncio": asyncio.run, "uvloop": uvloop.run,
    }
    results: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for op in ("get", "set"):
            for what, pipeline in (("velocityctl bench -c 50 -P 1", 1), ("velocityctl bench -c 50 -P 16", 16),
                                   ("SDK, 16 tasks", 1)):
                for loop_name, runner in runners.items():
                    fn = ctl_bench if what.startswith("velocityctl") else sdk_tasks
                    r = runner(fn(args, op, pipeline))
                    row = {"round": rnd, "op": op, "load": what, "loop": loop_name, **r}
                    results.append(row)
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
