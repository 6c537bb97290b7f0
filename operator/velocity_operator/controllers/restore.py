"""spec.bootstrap.fromBackup: find the snapshot file a new cluster starts from."""

from __future__ import annotations

from ..api.cluster import VelocityClusterSpec
from ..builders.statefulset import RestoreSource
from ..kube import Kube

__all__ = ["BackupNotReadyError", "restore_source"]


class BackupNotReadyError(RuntimeError):
    """The backup named in spec.bootstrap.fromBackup is missing or not Completed (yet)."""


async def restore_source(kube: Kube, namespace: str, spec: VelocityClusterSpec) -> RestoreSource | None:
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
    if not location.startswith("pvc://"):
        raise BackupNotReadyError(f"VelocityBackup {name} is stored at {location!r}; only pvc:// can be restored")
    claim, _, path = location.removeprefix("pvc://").partition("/")
    return RestoreSource(claim_name=claim, path=path)
