"""Status: phase and conditions from what the StatefulSet reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from velocity_operator.builders.status import Problem, cluster_status, latest_finished_backup
from velocity_operator.conditions import BACKUP_SUCCEEDED, DEGRADED, PROGRESSING, READY, Reason

from .conftest import make_spec

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _sts(replicas: int, ready: int, updated: int | None = None, same_revision: bool = True,
         generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": ready,
                   "updatedReplicas": replicas if updated is None else updated,
                   "observedGeneration": observed, "currentRevision": "r1",
                   "updateRevision": "r1" if same_revision else "r2"},
    }


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _status(spec_replicas: int, sts: dict[str, Any] | None, previous: dict[str, Any] | None = None,
            problems: list[Problem] | None = None, now: dt.datetime = T0) -> dict[str, Any]:
    return cluster_status(cluster="alpha", spec=make_spec(replicas=spec_replicas), generation=4,
                          statefulset=sts, previous=previous or {}, now=now, image="img",
                          problems=problems or [])


def test_pending_before_the_statefulset_exists() -> None:
    status = _status(1, None)
    assert status["phase"] == "Pending"
    assert _cond(status, READY)["status"] == "False"
    assert _cond(status, PROGRESSING)["status"] == "True"


def test_provisioning_then_ready() -> None:
    status = _status(3, _sts(3, 0))
    assert status["phase"] == "Provisioning"
    status = _status(3, _sts(3, 3), previous=status, now=T0 + dt.timedelta(seconds=30))
    assert status["phase"] == "Ready"
    ready = _cond(status, READY)
    assert ready["status"] == "True" and ready["reason"] == Reason.ALL_READY
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:30Z"
    assert _cond(status, PROGRESSING)["status"] == "False"
    assert _cond(status, DEGRADED)["status"] == "False"
    assert status["observedGeneration"] == 4
    assert status["readyReplicas"] == 3
    assert "currentPrimary" not in status  # nobody holds the Lease yet
    assert status["selector"] == "app.kubernetes.io/name=velocity,app.kubernetes.io/instance=alpha"


def test_transition_time_kept_while_status_holds() -> None:
    first = _status(1, _sts(1, 1))
    later = _status(1, _sts(1, 1), previous=first, now=T0 + dt.timedelta(hours=1))
    assert _cond(later, READY)["lastTransitionTime"] == _cond(first, READY)["lastTransitionTime"]


def test_scaling_and_updating() -> None:
    ready = _status(1, _sts(1, 1))
    assert _status(3, _sts(1, 1), previous=ready)["phase"] == "Scaling"
    rolling = _status(3, _sts(3, 2, updated=1, same_revision=False), previous=ready)
    assert rolling["phase"] == "Updating"
    assert _cond(rolling, PROGRESSING)["reason"] == Reason.ROLLING_UPDATE
    assert _cond(rolling, READY)["status"] == "False"


def test_stale_statefulset_status_is_not_ready() -> None:
    status = _status(1, _sts(1, 1, generation=2, observed=1))
    assert _cond(status, READY)["status"] == "False"


def test_problems_degrade() -> None:
    problem = Problem(Reason.STORAGE_SHRINK_REFUSED, "aof cannot shrink")
    status = _status(1, _sts(1, 1), problems=[problem])
    assert status["phase"] == "Degraded"
    degraded = _cond(status, DEGRADED)
    assert degraded["status"] == "True" and degraded["reason"] == Reason.STORAGE_SHRINK_REFUSED
    assert _cond(status, READY)["status"] == "True"  # still serving


def test_backup_fields_survive() -> None:
    previous = {"lastBackup": {"name": "b1", "phase": "Completed"}, "lastScheduledBackupTime": "x"}
    status = _status(1, _sts(1, 1), previous=previous)
    assert status["lastBackup"] == previous["lastBackup"]
    assert status["lastScheduledBackupTime"] == "x"


def _backup(name: str, cluster: str, phase: str | None, done: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "completionTime": done, "message": "m"} if phase else {}
    return {"metadata": {"name": name, "creationTimestamp": done}, "spec": {"cluster": cluster}, "status": status}


def test_latest_finished_backup_sets_backup_succeeded() -> None:
    backups = [
        _backup("b1", "alpha", "Completed", "2026-01-01T01:00:00Z"),
        _backup("b2", "alpha", "Failed", "2026-01-01T02:00:00Z"),
        _backup("b3", "alpha", None),
        _backup("x9", "other", "Completed", "2026-01-01T03:00:00Z"),
    ]
    latest = latest_finished_backup(backups, "alpha")
    assert latest is not None and latest["metadata"]["name"] == "b2"
    status = cluster_status(cluster="alpha", spec=make_spec(), generation=1, statefulset=_sts(1, 1),
                            previous={}, now=T0, image="img", last_backup=latest)
    assert status["lastBackup"]["name"] == "b2"
    assert _cond(status, BACKUP_SUCCEEDED)["status"] == "False"
    ok = latest_finished_backup(backups[:1], "alpha")
    status = cluster_status(cluster="alpha", spec=make_spec(), generation=1, statefulset=_sts(1, 1),
                            previous=status, now=T0, image="img", last_backup=ok)
    assert _cond(status, BACKUP_SUCCEEDED)["status"] == "True"
    assert latest_finished_backup([], "alpha") is None


def test_current_primary_is_the_lease_holder() -> None:
    status = cluster_status(cluster="alpha", spec=make_spec(replicas=3), generation=1, statefulset=_sts(3, 3),
                            previous={}, now=T0, image="img", primary="alpha-2")
    assert status["currentPrimary"] == "alpha-2"


def test_on_delete_rollout_done_when_every_pod_is_updated() -> None:
    """Under OnDelete currentRevision never advances: all pods updated means done."""
    sts = _sts(3, 3, updated=3, same_revision=False)
    assert _status(3, sts, previous={"readyReplicas": 3})["phase"] == "Ready"
    assert _status(3, _sts(3, 3, updated=2, same_revision=False), previous={"readyReplicas": 3})["phase"] == "Updating"
