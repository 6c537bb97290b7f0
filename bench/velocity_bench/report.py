"""Turning cells into the targets verdict, a markdown report and docs/benchmarks.md.

The doc keeps hand-written analysis outside the generated block, which sits
between BEGIN and END markers and is replaced on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from velocity_bench.measure import Cell
from velocity_bench.paths import DOC
from velocity_bench.scenarios import SCENARIOS, TARGET_PAIRS, TESTS

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# Issue 13's targets (the native data plane): (label, pipeline, metric, limit, higher is better).
TARGETS = (
    ("unpipelined throughput >= 1.0x Redis", 1, "ops_per_sec", 1.0, True),
    ("server CPU per pipelined op <= 1.0x Redis", 16, "cpu_us_per_op", 1.0, False),
    ("unpipelined p99 latency <= Redis's", 1, "p99_ms", 1.0, False),
    ("pipelined p99 latency <= Redis's", 16, "p99_ms", 1.0, False),
)


@dataclass
class Verdict:
    label: str
    scenario: str
    baseline: str
    baseline_client: str
    pipeline: int
    ratios: list[float | None]  # per test, in TESTS order
    met: bool | None  # None: nothing to compare


@dataclass
class RunMeta:
    date: str
    machine: str
    git: str
    command: str
    pinning: str
    load: dict[str, Any]
    pipelines: list[int]
    versions: dict[str, str] = field(default_factory=dict)
    persistence: dict[str, dict[str, Any]] = field(default_factory=dict)
    loadavg_start: str = ""
    loadavg_end: str = ""
    skipped: dict[str, str] = field(default_factory=dict)


def metric(cell: Cell, name: str) -> float | None:
    if not cell.ok or cell.run is None:
        return None
    if name == "ops_per_sec":
        return cell.run.ops_per_sec
    if name == "p99_ms":
        return cell.run.latency_ms.p99
    return cell.cpu_us_per_op


def find(cells: list[Cell], scenario: str, client: str | None, pipeline: int, test: str) -> Cell | None:
    for c in cells:
        same = c.scenario == scenario and c.pipeline == pipeline and c.test == test
        if same and c.ok and (client is None or c.client == client):
            return c
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def baseline_for(cell: Cell, cells: list[Cell]) -> Cell | None:
    """The Redis cell to compare with: same load, driven by the same client code
    (vbench speaking RESP) when there is one, else by redis-benchmark."""
    base = SCENARIOS[cell.scenario].baseline
    if not base:
        return None
    return find(cells, base, "vbench-resp", cell.pipeline, cell.test) or find(
        cells, base, "redis-benchmark", cell.pipeline, cell.test
    )


def verdicts(cells: list[Cell]) -> list[Verdict]:
    out = []
    for sc, base in TARGET_PAIRS:
        for label, p, name, limit, higher in TARGETS:
            for client in ("redis-benchmark", "vbench-resp"):
                ratios: list[float | None] = []
                for test in TESTS:
                    mine, theirs = find(cells, sc, None, p, test), find(cells, base, client, p, test)
                    ratios.append(ratio(metric(mine, name), metric(theirs, name)) if mine and theirs else None)
                have = [r for r in ratios if r is not None]
                met = (all(r >= limit for r in have) if higher else all(r <= limit for r in have)) if have else None
                out.append(Verdict(label, sc, base, client, p, ratios, met))
    return out


def _num(x: float | None, nd: int = 0) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def render(meta: RunMeta, cells: list[Cell]) -> str:
    ld = meta.load
    lines = [
        f"Measured {meta.date} on {meta.machine}; git `{meta.git}`.",
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in meta.versions.items()) + ".",
        "",
        f"Command: `{meta.command}`",
        "",
        f"Load: {ld['connections']} connections, {ld['requests']:,} requests per test, {ld['value_size']}-byte values, "
        f"random keys from a keyspace of {ld['keyspace']:,}, SET then GET then INCR, "
        f"{ld['warmup']:,} SETs of warm-up per server, median of {ld['repeat']} run(s) per cell; "
        f"before each run the harness waited up to {ld.get('quiet_wait_s', 0):g} s for the rest of the machine "
        f"to use less than {ld.get('quiet_cores', 0):g} cores. "
        f"Pinning: {meta.pinning}.",
        "",
        f"Load average (1/5/15 min) at the start: {meta.loadavg_start}; at the end: {meta.loadavg_end}.",
        "",
        "Persistence as the servers reported it (Velocity: INFO `storage`; Redis: CONFIG GET):",
        "",
    ]
    for name, pers in meta.persistence.items():
        desc = ", ".join(f"{k}={v}" for k, v in pers.items()) or "-"
        lines.append(f"- `{name}` ({SCENARIOS[name].desc}): {desc}")
    lines += [
        "",
        "Columns: latencies in ms (from writing a batch to reading each reply); CPU µs/op = server "
        "utime+stime (/proc/PID/stat) per completed operation; util = CPU seconds per wall-clock second "
        "(1.00 = one core busy) for the server, and for everything else on the machine (*other*: "
        "neither server nor load generator; this is the noise); load1 = 1-minute load average after the cell. "
        '"vs Redis" compares with the Redis scenario in the same mode driven by vbench-resp.',
        "",
    ]
    order = list(SCENARIOS)
    cells = sorted(cells, key=lambda c: (order.index(c.scenario), c.client, TESTS.index(c.test)))
    for p in meta.pipelines:
        lines += [
            f"#### Pipeline depth {p}",
            "",
            "| scenario | client | test | ops/s | p50 | p99 | p99.9 | CPU µs/op | server util | other util "
            "| load1 | ops/s vs Redis | CPU/op vs Redis |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in cells:
            if c.pipeline != p:
                continue
            if c.run is None:
                lines.append(
                    f"| {c.scenario} | {c.client} | {c.test.upper()} | failed: "
                    f"{c.error[:120].replace('|', '/')} | | | | | | | | | |"
                )
                continue
            lat = c.run.latency_ms
            b = baseline_for(c, cells)
            rr = ratio(c.run.ops_per_sec, b.run.ops_per_sec) if b and b.run else None
            cr = ratio(c.cpu_us_per_op, b.cpu_us_per_op) if b else None
            flag = " ⚠" if c.error else ""
            lines.append(
                f"| {c.scenario} | {c.client} | {c.test.upper()}{flag} | {_num(c.run.ops_per_sec)} | "
                f"{lat.p50:.3f} | {lat.p99:.3f} | {lat.p999:.3f} | {_num(c.cpu_us_per_op, 1)} | "
                f"{c.server_cpu_util:.2f} | {c.other_cpu_util:.2f} | {c.load1:.2f} | "
                f"{_num(rr, 2) + 'x' if rr else '-'} | {_num(cr, 1) + 'x' if cr else '-'} |"
            )
        lines.append("")
    errs = [c for c in cells if c.error and c.run is not None]
    if errs:
        lines += ["⚠ = the run completed but the client counted errors:", ""]
        lines += [f"- {c.scenario} {c.client} P={c.pipeline} {c.test}: {c.error[:200]}" for c in errs]
        lines.append("")
    lines += ["#### Targets", "", "| target | Velocity vs Redis (baseline client) | SET / GET / INCR | met? |"]
    lines.append("|---|---|---|---|")
    for v in verdicts(cells):
        vals = " / ".join(f"{r:.2f}x" if r is not None else "-" for r in v.ratios)
        met = {True: "yes", False: "**no**", None: "n/a"}[v.met]
        who = f"{v.scenario} vs {v.baseline} ({v.baseline_client})"
        lines.append(f"| {v.label} (P={v.pipeline}) | {who} | {vals} | {met} |")
    lines.append("")
    if meta.skipped:
        lines += ["Skipped or failed scenarios:", ""]
        lines += [f"- `{k}`: {v}" for k, v in meta.skipped.items()]
        lines.append("")
    lines.append("Raw numbers: `bench/results/latest.json`.")
    return "\n".join(lines)


def write_doc(markdown: str, path: Path = DOC) -> None:
    """Replace the generated block of `path` (or append one) with `markdown`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    block = f"{BEGIN}\n{markdown}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
