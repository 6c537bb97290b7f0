"""Where backups go: a PersistentVolumeClaim or S3-compatible object storage.

Shared by `VelocityCluster.spec.backup.destination` and `VelocityBackup.spec.destination`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, cel

__all__ = ["BackupDestination", "PvcDestination", "S3Credentials", "S3Destination", "S3Encryption", "SecretKeyRef"]

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
    """A Secret in the cluster's namespace that holds an S3 access key pair, and optionally
    the session token of temporary credentials."""

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
    session_token_key: str | None = Field(
        default=None,
        description="Key of the Secret that holds a session token, for temporary credentials (an access key "
        "id starting with ASIA, from STS). Unset: the key pair is used without a token. Temporary credentials "
        "expire: whoever writes the Secret must renew them.",
        min_length=1,
        max_length=253,
    )


class SecretKeyRef(ApiModel):
    """One key of a Secret in the cluster's namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253,
                      pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(default="ca.crt", description="Key of the Secret. Defaults to `ca.crt`.",
                     min_length=1, max_length=253)


class S3Encryption(ApiModel):
    """Server-side encryption requested for every object the backup Jobs upload."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.kmsKeyId) || self.algorithm == 'aws:kms'",
                    "kmsKeyId needs algorithm aws:kms")
            ]
        }
    )

    algorithm: Literal["AES256", "aws:kms"] = Field(
        description="`AES256`: SSE-S3, keys managed by the storage service. `aws:kms`: SSE-KMS, keys in AWS "
        "KMS (the credentials also need kms:GenerateDataKey to upload and kms:Decrypt to restore)."
    )
    kms_key_id: str | None = Field(
        default=None,
        description="With aws:kms: the KMS key id, alias or ARN. Unset: the bucket's default KMS key "
        "(or the account's aws/s3 key).",
        min_length=1,
        max_length=2048,
    )


class S3Destination(ApiModel):
    """Backups uploaded to a bucket of S3-compatible object storage (AWS S3, MinIO, versitygw, ...)
    as PREFIX/CLUSTER/BACKUP.vsnap, with the snapshot's SHA-256 stored as object metadata.

    Credentials: the Secret of credentialsSecret when set; otherwise the AWS SDK's default chain
    in the backup pods (environment variables, a web identity token with a role ARN as IRSA
    injects them, EKS Pod Identity, and the instance metadata service only with
    useInstanceMetadata)."""

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
    credentials_secret: S3Credentials | None = Field(
        default=None,
        description="The Secret holding the key pair (and optional session token) used to upload, download "
        "and delete (retention). Backup pods read it through secretKeyRef; a backup waits for it to exist. "
        "Unset: the pods find credentials through the AWS SDK's default chain (for IRSA, set "
        "serviceAccountName to a ServiceAccount annotated with the role).",
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount the backup and cleanup Jobs run as, for identities bound to one: with IRSA "
        "on EKS, a ServiceAccount annotated eks.amazonaws.com/role-arn, whose pods get a web identity token "
        "and the role's ARN. Unset: the namespace's default ServiceAccount. (Restores download in the engine "
        "pods, which run as CLUSTER-engine.)",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    use_instance_metadata: bool = Field(
        default=False,
        description="Let the default chain ask the EC2 instance metadata service (169.254.169.254) for the "
        "node's role when no other source has credentials. Off by default: a backup pod would otherwise "
        "borrow whatever role its node has, and off EC2 the lookup only waits for a timeout.",
    )
    ca_secret: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key holding the PEM certificate(s) that an https endpoint's certificate must "
        "chain to, instead of the system CAs of the engine image (a private CA of MinIO or Ceph, for "
        "example). At most about 100 KiB: it reaches the pods as an environment variable. A backup waits "
        "for the Secret to exist.",
    )
    server_side_encryption: S3Encryption | None = Field(
        default=None,
        description="Ask the storage service to encrypt uploaded backups at rest (SSE-S3 or SSE-KMS). Unset: "
        "the bucket's default encryption applies.",
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
