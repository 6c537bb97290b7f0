"""The Job that takes one backup: `velocityctl snapshot FILE` against the primary, run by
`velocity_operator.snapshot_job` in the engine image.

On a PersistentVolumeClaim the file lands at CLAIM:/PATH/CLUSTER/BACKUP.vsnap with
BACKUP.vsnap.sha256 beside it. For S3 the snapshot goes to an emptyDir scratch volume
first and is then uploaded to s3://BUCKET/PREFIX/CLUSTER/BACKUP.vsnap with its SHA-256 as
object metadata; the key pair comes from the user's Secret through secretKeyRef, so it is
never part of the Job spec (or, without a Secret, from the AWS SDK's default chain in the
pod, running as the destination's serviceAccountName for IRSA). Before uploading, the
runner aborts multipart uploads that killed Jobs left under PREFIX/CLUSTER/. The runner
reports size, checksum, duration and location as JSON in the container's termination
message, which the operator copies into VelocityBackup.status. Errors that a retry cannot
fix (exit status 3: wrong credentials, missing bucket) fail the Job at once through its
podFailurePolicy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import names
from ..api.destination import BackupDestination, S3Destination
from .config import ADMIN_DIR
from .meta import Owner, object_meta
from .s3_env import s3_env
from .statefulset import restricted_container_security, restricted_pod_security

__all__ = [
    "ACTIVE_DEADLINE_SECONDS",
    "BACKUP_MOUNT",
    "CA_DIR",
    "EXIT_PERMANENT",
    "SCRATCH_MOUNT",
    "BackupLocation",
    "PvcLocation",
    "S3Location",
    "backup_job",
    "cleanup_job",
    "resolve_destination",
    "stored_location",
]

BACKUP_MOUNT = "/backup"
SCRATCH_MOUNT = "/scratch"
CA_DIR = "/etc/velocity/ca"
# Exit status of snapshot_job and `python -m velocity_operator.s3` for errors that
# repeating cannot fix (velocity_operator.s3.__main__.EXIT_PERMANENT).
EXIT_PERMANENT = 3
# The snapshot Job's deadline; snapshot_job.STALE_UPLOAD_SECONDS (twice this) is the age
# past which a multipart upload under the cluster's prefix cannot belong to a live Job.
ACTIVE_DEADLINE_SECONDS = 3600


@dataclass(frozen=True)
class PvcLocation:
    """Where one backup file lives on a claim."""

    claim_name: str
    path: str  # relative to the volume root

    @property
    def url(self) -> str:
        return f"pvc://{self.claim_name}/{self.path}"


@dataclass(frozen=True)
class S3Location:
    """Where one backup object lives: KEY in the bucket of `destination`."""

    destination: S3Destination
    key: str

    @property
    def bucket(self) -> str:
        return self.destination.bucket

    @property
    def url(self) -> str:
        return f"s3://{self.destination.bucket}/{self.key}"


BackupLocation = PvcLocation | S3Location


def stored_location(url: str, destination: BackupDestination | None) -> BackupLocation | None:
    """The location a backup's status.location names: pvc://CLAIM/PATH, or s3://BUCKET/KEY
    in the bucket of `destination` (which supplies the endpoint and credentials). None
    when it is neither (or another bucket): nothing to clean up that we can reach."""
    if url.startswith("pvc://"):
        claim, _, path = url.removeprefix("pvc://").partition("/")
        return PvcLocation(claim, path)
    if url.startswith("s3://") and destination is not None and destination.s3 is not None:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if bucket == destination.s3.bucket and key:
            return S3Location(destination.s3, key)
    return None


def s3_key(prefix: str, cluster: str, backup: str) -> str:
    """PREFIX/CLUSTER/BACKUP.vsnap, without empty segments."""
    return "/".join(p for p in (prefix.strip("/"), cluster, f"{backup}.vsnap") if p)


def resolve_destination(cluster: str, backup: str, destination: BackupDestination | None) -> BackupLocation:
    """Where backup `backup` of `cluster` goes; None means the CLUSTER-backups claim."""
    if destination is None:
        return PvcLocation(names.backups_claim(cluster), f"velocity/{cluster}/{backup}.vsnap")
    if destination.persistent_volume_claim is not None:
        pvc = destination.persistent_volume_claim
        prefix = pvc.path.strip("/")
        path = f"{prefix}/{cluster}/{backup}.vsnap" if prefix else f"{cluster}/{backup}.vsnap"
        return PvcLocation(pvc.claim_name, path)
    assert destination.s3 is not None  # the CRD's CEL rule: exactly one of the two
    return S3Location(destination.s3, s3_key(destination.s3.prefix, cluster, backup))


def _fail_fast_on_permanent_errors(container: str) -> dict[str, Any]:
    """podFailurePolicy: exit status 3 (wrong credentials, missing bucket) fails the Job
    at once instead of after backoffLimit retries that cannot succeed."""
    return {"rules": [{"action": "FailJob", "onExitCodes": {
        "containerName": container, "operator": "In", "values": [EXIT_PERMANENT]}}]}


def backup_job(owner: Owner, *, cluster: str, backup: str, location: BackupLocation, image: str,
               tls: bool, scratch_size: str = "5Gi", placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """The snapshot Job, owned by the VelocityBackup `owner`. `scratch_size` bounds the
    emptyDir an S3 backup is staged in (the cluster's snapshot volume size fits it);
    `placement` holds pod spec fields from the cluster (placement.job_placement)."""
    # The client Service routes to the primary (vdb.io/role=primary): the snapshot is the
    # freshest data, not a replica's possibly lagging copy.
    endpoint = f"vdb://{names.service(cluster)}.{owner.namespace}.svc:{names.CLIENT_PORT}"
    env: list[dict[str, Any]] = [{"name": "VDB_ENDPOINT", "value": endpoint}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    extra: dict[str, Any] = {}
    if isinstance(location, S3Location):
        mounts.append({"name": "scratch", "mountPath": SCRATCH_MOUNT})
        volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": scratch_size}})
        env += s3_env(location.destination)
        args = ["-m", "velocity_operator.snapshot_job", "--file", f"{SCRATCH_MOUNT}/{backup}.vsnap",
                "--s3-url", location.url]
        extra["podFailurePolicy"] = _fail_fast_on_permanent_errors("snapshot")
    else:
        mounts.append({"name": "backup", "mountPath": BACKUP_MOUNT})
        volumes.append({"name": "backup", "persistentVolumeClaim": {"claimName": location.claim_name}})
        args = ["-m", "velocity_operator.snapshot_job", "--file", f"{BACKUP_MOUNT}/{location.path}"]
    if tls:
        # SNAPSHOT_BEGIN/READ need the admin token (NAME-admin): it is the only token the
        # Job mounts, given both as velocityctl's admin token and as its token (the admin
        # token may run everything), so the snapshot works whichever velocityctl reads.
        admin_token = f"{ADMIN_DIR}/token"
        env += [{"name": "VDB_CA", "value": f"{CA_DIR}/ca.crt"},
                {"name": "VDB_ADMIN_TOKEN_FILE", "value": admin_token},
                {"name": "VDB_TOKEN_FILE", "value": admin_token}]
        mounts += [{"name": "ca", "mountPath": CA_DIR, "readOnly": True},
                   {"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True}]
        volumes += [{"name": "ca", "secret": {"secretName": names.ca_secret(cluster)}},
                    {"name": "admin", "secret": {"secretName": names.admin_secret(cluster)}}]
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
                       container=container, volumes=volumes, service_account=_service_account(location),
                       placement=placement, activeDeadlineSeconds=ACTIVE_DEADLINE_SECONDS, **extra)


def cleanup_job(owner: Owner, *, cluster: str, backup: str, location: BackupLocation,
                image: str, placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Job that deletes one backup's files or object (retention), owned by the cluster so
    it is garbage-collected with it; it removes itself 10 minutes after finishing."""
    container: dict[str, Any] = {
        "name": "cleanup",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": restricted_container_security(),
    }
    extra: dict[str, Any] = {}
    if isinstance(location, S3Location):
        # The AWS SDK alone takes ~50 MiB; rm needs nothing more.
        container |= {"command": ["python", "-m", "velocity_operator.s3", "rm", location.url],
                      "env": s3_env(location.destination),
                      "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}
        volumes: list[dict[str, Any]] = []
        extra["podFailurePolicy"] = _fail_fast_on_permanent_errors("cleanup")
    else:
        path = f"{BACKUP_MOUNT}/{location.path}"
        container |= {"command": ["rm", "-f", "--", path, f"{path}.sha256", f"{path}.partial"],
                      "volumeMounts": [{"name": "backup", "mountPath": BACKUP_MOUNT}]}
        volumes = [{"name": "backup", "persistentVolumeClaim": {"claimName": location.claim_name}}]
    return _backup_job(owner, f"{backup}-cleanup", cluster=cluster, backup=backup,
                       container=container, volumes=volumes, service_account=_service_account(location),
                       placement=placement, ttlSecondsAfterFinished=600, **extra)


def _service_account(location: BackupLocation) -> str | None:
    return location.destination.service_account_name if isinstance(location, S3Location) else None


def _backup_job(owner: Owner, name: str, *, cluster: str, backup: str, container: dict[str, Any],
                volumes: list[dict[str, Any]], service_account: str | None = None,
                placement: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """The Job shape both backup Jobs share: labelled with the backup, one non-root
    container, never restarted in place, at most two retries. `service_account` is the
    identity an S3 destination asks for; the API token itself is never mounted (the
    IRSA webhook projects its own web identity token)."""
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(),
        "containers": [container],
        "volumes": volumes,
        **(placement or {}),
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
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
                "spec": pod_spec,
            },
        },
    }
