#!/usr/bin/env python3
"""Interleaved A/B of two builds of the native data plane (LSM storage), CPU per operation.

    bench/native_ab.py --a /tmp/base --b "" --rounds 3 --fsync everysec,always

Each label is a PYTHONPATH holding a `velocity_engine` package (with its `_core` library);
"" is the working tree's. Every round starts each build in turn (fresh data directory,
pinned to CPU 0, vbench on CPU 1, 50 connections, 64-byte values, 100,000 keys; a SET
pass fills the keyspace first), runs SET, GET and INCR at P=1 and P=16, and reads the
server's CPU time from /proc/PID/task/*/schedstat (nanoseconds, every thread, the
background ones listed apart). Prints ops/s and server CPU us/op per cell and the
medians over the rounds. Noisy machines: compare only numbers of the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

from native_engine import VBENCH, cpu_ns, pinned_engine


def run_build(label: str, path: str, fsync: str, n: int, tests: list[str], pipes: list[int]) -> dict:
    out = {}
    with pinned_engine("--appendfsync", fsync, pythonpath=path) as eng:
        vb = ["taskset", "-c", "1", str(VBENCH), "-p", str(eng.port), "-c", "50", "-r", "100000", "-d", "64"]
        subprocess.run([*vb, "-P", "16", "-n", "200000", "-t", "set", "-q"], check=True, stdout=subprocess.DEVNULL)
        for p in pipes:
            for t in tests:
                c0 = cpu_ns(eng.pid)
                r = subprocess.run(
                    [*vb, "-P", str(p), "-n", str(n), "-t", t, "-json", "-"], check=True, capture_output=True, text=True
                )
                c1 = cpu_ns(eng.pid)
                d = json.loads(r.stdout)["tests"][0]
                ops = d.get("completed") or n
                out[f"{t} P={p}"] = {
                    "ops": d["ops_per_sec"],
                    "us": (c1[0] - c0[0] + c1[1] - c0[1]) / 1000 / ops,
                    "bg_us": (c1[1] - c0[1]) / 1000 / ops,
                }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default="", help="PYTHONPATH of build A")
    ap.add_argument("--b", default="", help="PYTHONPATH of build B")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--fsync", default="everysec")
    ap.add_argument("--tests", default="set,get,incr")
    ap.add_argument("--pipelines", default="1,16")
    a = ap.parse_args()
    tests, pipes = a.tests.split(","), [int(x) for x in a.pipelines.split(",")]
    for fsync in a.fsync.split(","):
        res: dict[str, list[dict]] = {"A": [], "B": []}
        for i in range(a.rounds):
            order = [("A", a.a), ("B", a.b)] if i % 2 == 0 else [("B", a.b), ("A", a.a)]
            for label, path in order:
                r = run_build(label, path, fsync, a.n, tests, pipes)
                res[label].append(r)
                print(
                    f"[{fsync} round {i} {label}] "
                    + "  ".join(f"{k}: {v['ops']:.0f}/s {v['us']:.2f}us (bg {v['bg_us']:.2f})" for k, v in r.items()),
                    flush=True,
                )
        print(f"\n== {fsync}: medians over {a.rounds} rounds (A = {a.a or 'tree'}, B = {a.b or 'tree'})")
        print(
            f"{'cell':<12} {'A ops/s':>10} {'B ops/s':>10} {'B/A':>6} {'A us/op':>8} {'B us/op':>8} {'B/A':>6}"
            f" {'A bg':>6} {'B bg':>6}"
        )
        for cell in res["A"][0]:
            med = {k: {m: statistics.median(r[cell][m] for r in res[k]) for m in ("ops", "us", "bg_us")} for k in res}
            A, B = med["A"], med["B"]
            print(
                f"{cell:<12} {A['ops']:>10.0f} {B['ops']:>10.0f} {B['ops'] / A['ops']:>6.2f} {A['us']:>8.2f}"
                f" {B['us']:>8.2f} {B['us'] / A['us']:>6.2f} {A['bg_us']:>6.2f} {B['bg_us']:>6.2f}"
            )


if __name__ == "__main__":
    main()
