"""Snapshots: age of the last successful snapshot and its size."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import sel


def row() -> Row:
    return Row("Snapshots", (
        Panel("Time since last snapshot", "Age of each pod's last successful snapshot.",
              (Target(f"time() - max by (pod) ({sel('velocity_snapshot_last_success_timestamp_seconds')})",
                      "{{pod}}"),), unit="dtdurations", width=12),
        Panel("Snapshot size", "Bytes of each pod's last snapshot.",
              (Target(f"max by (pod) ({sel('velocity_snapshot_bytes')})", "{{pod}}"),), unit="bytes", width=12),
    ))
