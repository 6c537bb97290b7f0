"""Reconcile one VelocityBackup: run the snapshot Job, then record the result.

Pending -> Running (Job created) -> Completed | Failed. A finished backup is never
touched again. The result (size, checksum, duration) comes from the Job pod's
termination message written by `velocity_operator.snapshot_job`; so does the reason of
an S3 failure (S3AccessDenied, S3BucketNotFound, ...). An S3 backup waits (Pending,
WaitingForCredentials) until its credentials and CA Secrets exist with their keys.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from .. import names
from ..api.backup import VelocityBackupSpec
from ..api.cluster import VelocityClusterSpec
from ..api.crd import BACKUP
from ..builders.backup_job import BackupLocation, S3Location, backup_job, resolve_destination
from ..builders.meta import Owner, object_meta
from ..builders.placement import job_placement
from ..conditions import BACKUP_SUCCEEDED, COMPLETED, Reason, merge_condition
from ..kube import Kube
from .actions import Action, Settings

__all__ = ["FINISHED", "BackupResult", "reconcile_backup", "scheduled_backup"]

FINISHED = ("Completed", "Failed")
_S3_REASONS = frozenset({Reason.S3_ACCESS_DENIED, Reason.S3_BUCKET_NOT_FOUND, Reason.S3_UNREACHABLE, Reason.S3_ERROR})


@dataclass
class BackupResult:
    status: dict[str, Any]
    actions: list[Action] = field(default_factory=list)
    finished: bool = False
    cluster_patch: dict[str, Any] | None = None  # status fields to set on the cluster


def _ts(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finish(previous: dict[str, Any], phase: str, reason: str, message: str, now: dt.datetime,
            **extra: Any) -> dict[str, Any]:
    status = {**previous, **extra, "phase": phase, "reason": reason, "message": message,
              "completionTime": _ts(now)}
    status["conditions"] = merge_condition(
        list(previous.get("conditions") or []), type_=COMPLETED, status=phase == "Completed",
        reason=reason, message=message, now=now,
    )
    return status


async def _ensure_default_claim(kube: Kube, cluster: dict[str, Any], spec: VelocityClusterSpec,
                                actions: list[Action]) -> None:
    """CLUSTER-backups, created on first use. Not owned by the cluster: backups must
    outlive it (restoring a deleted cluster is the point of having them)."""
    name = names.backups_claim(cluster["metadata"]["name"])
    size = str(spec.backup.volume_size) if spec.backup else "5Gi"
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": cluster["metadata"]["namespace"],
                     "labels": names.labels(cluster["metadata"]["name"])},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
    if spec.storage.storage_class_name:
        claim["spec"]["storageClassName"] = spec.storage.storage_class_name
    if await kube.create(claim) is not None:
        actions.append(Action("BackupVolumeCreated", f"created PersistentVolumeClaim {name} ({size})"))


async def reconcile_backup(kube: Kube, body: dict[str, Any], settings: Settings,
                           now: dt.datetime) -> BackupResult:
    meta = body["metadata"]
    previous = dict(body.get("status") or {})
    if previous.get("phase") in FINISHED:
        return BackupResult(previous, finished=True)
    spec = VelocityBackupSpec.model_validate(body.get("spec") or {})
    namespace, name = meta["namespace"], meta["name"]
    owner = Owner(name=name, namespace=namespace, uid=meta["uid"], kind=BACKUP.kind)
    actions: list[Action] = []

    cluster = await kube.get("vdb.io/v1alpha1", "VelocityCluster", namespace, spec.cluster)
    if cluster is None:
        status = _finish(previous, "Failed", Reason.CLUSTER_NOT_FOUND,
                         f"VelocityCluster {spec.cluster} does not exist in namespace {namespace}", now)
        return BackupResult(status, [Action(Reason.CLUSTER_NOT_FOUND, status["message"], warning=True)],
                            finished=True)
    cluster_spec = VelocityClusterSpec.model_validate(cluster.get("spec") or {})
    destination = spec.destination or (cluster_spec.backup.destination if cluster_spec.backup else None)
    location = resolve_destination(spec.cluster, name, destination)
    if destination is None:
        await _ensure_default_claim(kube, cluster, cluster_spec, actions)

    job_name = names.backup_job(name)
    job = await kube.get("batch/v1", "Job", namespace, job_name)
    if job is None:
        cluster_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (cluster.get("status") or {}).get("conditions") or [])
        if not cluster_ready:
            status = {**previous, "phase": "Pending", "reason": Reason.WAITING_FOR_CLUSTER,
                      "message": f"waiting for VelocityCluster {spec.cluster} to be Ready",
                      "location": location.url}
            return BackupResult(status, actions)
        missing = await _missing_credentials(kube, namespace, location)
        if missing:
            status = {**previous, "phase": "Pending", "reason": Reason.WAITING_FOR_CREDENTIALS,
                      "message": missing, "location": location.url}
            return BackupResult(status, actions)
        image = cluster_spec.image or settings.default_image
        await kube.create(backup_job(owner, cluster=spec.cluster, backup=name, location=location,
                                     image=image, tls=cluster_spec.tls.enabled,
                                     scratch_size=str(cluster_spec.storage.snapshots.size),
                                     placement=job_placement(cluster_spec)))
        actions.append(Action("SnapshotStarted", f"started Job {job_name} writing {location.url}"))
        status = {**previous, "phase": "Running", "reason": Reason.JOB_RUNNING, "jobName": job_name,
                  "startTime": _ts(now), "location": location.url,
                  "message": f"Job {job_name} is taking the snapshot"}
        return BackupResult(status, actions)

    job_status = job.get("status") or {}
    conditions = {c.get("type"): c for c in job_status.get("conditions") or [] if c.get("status") == "True"}
    base = {**previous, "jobName": job_name, "location": location.url}
    if "Complete" in conditions:
        report = await _termination_report(kube, namespace, name)
        extra = {k: report[k] for k in ("sizeBytes", "checksum", "durationSeconds") if k in report}
        status = _finish(base, "Completed", Reason.BACKUP_COMPLETED,
                         f"snapshot stored at {location.url}", now, **extra)
        actions.append(Action(Reason.BACKUP_COMPLETED, f"backup stored at {location.url} "
                                                       f"({extra.get('sizeBytes', '?')} bytes)"))
        return BackupResult(status, actions, finished=True,
                            cluster_patch=_cluster_patch(cluster, name, status, now, success=True))
    if "Failed" in conditions:
        report = await _termination_report(kube, namespace, name)
        detail = report.get("error") or conditions["Failed"].get("message") or "the snapshot Job failed"
        reason = report["reason"] if report.get("reason") in _S3_REASONS else Reason.JOB_FAILED
        status = _finish(base, "Failed", reason, str(detail), now)
        actions.append(Action(Reason.BACKUP_FAILED, str(detail), warning=True))
        return BackupResult(status, actions, finished=True,
                            cluster_patch=_cluster_patch(cluster, name, status, now, success=False))
    status = {**base, "phase": "Running", "reason": Reason.JOB_RUNNING,
              "message": f"Job {job_name} is taking the snapshot"}
    return BackupResult(status, actions)


async def _missing_credentials(kube: Kube, namespace: str, location: BackupLocation) -> str:
    """Why an S3 backup cannot start yet ("" when it can): its credentials or CA Secret,
    or a key of one, is missing. Without this check the Job's pod would sit in
    CreateContainerConfigError. Without a credentials Secret there is nothing to wait
    for: the pod's default chain finds credentials or the Job reports S3AccessDenied."""
    if not isinstance(location, S3Location):
        return ""
    wanted: dict[str, list[str]] = {}
    if (ref := location.destination.credentials_secret) is not None:
        wanted[ref.name] = [ref.access_key_id_key, ref.secret_access_key_key,
                            *([ref.session_token_key] if ref.session_token_key else [])]
    if (ca := location.destination.ca_secret) is not None:
        wanted.setdefault(ca.name, []).append(ca.key)
    for name, keys in wanted.items():
        secret = await kube.get("v1", "Secret", namespace, name)
        if secret is None:
            return f"waiting for the S3 Secret {name} in namespace {namespace}"
        absent = [k for k in keys if k not in (secret.get("data") or {})]
        if absent:
            return f"S3 Secret {name} has no key {', '.join(absent)}"
    return ""


