"""The S3 settings of a pod that talks to object storage (backup, cleanup, restore).

Values velocity_operator.s3.env reads back inside the pod: the endpoint settings as plain
values, the key pair by reference to the user's Secret, so it is never copied into a Job
or StatefulSet spec and never logged.
"""

from __future__ import annotations

from typing import Any

from ..api.destination import S3Destination
from ..s3 import env as s3env

__all__ = ["s3_env"]


def s3_env(destination: S3Destination) -> list[dict[str, Any]]:
    """The container env velocity_operator.s3.env reads: endpoint settings as values, the
    key pair by reference to the user's Secret (never copied, never logged)."""
    secret = destination.credentials_secret
    return [
        {"name": s3env.ENDPOINT, "value": destination.endpoint},
        {"name": s3env.REGION, "value": destination.region},
        {"name": s3env.PATH_STYLE, "value": "true" if destination.force_path_style else "false"},
        {"name": s3env.ACCESS_KEY_ID,
         "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.access_key_id_key}}},
        {"name": s3env.SECRET_ACCESS_KEY,
         "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.secret_access_key_key}}},
    ]
