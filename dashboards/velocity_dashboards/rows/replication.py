"""Replication: role per pod, lag, connected replicas, backlog and epoch."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import sel


def row() -> Row:
    primary = sel("velocity_replication_role", 'role="primary"')
    return Row("Replication", (
        Panel("Primaries and replicas", "Pods in each role. Exactly one primary per cluster is healthy: "
              "none means no writes (VelocityNoPrimary), two means split brain (VelocityTwoPrimaries).",
              (Target(f"sum by (role) ({sel('velocity_replication_role')})", "{{role}}"),), stacked=True),
        Panel("Role by pod", "1 while the pod is the primary, 0 while it is a replica.",
              (Target(f"max by (pod) ({primary})", "{{pod}}"),),
              max=1),
        Panel("Replication lag (seconds)", "How far each replica is behind its primary (while its link is "
              "down: time since it last heard the primary); on a primary, its slowest replica.",
              (Target(f"max by (pod) ({sel('velocity_replication_lag_seconds')})", "{{pod}}"),), unit="s"),
        Panel("Replication lag (batches)", "Write batches each replica has not applied yet.",
              (Target(f"max by (pod) ({sel('velocity_replication_lag_records')})", "{{pod}}"),)),
        Panel("Replicas connected", "Replicas streaming from each primary.",
              (Target(f"max by (pod) ({sel('velocity_replicas_connected')})", "{{pod}}"),)),
        Panel("Backlog and epoch", "Bytes in the primary's replication backlog (a replica further behind "
              "takes a full copy); the epoch grows by one at each promotion.",
              (Target(f"max by (pod) ({sel('velocity_replication_backlog_bytes')})", "backlog {{pod}}"),
               Target(f"max by (pod) ({sel('velocity_replication_epoch')})", "epoch {{pod}}"))),
    ))