async def _termination_report(kube: Kube, namespace: str, backup: str) -> dict[str, Any]:
    """The JSON the snapshot runner left in its termination message (newest pod first)."""
    pods = await kube.list("v1", "Pod", namespace, label_selector=f"vdb.io/backup={backup}")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((cs.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                try:
                    report = json.loads(message)
                except ValueError:
                    return {"error": message[-1000:]}
                if isinstance(report, dict):
                    return report
    return {}


def _cluster_patch(cluster: dict[str, Any], backup: str, status: dict[str, Any], now: dt.datetime,
                   *, success: bool) -> dict[str, Any]:
    previous = cluster.get("status") or {}
    conditions = merge_condition(
        list(previous.get("conditions") or []), type_=BACKUP_SUCCEEDED, status=success,
        reason=Reason.BACKUP_COMPLETED if success else Reason.BACKUP_FAILED,
        message=f"backup {backup}: {status['message']}", now=now,
    )
    last = {"name": backup, "phase": status["phase"], "completionTime": status["completionTime"]}
    if "location" in status:
        last["location"] = status["location"]
    return {"conditions": conditions, "lastBackup": last}


def scheduled_backup(cluster: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    """The VelocityBackup the schedule creates at `when` (named CLUSTER-YYYYMMDDHHMM)."""
    name = cluster["metadata"]["name"]
    owner = Owner(name=name, namespace=cluster["metadata"]["namespace"], uid=cluster["metadata"]["uid"])
    meta = object_meta(owner, f"{name}-{when:%Y%m%d%H%M}")
    del meta["ownerReferences"]  # backups outlive their cluster
    meta["labels"]["vdb.io/cluster"] = name
    meta["labels"]["vdb.io/scheduled"] = "true"
    return {"apiVersion": BACKUP.api_version, "kind": BACKUP.kind, "metadata": meta,
            "spec": {"cluster": name}}
