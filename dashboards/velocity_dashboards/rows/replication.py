"""Replication: role per pod, lag, connected replicas, backlog and epoch, the Lease election."""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target
from velocity_dashboards.promql import rate, sel


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
        Panel("Lease holder", "1 on the pod that holds the cluster's primary Lease and may write under it "
              "(its lease agent renewed it in time). The holder changes at an election or a switchover.",
              (Target(f"max by (pod) ({sel('velocity_lease_holder')})", "{{pod}}"),), max=1),
        Panel("Lease renewals and agent errors", "Renewals per second by the holder (one per renew interval), "
              "and failed lease-agent rounds per second on any pod (API server unreachable or refusing); "
              "a primary that cannot renew for the lease duration minus two renewals stops taking writes.",
              (Target(f"sum by (pod) ({rate(sel('velocity_lease_renewals_total'))})", "renewals {{pod}}"),
               Target(f"sum by (pod) ({rate(sel('velocity_lease_renew_errors_total'))})", "errors {{pod}}")),
              unit="ops"),
        Panel("Lease changes (last hour)", "Times in the last hour each pod took the Lease (election or "
              "switchover to it), handed it over (switchover, or SIGTERM of the primary) or released it on "
              "shutdown without a successor.",
              (Target(f"sum by (pod) (increase({sel('velocity_lease_acquisitions_total')}[1h]))",
                      "acquired {{pod}}"),
               Target(f"sum by (pod) (increase({sel('velocity_lease_handovers_total')}[1h]))",
                      "handed over {{pod}}"),
               Target(f"sum by (pod) (increase({sel('velocity_lease_releases_total')}[1h]))",
                      "released {{pod}}"))),
    ))
