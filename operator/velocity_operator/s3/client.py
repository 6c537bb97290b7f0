"""The S3 adapter: the calls backups need, on boto3, and the only module that imports it.

Runs inside the engine image (backup Jobs, cleanup Jobs, restore init containers); the
operator process itself never imports it. Why boto3 (docs/operator/backup-restore.md,
"The S3 client"): botocore's default credential chain is the AWS reference one
(environment keys with an optional session token, web identity / IRSA with refresh
before expiry, EKS Pod Identity's container endpoint, shared config, instance metadata);
s3transfer uploads the parts of a multipart upload in parallel from the file, with
bounded memory; retries with backoff; SigV4 signing, https verification, path and
virtual-host addressing and server-side encryption parameters come with it.

Uploads: one read of the file computes its SHA-256 (stored as object metadata, because
a multipart ETag is not a checksum of the body); then files up to `part_size` go in one
PUT, larger ones in a multipart upload of `part_size` parts (larger when a file would
need over 10,000), `concurrency` parts in flight. s3transfer streams each part from the
file (nothing is buffered per part), so memory does not grow with the part size or the
file size. A failed or interrupted upload (an exception, including the one a SIGTERM
handler raises) is aborted before the call returns; one killed outright (SIGKILL, OOM)
is what `abort_stale_uploads` is for.

Downloads stream to FILE.partial while hashing, check the SHA-256, and rename only when
it matches: a file at the target path is always complete and verified.

Every botocore exception is translated into the classes of `errors.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.utils import ChunksizeAdjuster

from .env import settings_from_env
from .errors import AccessDeniedError, ChecksumMismatchError, NoSuchKeyError, S3ConnectionError, S3Error, error_for
from .url import S3Url

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client as BotoS3Client

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "SHA256_METADATA",
    "Credentials",
    "ObjectHead",
    "ObjectInfo",
    "S3Client",
    "S3Url",
    "Transfer",
    "Upload",
    "client_from_env",
]

DEFAULT_PART_SIZE = 16 << 20
DEFAULT_CONCURRENCY = 4
MIN_PART_SIZE = 5 << 20  # S3's floor for every part but the last
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: hex SHA-256 of the whole object
SseAlgorithm = Literal["AES256", "aws:kms"]
_BUFFER = 1 << 20
_MAX_ATTEMPTS = 4  # botocore's "standard" retry mode: throttling, 5xx, broken connections


@dataclass(frozen=True)
class Credentials:
    """Explicit keys (tests, tools). Pods pass none: the default chain finds them. The
    secret and the session token never appear in repr() (it ends up in logs)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of a listing."""

    key: str
    size: int
    last_modified: str  # ISO 8601, UTC


@dataclass(frozen=True)
class ObjectHead:
    size: int
    metadata: dict[str, str]  # x-amz-meta-* without the prefix, names lower-case
    server_side_encryption: str = ""  # as the server reports it; "" when it says nothing


@dataclass(frozen=True)
class Transfer:
    """What one upload or download moved."""

    size: int
    sha256: str  # hex
    parts: int = 1
    seconds: float = 0.0


@dataclass(frozen=True)
class Upload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: dt.datetime  # UTC, as the server recorded it


class S3Client:
    """Synchronous client for one endpoint; safe to share between threads.

    `credentials` None means botocore's default chain (docs/operator/backup-restore.md,
    "Credentials"). `path_style` addresses buckets as ENDPOINT/BUCKET/KEY (MinIO,
    versitygw, most self-hosted servers) instead of BUCKET.ENDPOINT/KEY. `ca_file` (a
    path) or `ca_pem` (PEM text) replace the system CAs for an https endpoint. `sse`
    (with `sse_kms_key_id` for aws:kms) asks the server to encrypt uploaded objects.
    """

    def __init__(self, endpoint: str, *, credentials: Credentials | None = None, region: str = "us-east-1",
                 path_style: bool = True, ca_file: str | None = None, ca_pem: str | None = None,
                 sse: SseAlgorithm | None = None, sse_kms_key_id: str | None = None,
                 part_size: int = DEFAULT_PART_SIZE, concurrency: int = DEFAULT_CONCURRENCY,
                 timeout: float = 60.0) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {endpoint!r}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        if sse_kms_key_id and sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse='aws:kms'")
        self.endpoint = endpoint
        self.region = region
        self.path_style = path_style
        self.part_size = part_size
        self.concurrency = concurrency
        self._sse = sse
        self._sse_kms_key_id = sse_kms_key_id
        self._ca = _CaBundle(ca_pem) if ca_pem else None
        verify: str | bool = True
        if self._ca is not None:
            verify = self._ca.path
        elif ca_file:
            verify = ca_file
        config = Config(
            region_name=region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "virtual"},
            retries={"mode": "standard", "max_attempts": _MAX_ATTEMPTS},
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
            max_pool_connections=max(10, concurrency + 2),
            # CRC checksums only where S3 requires them: S3-compatible servers differ in
            # their support. Without one, botocore signs each body's SHA-256 (http and
            # https), and the sha256 metadata covers the whole object.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        keys: dict[str, Any] = {}
        if credentials is not None:
            keys = {"aws_access_key_id": credentials.access_key_id,
                    "aws_secret_access_key": credentials.secret_access_key,
                    "aws_session_token": credentials.session_token}
        session = boto3.session.Session(region_name=region)
        self._client: BotoS3Client = session.client("s3", endpoint_url=endpoint, verify=verify, config=config,
                                                    **keys)
        self._transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                                        max_request_concurrency=concurrency, max_submission_concurrency=2,
                                        max_request_queue_size=4 * concurrency,
                                        max_submission_queue_size=4 * concurrency)

    def __repr__(self) -> str:
        return f"S3Client({self.endpoint!r}, region={self.region!r}, path_style={self.path_style})"

    def close(self) -> None:
        self._client.close()
        if self._ca is not None:
            self._ca.close()

    def __enter__(self) -> S3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _translate(self, operation: str, bucket: str, key: str = "") -> Iterator[None]:
        """Turn botocore's exceptions into errors.py's, naming the operation and object."""
        resource = f"{self.endpoint} s3://{bucket}/{key}" if bucket else self.endpoint
        try:
            yield
        except ClientError as exc:
            err: Mapping[str, Any] = exc.response.get("Error") or {}
            meta: Mapping[str, Any] = exc.response.get("ResponseMetadata") or {}
            message = str(err.get("Message") or "")
            if exc.operation_name not in (operation, "", None):
                # Not S3's answer: STS's, while exchanging a web identity token for keys.
                message = f"getting credentials ({exc.operation_name}): {message}"
            raise error_for(str(err.get("Code") or ""), message, status=int(meta.get("HTTPStatusCode") or 0),
                            method=operation, resource=resource, request_id=str(meta.get("RequestId") or ""),
                            ) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise AccessDeniedError("NoCredentials", f"{exc} (see docs/operator/backup-restore.md, Credentials)",
                                    status=0, method=operation, resource=resource) from exc
        except ParamValidationError as exc:
            raise S3Error("InvalidParameter", str(exc), status=400, method=operation, resource=resource) from exc
        except BotoCoreError as exc:  # connection refused, TLS, timeouts, a broken stream, STS unreachable
            raise S3ConnectionError(f"{operation} {resource}: {exc}") from exc

    # ------------------------------------------------------------------ buckets
    def create_bucket(self, bucket: str) -> None:
        """Create BUCKET in the client's region (us-east-1 needs no location)."""
        with self._translate("CreateBucket", bucket):
            if self.region == "us-east-1":
                self._client.create_bucket(Bucket=bucket)
            else:
                self._client.create_bucket(Bucket=bucket, CreateBucketConfiguration={
                    "LocationConstraint": self.region})  # type: ignore[typeddict-item]

    def list_objects(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> list[ObjectInfo]:
        """Every object whose key starts with PREFIX, in key order (ListObjectsV2, all pages)."""
        out: list[ObjectInfo] = []
        with self._translate("ListObjectsV2", bucket, prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
            for page in pages:
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    out.append(ObjectInfo(key=item.get("Key", ""), size=int(item.get("Size", 0)),
                                          last_modified=modified.astimezone(dt.UTC).isoformat() if modified else ""))
        return out

    # ------------------------------------------------------------------ objects
    def head_object(self, bucket: str, key: str) -> ObjectHead:
        with self._translate("HeadObject", bucket, key):
            head = self._client.head_object(Bucket=bucket, Key=key)
        return ObjectHead(size=int(head.get("ContentLength", 0)),
                          metadata={k.lower(): v for k, v in head.get("Metadata", {}).items()},
                          server_side_encryption=str(head.get("ServerSideEncryption", "")))

    def object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.head_object(bucket, key)
        except NoSuchKeyError:
            return False
        return True

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete KEY; deleting a missing key succeeds, as in S3."""
        with self._translate("DeleteObject", bucket, key):
            self._client.delete_object(Bucket=bucket, Key=key)

    def _object_args(self, metadata: Mapping[str, str] | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Metadata": dict(metadata or {}), "ContentType": "application/octet-stream"}
        if self._sse:
            args["ServerSideEncryption"] = self._sse
        if self._sse_kms_key_id:
            args["SSEKMSKeyId"] = self._sse_kms_key_id
        return args

    def put_bytes(self, bucket: str, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> None:
        with self._translate("PutObject", bucket, key):
            self._client.put_object(Bucket=bucket, Key=key, Body=data, **self._object_args(metadata))

    def put_file(self, bucket: str, key: str, path: Path, *,
                 metadata: Mapping[str, str] | None = None) -> Transfer:
        """Upload PATH; its SHA-256 is stored as metadata `sha256` (with METADATA's entries).

        An exception raised while the upload runs (a SIGTERM handler's included) cancels
        it: parts in flight finish or fail, then the multipart upload is aborted."""
        start = time.monotonic()
        size = path.stat().st_size
        whole = _sha256_file(path)
        args = self._object_args({**(metadata or {}), SHA256_METADATA: whole})
        parts = 1
        if size >= self.part_size:
            chunk = ChunksizeAdjuster().adjust_chunksize(self.part_size, size)
            parts = -(-size // chunk)
        with self._translate("PutObject" if parts == 1 else "MultipartUpload", bucket, key), \
                TransferManager(self._client, self._transfer) as manager:
            manager.upload(str(path), bucket, key, extra_args=args).result()
        return Transfer(size=size, sha256=whole, parts=parts, seconds=time.monotonic() - start)

    def get_file(self, bucket: str, key: str, path: Path, *, expected_sha256: str | None = None) -> Transfer:
        """Download KEY to PATH, verified against EXPECTED_SHA256 (hex) or, when None, the
        object's `sha256` metadata; ChecksumMismatchError leaves nothing at PATH."""
        start = time.monotonic()
        resource = f"s3://{bucket}/{key}"
        partial = path.with_name(path.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        try:
            with self._translate("GetObject", bucket, key):
                response = self._client.get_object(Bucket=bucket, Key=key)
                meta = {k.lower(): v for k, v in response.get("Metadata", {}).items()}
                expected = (expected_sha256 or meta.get(SHA256_METADATA) or "").removeprefix("sha256:")
                body = response["Body"]
                with partial.open("wb") as out:
                    for chunk in body.iter_chunks(_BUFFER):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                body.close()
            if expected and digest.hexdigest() != expected:
                raise ChecksumMismatchError(resource, expected, digest.hexdigest())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return Transfer(size=size, sha256=digest.hexdigest(), seconds=time.monotonic() - start)

    # ------------------------------------------------------------------ multipart leftovers
    def list_uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        """Multipart uploads under PREFIX that were started and never completed or aborted."""
        out: list[Upload] = []
        with self._translate("ListMultipartUploads", bucket, prefix):
            for page in self._client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    initiated = item.get("Initiated") or dt.datetime.fromtimestamp(0, dt.UTC)
                    out.append(Upload(key=item.get("Key", ""), upload_id=item.get("UploadId", ""),
                                      initiated=initiated.astimezone(dt.UTC)))
        return out

    def abort_upload(self, bucket: str, upload: Upload) -> None:
        """Abort one multipart upload: the server drops its parts."""
        with self._translate("AbortMultipartUpload", bucket, upload.key):
            self._client.abort_multipart_upload(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)

    def abort_stale_uploads(self, bucket: str, prefix: str, *, older_than: dt.timedelta,
                            now: dt.datetime | None = None) -> list[Upload]:
        """Abort the uploads under PREFIX started more than OLDER_THAN ago (by the server's
        clock in `initiated`, against ours in NOW); younger ones may still be running."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
        stale = [u for u in self.list_uploads(bucket, prefix) if u.initiated <= cutoff]
        for upload in stale:
            self.abort_upload(bucket, upload)
        return stale


class _CaBundle:
    """PEM text as a path the TLS library can open: an anonymous memory file
    (/proc/self/fd/N, Linux), so no writable directory is needed - restore init
    containers have none. Closed with the client."""

    def __init__(self, pem: str) -> None:
        self._fd: int | None = os.memfd_create("velocity-s3-ca", os.MFD_CLOEXEC)
        os.write(self._fd, pem.encode())
        self.path = f"/proc/self/fd/{self._fd}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def client_from_env(environ: Mapping[str, str] | None = None) -> S3Client:
    """The client a pod builds from its environment (env.py). Credentials come from
    botocore's default chain, which reads the process environment itself."""
    settings = settings_from_env(os.environ if environ is None else environ)
    return S3Client(settings.endpoint, region=settings.region, path_style=settings.path_style,
                    ca_file=settings.ca_file, ca_pem=settings.ca_pem, sse=settings.sse,
                    sse_kms_key_id=settings.sse_kms_key_id)
