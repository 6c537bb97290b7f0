"""Condition types and reasons of VelocityCluster and VelocityBackup, and how they change.

Conditions are the API for programs (`kubectl wait --for=condition=Ready vc/NAME`); the
phase is a summary for humans.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = [
    "BACKUP_SUCCEEDED",
    "COMPLETED",
    "DEGRADED",
    "PROGRESSING",
    "READY",
    "Reason",
    "merge_condition",
]

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
BACKUP_SUCCEEDED = "BackupSucceeded"
COMPLETED = "Completed"  # VelocityBackup: mirrors phase Completed for `kubectl wait`


class Reason:
    """CamelCase reasons, for programs to match on."""

    ALL_READY = "AllReplicasReady"
    NOT_ALL_READY = "ReplicasNotReady"
    CREATING = "Creating"
    ROLLING_UPDATE = "RollingUpdate"
    SCALING = "Scaling"
    UP_TO_DATE = "UpToDate"
    AS_EXPECTED = "AsExpected"
    STORAGE_SHRINK_REFUSED = "StorageShrinkRefused"
    VOLUME_EXPANSION_FAILED = "VolumeExpansionFailed"
    TLS_SECRET_MISSING = "TLSSecretMissing"
    CERT_MANAGER_NOT_INSTALLED = "CertManagerNotInstalled"
    RECONCILE_FAILED = "ReconcileFailed"
    BACKUP_COMPLETED = "BackupCompleted"
    BACKUP_FAILED = "BackupFailed"
    CLUSTER_NOT_FOUND = "ClusterNotFound"
    WAITING_FOR_CREDENTIALS = "WaitingForCredentials"
    # S3 backup failures, as the backup Job reports them (snapshot_job.s3_failure_reason).
    S3_ACCESS_DENIED = "S3AccessDenied"
    S3_BUCKET_NOT_FOUND = "S3BucketNotFound"
    S3_UNREACHABLE = "S3Unreachable"
    S3_ERROR = "S3Error"
    JOB_FAILED = "JobFailed"
    JOB_RUNNING = "JobRunning"
    WAITING_FOR_CLUSTER = "WaitingForCluster"


def merge_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """`conditions` with the condition `type_` set; lastTransitionTime only moves when the
    status flips, so `kubectl wait` and alerts see real transitions, not every reconcile."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.get("type") == type_), None)
    changed = old is None or old.get("status") != value
    new: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _ts(now) if changed or old is None else old["lastTransitionTime"],
    }
    if generation is not None:
        new["observedGeneration"] = generation
    rest = [c for c in conditions if c.get("type") != type_]
    return [*rest, new] if old is None else [new if c is old else c for c in conditions]


def _ts(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
