#!/usr/bin/env python3
"""Restart time of the Python data plane's LSM storage with ~1 GB of data (issue 3: target <= 10 s).

Loads data through a real `velocity-engine` (plaintext, MSET batches over
the Python SDK), stops it, and measures the time from exec of a new engine
on the same data directory to the first `200` from its `/readyz`. Cases:

- `wal`: `--memtable-bytes` larger than the data set, so everything is
  still in the write-ahead log; SIGKILL; start-up replays all of it.
- `kill`: the default 64 MiB memtable; SIGKILL after the load; start-up
  opens the tables and replays the log written since the last flush.
- `tables`: the same directory after a SNAPSHOT_BEGIN flushed the memtable
  (and the flush was installed); SIGKILL; start-up only opens tables.
- `empty`: an empty data directory: the fixed cost of starting the process
  (interpreter, imports, listeners) to subtract from the others.

Each restart is measured `--rounds` times (cold page cache is not forced:
that needs root and would touch the whole machine). The module also holds
the engine-process helpers `bench/table_reads.py` uses.

    .venv/bin/python bench/restart.py                      # 1 GiB, all cases
    .venv/bin/python bench/restart.py --gib 0.01 --rounds 1 --json-out -   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY_FORMAT = "key:%012d"  # the same keys as vbench and redis-benchmark -r
MiB = 1024 * 1024


class BenchError(RuntimeError):
    """The engine did not start, answer or stop as expected; carries its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_cmd() -> list[str]:
    """The engine on the Python data plane: the `tables` case and table_reads.py empty the
    memtable with a SNAPSHOT_BEGIN, which freezes and flushes it there only (the native
    plane snapshots without a flush). Native restart and replay figures come from
    velocity-lsm's restart_bench example (`make bench-native-storage`)."""
    venv = ROOT / ".venv" / "bin" / "velocity-engine"
    cmd = [str(venv)] if venv.exists() else [sys.executable, "-m", "velocity_engine.cli"]
    return [*cmd, "--data-plane", "python"]


def du_bytes(path: Path) -> int:
    """Bytes of data files (not a snapshot file a SNAPSHOT_BEGIN left behind: start-up deletes it)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "snapshots" not in p.parts)


@dataclass
class Engine:
    """One velocity-engine process on a data directory (plaintext, loopback, own process group)."""

    data_dir: Path
    extra: list[str] = field(default_factory=list)
    port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.engine.log"

    def start(self, timeout: float = 600.0) -> float:
        """Exec the engine and wait for /readyz; returns seconds from exec to ready."""
        self.port, self.metrics_port = free_port(), free_port()
        cmd = [
            *engine_cmd(), "--data-dir", str(self.data_dir), "--insecure", "--host", "127.0.0.1",
            "--port", str(self.port), "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
            "--log-level", "WARNING", *self.extra,
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("VDB_TOKEN", None)
        with self.log.open("ab") as out:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"engine exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.http("/readyz")[0] == 200:
                return time.monotonic() - t0
            time.sleep(0.01)
        self.kill()
        raise BenchError(f"engine not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """utime + stime of the engine process so far (/proc): robust to other load, unlike wall time."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, `name{labels}` -> value."""
        code, text = self.http("/metrics")
        if code != 200:
            raise BenchError(f"/metrics answered {code}")
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def log_tail(self, n: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, 120)

    def pool(self) -> Any:
        from velocity import VelocityPool

        return VelocityPool(f"vdb://127.0.0.1:{self.port}", insecure=True, pool_size=4, compression=False,
                            timeout=120.0)

    def info(self) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            async with self.pool() as p:
                got: dict[str, Any] = await p.info()
                return got

        return asyncio.run(go())


@contextlib.contextmanager
def running(engine: Engine) -> Iterator[Engine]:
    try:
        yield engine
    finally:
        engine.kill()


def values(value_bytes: int) -> tuple[bytes, int]:
    """A random blob to slice values from (cheap, and not all alike)."""
    return os.urandom(value_bytes + 4096), 4096


def load_keys(engine: Engine, keys: list[int], value_bytes: int, batch: int = 200, workers: int = 4) -> float:
    """MSET every key (KEY_FORMAT) with a value_bytes value; returns seconds taken."""
    blob, spread = values(value_bytes)

    async def go() -> None:
        async with engine.pool() as p:
            chunks = [keys[i : i + batch] for i in range(0, len(keys), batch)]

            async def worker(w: int) -> None:
                for chunk in chunks[w::workers]:
                    await p.mset({(KEY_FORMAT % k).encode(): blob[k % spread : k % spread + value_bytes]
                                  for k in chunk})

            await asyncio.gather(*(worker(w) for w in range(workers)))

    t0 = time.monotonic()
    asyncio.run(go())
    return time.monotonic() - t0


