"""S3 for backups: the adapter over boto3 and the settings pods read.

    client.py   S3Client (put/get/list/delete, parallel multipart, stale-upload cleanup),
                client_from_env: the only module that imports boto3
    env.py      the environment variables the operator's builders set for pods
    errors.py   typed errors (S3Error and subclasses, S3ConnectionError, ChecksumMismatchError)
    url.py      S3Url, s3://BUCKET/KEY
    __main__.py `python -m velocity_operator.s3`, the command line of cleanup Jobs and
                restore init containers

This package's __init__ imports only the light modules, so the operator (which builds
pod specs from env.py's names) never loads boto3; pods import `.client`.
"""

from __future__ import annotations

from .errors import (
    CREDENTIAL_CODES,
    AccessDeniedError,
    ChecksumMismatchError,
    NoSuchBucketError,
    NoSuchKeyError,
    S3ConnectionError,
    S3Error,
)
from .url import S3Url

__all__ = [
    "CREDENTIAL_CODES",
    "AccessDeniedError",
    "ChecksumMismatchError",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "S3ConnectionError",
    "S3Error",
    "S3Url",
]
