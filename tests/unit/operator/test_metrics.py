"""The operator's metric names are a contract with the dashboards."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from velocity_operator.kube import ApiError
from velocity_operator.metrics import OperatorMetrics, error_reason

CONTRACT = {
    "velocity_operator_reconciles_total": {"resource", "result"},
    "velocity_operator_reconcile_duration_seconds": {"resource"},
    "velocity_operator_reconcile_errors_total": {"resource", "reason"},
    "velocity_operator_managed_clusters": {"phase"},
    "velocity_operator_backups_total": {"result"},
    "velocity_operator_certificate_expiry_timestamp_seconds": {"cluster", "namespace"},
    "velocity_operator_backup_last_success_timestamp_seconds": {"cluster", "namespace"},
    "velocity_operator_cluster_desired_replicas": {"cluster", "namespace"},
    "velocity_operator_leader": set(),
}


def test_names_and_labels_match_the_contract() -> None:
    m = OperatorMetrics()
    with m.reconciling("VelocityCluster"):
        pass
    with pytest.raises(ApiError), m.reconciling("VelocityCluster"):
        raise ApiError("PATCH", "/x", 409, "Conflict", "busy")
    m.set_phase("prod", "alpha", "Ready")
    m.backup_finished("prod", "alpha", {"phase": "Completed", "completionTime": "2026-01-01T00:00:00Z"})
    m.certificate_expiry.labels("alpha", "prod").set(1.7e9)
    m.desired_replicas.labels("alpha", "prod").set(3)
    found = {}
    for family in m.registry.collect():
        for sample in family.samples:
            if sample.name.startswith("velocity_operator_"):
                base = family.name if family.type != "counter" else family.name + "_total"
                found.setdefault(base, set()).update(k for k in sample.labels if k != "le")
    assert found == CONTRACT
    text = generate_latest(m.registry).decode()
    assert 'velocity_operator_reconcile_errors_total{reason="Conflict",resource="VelocityCluster"} 1.0' in text
    assert 'velocity_operator_reconciles_total{resource="VelocityCluster",result="success"} 1.0' in text
    assert 'velocity_operator_managed_clusters{phase="Ready"} 1.0' in text


def test_phase_gauge_follows_clusters() -> None:
    m = OperatorMetrics()
    m.set_phase("a", "x", "Provisioning")
    m.set_phase("a", "y", "Provisioning")
    m.set_phase("a", "x", "Ready")
    m.set_phase("a", "y", None)
    text = generate_latest(m.registry).decode()
    assert 'velocity_operator_managed_clusters{phase="Ready"} 1.0' in text
    assert 'velocity_operator_managed_clusters{phase="Provisioning"} 0.0' in text


def test_desired_replicas_go_with_the_cluster() -> None:
    m = OperatorMetrics()
    m.set_phase("prod", "alpha", "Ready")
    m.desired_replicas.labels("alpha", "prod").set(3)
    series = 'velocity_operator_cluster_desired_replicas{cluster="alpha",namespace="prod"}'
    assert f"{series} 3.0" in generate_latest(m.registry).decode()
    m.set_phase("prod", "alpha", None)
    assert series not in generate_latest(m.registry).decode()


def test_error_reason_looks_through_the_retry_wrapper() -> None:
    try:
        try:
            raise ApiError("PATCH", "/x", 403, "Forbidden", "no")
        except ApiError:
            raise RuntimeError("retry later") from None
    except RuntimeError as exc:
        assert error_reason(exc) == "Forbidden"
    assert error_reason(ValueError("x")) == "ValueError"


def test_backup_last_success_moves_forward_only_and_goes_with_the_cluster() -> None:
    m = OperatorMetrics()
    series = 'velocity_operator_backup_last_success_timestamp_seconds{cluster="alpha",namespace="prod"}'
    m.backup_finished("prod", "alpha", {"phase": "Failed", "completionTime": "2026-01-01T00:00:00Z"})
    assert series not in generate_latest(m.registry).decode()  # a failure is no success
    m.backup_finished("prod", "alpha", {"phase": "Completed", "completionTime": "2026-01-01T01:00:00Z"})
    # An older lastBackup read from a status after a restart does not move it back.
    m.observe_last_backup("prod", "alpha", {"phase": "Completed", "completionTime": "2026-01-01T00:30:00Z"})
    m.observe_last_backup("prod", "alpha", None)
    text = generate_latest(m.registry).decode()
    assert f"{series} 1.7672292e+09" in text
    assert 'velocity_operator_backups_total{result="Failed"} 1.0' in text
    assert 'velocity_operator_backups_total{result="Completed"} 1.0' in text
    m.set_phase("prod", "alpha", "Ready")
    m.set_phase("prod", "alpha", None)
    assert series not in generate_latest(m.registry).decode()
