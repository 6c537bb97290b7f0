"""A standard-library S3 client for backups (SigV4, put/get/list/delete, multipart).

Import-light on purpose: it runs in the engine image's backup Jobs and restore init
containers. `python -m velocity_operator.s3 --help` is its command line.
"""

from __future__ import annotations

from .client import (
    DEFAULT_PART_SIZE,
    SHA256_METADATA,
    ObjectHead,
    ObjectInfo,
    S3Client,
    S3Url,
    Transfer,
)
from .errors import (
    CREDENTIAL_CODES,
    AccessDeniedError,
    ChecksumMismatchError,
    NoSuchBucketError,
    NoSuchKeyError,
    S3ConnectionError,
    S3Error,
)
from .sigv4 import Credentials

__all__ = [
    "CREDENTIAL_CODES",
    "DEFAULT_PART_SIZE",
    "SHA256_METADATA",
    "AccessDeniedError",
    "ChecksumMismatchError",
    "Credentials",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "ObjectHead",
    "ObjectInfo",
    "S3Client",
    "S3ConnectionError",
    "S3Error",
    "S3Url",
    "Transfer",
]
