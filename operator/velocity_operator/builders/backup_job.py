"""The Job that takes one backup: `velocityctl snapshot FILE` against the primary, run by
`velocity_operator.snapshot_job` in the engine image, writing to a PersistentVolumeClaim.

The file lands at CLAIM:/PATH/CLUSTER/BACKUP.vsnap with BACKUP.vsnap.sha256 beside it; the
runner reports size, checksum and duration as JSON in the container's termination message,
which the operator copies into VelocityBackup.status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.destination import BackupDestination
from .config import AUTH_DIR
from .meta import Owner, object_meta
from .statefulset import restricted_container_security, restricted_pod_security

__all__ = [
    "BACKUP_MOUNT",
    "CA_DIR",
    "DestinationNotSupportedError",
    "PvcLocation",
    "backup_job",
    "cleanup_job",
    "resolve_destination",
]

BACKUP_MOUNT = "/backup"
CA_DIR = "/etc/velocity/ca"


class DestinationNotSupportedError(ValueError):
    """The destination is valid in the API but this operator version cannot write to it."""


@dataclass(frozen=True)
class PvcLocation:
    """Where one backup file lives on a claim."""

    claim_name: str
    path: str  # relative to the volume root

    @property
    def url(self) -> str:
        return f"pvc://{self.claim_name}/{self.path}"


def resolve_destination(cluster: str, backup: str, destination: BackupDestination | None) -> PvcLocation:
    """The file location for backup `backup` of `cluster`; None means the CLUSTER-backups claim."""
    if destination is None:
        return PvcLocation(names.backups_claim(cluster), f"velocity/{cluster}/{backup}.vsnap")
    if destination.persistent_volume_claim is not None:
        pvc = destination.persistent_volume_claim
        prefix = pvc.path.strip("/")
        path = f"{prefix}/{cluster}/{backup}.vsnap" if prefix else f"{cluster}/{backup}.vsnap"
        return PvcLocation(pvc.claim_name, path)
    raise DestinationNotSupportedError(
        "S3-compatible destinations are not implemented by this operator version; "
        "use destination.persistentVolumeClaim"
    )


def backup_job(owner: Owner, *, cluster: str, backup: str, location: PvcLocation, image: str,
               tls: bool) -> dict[str, Any]:
    """The snapshot Job, owned by the VelocityBackup `owner`."""
    # The client Service routes to the primary (vdb.io/role=primary): the snapshot is the
    # freshest data, not a replica's possibly lagging copy.
    endpoint = f"vdb://{names.service(cluster)}.{owner.namespace}.svc:{names.CLIENT_PORT}"
    env: list[dict[str, Any]] = [{"name": "VDB_ENDPOINT", "value": endpoint}]
    mounts: list[dict[str, Any]] = [
        {"name": "backup", "mountPath": BACKUP_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "backup", "persistentVolumeClaim": {"claimName": location.claim_name}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    args = ["-m", "velocity_operator.snapshot_job", "--file", f"{BACKUP_MOUNT}/{location.path}"]
    if tls:
        env += [{"name": "VDB_CA", "value": f"{CA_DIR}/ca.crt"},
                {"name": "VDB_TOKEN_FILE", "value": f"{AUTH_DIR}/token"}]
        mounts += [{"name": "ca", "mountPath": CA_DIR, "readOnly": True},
                   {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True}]
        volumes += [{"name": "ca", "secret": {"secretName": names.ca_secret(cluster)}},
                    {"name": "auth", "secret": {"secretName": names.auth_secret(cluster)}}]
    else:
        args.append("--insecure")
    container = {
        "name": "snapshot",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python"],
        "args": args,
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "File",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": restricted_container_security(),
    }
    return _backup_job(owner, names.backup_job(backup), cluster=cluster, backup=backup,
                       container=container, volumes=volumes, activeDeadlineSeconds=3600)


def cleanup_job(owner: Owner, *, cluster: str, backup: str, location: PvcLocation, image: str) -> dict[str, Any]:
    """A Job that deletes one backup's files (retention), owned by the cluster so it is
    garbage-collected with it; it removes itself 10 minutes after finishing."""
    path = f"{BACKUP_MOUNT}/{location.path}"
    container = {
        "name": "cleanup",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["rm", "-f", "--", path, f"{path}.sha256", f"{path}.partial"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "backup", "mountPath": BACKUP_MOUNT}],
    }
    volumes = [{"name": "backup", "persistentVolumeClaim": {"claimName": location.claim_name}}]
    return _backup_job(owner, f"{backup}-cleanup", cluster=cluster, backup=backup,
                       container=container, volumes=volumes, ttlSecondsAfterFinished=600)


def _backup_job(owner: Owner, name: str, *, cluster: str, backup: str, container: dict[str, Any],
                volumes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """The Job shape both backup Jobs share: labelled with the backup, one non-root
    container, never restarted in place, at most two retries."""
    meta = object_meta(owner, name, cluster=cluster)
    meta["labels"]["vdb.io/backup"] = backup
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 2,
            **spec,
            "template": {
                "metadata": {"labels": {**names.labels(cluster), "vdb.io/backup": backup}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
