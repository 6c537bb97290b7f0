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
import contextlib
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VBENCH = REPO / "bench/.build/vbench"
ENGINE = REPO / ".venv/bin/velocity-engine"


def threads(pid: int) -> dict[int, str]:
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(t.name)] = (t / "comm").read_text().strip()
    return out


def cpu_ns(pid: int) -> tuple[int, int]:
    fg = bg = 0
    for tid, comm in threads(pid).items():
        try:
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue
        if comm in ("vlsm-flush", "vlsm-compact"):
            bg += ns
        else:
            fg += ns
    return fg, bg


def run(variant: str, n: int) -> dict:
    data = tempfile.mkdtemp(prefix="native-nice-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        "taskset",
        "-c",
        "0",
        str(ENGINE),
        "--data-plane",
        "native",
        "--insecure",
        "--storage",
        "lsm",
        "--appendfsync",
        "everysec",
        "--memtable-bytes",
        str(4 << 20),
        "--data-dir",
        data,
        "--port",
        str(port),
        "--metrics-port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if variant == "same":
            base = os.getpriority(os.PRIO_PROCESS, proc.pid)
            for tid, comm in threads(proc.pid).items():
                if comm in ("vlsm-flush", "vlsm-compact"):
                    os.setpriority(os.PRIO_PROCESS, tid, base)
        c0 = cpu_ns(proc.pid)
        r = subprocess.run(
            [
                "taskset",
                "-c",
                "1",
                str(VBENCH),
                "-p",
                str(port),
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
        c1 = cpu_ns(proc.pid)
        d = json.loads(r.stdout)["tests"][0]
        done = d.get("completed") or n
        return {
            "ops": d["ops_per_sec"],
            "p99": d["latency_ms"]["p99"],
            "p999": d["latency_ms"]["p999"],
            "fg_us": (c1[0] - c0[0]) / 1000 / done,
            "bg_us": (c1[1] - c0[1]) / 1000 / done,
        }
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run(["rm", "-rf", data])


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
