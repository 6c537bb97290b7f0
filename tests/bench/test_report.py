"""Targets, the markdown report and the generated block of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

from velocity_bench.clients import Latency, Run
from velocity_bench.measure import Cell
from velocity_bench.report import BEGIN, END, RunMeta, render, verdicts, write_doc

LAT = Latency(avg=1, min=0.1, p50=1, p95=2, p99=3, p999=4, max=5)


def cell(scenario: str, client: str, p: int, test: str, ops: float, cpu: float) -> Cell:
    return Cell(scenario, client, p, test, run=Run(100, ops, 1.0, LAT), cpu_us_per_op=cpu)


def cells() -> list[Cell]:
    out = []
    for test in ("set", "get", "incr"):
        out += [
            cell("redis-tls", "vbench-resp", 1, test, 100_000, 10),
            cell("redis-tls", "redis-benchmark", 1, test, 50_000, 10),
            cell("velocity-tls", "vbench", 1, test, 70_000, 20),
            cell("redis-tls", "vbench-resp", 16, test, 500_000, 2),
            cell("redis-tls", "redis-benchmark", 16, test, 500_000, 2),
            cell("velocity-tls", "vbench", 16, test, 100_000, 8 if test == "incr" else 5),
        ]
    return out


def test_verdicts_follow_the_issue_targets() -> None:
    got = {(v.label, v.baseline_client): v for v in verdicts(cells()) if v.scenario == "velocity-tls"}
    thr = got[("unpipelined throughput >= 1.0x Redis", "vbench-resp")]
    assert thr.ratios == [0.7, 0.7, 0.7] and thr.met is False
    slow_tool = got[("unpipelined throughput >= 1.0x Redis", "redis-benchmark")]
    assert slow_tool.ratios == [1.4, 1.4, 1.4] and slow_tool.met is True
    cpu = got[("server CPU per pipelined op <= 1.0x Redis", "vbench-resp")]
    assert cpu.ratios == [2.5, 2.5, 4.0] and cpu.met is False
    p99 = got[("unpipelined p99 latency <= Redis's", "vbench-resp")]
    assert p99.ratios == [1.0, 1.0, 1.0] and p99.met is True  # equal counts as met


def test_scenarios_without_data_have_no_verdict() -> None:
    assert all(v.met is None for v in verdicts([]))


def _meta() -> RunMeta:
    load = dict(connections=50, requests=100, value_size=64, keyspace=10, time_cap_s=1.0, warmup=0, repeat=1)
    return RunMeta(
        date="today", machine="m", git="abc", command="bench", pinning="none", load=load, pipelines=[1, 16],
        persistence={"velocity-tls": {"engine": "lsm", "appendfsync": "everysec"}},
    )  # fmt: skip


def test_render_has_rows_ratios_and_failures() -> None:
    cs = [*cells(), Cell("velocity-tls", "vbench", 1, "set", error="vbench failed (exit 5): refused")]
    md = render(_meta(), cs)
    assert "| velocity-tls | vbench | SET | 70,000 |" in md
    assert "0.70x" in md and "2.5x" in md
    assert "failed: vbench failed (exit 5): refused" in md
    assert "engine=lsm, appendfsync=everysec" in md


def test_write_doc_replaces_only_the_generated_block(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nhand-written analysis\n\n{BEGIN}\nold numbers\n{END}\n\nmore prose\n")
    write_doc("new numbers", doc)
    text = doc.read_text()
    assert "hand-written analysis" in text and "more prose" in text
    assert "new numbers" in text and "old numbers" not in text
    write_doc("newer", doc)
    assert doc.read_text().count(BEGIN) == 1
