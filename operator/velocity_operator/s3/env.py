"""The environment a backup Job or restore init container gets its S3 settings from.

The operator's builders set these variables (credentials through secretKeyRef, so they
never appear in a pod spec or a log); `client_from_env` reads them back in the pod.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import S3Client
from .sigv4 import Credentials

__all__ = [
    "ACCESS_KEY_ID",
    "CA_FILE",
    "ENDPOINT",
    "PATH_STYLE",
    "REGION",
    "SECRET_ACCESS_KEY",
    "MissingSettingError",
    "client_from_env",
]

ENDPOINT = "VDB_S3_ENDPOINT"
REGION = "VDB_S3_REGION"
PATH_STYLE = "VDB_S3_FORCE_PATH_STYLE"  # "true" or "false"
CA_FILE = "VDB_S3_CA_FILE"  # optional: extra CA for an https endpoint
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"


class MissingSettingError(KeyError):
    """A required variable is unset or empty."""

    def __str__(self) -> str:
        return f"environment variable {self.args[0]} is required for S3 access"


def client_from_env(environ: Mapping[str, str]) -> S3Client:
    def need(name: str) -> str:
        value = environ.get(name, "")
        if not value:
            raise MissingSettingError(name)
        return value

    credentials = Credentials(need(ACCESS_KEY_ID), need(SECRET_ACCESS_KEY))
    return S3Client(need(ENDPOINT), credentials, region=environ.get(REGION) or "us-east-1",
                    path_style=environ.get(PATH_STYLE, "true").lower() != "false",
                    ca_file=environ.get(CA_FILE) or None)
