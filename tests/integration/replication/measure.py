"""Replication figures on this machine: lag under load, sync-mode cost, failover and switchover times.

    .venv/bin/python -m tests.integration.replication.measure [--seconds 5] [--writers 16]

Real processes over real TLS, like the tests; prints a Markdown table
(docs/replication.md, "Measured"). Not a test: the numbers depend on the
machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from vproto.errors import NotEnoughReplicasError

from tests.integration.replication.cluster import Cluster, Node
from tests.support.engine_proc import wait_until


async def _load(node: Node, seconds: float, writers: int) -> tuple[int, list[float]]:
    """SETs of 64-byte values for `seconds`; returns (acknowledged, latencies in s)."""
    lat: list[float] = []
    done = 0
    end = time.monotonic() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        async with node.pool(pool_size=1) as vdb:
            i = 0
            while time.monotonic() < end:
                t = time.perf_counter()
                await vdb.set(f"m{w}:{i % 5000}", "x" * 64)
                lat.append(time.perf_counter() - t)
                done += 1
                i += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done, lat


def _sample_lag(primary: Node, stop: threading.Event, out: list[tuple[int, float]]) -> None:
    """The primary's view: batches written but not yet acknowledged by the replica, and their age."""
    while not stop.is_set():
        try:
            r = primary.repl()
            out.append((int(r["lag_records"]), float(r["lag_seconds"])))
        except Exception:  # a sample lost to a busy machine is not a result
            pass
        stop.wait(0.2)


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def run_mode(base: Path, mode: str, seconds: float, writers: int) -> dict[str, Any]:
    c = Cluster(base / mode)
    try:
        extra = ("--replication-mode", "sync") if mode.startswith("sync") else ()
        p = c.node("p", *extra)
        replicas = [] if mode == "none" else [c.node("r", *extra, "--replica-of", p.endpoint)]
        if replicas:
            wait_until(lambda: p.repl()["replicas_connected"] == 1, 15, what="replica")
        stop = threading.Event()
        lags: list[tuple[int, float]] = []
        sampler = threading.Thread(target=_sample_lag, args=(p, stop, lags)) if replicas else None
        if sampler:
            sampler.start()
        done, lat = asyncio.run(_load(p, seconds, writers))
        stop.set()
        if sampler:
            sampler.join()
        caught = 0.0
        if replicas:
            t0 = time.monotonic()
            c.wait_caught_up(p, *replicas)
            caught = time.monotonic() - t0
        return {
            "mode": mode, "ops": done / seconds, "p50_ms": _pct(lat, 0.5) * 1000, "p99_ms": _pct(lat, 0.99) * 1000,
            "lag_records_max": max((r for r, _ in lags), default=0),
            "lag_s_max": max((s for _, s in lags), default=0.0),
            "lag_records_median": statistics.median([r for r, _ in lags]) if lags else 0,
            "catch_up_s": caught,
        }
    finally:
        c.close()


def failover(base: Path) -> dict[str, float]:
    c = Cluster(base / "failover")
    try:
        sync = ("--replication-mode", "sync")
        p = c.node("p", *sync)
        r1 = c.node("r1", *sync, "--replica-of", p.endpoint)
        r2 = c.node("r2", *sync, "--replica-of", p.endpoint)
        wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="replicas")
        asyncio.run(_load(p, 1.0, 4))
        p.kill()

        async def promote_and_write() -> tuple[float, float]:
            t0 = time.monotonic()
            async with r1.admin_pool() as a, r2.admin_pool() as b:
                await a.promote()
                await b.replica_of(r1.endpoint)
                t1 = time.monotonic()
                while True:  # sync mode refuses writes until r2 has connected to the new primary
                    try:
                        await a.set("after", 1)
                        return t1 - t0, time.monotonic() - t0
                    except NotEnoughReplicasError:
                        await asyncio.sleep(0.01)

        promote_s, first_write_s = asyncio.run(promote_and_write())
        return {"promote_and_repoint_s": promote_s, "promote_to_first_sync_write_s": first_write_s}
    finally:
        c.close()


def switchover(base: Path) -> dict[str, float]:
    c = Cluster(base / "switchover")
    try:
        p = c.node("p")
        r1 = c.node("r1", "--replica-of", p.endpoint)
        c.node("r2", "--replica-of", p.endpoint)
        wait_until(lambda: p.repl()["replicas_connected"] == 2, 15, what="replicas")

        async def go() -> tuple[float, float]:
            gaps: list[float] = []
            stop = asyncio.Event()

            async def writer() -> None:
                async with p.pool(pool_size=1) as vdb:
                    last = time.monotonic()
                    while not stop.is_set():
                        await vdb.set("k", "v")
                        now = time.monotonic()
                        gaps.append(now - last)
                        last = now

            tasks = [asyncio.create_task(writer()) for _ in range(4)]
            await asyncio.sleep(1.0)
            async with p.admin_pool() as admin:
                _, _, pause = await admin.switchover(r1.endpoint)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*tasks)
            return pause, max(gaps)

        pause, worst_gap = asyncio.run(go())
        return {"fence_to_promoted_s": pause, "longest_write_gap_s": worst_gap}
    finally:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--writers", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        print("| replicas | mode | SET/s | p50 ms | p99 ms | max lag (batches) | median lag | max lag (s) "
              "| catch-up after load (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode in ("none", "async", "sync"):
            r = run_mode(base, mode, args.seconds, args.writers)
            print(f"| {0 if mode == 'none' else 1} | {'async' if mode == 'none' else mode} | {r['ops']:.0f} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['lag_records_max']} | {r['lag_records_median']} | "
                  f"{r['lag_s_max']:.3f} | {r['catch_up_s']:.2f} |", flush=True)
        f = failover(base)
        print(f"\nfailover (sync, kill -9 of the primary): PROMOTE + REPLICA_OF of the other replica "
              f"{f['promote_and_repoint_s'] * 1000:.0f} ms; first sync write acknowledged "
              f"{f['promote_to_first_sync_write_s'] * 1000:.0f} ms after the PROMOTE call", flush=True)
        s = switchover(base)
        print(f"planned switchover under load: writes refused for {s['fence_to_promoted_s'] * 1000:.0f} ms "
              f"(fence to promoted); longest gap between acknowledged writes {s['longest_write_gap_s'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
