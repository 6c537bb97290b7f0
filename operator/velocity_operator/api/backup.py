"""VelocityBackup: one consistent snapshot of a VelocityCluster, taken on demand."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, Condition, cel
from .destination import DNS_SUBDOMAIN_PATTERN, BackupDestination

__all__ = ["BackupPhase", "VelocityBackupSpec", "VelocityBackupStatus"]

BackupPhase = Literal["Pending", "Running", "Completed", "Failed"]


class VelocityBackupSpec(ApiModel):
    """What to back up and where to. Immutable: create a new VelocityBackup instead."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self == oldSelf",
                    "the spec of a VelocityBackup is immutable; create a new one instead",
                    reason="FieldValueForbidden",
                )
            ]
        }
    )

    cluster: str = Field(
        description="Name of the VelocityCluster, in the same namespace, to back up.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    destination: BackupDestination | None = Field(
        default=None,
        description="Where to store the snapshot. Defaults to the cluster's "
        "spec.backup.destination, else to the claim CLUSTER-backups.",
    )


class VelocityBackupStatus(ApiModel):
    """Progress and result of the backup, written by the operator."""

    phase: BackupPhase | None = Field(
        default=None,
        description="Pending (waiting for the cluster), Running (the snapshot Job runs), "
        "then Completed or Failed (see reason and message).",
    )
    reason: str | None = Field(
        default=None, description="Why the backup is in this phase, as one CamelCase word."
    )
    message: str | None = Field(default=None, description="Details for humans, for a failure above all.")
    job_name: str | None = Field(default=None, description="The Job that takes the snapshot.")
    start_time: dt.datetime | None = Field(default=None, description="When the snapshot Job started.")
    completion_time: dt.datetime | None = Field(default=None, description="When the backup finished.")
    duration_seconds: float | None = Field(
        default=None, description="How long the snapshot took, in seconds."
    )
    size_bytes: int | None = Field(default=None, description="Size of the snapshot file in bytes.")
    checksum: str | None = Field(
        default=None, description="SHA-256 of the snapshot file, as sha256:HEX."
    )
    location: str | None = Field(
        default=None,
        description="Where the snapshot is: pvc://CLAIM/PATH or s3://BUCKET/KEY.",
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Standard conditions; Completed mirrors the phase for `kubectl wait`.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
