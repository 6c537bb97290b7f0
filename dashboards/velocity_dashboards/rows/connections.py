"""Connections and network bytes."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


def row() -> Row:
    return Row("Connections and traffic", (
        Panel("Open connections", "Client connections open now, by pod.",
              (Target(f"sum by (pod) ({sel('velocity_connections')})", "{{pod}}"),)),
        Panel("Connections accepted", "New connections per second, by pod.",
              (Target(f"sum by (pod) ({rate(sel('velocity_connections_accepted_total'))})", "{{pod}}"),),
              unit="ops"),
        Panel("Bytes received / sent", "V-Proto bytes from and to clients (after TLS is removed).",
              (Target(f"sum by (pod) ({rate(sel('velocity_received_bytes_total'))})", "in {{pod}}"),
               Target(f"sum by (pod) ({rate(sel('velocity_sent_bytes_total'))})", "out {{pod}}")),
              unit="Bps"),
    ))
