"""The load loop behind `velocityctl bench`.

It is a Python client, so it measures the server and this SDK together. It
runs on uvloop and writes each batch in one system call; it also measures its
own CPU time, and a result whose client process used over CLIENT_BOUND of a
core says so (`client_bound`): the server could do more than shown. bench/ has
a native load generator (vbench) and the Velocity-vs-Redis comparison.

Ctrl-C (SIGINT) stops the run: every connection finishes the batch it has in
flight, and the operation's row reports what was measured (`interrupted`).

Load shape, as redis-benchmark: every connection writes a batch of
`pipeline` requests, then awaits all their replies; a request's latency runs
from the batch being written to its own reply. Keys are drawn uniformly from
`keyspace` keys (`bench:NNNNNNNN`; INCR uses `bench:ctr:NNNNNNNN` so that it
never meets a SET value that is not an integer).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import click
from vproto import fastcodec as fc
from vproto.frame import Opcode

from velocity.connection import Connection
from velocity.pool import VelocityPool

OPCODES = {"get": Opcode.GET, "set": Opcode.SET, "incr": Opcode.INCR}
_PROGRESS_EVERY_S = 0.1  # redraw the bar at most this often: drawing costs as much as requests
CLIENT_BOUND = 0.85  # share of one core used by this process above which results are client-bound


@dataclass
class BenchResult:
    op: str
    requests: int
    errors: int
    seconds: float
    ops_per_sec: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    client_cpu: float  # this process's CPU time / wall time during the run
    client_bound: bool
    interrupted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of an ascending list; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_bench(
    pool: VelocityPool,
    ops: list[str],
    requests: int,
    connections: int,
    pipeline: int,
    data_size: int,
    keyspace: int,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run each op in `ops` in turn over `connections` connections of `pool`; closes the pool.
    One dict per op (BenchResult's fields), as `velocityctl bench --json` prints them."""
    await pool.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread: no Ctrl-C handling
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        conns: list[Connection] = [await pool._conn(i) for i in range(connections)]
        value = b"x" * data_size
        results = []
        for op in ops:
            results.append((await _one(conns, op, requests, pipeline, value, keyspace, progress, stop)).as_dict())
            if stop.is_set():
                break
        return results
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        await pool.close()


async def _one(
    conns: list[Connection], op: str, requests: int, pipeline: int, value: bytes, keyspace: int, progress: bool,
    stop: asyncio.Event,
) -> BenchResult:
    opcode = OPCODES[op]
    rnd = random.Random(42)
    # Request bodies are built before timing starts: the loop below only sends them.
    if op == "set":
        bodies = [fc.encode_set_request(b"bench:%08d" % i, value) for i in range(keyspace)]
    elif op == "incr":
        bodies = [fc.encode_key_request(b"bench:ctr:%08d" % i) for i in range(keyspace)]  # INCR by 1
    else:
        bodies = [fc.encode_key_request(b"bench:%08d" % i) for i in range(keyspace)]
    latencies: list[float] = []
    errors = 0
    remaining = requests
    done = 0
    bar = click.progressbar(length=requests, label=f"{op.upper():5}", file=sys.stderr) if progress else None
    shown = 0
    last_draw = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal remaining, errors, done, shown, last_draw
        clock = time.perf_counter
        while remaining > 0 and not stop.is_set():
            batch = min(pipeline, remaining)
            remaining -= batch
            t0 = clock()
            futs = [conn.send(opcode, bodies[rnd.randrange(keyspace)]) for _ in range(batch)]
            for fut in futs:
                rop, _, _ = await fut
                latencies.append(clock() - t0)
                if rop != opcode | 0x80:  # an ERROR frame (or anything unexpected)
                    errors += 1
            done += batch
            if bar is not None and clock() - last_draw >= _PROGRESS_EVERY_S:
                bar.update(done - shown)
                shown, last_draw = done, clock()

    cpu_start = time.process_time()
    t_start = time.perf_counter()
    if bar is not None:
        with bar:
            await asyncio.gather(*(worker(c) for c in conns))
            bar.update(done - shown)
    else:
        await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t_start
    cpu = (time.process_time() - cpu_start) / elapsed if elapsed else 0.0
    latencies.sort()
    return BenchResult(
        op=op,
        requests=done,
        errors=errors,
        seconds=round(elapsed, 3),
        ops_per_sec=done / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        p999_ms=percentile(latencies, 0.999) * 1000,
        client_cpu=round(cpu, 3),
        client_bound=cpu >= CLIENT_BOUND,
        interrupted=stop.is_set() and done < requests,
    )