def wait_until(pred: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def flush_memtable(engine: Engine, timeout: float = 900.0) -> None:
    """Make the engine flush its memtable: a SNAPSHOT_BEGIN freezes it; wait until it is in a table."""
    from vproto.frame import Opcode

    async def begin() -> None:
        async with engine.pool() as p:
            await p._call(Opcode.SNAPSHOT_BEGIN, b"", retry=False)

    asyncio.run(begin())

    def flushed() -> bool:
        st = engine.info().get("storage", {})
        return int(st.get("memtable_bytes", 1)) == 0 and int(st.get("immutable_memtables", 1)) == 0

    wait_until(flushed, timeout, "the memtable flush")


def storage_summary(engine: Engine) -> dict[str, Any]:
    st = engine.info().get("storage", {})
    keep = ("memtable_bytes", "immutable_memtables", "sstables", "sstable_bytes", "wal_bytes", "flushes",
            "compactions", "tiers", "recovery")
    return {k: st.get(k) for k in keep}


@dataclass
class CaseResult:
    case: str
    keys: int
    value_bytes: int
    data_dir_bytes: int
    load_s: float
    before_restart: dict[str, Any]
    ready_s: list[float]
    cpu_at_ready_s: list[float]  # the engine's CPU time when /readyz first answered 200
    recovery: list[dict[str, Any]]
    load_avg: list[str]


def _restart_rounds(
    engine: Engine, rounds: int,
) -> tuple[list[float], list[float], list[dict[str, Any]], list[str]]:
    ready, cpu, rec, loads = [], [], [], []
    for _ in range(rounds):
        engine.kill()
        loads.append(" ".join(Path("/proc/loadavg").read_text().split()[:3]))
        ready.append(round(engine.start(), 3))
        cpu.append(round(engine.cpu_seconds(), 2))
        rec.append(storage_summary(engine).get("recovery") or {})
    return ready, cpu, rec, loads


def run_case(workdir: Path, case: str, keys: int, value_bytes: int, rounds: int, memtable_bytes: int) -> CaseResult:
    data = workdir / f"data-{case}"
    extra = ["--appendfsync", "everysec"]
    if case == "wal":
        extra += ["--memtable-bytes", str(max(memtable_bytes, 4 * keys * (value_bytes + 64)))]
    elif memtable_bytes:
        extra += ["--memtable-bytes", str(memtable_bytes)]
    engine = Engine(data, extra)
    if case == "empty":
        keys = 0
    with running(engine):
        engine.start()
        load_s = load_keys(engine, list(range(keys)), value_bytes)
        if case == "kill":
            # Let the frozen memtables reach tables, so the log holds only the active memtable.
            wait_until(lambda: int(engine.info()["storage"].get("immutable_memtables", 1)) == 0, 900,
                       "pending flushes")
        elif case == "tables":
            flush_memtable(engine)
        before = storage_summary(engine)
        engine.kill()
        size = du_bytes(data)
        ready, cpu, rec, loads = _restart_rounds(engine, rounds)
        if int(engine.info().get("keys", -1)) != keys:
            raise BenchError(f"{case}: {engine.info().get('keys')} keys after restart, loaded {keys}")
    return CaseResult(case, keys, value_bytes, size, round(load_s, 1), before, ready, cpu, rec, loads)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0, help="data to load, GiB of key+value [1.0]")
    ap.add_argument("--value-bytes", type=int, default=1024, help="value size [1024]")
    ap.add_argument("--cases", default="empty,wal,kill,tables", help="comma-separated: empty, wal, kill, tables [all]")
    ap.add_argument("--rounds", type=int, default=2, help="restarts measured per case [2]")
    ap.add_argument("--memtable-bytes", type=int, default=0, help="engine --memtable-bytes for kill/tables [default]")
    ap.add_argument("--workdir", type=Path, help="where data directories go [a temp dir, removed]")
    ap.add_argument("--json-out", help="write results as JSON here ('-' for stdout)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like an exception, so the `finally` blocks kill the engines (own sessions).
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    keys = max(1, int(args.gib * 1024**3 / (args.value_bytes + len(KEY_FORMAT % 0))))
    results = []
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="velocity-restart-")))
        workdir.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            print(f"[restart] {case}: loading {keys:,} keys x {args.value_bytes} B", file=sys.stderr, flush=True)
            res = run_case(workdir, case, keys, args.value_bytes, args.rounds, args.memtable_bytes)
            print(f"[restart] {case}: {res.data_dir_bytes / MiB:,.0f} MiB on disk, ready after "
                  f"{', '.join(f'{s:.2f}' for s in res.ready_s)} s, engine CPU "
                  f"{', '.join(f'{s:.2f}' for s in res.cpu_at_ready_s)} s (load {', '.join(res.load_avg)})",
                  file=sys.stderr, flush=True)
            results.append(asdict(res))
    doc = {"command": "bench/restart.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "results": results}
    text = json.dumps(doc, indent=1)
    if args.json_out == "-":
        print(text)
    elif args.json_out:
        Path(args.json_out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
