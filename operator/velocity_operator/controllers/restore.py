"""spec.bootstrap.fromBackup: find the snapshot a new cluster starts from.

A pvc:// backup is mounted read-only; an s3:// backup is downloaded by an init container
and checked against the SHA-256 in the backup's status (builders/restore_download.py).
The S3 endpoint and credentials of an s3:// backup come from, in order: the backup's own
spec.destination, the backed-up cluster's spec.backup.destination, and the restoring
cluster's spec.backup.destination, the first whose bucket matches the location.
"""

from __future__ import annotations

from typing import Any

from ..api.backup import VelocityBackupSpec
from ..api.cluster import VelocityClusterSpec
from ..api.destination import BackupDestination, S3Destination
from ..builders.restore_download import S3RestoreSource
from ..builders.statefulset import RestoreSource
from ..kube import Kube

__all__ = ["BackupNotReadyError", "restore_source"]


class BackupNotReadyError(RuntimeError):
    """The backup named in spec.bootstrap.fromBackup is missing or not Completed (yet)."""


async def restore_source(kube: Kube, namespace: str,
                         spec: VelocityClusterSpec) -> RestoreSource | S3RestoreSource | None:
    if spec.bootstrap is None:
        return None
    name = spec.bootstrap.from_backup.name
    backup = await kube.get("vdb.io/v1alpha1", "VelocityBackup", namespace, name)
    if backup is None:
        raise BackupNotReadyError(f"spec.bootstrap.fromBackup: VelocityBackup {name} does not exist")
    status = backup.get("status") or {}
    if status.get("phase") != "Completed":
        raise BackupNotReadyError(
            f"spec.bootstrap.fromBackup: VelocityBackup {name} is {status.get('phase') or 'Pending'}, "
            "not Completed"
        )
    location = str(status.get("location", ""))
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        destination = await _s3_destination(kube, namespace, backup, spec, bucket)
        if destination is None:
            raise BackupNotReadyError(
                f"VelocityBackup {name} is stored at {location} but no S3 destination for bucket {bucket} is "
                "known: set spec.backup.destination.s3 (endpoint and credentialsSecret) on this cluster")
        checksum = str(status.get("checksum") or "")
        return S3RestoreSource(destination=destination, key=key, sha256=checksum.removeprefix("sha256:"))
    if not location.startswith("pvc://"):
        raise BackupNotReadyError(f"VelocityBackup {name} is stored at {location!r}; only pvc:// and s3:// "
                                  "can be restored")
    claim, _, path = location.removeprefix("pvc://").partition("/")
    return RestoreSource(claim_name=claim, path=path)


async def _s3_destination(kube: Kube, namespace: str, backup: dict[str, Any], spec: VelocityClusterSpec,
                          bucket: str) -> S3Destination | None:
    candidates: list[BackupDestination | None] = [
        VelocityBackupSpec.model_validate(backup.get("spec") or {}).destination]
    source_name = (backup.get("spec") or {}).get("cluster")
    source = await kube.get("vdb.io/v1alpha1", "VelocityCluster", namespace, source_name) if source_name else None
    if source is not None:
        source_spec = VelocityClusterSpec.model_validate(source.get("spec") or {})
        candidates.append(source_spec.backup.destination if source_spec.backup else None)
    candidates.append(spec.backup.destination if spec.backup else None)
    for candidate in candidates:
        if candidate is not None and candidate.s3 is not None and candidate.s3.bucket == bucket:
            return candidate.s3
    return None
