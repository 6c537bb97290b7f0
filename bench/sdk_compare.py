#!/usr/bin/env python3
"""The Python SDK against redis-py, each against its own server, in one run on this machine.

    .venv/bin/python bench/sdk_compare.py [--seconds 3] [--json bench/results/sdk-compare.json]

Asyncio: VelocityPool (its default 4 pipelined connections) against redis.asyncio
with hiredis (its default: one connection per concurrent command), both on uvloop,
with 16 and 50 tasks, GET and SET of 64-byte values over 10,000 keys, unpipelined
(each task awaits one request at a time) and pipelined (each task sends 16 requests in
one pipeline and awaits them: `vdb.pipeline()`, redis-py's `pipeline(transaction=False)`).
Sync: velocity.Velocity against redis.Redis (hiredis), one thread, one request at a time.
Each over TLS 1.3 with a token (Redis: requirepass) and over plaintext. Durability
is comparable: the engine's WAL with appendfsync everysec, Redis with appendonly yes /
appendfsync everysec. Cells alternate between the two systems so that drift in machine
load hits both alike; each cell is a warm-up then `--seconds` of measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from velocity_bench.certs import make_test_certs

VENV_BIN = Path(sys.executable).parent
KEYS = 10_000
VALUE = b"x" * 64
PIPELINE = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    system: str
    tls: bool
    port: int
    token: str | None
    ca: Path | None


@contextmanager
def velocity_server(work: Path, tls: bool) -> Iterator[Server]:
    port, metrics = free_port(), free_port()
    data = work / f"velocity-{'tls' if tls else 'plain'}"
    cmd = [str(VENV_BIN / "velocity-engine"), "--data-dir", str(data), "--port", str(port),
           "--metrics-port", str(metrics), "--appendfsync", "everysec"]
    if not tls:
        cmd.append("--insecure")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDB_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        _wait(lambda: _http_ok(f"http://127.0.0.1:{metrics}/readyz"), proc)
        token = (data / "auth-token").read_text().strip() if tls else None
        yield Server("velocity", tls, port, token, data / "tls" / "ca.crt" if tls else None)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@contextmanager
def redis_server(work: Path, tls: bool) -> Iterator[Server]:
    port = free_port()
    data = work / f"redis-{'tls' if tls else 'plain'}"
    data.mkdir()
    cmd = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--dir", str(data), "--daemonize", "no",
           "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", ""]
    token, ca = None, None
    if tls:
        ca = make_test_certs(data / "tls")
        token = secrets.token_hex(16)
        cmd += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(data / "tls" / "tls.crt"),
                "--tls-key-file", str(data / "tls" / "tls.key"), "--tls-ca-cert-file", str(ca),
                "--tls-auth-clients", "no", "--tls-protocols", "TLSv1.3", "--requirepass", token]
    else:
        cmd += ["--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: _tcp_ok(port), proc)
        yield Server("redis", tls, port, token, ca)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server {proc.args!r} did not start")
        time.sleep(0.05)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _tcp_ok(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# -- clients -----------------------------------------------------------------------


def velocity_async(srv: Server) -> Any:
    from velocity import VelocityPool

    if srv.tls:
        return VelocityPool(f"vdb://127.0.0.1:{srv.port}", auth=srv.token, ca=srv.ca)
    return VelocityPool(f"vdb://127.0.0.1:{srv.port}", insecure=True)


def redis_async(srv: Server) -> Any:
    import redis.asyncio as aredis

    if srv.tls:
        return aredis.Redis(host="127.0.0.1", port=srv.port, password=srv.token, ssl=True,
                            ssl_ca_certs=str(srv.ca), ssl_check_hostname=False, max_connections=1000)
    return aredis.Redis(host="127.0.0.1", port=srv.port, max_connections=1000)


def velocity_sync(srv: Server) -> Any:
    from velocity import Velocity

    if srv.tls:
        return Velocity(f"vdb://127.0.0.1:{srv.port}", auth=srv.token, ca=srv.ca)
    return Velocity(f"vdb://127.0.0.1:{srv.port}", insecure=True)


def redis_sync(srv: Server) -> Any:
    import redis

    if srv.tls:
        return redis.Redis(host="127.0.0.1", port=srv.port, password=srv.token, ssl=True,
                           ssl_ca_certs=str(srv.ca), ssl_check_hostname=False)
    return redis.Redis(host="127.0.0.1", port=srv.port)


@dataclass
class Cell:
    system: str
    mode: str  # async / sync
    transport: str  # tls / plain
    op: str
    tasks: int
    pipeline: int
    ops_per_sec: float
    requests: int
    client_cpu: float


async def _async_cell(srv: Server, op: str, tasks: int, pipeline: int, seconds: float) -> tuple[int, float, float]:
    client = velocity_async(srv) if srv.system == "velocity" else redis_async(srv)
    if srv.system == "velocity":
        await client.connect()
    keys = [f"bench:{i:08d}" for i in range(KEYS)]
    stop = False
    count = 0

    async def one(i: int) -> None:
        k = keys[i % KEYS]
        if op == "get":
            await client.get(k)
        else:
            await client.set(k, VALUE)

    async def batch(i: int) -> None:
        pipe = client.pipeline() if srv.system == "velocity" else client.pipeline(transaction=False)
        for j in range(pipeline):
            if op == "get":
                pipe.get(keys[(i + j) % KEYS])
            else:
                pipe.set(keys[(i + j) % KEYS], VALUE)
        await pipe.execute()

    async def worker(w: int) -> None:
        nonlocal count
        i = w * 7919
        while not stop:
            if pipeline == 1:
                await one(i)
                i += 1
                count += 1
            else:
                await batch(i)
                i += pipeline
                count += pipeline

    async def run_for(duration: float) -> None:
        nonlocal stop
        stop = False
        workers = [asyncio.ensure_future(worker(w)) for w in range(tasks)]
        await asyncio.sleep(duration)
        stop = True
        await asyncio.gather(*workers)

    await run_for(0.5)  # warm-up
    count = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    await run_for(seconds)
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / elapsed
    await (client.close() if srv.system == "velocity" else client.aclose())
    return count, elapsed, cpu


def _sync_cell(srv: Server, op: str, seconds: float) -> tuple[int, float, float]:
    client = velocity_sync(srv) if srv.system == "velocity" else redis_sync(srv)
    keys = [f"bench:{i:08d}" for i in range(KEYS)]
    fn = client.get if op == "get" else (lambda k: client.set(k, VALUE))

    def run_for(duration: float) -> int:
        n = 0
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            for _ in range(100):
                fn(keys[n % KEYS])
                n += 1
        return n

    run_for(0.5)
    cpu0, t0 = time.process_time(), time.perf_counter()
    count = run_for(seconds)
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / elapsed
    client.close()
    return count, elapsed, cpu


def preload(srv: Server) -> None:
    """Every key exists before the GET cells, as in redis-benchmark's GET after SET."""
    client = velocity_sync(srv) if srv.system == "velocity" else redis_sync(srv)
    for i in range(0, KEYS, 1000):
        client.mset({f"bench:{j:08d}": VALUE for j in range(i, min(i + 1000, KEYS))})
    client.close()


