"""metrics.render gives the bytes prometheus_client.generate_latest gives (docs/security.md, "Metrics port")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from velocity_engine.metrics import EngineCollector, Stats, make_registry, render
from vproto.frame import Opcode


def _extra() -> Iterator[Any]:
    g = GaugeMetricFamily("velocity_test_labels", "Odd label values.\nSecond line \\ backslash.", labels=["v"])
    g.add_metric(['quote " here'], 1.5)
    g.add_metric(["back\\slash"], float("inf"))
    g.add_metric(["new\nline"], float("nan"))
    g.add_metric(["plain"], 1e21)
    yield g
    yield CounterMetricFamily("velocity_test_counter", "A counter.", value=12345678901)
    h = HistogramMetricFamily("velocity_test_hist", "A histogram.", labels=["tier"])
    h.add_metric(["0"], [("0.1", 1), ("1.0", 3), ("+Inf", 4)], 2.25)
    yield h


def _collector(stats: Stats) -> EngineCollector:
    gauges = {"velocity_keys": ("gauge", "Keys.", 7), "velocity_expired_keys": ("counter", "Expired.", 2)}
    return EngineCollector(stats, lambda: gauges, _extra)


def _same(stats: Stats) -> None:
    coll = _collector(stats)
    registry = make_registry(coll)
    coll.text_blocks = False
    want = generate_latest(registry).decode().splitlines()
    coll.text_blocks = True
    got = render(registry).decode().splitlines()
    volatile = ("process_", "python_gc_")  # CPU time, memory, GC counts move between the two calls
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if not g.startswith(volatile):
            assert g == w


def test_render_matches_generate_latest() -> None:
    stats = Stats()
    _same(stats)
    for op, secs in ((Opcode.GET, 0.00002), (Opcode.SET, 0.3), (Opcode.GET, 5.0), (Opcode.MGET, 0.001)):
        stats.observe(op, secs)
    stats.errors[3] = 2
    _same(stats)  # the cached per-opcode text is rebuilt where the counts changed
    stats.observe(Opcode.GET, 0.00002)
    _same(stats)


def test_per_opcode_text_is_reused_until_the_count_changes() -> None:
    stats = Stats()
    coll = _collector(stats)
    registry = make_registry(coll)
    render(registry)
    cached = dict(coll._op_text)
    render(registry)
    assert all(coll._op_text[op] is cached[op] for op in cached)
    stats.observe(Opcode.GET, 0.001)
    render(registry)
    assert coll._op_text[Opcode.GET] is not cached[Opcode.GET]
    assert all(coll._op_text[op] is cached[op] for op in cached if op != Opcode.GET)
