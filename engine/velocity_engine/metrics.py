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
from typing import Any, cast

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _float_to_go
from vproto.errors import ErrorCode
from vproto.frame import Opcode

_num = cast(Callable[[float], str], _float_to_go)  # Go's float formatting, as the text format wants

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


_REQ_HELP = "Requests served, by operation."
_HIST_HELP = "Time to execute a request, by operation."
_OPS = tuple(op for op in Opcode if op != Opcode.ERROR)


class Text(str):
    """Metric families already in the text format (render() copies them as they are)."""


class EngineCollector(Collector):
    """Turns Stats and live gauges into metric families at scrape time."""

    def __init__(
        self,
        stats: Stats,
        gauges: Callable[[], dict[str, Any]],
        families: Callable[[], Iterable[Any]] | None = None,
        *,
        text_blocks: bool = True,
    ) -> None:
        self.stats = stats
        self.gauges = gauges
        self.families = families  # extra ready-made metric families (storage: labels, histograms)
        # text_blocks: the per-operation families come out as ready text (Text) that
        # render() copies; an operation's histogram text is rebuilt only when its
        # request count changed since the last scrape. Off: plain metric families
        # (what generate_latest understands; tests compare the two).
        self.text_blocks = text_blocks
        self._op_text: dict[int, tuple[int, str, str]] = {}  # opcode -> (requests, request line, histogram)

    def collect(self) -> Iterator[Any]:
        if self.text_blocks:
            yield from self._op_blocks()
        else:
            yield from self._op_families()
        yield from self._rest()

    def _op_blocks(self) -> Iterator[Any]:
        s = self.stats
        req_lines, hist_lines = [], []
        for op in _OPS:
            n = s.requests[op]
            cached = self._op_text.get(op)
            if cached is None or cached[0] != n:
                name = op.name.lower()
                acc = 0
                parts = []
                for bound, k in zip(_BOUND_TEXT, s.latency_buckets[op], strict=True):
                    acc += k
                    parts.append(f'velocity_request_duration_seconds_bucket{{le="{bound}",op="{name}"}} '
                                 f"{_num(acc)}\n")
                parts.append(f'velocity_request_duration_seconds_count{{op="{name}"}} {_num(acc)}\n')
                parts.append(f'velocity_request_duration_seconds_sum{{op="{name}"}} '
                             f"{_num(s.latency_sum[op])}\n")
                cached = (n, f'velocity_requests_total{{op="{name}"}} {_num(n)}\n', "".join(parts))
                self._op_text[op] = cached
            req_lines.append(cached[1])
            hist_lines.append(cached[2])
        yield Text(_header("velocity_requests_total", "counter", _REQ_HELP) + "".join(req_lines))
        yield Text(_header("velocity_request_duration_seconds", "histogram", _HIST_HELP) + "".join(hist_lines))

    def _op_families(self) -> Iterator[Any]:
        s = self.stats
        req = CounterMetricFamily("velocity_requests", _REQ_HELP, labels=["op"])
        hist = HistogramMetricFamily("velocity_request_duration_seconds", _HIST_HELP, labels=["op"])
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

    def _rest(self) -> Iterator[Any]:
        s = self.stats
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


_BOUND_TEXT = tuple(_fmt(b) for b in (*LATENCY_BUCKETS, float("inf")))


def make_registry(collector: EngineCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(collector)
    return registry


# Prometheus text format, like prometheus_client.generate_latest (same bytes, tested)
# but with each sample's "name{labels} " prefix built once and remembered: the
# label sets are fixed (opcodes, error codes, tiers), so a render is a dict
# lookup and a float format per sample, several times cheaper than escaping
# every name and label again on every scrape.
_MUNGE = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_PREFIX_CACHE_MAX = 20_000
_prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_headers: dict[tuple[str, str, str], str] = {}


def _prefix(name: str, labels: dict[str, str]) -> str:
    key = (name, tuple(labels.items()))
    p = _prefixes.get(key)
    if p is None:
        if len(_prefixes) >= _PREFIX_CACHE_MAX:  # label values that vary without bound: stay bounded
            _prefixes.clear()
        if labels:
            inner = ",".join(
                '{}="{}"'.format(escape_label_name(k), v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"'))
                for k, v in sorted(labels.items())
            )
            p = f"{escape_metric_name(name)}{{{inner}}} "
        else:
            p = f"{escape_metric_name(name)} "
        _prefixes[key] = p
    return p


def _header(name: str, mtype: str, doc: str) -> str:
    key = (name, mtype, doc)
    h = _headers.get(key)
    if h is None:
        if len(_headers) >= _PREFIX_CACHE_MAX:
            _headers.clear()
        esc = escape_metric_name(name)
        h = f"# HELP {esc} {doc.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}\n# TYPE {esc} {mtype}\n"
        _headers[key] = h
    return h


def render(registry: Collector) -> bytes:
    """The registry's metrics in the Prometheus text format (what generate_latest returns)."""
    out: list[str] = []
    append = out.append
    for metric in registry.collect():
        if isinstance(metric, Text):
            append(metric)
            continue
        mname, mtype = metric.name, metric.type
        if mtype == "counter":
            mname += "_total"
        elif mtype == "info":
            mname += "_info"
        append(_header(mname, _MUNGE.get(mtype, mtype), metric.documentation))
        om: dict[str, list[str]] = {}
        om_names = {metric.name + suffix: suffix for suffix in _OM_SUFFIXES}
        for s in metric.samples:
            if s.timestamp is not None:
                raise ValueError(f"{s.name}: timestamps are not rendered")
            line = _prefix(s.name, s.labels) + _num(s.value) + "\n"
            suffix = om_names.get(s.name)
            if suffix is None:
                append(line)
            else:
                om.setdefault(suffix, []).append(line)
        for suffix, lines in sorted(om.items()):
            append(_header(metric.name + suffix, "gauge", metric.documentation))
            out.extend(lines)
    return "".join(out).encode()


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
