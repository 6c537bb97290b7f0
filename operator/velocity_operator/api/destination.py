"""Where backups go: a PersistentVolumeClaim or S3-compatible object storage.

Shared by `VelocityCluster.spec.backup.destination` and `VelocityBackup.spec.destination`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from .common import ApiModel, cel

__all__ = ["BackupDestination", "PvcDestination", "S3Credentials", "S3Destination"]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class PvcDestination(ApiModel):
    """Backups written as files to an existing PersistentVolumeClaim in the same namespace."""

    claim_name: str = Field(
        description="Name of the PersistentVolumeClaim that receives the snapshot files. "
        "It must exist in the namespace of the cluster; ReadWriteMany lets backup Jobs run "
        "on any node.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    path: str = Field(
        default="velocity",
        description="Directory inside the volume under which backups are stored, as "
        "PATH/CLUSTER/BACKUP.vsnap. Defaults to `velocity`.",
        max_length=256,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.startsWith('/') && !self.contains('..')",
                    "path must be relative to the volume root and must not contain '..'",
                )
            ]
        },
    )


class S3Credentials(ApiModel):
    """A Secret in the cluster's namespace that holds the S3 access key pair."""

    name: str = Field(
        description="Name of the Secret holding the access key id and the secret access key.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    access_key_id_key: str = Field(
        default="AWS_ACCESS_KEY_ID",
        description="Key of the Secret that holds the access key id.",
        min_length=1,
        max_length=253,
    )
    secret_access_key_key: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        description="Key of the Secret that holds the secret access key.",
        min_length=1,
        max_length=253,
    )


class S3Destination(ApiModel):
    """Backups uploaded to a bucket of S3-compatible object storage (AWS S3, MinIO, versitygw, ...)
    as PREFIX/CLUSTER/BACKUP.vsnap, with the snapshot's SHA-256 stored as object metadata."""

    endpoint: str = Field(
        description="URL of the S3 API, for example https://s3.eu-west-1.amazonaws.com or "
        "http://minio.storage.svc:9000.",
        max_length=2048,
        pattern=r"^https?://[^\s/]+(/.*)?$",
    )
    bucket: str = Field(
        description="Name of the bucket; it must already exist (a backup to a missing bucket fails with "
        "reason S3BucketNotFound).",
        min_length=3,
        max_length=63,
    )
    prefix: str = Field(
        default="",
        description="Key prefix under which backups are stored, as PREFIX/CLUSTER/BACKUP.vsnap "
        "(empty: CLUSTER/BACKUP.vsnap at the top of the bucket).",
        max_length=512,
    )
    region: str = Field(
        default="us-east-1", description="Region sent in request signatures.", max_length=64
    )
    force_path_style: bool = Field(
        default=True,
        description="Address the bucket as ENDPOINT/BUCKET (true, what MinIO expects) "
        "instead of BUCKET.ENDPOINT (false).",
    )
    credentials_secret: S3Credentials = Field(
        description="The Secret holding the access key pair used to upload, download and delete "
        "(retention). Backup pods read it through secretKeyRef; a backup waits for it to exist."
    )


class BackupDestination(ApiModel):
    """Where snapshot files are stored. Set exactly one of persistentVolumeClaim or s3."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "[has(self.persistentVolumeClaim), has(self.s3)].exists_one(x, x)",
                    "set exactly one of destination.persistentVolumeClaim or destination.s3",
                )
            ]
        }
    )

    persistent_volume_claim: PvcDestination | None = Field(
        default=None, description="Store backups as files on a PersistentVolumeClaim."
    )
    s3: S3Destination | None = Field(
        default=None, description="Store backups in S3-compatible object storage."
    )