def measure(servers: dict[tuple[str, bool], Server], seconds: float) -> list[Cell]:
    for srv in servers.values():
        preload(srv)
    cells: list[Cell] = []
    plan: list[tuple[str, bool, str, int, int]] = []
    for tls in (True, False):
        for op in ("get", "set"):
            for tasks in (16, 50):
                for pipeline in (1, PIPELINE):
                    plan.append(("async", tls, op, tasks, pipeline))
            plan.append(("sync", tls, op, 1, 1))
    for mode, tls, op, tasks, pipeline in plan:
        for system in ("velocity", "redis"):
            srv = servers[(system, tls)]
            if mode == "async":
                count, elapsed, cpu = uvloop.run(_async_cell(srv, op, tasks, pipeline, seconds))
            else:
                count, elapsed, cpu = _sync_cell(srv, op, seconds)
            cell = Cell(system, mode, "tls" if tls else "plain", op, tasks, pipeline, round(count / elapsed),
                        count, round(cpu, 2))
            cells.append(cell)
            print(f"{mode:5} {cell.transport:5} {op:3} tasks={tasks:<2} P={pipeline:<2} {system:8} "
                  f"{cell.ops_per_sec:>8,} ops/s  client CPU {cpu:.0%}", file=sys.stderr, flush=True)
    return cells


def table(cells: list[Cell]) -> str:
    rows = ["| mode | transport | op | tasks | P | velocity ops/s | redis-py ops/s | velocity / redis |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    by = {(c.system, c.mode, c.transport, c.op, c.tasks, c.pipeline): c for c in cells}
    for c in cells:
        if c.system != "velocity":
            continue
        r = by[("redis", c.mode, c.transport, c.op, c.tasks, c.pipeline)]
        rows.append(f"| {c.mode} | {c.transport} | {c.op.upper()} | {c.tasks} | {c.pipeline} | "
                    f"{c.ops_per_sec:,} | {r.ops_per_sec:,} | {c.ops_per_sec / r.ops_per_sec:.2f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="Measurement per cell (after a 0.5 s warm-up).")
    ap.add_argument("--json", type=Path, help="Also write the cells and the machine to this file.")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install -y redis-server)", file=sys.stderr)
        return 2
    import redis

    with tempfile.TemporaryDirectory(prefix="sdk-compare-") as tmp:
        work = Path(tmp)
        with velocity_server(work, True) as vt, velocity_server(work, False) as vp, \
                redis_server(work, True) as rt, redis_server(work, False) as rp:
            servers = {("velocity", True): vt, ("velocity", False): vp, ("redis", True): rt, ("redis", False): rp}
            cells = measure(servers, args.seconds)
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "redis_py": redis.__version__,
               "redis_server": redis_version, "load_avg_after": os.getloadavg()}
    print(table(cells))
    print(f"\nmachine: {json.dumps(machine)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "cells": [asdict(c) for c in cells]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
