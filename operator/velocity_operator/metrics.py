"""The operator's own Prometheus metrics, served on /metrics (port 8080).

The names and labels are a contract with the dashboards (dashboards/, manifests/monitoring/):
do not rename them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "METRICS_PORT",
    "OperatorMetrics",
]

METRICS_PORT = 8080


class OperatorMetrics:
    """All operator metrics in one registry (one per operator, so tests can make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "velocity_operator_reconciles_total",
            "Reconciliations by resource kind and result (success, error).",
            ["resource", "result"], registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "velocity_operator_reconcile_duration_seconds",
            "Time one reconciliation took.",
            ["resource"], registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.reconcile_errors = Counter(
            "velocity_operator_reconcile_errors_total",
            "Failed reconciliations by resource kind and reason (the API error reason or exception).",
            ["resource", "reason"], registry=self.registry,
        )
        self.managed_clusters = Gauge(
            "velocity_operator_managed_clusters",
            "VelocityClusters the operator manages, by status.phase.",
            ["phase"], registry=self.registry,
        )
        self.backups = Counter(
            "velocity_operator_backups_total",
            "Finished backups by result (Completed, Failed).",
            ["result"], registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "velocity_operator_certificate_expiry_timestamp_seconds",
            "Unix time at which a cluster's server certificate expires.",
            ["cluster", "namespace"], registry=self.registry,
        )
        self.backup_last_success = Gauge(
            "velocity_operator_backup_last_success_timestamp_seconds",
            "Unix time at which the newest Completed backup of a cluster finished (set when its "
            "Job completes, and from status.lastBackup after an operator restart).",
            ["cluster", "namespace"], registry=self.registry,
        )
        self.desired_replicas = Gauge(
            "velocity_operator_cluster_desired_replicas",
            "spec.replicas of a VelocityCluster: the pods it should have (the cluster dashboard "
            "compares the engines' velocity_ready with it).",
            ["cluster", "namespace"], registry=self.registry,
        )
        self.leader = Gauge(
            "velocity_operator_leader",
            "1 while this operator replica holds the leader-election Lease and reconciles, 0 while "
            "it stands by (always 1 with leader election off).",
            registry=self.registry,
        )
        self._phases: dict[tuple[str, str], str] = {}
        self._last_success: dict[tuple[str, str], float] = {}

    @contextmanager
    def reconciling(self, resource: str) -> Iterator[None]:
        """Count and time one reconciliation; an exception counts as an error with its type."""
        start = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.reconciles.labels(resource, "error").inc()
            self.reconcile_errors.labels(resource, error_reason(exc)).inc()
            raise
        else:
            self.reconciles.labels(resource, "success").inc()
        finally:
            self.reconcile_duration.labels(resource).observe(time.perf_counter() - start)

    def backup_finished(self, namespace: str, cluster: str, status: Mapping[str, Any]) -> None:
        """A VelocityBackup of `cluster` reached Completed or Failed (its final status)."""
        self.backups.labels(str(status.get("phase"))).inc()
        self.observe_last_backup(namespace, cluster, status)

    def observe_last_backup(self, namespace: str, cluster: str, last: Mapping[str, Any] | None) -> None:
        """Record a finished backup (a VelocityBackup status or a cluster's status.lastBackup):
        a Completed one with a completionTime moves the last-success gauge forward, never back."""
        if not last or last.get("phase") != "Completed" or not isinstance(last.get("completionTime"), str):
            return
        when = dt.datetime.fromisoformat(last["completionTime"].replace("Z", "+00:00")).timestamp()
        key = (cluster, namespace)
        if when > self._last_success.get(key, 0.0):
            self._last_success[key] = when
            self.backup_last_success.labels(cluster, namespace).set(when)

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a cluster's phase (None: the cluster is gone) and refresh the gauge."""
        key = (namespace, name)
        if phase is None:
            self._phases.pop(key, None)
            if (name, namespace) in self._cert_keys():
                self.certificate_expiry.remove(name, namespace)
            if self._last_success.pop((name, namespace), None) is not None:
                self.backup_last_success.remove(name, namespace)
            if (name, namespace) in self._desired_keys():
                self.desired_replicas.remove(name, namespace)
        else:
            self._phases[key] = phase
        counts: dict[str, int] = {}
        for value in self._phases.values():
            counts[value] = counts.get(value, 0) + 1
        for phase_name in ("Pending", "Provisioning", "Ready", "Scaling", "Updating", "Degraded"):
            self.managed_clusters.labels(phase_name).set(counts.get(phase_name, 0))

    def _desired_keys(self) -> set[tuple[str, str]]:
        return {
            (s.labels["cluster"], s.labels["namespace"])
            for metric in self.desired_replicas.collect() for s in metric.samples
        }

    def _cert_keys(self) -> set[tuple[str, str]]:
        return {
            (s.labels["cluster"], s.labels["namespace"])
            for metric in self.certificate_expiry.collect() for s in metric.samples
        }


def error_reason(exc: BaseException) -> str:
    """A low-cardinality label for an error: the API reason if there is one, else the type.

    Handlers re-raise failures as kopf.TemporaryError (to set the retry delay); the
    original exception is its __context__, and that is what the label names.
    """
    seen: BaseException | None = exc
    while seen is not None:
        reason = getattr(seen, "reason", None)
        if isinstance(reason, str) and reason.isidentifier():
            return reason
        if seen.__context__ is None:
            return type(seen).__name__
        seen = seen.__context__
    return type(exc).__name__
