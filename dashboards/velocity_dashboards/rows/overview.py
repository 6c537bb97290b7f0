"""Overview: the handful of numbers an on-call engineer reads first."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target, Threshold
from velocity_dashboards.promql import rate, sel

_GREEN = Threshold("green")


def row() -> Row:
    errors = f"sum({rate(sel('velocity_errors_total'))})"
    requests = f"sum({rate(sel('velocity_requests_total'))})"
    return Row("Overview", (
        Panel("Ready pods", "Engines reporting velocity_ready=1 (accepting requests).",
              (Target(f"sum({sel('velocity_ready')})"),), kind="stat", width=4, height=4,
              thresholds=(Threshold("red"), Threshold("green", 1))),
        Panel("Requests/s", "All operations, all selected pods.",
              (Target(requests),), unit="reqps", kind="stat", width=4, height=4, thresholds=(_GREEN,)),
        Panel("Error replies", "Error replies as a fraction of requests (every error code).",
              (Target(f"{errors} / clamp_min({requests}, 1e-9)"),), unit="percentunit", kind="stat",
              width=4, height=4, thresholds=(_GREEN, Threshold("orange", 0.01), Threshold("red", 0.05))),
        Panel("Connections", "Open client connections.",
              (Target(f"sum({sel('velocity_connections')})"),), kind="stat", width=4, height=4,
              thresholds=(_GREEN,)),
        Panel("Keys", "Keys stored, expired keys not yet removed included.",
              (Target(f"sum({sel('velocity_keys')})"),), kind="stat", width=4, height=4, thresholds=(_GREEN,)),
        Panel("Oldest uptime", "Seconds since the longest-running selected engine started.",
              (Target(f"max({sel('velocity_uptime_seconds')})"),), unit="dtdurations", kind="stat", width=4,
              height=4, thresholds=(_GREEN,)),
    ))
