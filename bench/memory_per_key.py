"""Resident memory per key: the native engine (--storage memory) against redis-server.

Both servers get the same keys from the same tool: `bench/.build/vbench -t set -r KEYS
-n N -P 16 -c 50 --seed S` writes random keys `key:%012d` from [0, KEYS) with the same
sequence on both (same seed, connections and pipeline), so both hold the same key set
(DBSIZE says how many). RSS is VmRSS of the server process from /proc, read before the
load (empty process) and after it; the per-key figure is (after - empty) / keys. Run:

    .venv/bin/python bench/memory_per_key.py [--keys 1000000] [--value 64] [--requests 10000000]

Prints a Markdown table and the raw figures as JSON. Needs `make install native vbench`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VBENCH = ROOT / "bench" / ".build" / "vbench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)  # polling a port that is not open yet; no event to wait on
    raise RuntimeError(f"port {port} did not open in {timeout} s")


def settle(pid: int) -> dict[str, int]:
    """RSS once it stopped moving (allocators return memory lazily): three equal reads."""
    last: dict[str, int] = {}
    same = 0
    for _ in range(50):
        now = status(pid)
        same = same + 1 if now.get("VmRSS") == last.get("VmRSS") else 0
        if same >= 2:
            return now
        last = now
        time.sleep(0.2)  # sampling, not synchronisation
    return last


def load(port: int, args: argparse.Namespace, proto: str) -> dict[str, object]:
    cmd = [
        str(VBENCH),
        "-p",
        str(port),
        "-t",
        "set",
        "-r",
        str(args.keys),
        "-n",
        str(args.requests),
        "-P",
        "16",
        "-c",
        "50",
        "-d",
        str(args.value),
        "--seed",
        "7",
        "--json",
        "-",
        "-q",
        "--duration",
        "600s",
    ]
    if proto == "resp":
        cmd += ["--proto", "resp"]
    else:
        cmd += ["--insecure"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, object] = json.loads(out)["tests"][0]
    return result


def dbsize(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def measure(name: str, cmd: list[str], port: int, args: argparse.Namespace, proto: str) -> dict[str, object]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc)
        empty = settle(proc.pid)
        res = load(port, args, proto)
        full = settle(proc.pid)
        keys = dbsize(port) if proto == "resp" else None
        return {
            "server": name,
            "pid": proc.pid,
            "empty_kb": empty,
            "loaded_kb": full,
            "keys": keys,
            "vbench": {k: res[k] for k in ("completed", "ops_per_sec", "error_replies")},
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000, help="keyspace of the random SETs")
    p.add_argument("--value", type=int, default=64, help="value size in bytes")
    p.add_argument("--requests", type=int, default=10_000_000, help="SETs (10x keys covers ~99.995%%)")
    args = p.parse_args()
    if not VBENCH.exists():
        sys.exit("bench/.build/vbench is missing: make vbench")
    tmp = Path(tempfile.mkdtemp(prefix="vmem-"))
    results = []
    try:
        rport = free_port()
        results.append(
            measure(
                "redis-server",
                ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                rport,
                args,
                "resp",
            )
        )
        vport = free_port()
        engine = ROOT / ".venv" / "bin" / "velocity-engine"
        results.append(
            measure(
                "velocity native",
                [
                    str(engine),
                    "--data-dir",
                    str(tmp / "v"),
                    "--port",
                    str(vport),
                    "--metrics-port",
                    str(free_port()),
                    "--insecure",
                    "--storage",
                    "memory",
                    "--data-plane",
                    "native",
                ],
                vport,
                args,
                "vproto",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = results[0]["keys"]
    print(f"keys: {keys} (DBSIZE of Redis; Velocity got the same SET sequence: vbench --seed 7)")
    print("| server | empty RSS MiB | loaded RSS MiB | of it anon MiB | bytes per key (loaded - empty) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        e, f = r["empty_kb"], r["loaded_kb"]
        assert isinstance(e, dict) and isinstance(f, dict) and isinstance(keys, int)
        per = (f["VmRSS"] - e["VmRSS"]) * 1024 / keys
        mib = [e["VmRSS"] / 1024, f["VmRSS"] / 1024, f["RssAnon"] / 1024]
        print(f"| {r['server']} | {mib[0]:.1f} | {mib[1]:.1f} | {mib[2]:.1f} | {per:.0f} |")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
