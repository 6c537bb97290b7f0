"""Snapshots: age of the last successful snapshot (what every backup is made of), size, duration, count.

The engine reports 0 as the last-success time until it writes its first snapshot after a
start, so the age panel drops zeros instead of showing "56 years".
"""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import sel


def row() -> Row:
    last = sel("velocity_snapshot_last_success_timestamp_seconds")
    return Row("Snapshots", (
        Panel("Time since last snapshot",
              "Age of each pod's last successful snapshot since it started (backups and `velocityctl snapshot` "
              "both take one). Empty until the first.",
              (Target(f"time() - max by (pod) ({last} > 0)", "{{pod}}"),), unit="dtdurations"),
        Panel("Snapshot size", "Bytes of each pod's last snapshot file.",
              (Target(f"max by (pod) ({sel('velocity_snapshot_bytes')})", "{{pod}}"),), unit="bytes"),
        Panel("Snapshot duration", "Time each pod's last snapshot took to write.",
              (Target(f"max by (pod) ({sel('velocity_snapshot_duration_seconds')})", "{{pod}}"),), unit="s"),
        Panel("Snapshots taken", "Snapshots each pod wrote in the last hour (backups, velocityctl snapshot).",
              (Target(f"sum by (pod) (increase({sel('velocity_snapshots_total')}[1h]))", "{{pod}}"),)),
    ))
