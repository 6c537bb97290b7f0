"""Every PromQL expression Velocity ships, with where it comes from.

Tests use this one list to parse every expression with promtool, check that every metric
it names is exported, and run the dashboard queries against a real Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from velocity_dashboards import catalog, rules
from velocity_dashboards.promql import metric_names, variable_selector


@dataclass(frozen=True)
class Query:
    origin: str  # "velocity-cluster: Requests / Latency p50 / p99 by operation [B]", "rule VelocityInstanceDown"
    expr: str  # may hold Grafana variables; pass through promql.to_promql before running it
    dashboard: str | None  # uid, or None for alert rules

    def metric_names(self) -> set[str]:
        return metric_names(self.expr)


def dashboard_queries() -> list[Query]:
    out = []
    for d in catalog.dashboards():
        for v in d.variables:
            out.append(Query(f"{d.uid}: variable ${v.name}", variable_selector(v.query), d.uid))
        for row in d.rows:
            for p in row.panels:
                for i, t in enumerate(p.targets):
                    out.append(Query(f"{d.uid}: {row.title} / {p.title} [{chr(65 + i)}]", t.expr, d.uid))
    return out


def rule_queries(root: Path) -> list[Query]:
    return [Query(f"rule {r.name}", r.expr, None) for r in rules.rules(root / rules.SOURCE_FILE)]


def all_queries(root: Path) -> list[Query]:
    return dashboard_queries() + rule_queries(root)
