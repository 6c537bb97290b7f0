"""The load loop behind `velocityctl bench` (a Python client, so it measures
the server and this SDK together; bench/ has a native load generator)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import click
from vproto import fastcodec as fc
from vproto.frame import Opcode

from velocity.connection import Connection
from velocity.pool import VelocityPool


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[i]


async def run_bench(pool: VelocityPool, ops: list[str], requests: int, connections: int, pipeline: int,
                    data_size: int, keyspace: int, progress: bool = True) -> list[dict[str, Any]]:
    await pool.connect()
    conns: list[Connection] = [await pool._conn(i) for i in range(connections)]
    value = b"x" * data_size
    results = []
    try:
        for op in ops:
            results.append(await _one(conns, op, requests, pipeline, value, keyspace, progress))
    finally:
        await pool.close()
    return results


async def _one(conns: list[Connection], op: str, requests: int, pipeline: int, value: bytes, keyspace: int,
               progress: bool) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    done = 0
    rnd = random.Random(42)
    keys = [f"bench:{i:08d}".encode() for i in range(keyspace)]
    opcode = {"get": Opcode.GET, "set": Opcode.SET, "incr": Opcode.INCR}[op]

    def body() -> bytes:
        k = keys[rnd.randrange(keyspace)]
        if op == "set":
            return fc.encode_set_request(k, value)
        if op == "incr":
            return fc.encode_incr_request(k.replace(b"bench:", b"bench:ctr:"), 1)
        return fc.encode_key_request(k)

    bar = click.progressbar(length=requests, label=f"{op.upper():5}", file=None) if progress else None

    async def worker(conn: Connection) -> None:
        nonlocal remaining, errors, done
        while remaining > 0:
            batch = min(pipeline, remaining)
            remaining -= batch
            t0 = time.perf_counter()
            futs = [conn.send(opcode, body()) for _ in range(batch)]
            for fut in futs:
                rop, _, _ = await fut
                latencies.append(time.perf_counter() - t0)
                if rop == Opcode.ERROR:
                    errors += 1
            done += batch
            if bar is not None:
                bar.update(batch)

    t_start = time.perf_counter()
    if bar is not None:
        with bar:
            await asyncio.gather(*(worker(c) for c in conns))
    else:
        await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t_start
    latencies.sort()
    return {
        "op": op,
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "ops_per_sec": done / elapsed if elapsed else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "p999_ms": _percentile(latencies, 0.999) * 1000,
    }
