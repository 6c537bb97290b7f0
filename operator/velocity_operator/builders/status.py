"""VelocityCluster.status from what the StatefulSet reports: phase, conditions, counts.

`cluster_status` is pure: the controller passes the observed StatefulSet, the previous
status (so condition transition times survive), problems it found and the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.cluster import VelocityClusterSpec
from ..conditions import BACKUP_SUCCEEDED, DEGRADED, PROGRESSING, READY, Reason, merge_condition

__all__ = ["CertificateInfo", "Problem", "cluster_status", "credentials", "latest_finished_backup"]


@dataclass(frozen=True)
class Problem:
    """Something the operator refused or failed to do; shown as Degraded with this reason."""

    reason: str
    message: str


@dataclass(frozen=True)
class CertificateInfo:
    secret_name: str
    not_after: dt.datetime | None
    renew_after: dt.datetime | None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_status(
    *,
    cluster: str,
    spec: VelocityClusterSpec,
    generation: int,
    statefulset: dict[str, Any] | None,
    previous: dict[str, Any],
    now: dt.datetime,
    image: str,
    problems: Sequence[Problem] = (),
    certificate: CertificateInfo | None = None,
    last_backup: dict[str, Any] | None = None,
    primary: str | None = None,
) -> dict[str, Any]:
    """The status subresource to write (camelCase, as stored). `last_backup` is the
    newest finished VelocityBackup of the cluster (see latest_finished_backup); `primary`
    the pod holding the cluster's Lease (None: nobody has taken it yet)."""
    desired = spec.replicas
    sts_status = (statefulset or {}).get("status", {})
    sts_meta = (statefulset or {}).get("metadata", {})
    sts_replicas = int(sts_status.get("replicas", 0))
    ready = int(sts_status.get("readyReplicas", 0))
    updated = int(sts_status.get("updatedReplicas", 0))
    observed = sts_status.get("observedGeneration", 0) >= sts_meta.get("generation", 1)
    # Under OnDelete the StatefulSet controller never advances currentRevision: a rollout
    # is done when every pod runs the update revision.
    revision_done = (sts_status.get("currentRevision") == sts_status.get("updateRevision")
                     or (sts_replicas > 0 and updated == sts_replicas))

    all_ready = statefulset is not None and observed and ready == desired and sts_replicas == desired
    rolled = all_ready and updated == desired and revision_done

    if statefulset is None:
        phase, progress_reason, progress_msg = "Pending", Reason.CREATING, "creating the cluster's objects"
    elif ready == 0 and not _was_ready(previous):
        phase, progress_reason, progress_msg = (
            "Provisioning", Reason.CREATING, f"waiting for pods: 0/{desired} ready")
    elif sts_replicas != desired or (ready != desired and updated == sts_replicas and revision_done):
        phase, progress_reason, progress_msg = (
            "Scaling", Reason.SCALING, f"scaling to {desired} pods: {ready} ready")
    elif not rolled:
        phase, progress_reason, progress_msg = (
            "Updating", Reason.ROLLING_UPDATE, f"rolling update: {updated}/{desired} pods updated, "
            f"{ready} ready")
    else:
        phase, progress_reason, progress_msg = "Ready", Reason.UP_TO_DATE, "all pods run the current spec"
    if problems:
        phase = "Degraded"

    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    conditions = merge_condition(
        conditions, type_=READY, status=all_ready,
        reason=Reason.ALL_READY if all_ready else Reason.NOT_ALL_READY,
        message=f"{ready}/{desired} pods ready", now=now, generation=generation,
    )
    conditions = merge_condition(
        conditions, type_=PROGRESSING, status=not rolled,
        reason=progress_reason, message=progress_msg, now=now, generation=generation,
    )
    conditions = merge_condition(
        conditions, type_=DEGRADED, status=bool(problems),
        reason=problems[0].reason if problems else Reason.AS_EXPECTED,
        message="; ".join(p.message for p in problems) if problems else "no problems found",
        now=now, generation=generation,
    )

    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": conditions,
        "replicas": sts_replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "selector": names.selector_string(cluster),
        "image": image,
    }
    if primary is not None:
        status["currentPrimary"] = primary
    if spec.tls.enabled:
        status["credentials"] = credentials(cluster)
    if certificate is not None:
        cert: dict[str, Any] = {"secretName": certificate.secret_name}
        if certificate.not_after is not None:
            cert["notAfter"] = _iso(certificate.not_after)
        if certificate.renew_after is not None:
            cert["renewAfter"] = _iso(certificate.renew_after)
        status["certificate"] = cert
    if last_backup is not None:
        b_status = last_backup.get("status") or {}
        name = last_backup["metadata"]["name"]
        summary = {"name": name, "phase": b_status["phase"]}
        for key in ("completionTime", "location"):
            if b_status.get(key):
                summary[key] = b_status[key]
        status["lastBackup"] = summary
        ok = b_status["phase"] == "Completed"
        status["conditions"] = merge_condition(
            status["conditions"], type_=BACKUP_SUCCEEDED, status=ok,
            reason=Reason.BACKUP_COMPLETED if ok else Reason.BACKUP_FAILED,
            message=f"backup {name}: {b_status.get('message', b_status['phase'])}", now=now,
        )
    elif "lastBackup" in previous:
        status["lastBackup"] = previous["lastBackup"]
    if "lastScheduledBackupTime" in previous:
        status["lastScheduledBackupTime"] = previous["lastScheduledBackupTime"]
    return status


def credentials(cluster: str) -> dict[str, str]:
    """status.credentials: the Secrets of the cluster's tokens and CA (each token under `token`)."""
    return {
        "clientSecret": names.auth_secret(cluster),
        "adminSecret": names.admin_secret(cluster),
        "replicationSecret": names.replication_secret(cluster),
        "caSecret": names.ca_secret(cluster),
    }


def latest_finished_backup(backups: Sequence[dict[str, Any]], cluster: str) -> dict[str, Any] | None:
    """The VelocityBackup of `cluster` that finished last (Completed or Failed), if any."""
    finished = [
        b for b in backups
        if (b.get("spec") or {}).get("cluster") == cluster
        and (b.get("status") or {}).get("phase") in ("Completed", "Failed")
    ]
    if not finished:
        return None
    return max(finished, key=lambda b: (b["status"].get("completionTime") or "",
                                        b["metadata"].get("creationTimestamp") or ""))


def _was_ready(previous: dict[str, Any]) -> bool:
    return any(
        c.get("type") == READY and c.get("status") == "True" for c in previous.get("conditions") or []
    ) or bool(previous.get("readyReplicas"))
