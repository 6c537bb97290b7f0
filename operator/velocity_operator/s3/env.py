"""The environment a backup Job, cleanup Job or restore init container gets its S3
settings from: the contract between the operator's builders (builders/s3_env.py) and
the pods. Standard library only: the operator imports it without loading boto3.

Endpoint settings are plain values. Credentials are not read here: the AWS_* variables
below are botocore's own, which its default chain reads (the operator sets them through
secretKeyRef from the destination's Secret, so they never appear in a pod spec or a log;
without a Secret the chain goes on to web identity and the other sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

__all__ = [
    "ACCESS_KEY_ID",
    "CA_BUNDLE",
    "CA_FILE",
    "EC2_METADATA_DISABLED",
    "ENDPOINT",
    "PATH_STYLE",
    "REGION",
    "SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "SSE",
    "SSE_ALGORITHMS",
    "SSE_KMS_KEY_ID",
    "MissingSettingError",
    "S3Settings",
    "settings_from_env",
]

ENDPOINT = "VDB_S3_ENDPOINT"
REGION = "VDB_S3_REGION"
PATH_STYLE = "VDB_S3_FORCE_PATH_STYLE"  # "true" (default) or "false"
CA_FILE = "VDB_S3_CA_FILE"  # optional: path of a PEM CA bundle for an https endpoint
CA_BUNDLE = "VDB_S3_CA_BUNDLE"  # optional: the PEM text itself (from destination.caSecret)
SSE = "VDB_S3_SSE"  # optional: AES256 or aws:kms
SSE_KMS_KEY_ID = "VDB_S3_SSE_KMS_KEY_ID"  # optional, with aws:kms
# botocore's own variables, read by its credential chain.
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
EC2_METADATA_DISABLED = "AWS_EC2_METADATA_DISABLED"  # "true": the chain never asks 169.254.169.254

SSE_ALGORITHMS = ("AES256", "aws:kms")


class MissingSettingError(KeyError):
    """A required variable is unset or empty, or one has a value we cannot use."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) > 1 else \
            f"environment variable {self.args[0]} is required for S3 access"


@dataclass(frozen=True)
class S3Settings:
    """Everything but the credentials that a pod needs to reach the bucket."""

    endpoint: str
    region: str = "us-east-1"
    path_style: bool = True
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None


def settings_from_env(environ: Mapping[str, str]) -> S3Settings:
    endpoint = environ.get(ENDPOINT, "")
    if not endpoint:
        raise MissingSettingError(ENDPOINT)
    sse = environ.get(SSE) or None
    if sse is not None and sse not in SSE_ALGORITHMS:
        raise MissingSettingError(f"{SSE}={sse!r}: expected one of {', '.join(SSE_ALGORITHMS)}", SSE)
    return S3Settings(
        endpoint=endpoint,
        region=environ.get(REGION) or "us-east-1",
        path_style=environ.get(PATH_STYLE, "true").lower() != "false",
        ca_file=environ.get(CA_FILE) or None,
        ca_pem=environ.get(CA_BUNDLE) or None,
        sse=cast(Literal["AES256", "aws:kms"] | None, sse),
        sse_kms_key_id=environ.get(SSE_KMS_KEY_ID) or None,
    )
