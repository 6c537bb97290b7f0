#!/usr/bin/env python3
"""Does running velocity-lsm's flush and compaction threads at a lower priority help?

    bench/native_nice_ab.py --rounds 3

One build (the working tree), two variants interleaved: "nice" as shipped (the
background threads at +10, background.rs BACKGROUND_NICE) and "same" (the harness
renices them back to the process's priority after start-up). The server is pinned to
CPU 0 with a 4 MiB memtable so that pipelined SETs flush every ~20,000 writes; vbench
on CPU 1 sends SETs at P=16 (50 connections, 64-byte values, 100,000 keys). Reports
ops/s, p99 / p99.9 and the CPU of the worker and of the background threads per op.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess

from native_engine import BACKGROUND, VBENCH, cpu_ns, pinned_engine, threads


def run(variant: str, n: int) -> dict:
    with pinned_engine("--appendfsync", "everysec", "--memtable-bytes", str(4 << 20)) as eng:
        if variant == "same":
            base = os.getpriority(os.PRIO_PROCESS, eng.pid)
            for tid, comm in threads(eng.pid).items():
                if comm in BACKGROUND:
                    os.setpriority(os.PRIO_PROCESS, tid, base)
        c0 = cpu_ns(eng.pid)
        r = subprocess.run(
            [
                "taskset",
                "-c",
                "1",
                str(VBENCH),
                "-p",
                str(eng.port),
                "-c",
                "50",
                "-r",
                "100000",
                "-d",
                "64",
                "-P",
                "16",
                "-n",
                str(n),
                "-t",
                "set",
                "-json",
                "-",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        c1 = cpu_ns(eng.pid)
        d = json.loads(r.stdout)["tests"][0]
        done = d.get("completed") or n
        return {
            "ops": d["ops_per_sec"],
            "p99": d["latency_ms"]["p99"],
            "p999": d["latency_ms"]["p999"],
            "fg_us": (c1[0] - c0[0]) / 1000 / done,
            "bg_us": (c1[1] - c0[1]) / 1000 / done,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=200_000)
    a = ap.parse_args()
    res: dict[str, list[dict]] = {"nice": [], "same": []}
    for i in range(a.rounds):
        for v in ("nice", "same") if i % 2 == 0 else ("same", "nice"):
            r = run(v, a.n)
            res[v].append(r)
            print(f"[round {i} {v}] " + " ".join(f"{k}={x:.2f}" for k, x in r.items()), flush=True)
    print(f"\nmedians over {a.rounds} rounds, SET P=16, 4 MiB memtable")
    for v, rs in res.items():
        print(v.ljust(5), " ".join(f"{k}={statistics.median(r[k] for r in rs):.2f}" for k in rs[0]))


if __name__ == "__main__":
    main()
