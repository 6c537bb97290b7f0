"""Operator: reconcile rate, errors and durations by resource kind."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import op_sel, rate


def row() -> Row:
    duration = rate(op_sel("velocity_operator_reconcile_duration_seconds_bucket"))
    return Row("Reconciles", (
        Panel("Reconciles by resource and result", "Reconcile passes per second.",
              (Target(f"sum by (resource, result) ({rate(op_sel('velocity_operator_reconciles_total'))})",
                      "{{resource}} {{result}}"),), unit="ops"),
        Panel("Reconcile errors by reason", "Failed reconciles per second, by resource and reason.",
              (Target(f"sum by (resource, reason) ({rate(op_sel('velocity_operator_reconcile_errors_total'))})",
                      "{{resource}} {{reason}}"),), unit="ops"),
        Panel("Reconcile duration p50 / p99", "Time one reconcile pass takes, by resource.",
              (Target(f"histogram_quantile(0.5, sum by (le, resource) ({duration}))", "p50 {{resource}}"),
               Target(f"histogram_quantile(0.99, sum by (le, resource) ({duration}))", "p99 {{resource}}")),
              unit="s"),
    ))
