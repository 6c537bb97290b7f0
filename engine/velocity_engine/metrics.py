"""Prometheus metrics, kept cheap on the hot path.

prometheus_client's Histogram.observe takes a lock and costs ~1 us; a server
doing a few microseconds of work per request cannot afford that. Request
counts and latencies are kept in plain lists indexed by opcode and turned into
metric families only when /metrics is scraped (a custom Collector).
"""

from __future__ import annotations

import os
import resource
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from vproto.errors import ErrorCode
from vproto.frame import Opcode

# Seconds; fine-grained at the low end where a Python server lives.
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)
_NB = len(LATENCY_BUCKETS) + 1


class Stats:
    """Counters the server bumps directly. Single-threaded (event loop) use."""

    def __init__(self) -> None:
        self.requests = [0] * 256
        self.latency_buckets = [[0] * _NB for _ in range(256)]
        self.latency_sum = [0.0] * 256
        self.errors = [0] * 256
        self.connections = 0
        self.connections_total = 0
        self.connections_rejected = 0
        self.auth_failures = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def observe(self, opcode: int, seconds: float) -> None:
        self.requests[opcode] += 1
        self.latency_buckets[opcode][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[opcode] += seconds

    def latency_quantiles(self) -> dict[str, dict[str, float]]:
        """Approximate p50/p99 per opcode from the buckets, for INFO."""
        out: dict[str, dict[str, float]] = {}
        for op in Opcode:
            total = self.requests[op]
            if not total or op == Opcode.ERROR:
                continue
            out[op.name.lower()] = {
                q: _bucket_quantile(self.latency_buckets[op], total, frac) * 1e6
                for q, frac in (("p50_us", 0.5), ("p99_us", 0.99))
            }
        return out


def _bucket_quantile(buckets: list[int], total: int, frac: float) -> float:
    target = frac * total
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= target:
            return LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else float("inf")
    return float("inf")


class EngineCollector(Collector):
    """Turns Stats and live gauges into metric families at scrape time."""

    def __init__(
        self,
        stats: Stats,
        gauges: Callable[[], dict[str, Any]],
        families: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.stats = stats
        self.gauges = gauges
        self.families = families  # extra ready-made metric families (storage: labels, histograms)

    def collect(self) -> Iterator[Any]:
        s = self.stats
        req = CounterMetricFamily("velocity_requests", "Requests served, by operation.", labels=["op"])
        hist = HistogramMetricFamily(
            "velocity_request_duration_seconds", "Time to execute a request, by operation.", labels=["op"]
        )
        for op in Opcode:
            if op == Opcode.ERROR:
                continue
            name = op.name.lower()
            req.add_metric([name], s.requests[op])
            acc = 0
            buckets = []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), s.latency_buckets[op], strict=True):
                acc += n
                buckets.append((_fmt(bound), acc))
            hist.add_metric([name], buckets, s.latency_sum[op])
        yield req
        yield hist
        err = CounterMetricFamily("velocity_errors", "Error replies sent, by error code.", labels=["code"])
        for code in ErrorCode:
            err.add_metric([code.name], s.errors[code])
        yield err
        yield GaugeMetricFamily("velocity_connections", "Open client connections.", value=s.connections)
        yield CounterMetricFamily(
            "velocity_connections_accepted", "Connections accepted.", value=s.connections_total
        )
        yield CounterMetricFamily(
            "velocity_connections_rejected", "Connections refused at the connection limit.",
            value=s.connections_rejected,
        )
        yield CounterMetricFamily(
            "velocity_auth_failures", "HELLOs with a wrong or missing token.", value=s.auth_failures
        )
        yield CounterMetricFamily("velocity_received_bytes", "Bytes received from clients.", value=s.bytes_in)
        yield CounterMetricFamily("velocity_sent_bytes", "Bytes sent to clients.", value=s.bytes_out)
        for name, (kind, help_text, value) in self.gauges().items():
            if kind == "counter":
                yield CounterMetricFamily(name, help_text, value=value)
            else:
                yield GaugeMetricFamily(name, help_text, value=value)
        if self.families is not None:
            yield from self.families()


def _fmt(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def make_registry(collector: EngineCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(collector)
    return registry


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
