"""Errors: error replies by code, authentication failures, refused connections."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    return Row("Errors", (
        Panel("Error replies by code",
              "Error replies per second by V-Proto error code (BUSY, WRONG_TYPE, WRITES_REFUSED, ...).",
              (Target(f"sum by (code) ({rate(sel('velocity_errors_total'))}) > 0", "{{code}}"),),
              unit="reqps", stacked=True),
        Panel("Authentication failures", "HELLOs with a wrong or missing token, per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_auth_failures_total'))})", "{{pod}}"),), unit="ops"),
        Panel("Connections refused", "Connections refused at the connection limit, per second.",
              (Target(f"sum by (pod) ({rate(sel('velocity_connections_rejected_total'))})", "{{pod}}"),),
              unit="ops"),
    ))
