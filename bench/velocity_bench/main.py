"""The command line: pick scenarios, start each server, measure every cell, report."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from velocity_bench import machine
from velocity_bench.clients import ClientError, Load, run_vbench
from velocity_bench.measure import Cell, measure_safely, median_cell
from velocity_bench.paths import DOC, RESULTS, ROOT, VBENCH_BIN
from velocity_bench.procstat import loadavg
from velocity_bench.profiling import Profile, profile_engine, write_profile_markdown
from velocity_bench.report import RunMeta, render, verdicts, write_doc
from velocity_bench.scenarios import SCENARIOS, TESTS
from velocity_bench.servers import Server, ServerError
from velocity_bench.tools import ToolError, build_vbench, engine_cmd, ensure_redis, find_go, log

USAGE = """\
    .venv/bin/python bench/compare.py                    # everything (what `make bench` runs)
    .venv/bin/python bench/compare.py --quick            # smaller runs: a smoke test (make bench-quick)
    .venv/bin/python bench/compare.py --scenarios velocity-tls,redis-tls --pipelines 1
    .venv/bin/python bench/compare.py --profile          # also py-spy the engine (bench/results/profile.md)

Every scenario gets a fresh server (own data directory, free ports on
127.0.0.1) that is stopped (process group) in any case. Results go to
bench/results/latest.json and to the generated block of docs/benchmarks.md.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/compare.py",
        description="Velocity vs Redis, measured in one run on this machine.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    ap.add_argument("--tests", default=",".join(TESTS), help="subset of set,get,incr (always run in that order)")
    ap.add_argument("--pipelines", default="1,16", help="pipeline depths (default: 1,16)")
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("-n", "--requests", type=int, default=200_000, help="requests per test")
    ap.add_argument("-d", "--value-size", type=int, default=64)
    ap.add_argument("-r", "--keyspace", type=int, default=100_000)
    ap.add_argument("--time-cap", type=float, default=60.0, help="seconds per test before vbench stops early")
    ap.add_argument("--warmup", type=int, default=20_000, help="SETs sent to each server before measuring")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median by ops/s is reported")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each run, wait up to this many seconds for other work on the machine to use "
        "less than --quiet-cores (0: do not wait)",
    )
    ap.add_argument("--quiet-cores", type=float, default=0.5, help="busy CPU (in cores) that counts as quiet")
    ap.add_argument("--quick", action="store_true", help="-n 20000 --warmup 2000 --quiet-wait 0: a smoke test")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate CPUs")
    ap.add_argument("--no-install", action="store_true", help="fail instead of apt-get installing redis")
    ap.add_argument("--rebuild", action="store_true", help="rebuild vbench even if up to date")
    ap.add_argument("--profile", action="store_true", help="py-spy the Velocity scenarios (bench/results/)")
    ap.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    ap.add_argument("--json-out", default=str(RESULTS / "latest.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.warmup, args.quiet_wait = 20_000, 2_000, 0.0
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in names if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenarios {bad}; choose from {list(SCENARIOS)}")
    args.names = [s for s in SCENARIOS if s in names]  # canonical order: each baseline before its Velocity run
    args.test_list = [t for t in TESTS if t in args.tests.split(",")]
    args.pipeline_list = [int(p) for p in args.pipelines.split(",")]
    return args


def pinning(no_pin: bool) -> tuple[str | None, str | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None, "none (server and load generator share all CPUs)"
    server, client = str(cpus[0]), ",".join(str(c) for c in cpus[1:])
    return server, client, f"server on CPU {server}, load generator on CPU {client} (taskset)"


def groups(names: list[str]) -> list[list[str]]:
    """Each Velocity scenario together with its Redis baseline (when both are selected):
    a group's servers run side by side and their cells are measured alternately, so
    that both see the same noise from the rest of the machine."""
    out: list[list[str]] = []
    used: set[str] = set()
    for name in names:
        if name in used:
            continue
        sc = SCENARIOS[name]
        partner = sc.baseline or next((s.name for s in SCENARIOS.values() if s.baseline == name), "")
        group = [name] + ([partner] if partner in names and partner not in used else [])
        used.update(group)
        out.append(sorted(group, key=names.index))
    return out


def _log_cell(cell: Cell) -> None:
    where = f"{cell.scenario} {cell.client} P={cell.pipeline} {cell.test.upper()}"
    if cell.run is None:
        log(f"{where}: FAILED: {cell.error}")
        return
    lat = cell.run.latency_ms
    log(
        f"{where}: {cell.run.ops_per_sec:,.0f} ops/s, p50 {lat.p50:.3f} p99 {lat.p99:.3f} p99.9 {lat.p999:.3f} ms, "
        f"{cell.cpu_us_per_op} µs CPU/op, other CPU {cell.other_cpu_util:.2f}"
        + (f" (runs: {', '.join(f'{x:,.0f}' for x in cell.runs_ops_per_sec)})" if cell.runs_ops_per_sec else "")
        + (f", {cell.error}" if cell.error else "")
    )


def _start(name: str, args: argparse.Namespace, load: Load, server_pin: str | None, meta: RunMeta) -> Server | None:
    sc = SCENARIOS[name]
    srv = Server(sc, Path(tempfile.mkdtemp(prefix=f"vbench-{name}-")), server_pin)
    log(f"{name}: starting ({sc.desc})")
    try:
        srv.start()
        meta.versions[sc.server] = srv.version
        meta.persistence[name] = srv.persistence
        if args.warmup:
            run_vbench(srv, load, "set", 16, proto="resp" if sc.server == "redis" else "vproto", requests=args.warmup)
    except (ServerError, ClientError, OSError) as exc:
        log(f"{name}: FAILED: {exc}")
        meta.skipped[name] = f"failed: {str(exc)[:300]}"
        _stop(srv)
        return None
    return srv


def _stop(srv: Server) -> None:
    srv.stop()
    if srv.proc is not None and srv.proc.returncode not in (0, -signal.SIGTERM, None):
        log(f"{srv.scenario.name}: server exited with {srv.proc.returncode}; log tail:\n{srv.log_tail(10)}")
    shutil.rmtree(srv.workdir, ignore_errors=True)


def run_group(
    names: list[str], args: argparse.Namespace, load: Load, server_pin: str | None, meta: RunMeta
) -> tuple[list[Cell], dict[str, dict[str, Profile]]]:
    """Start the group's servers, then for every (pipeline, test) run each server's
    clients in turn, `repeat` rounds; report the median run of each cell."""
    servers: list[Server] = []
    cells: list[Cell] = []
    profiles: dict[str, dict[str, Profile]] = {}
    quiet = (args.quiet_wait, args.quiet_cores) if args.quiet_wait > 0 else None
    try:
        for name in names:
            srv = _start(name, args, load, server_pin, meta)
            if srv is not None:
                servers.append(srv)
        for p in args.pipeline_list:
            for test in args.test_list:
                runs: dict[tuple[str, str], list[Cell]] = {}
                for _ in range(max(1, args.repeat)):
                    for srv in servers:
                        for client in srv.scenario.clients:
                            cell = measure_safely(srv, client, load, test, p, quiet)
                            runs.setdefault((srv.scenario.name, client), []).append(cell)
                for got in runs.values():
                    cell = median_cell(got)
                    cells.append(cell)
                    _log_cell(cell)
        if args.profile:
            for srv in servers:
                if srv.scenario.server == "velocity":
                    log(f"{srv.scenario.name}: profiling with py-spy")
                    profiles[srv.scenario.name] = profile_engine(srv, load, args.pipeline_list)
    finally:
        for srv in servers:
            _stop(srv)
    return cells, profiles


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through run_group's `finally`, which stops the servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if any(SCENARIOS[s].server == "redis" for s in args.names):
            ensure_redis(install=not args.no_install)
        build_vbench(args.rebuild)
    except ToolError as exc:
        log(str(exc))
        return 2
    server_pin, client_pin, pin_desc = pinning(args.no_pin)
    load = Load(args.connections, args.requests, args.value_size, args.keyspace, args.time_cap, client_pin)
    meta = RunMeta(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine.describe(),
        git=machine.git_rev(),
        command=" ".join([".venv/bin/python bench/compare.py", *(sys.argv[1:] if argv is None else argv)]),
        pinning=pin_desc,
        load=dict(
            connections=load.connections,
            requests=load.requests,
            value_size=load.value_size,
            keyspace=load.keyspace,
            time_cap_s=load.time_cap,
            warmup=args.warmup,
            repeat=args.repeat,
            quiet_wait_s=args.quiet_wait,
            quiet_cores=args.quiet_cores,
        ),
        pipelines=args.pipeline_list,
        loadavg_start=str(loadavg()),
    )
    meta.versions = {
        "redis-benchmark": machine.tool_version(["redis-benchmark", "--version"]),
        "vbench": f"{VBENCH_BIN.relative_to(ROOT)} built by {machine.tool_version([find_go(), 'version'])}",
        "python": sys.version.split()[0],
    }
    cells: list[Cell] = []
    profiles: dict[str, dict[str, Profile]] = {}
    for group in groups(args.names):
        got, prof = run_group(group, args, load, server_pin, meta)
        cells += got
        profiles.update(prof)
    meta.versions["velocity-engine"] = meta.versions.pop("velocity", engine_cmd()[-1])
    meta.loadavg_end = str(loadavg())

    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "meta": dataclasses.asdict(meta),
        "cells": [dataclasses.asdict(c) for c in cells],
        "targets": [dataclasses.asdict(v) for v in verdicts(cells)],
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if profiles:
        log(f"wrote {write_profile_markdown(profiles)}")
    md = render(meta, cells)
    if not args.no_doc:
        write_doc(md)
    print(md)
    log(f"wrote {out}" + ("" if args.no_doc else f" and {DOC.relative_to(ROOT)}"))
    failed = [c for c in cells if c.error] or meta.skipped
    return 1 if failed else 0
