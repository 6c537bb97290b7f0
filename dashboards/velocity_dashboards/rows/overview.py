"""Overview: the numbers an on-call engineer reads first, to answer "is it healthy?".

The first line is health (each stat green only when that part is healthy): ready pods
against the desired replicas, a primary present, p99 latency, the worst replication lag,
pods refusing writes, backup age and firing alerts. The second line is load.

Desired replicas and backup age come from the operator (`velocity_operator_*`, labelled
with the VelocityCluster's own `cluster` and `namespace`, scraped with honorLabels), so they
are selected by cluster and namespace only (`cluster_sel`); the thresholds of the lag and
backup-age stats are those of VelocityReplicationLagHigh and VelocityBackupTooOld.
"""

from __future__ import annotations

from velocity_dashboards.model import Panel, Row, Target, Threshold
from velocity_dashboards.promql import cluster_sel, rate, sel

_GREEN = Threshold("green")
_BLUE = Threshold("blue")  # informational: no healthy or unhealthy value
_BY_CLUSTER = "namespace, cluster"
REPLICATION_LAG_ALERT_S = 10  # VelocityReplicationLagHigh
BACKUP_TOO_OLD_S = 26 * 3600  # VelocityBackupTooOld


def _stat(width: int, title: str, description: str, targets: tuple[Target, ...], *,
          thresholds: tuple[Threshold, ...], unit: str = "short") -> Panel:
    return Panel(title, description, targets, unit=unit, kind="stat", width=width, height=4, thresholds=thresholds)


def _desired() -> str:
    return f"max by ({_BY_CLUSTER}) ({cluster_sel('velocity_operator_cluster_desired_replicas')})"


def health_panels() -> tuple[Panel, ...]:
    desired = _desired()
    ready = f"sum by ({_BY_CLUSTER}) ({sel('velocity_ready')})"
    latency = rate(sel("velocity_request_duration_seconds_bucket"))
    backup = cluster_sel("velocity_operator_backup_last_success_timestamp_seconds")
    primaries = sel("velocity_replication_role", 'role="primary"')
    firing = cluster_sel("ALERTS", 'alertstate="firing"', 'alertname=~"Velocity.*"')
    return (
        _stat(3, "Ready pods",
              "Engines reporting velocity_ready=1, as a fraction of the cluster's spec.replicas (the operator's "
              "velocity_operator_cluster_desired_replicas): green only at 100%, when every desired pod is ready. "
              "0% when no engine can be scraped. Selecting single pods lowers it.",
              (Target(f"({ready} / on ({_BY_CLUSTER}) {desired}) or on ({_BY_CLUSTER}) (0 * {desired})",
                      "{{namespace}}/{{cluster}}"),),
              unit="percentunit", thresholds=(Threshold("red"), Threshold("orange", 0.5), Threshold("green", 1))),
        _stat(3, "Ready / desired", "Ready engines and the desired replicas (spec.replicas), summed over the "
              "selected clusters.",
              (Target(f"sum({sel('velocity_ready')})", "ready"), Target(f"sum({desired})", "desired")),
              thresholds=(_BLUE,)),
        _stat(3, "Primary present", "Pods in the primary role, per cluster: 1 is healthy; 0 means no writes "
              "(VelocityNoPrimary), 2 or more a split brain (VelocityTwoPrimaries).",
              (Target(f"sum by ({_BY_CLUSTER}) ({primaries})",
                      "{{namespace}}/{{cluster}}"),),
              thresholds=(Threshold("red"), Threshold("green", 1), Threshold("red", 2))),
        _stat(3, "Latency p99", "99th percentile of the engine's service time over every operation and selected "
              "pod (velocity_request_duration_seconds; not network time).",
              (Target(f"histogram_quantile(0.99, sum by (le) ({latency}))"),), unit="s",
              thresholds=(_GREEN, Threshold("orange", 0.01), Threshold("red", 0.1))),
        _stat(3, "Max replication lag", "The furthest-behind replica of the selection, in seconds (a primary "
              f"reports its slowest replica). Red from {REPLICATION_LAG_ALERT_S}s, where "
              "VelocityReplicationLagHigh starts counting.",
              (Target(f"max({sel('velocity_replication_lag_seconds')})"),), unit="s",
              thresholds=(_GREEN, Threshold("orange", 1), Threshold("red", REPLICATION_LAG_ALERT_S))),
        _stat(3, "Writes refused", "Pods refusing writes after a failed write or fsync (velocity_writes_refused; "
              "until restarted). Anything above 0 is an incident (VelocityWritesRefused).",
              (Target(f"sum({sel('velocity_writes_refused')})"),),
              thresholds=(_GREEN, Threshold("red", 1))),
        _stat(3, "Backup age", "Time since each cluster's newest Completed backup (the operator's "
              "velocity_operator_backup_last_success_timestamp_seconds). Orange after a day, red after 26h "
              "(VelocityBackupTooOld). Empty for a cluster that never completed a backup.",
              (Target(f"time() - max by ({_BY_CLUSTER}) ({backup})", "{{namespace}}/{{cluster}}"),),
              unit="dtdurations",
              thresholds=(_GREEN, Threshold("orange", 24 * 3600), Threshold("red", BACKUP_TOO_OLD_S))),
        _stat(3, "Firing alerts", "Velocity alerts firing now for the selected clusters and namespaces "
              "(Prometheus's ALERTS series; alerts without a cluster label, like the operator's reconcile "
              "errors, count while $cluster is All). Each alert links its runbook.",
              (Target(f"count({firing}) or vector(0)"),),
              thresholds=(_GREEN, Threshold("red", 1))),
    )


def load_panels() -> tuple[Panel, ...]:
    errors = f"sum({rate(sel('velocity_errors_total'))})"
    requests = f"sum({rate(sel('velocity_requests_total'))})"
    return (
        _stat(4, "Requests/s", "All operations, all selected pods.",
              (Target(requests),), unit="reqps", thresholds=(_BLUE,)),
        _stat(4, "Error replies", "Error replies as a fraction of requests (every error code).",
              (Target(f"{errors} / clamp_min({requests}, 1e-9)"),), unit="percentunit",
              thresholds=(_GREEN, Threshold("orange", 0.01), Threshold("red", 0.05))),
        _stat(4, "Connections", "Open client connections.",
              (Target(f"sum({sel('velocity_connections')})"),), thresholds=(_BLUE,)),
        _stat(4, "Keys", "Keys stored, expired keys not yet removed included.",
              (Target(f"sum({sel('velocity_keys')})"),), thresholds=(_BLUE,)),
        _stat(4, "Data bytes", "Bytes of keys and values held, all selected pods.",
              (Target(f"sum({sel('velocity_data_bytes')})"),), unit="bytes", thresholds=(_BLUE,)),
        _stat(4, "Youngest uptime", "Seconds since the most recently (re)started selected engine started: a "
              "restart shows here first.",
              (Target(f"min({sel('velocity_uptime_seconds')})"),), unit="dtdurations",
              thresholds=(Threshold("orange"), Threshold("green", 600))),
    )


def row() -> Row:
    return Row("Overview", (*health_panels(), *load_panels()))
