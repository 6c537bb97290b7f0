"""One measured cell: a client run bracketed by /proc readings.

Per cell: server CPU (utime+stime of its process tree), the load generator's
CPU (getrusage of children), and the machine's total busy CPU, so that the
CPU used by *other* processes during the run (noise from other work on the
machine) is reported next to every number.
"""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass

from velocity_bench.clients import ClientError, Load, Run, run_redis_benchmark, run_vbench
from velocity_bench.procstat import ProcError, cpu_seconds, loadavg, machine_busy_seconds
from velocity_bench.servers import Server


@dataclass
class Cell:
    scenario: str
    client: str
    pipeline: int
    test: str
    run: Run | None = None
    error: str = ""
    server_cpu_s: float = 0.0
    server_cpu_util: float = 0.0  # server CPU seconds per wall second (1.0 = one core)
    cpu_us_per_op: float = 0.0
    client_cpu_util: float = 0.0
    other_cpu_util: float = 0.0  # everything else on the machine, same unit
    load1: float = 0.0  # 1-minute load average at the end of the run
    runs_ops_per_sec: tuple[float, ...] = ()  # every repeat, when --repeat > 1

    @property
    def ok(self) -> bool:
        return self.run is not None and not self.error


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure_once(srv: Server, client: str, load: Load, test: str, pipeline: int) -> Cell:
    cell = Cell(srv.scenario.name, client, pipeline, test)
    t0 = time.monotonic()
    cpu0, kids0, busy0 = cpu_seconds(srv.pid), _children_cpu(), machine_busy_seconds()
    if client == "redis-benchmark":
        run = run_redis_benchmark(srv, load, test, pipeline)
    else:
        run = run_vbench(srv, load, test, pipeline, proto="resp" if client == "vbench-resp" else "vproto")
    cpu = cpu_seconds(srv.pid) - cpu0
    kids = _children_cpu() - kids0
    busy = machine_busy_seconds() - busy0
    bracket = time.monotonic() - t0  # includes client start-up and connection set-up
    cell.run = run
    wall = run.elapsed_s or 1e-9
    cell.server_cpu_s = round(cpu, 3)
    cell.server_cpu_util = round(cpu / wall, 3)
    cell.cpu_us_per_op = round(cpu / run.completed * 1e6, 3) if run.completed else 0.0
    cell.client_cpu_util = round(kids / bracket, 3)
    # All three CPU readings span the bracket, so "other" is measured over it too.
    cell.other_cpu_util = round(max(0.0, busy - cpu - kids) / bracket, 3)
    cell.load1 = loadavg().one
    if run.errors:
        cell.error = f"{run.errors} errors: {run.first_error}"
    return cell


def wait_for_quiet(max_wait_s: float, threshold: float, interval_s: float = 1.0) -> tuple[float, float]:
    """Wait (up to max_wait_s) until the machine's busy CPU over one interval is below
    `threshold` cores; the servers are idle between cells, so this is other work.
    Returns (seconds waited, busy cores in the last interval)."""
    start = time.monotonic()
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(interval_s)
        busy = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        waited = time.monotonic() - start
        if busy < threshold or waited >= max_wait_s:
            return round(waited, 1), round(busy, 2)


def measure_safely(
    srv: Server, client: str, load: Load, test: str, pipeline: int, quiet: tuple[float, float] | None = None
) -> Cell:
    """One run; a failure is returned as a cell with `error` instead of raised.
    `quiet` = (max wait s, busy threshold in cores): wait for a quiet machine first."""
    try:
        if quiet is not None:
            wait_for_quiet(*quiet)
        return measure_once(srv, client, load, test, pipeline)
    except (ClientError, ProcError, subprocess.SubprocessError, OSError) as exc:
        return Cell(srv.scenario.name, client, pipeline, test, error=str(exc))


def median_cell(runs: list[Cell]) -> Cell:
    """The median run by ops/s (the first failure, if any run failed), with every run's ops/s."""
    failed = [c for c in runs if c.run is None]
    if failed:
        return failed[0]
    runs = sorted(runs, key=lambda c: c.run.ops_per_sec if c.run else 0.0)
    mid = runs[len(runs) // 2]
    if len(runs) > 1:
        mid.runs_ops_per_sec = tuple(round(c.run.ops_per_sec) for c in runs if c.run)
    return mid


def measure(
    srv: Server,
    client: str,
    load: Load,
    test: str,
    pipeline: int,
    repeat: int = 1,
    quiet: tuple[float, float] | None = None,
) -> Cell:
    """The median (by ops/s) of `repeat` runs of one cell."""
    return median_cell([measure_safely(srv, client, load, test, pipeline, quiet) for _ in range(max(1, repeat))])
