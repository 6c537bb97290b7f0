"""Requests: rate and latency percentiles by operation."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel

_BUCKETS = rate(sel("velocity_request_duration_seconds_bucket"))


def _quantile(q: float, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) ({_BUCKETS}))"


def row() -> Row:
    return Row("Requests", (
        Panel("Request rate by operation", "Requests served per second, by V-Proto operation.",
              (Target(f"sum by (op) ({rate(sel('velocity_requests_total'))})", "{{op}}"),),
              unit="reqps", stacked=True),
        Panel("Latency p50 / p99 by operation",
              "Time to execute a request inside the engine (not network), from the "
              "velocity_request_duration_seconds histogram.",
              (Target(_quantile(0.5, "op"), "p50 {{op}}"), Target(_quantile(0.99, "op"), "p99 {{op}}")),
              unit="s"),
        Panel("Latency p99 by pod", "A single slow pod stands out here.",
              (Target(_quantile(0.99, "pod"), "{{pod}}"),), unit="s"),
        Panel("Request rate by pod", "Load spread across the selected pods.",
              (Target(f"sum by (pod) ({rate(sel('velocity_requests_total'))})", "{{pod}}"),), unit="reqps"),
        Panel("Mean latency by operation", "Sum of durations over count: cheap, but hides the tail.",
              (Target(f"sum by (op) ({rate(sel('velocity_request_duration_seconds_sum'))})"
                      f" / sum by (op) ({rate(sel('velocity_request_duration_seconds_count'))})", "{{op}}"),),
              unit="s"),
    ))
