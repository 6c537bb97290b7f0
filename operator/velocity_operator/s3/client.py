"""A small S3 client on http.client: the calls backups need and nothing else.

Runs inside the engine image (backup Jobs, restore init containers), which carries the
standard library only, hence no boto3. Every request is signed with SigV4 over the real
SHA-256 of its body.

Uploads: files up to `part_size` go in one PUT; larger ones in a multipart upload of
`part_size` parts (at least 5 MiB, as S3 requires, and as many as 10,000). One read of
the file computes the whole-file SHA-256 (stored as object metadata) and each part's
SHA-256 (signed with the part); a second read streams the bytes with a Content-Length.
Nothing is held in memory beyond one read buffer, so a multi-GB snapshot fits a Job with
a small memory limit.

Downloads stream to FILE.partial while hashing, check the length and the SHA-256, and
rename only when both match: a file at the target path is always complete and verified.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import http.client
import os
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from .errors import ChecksumMismatchError, NoSuchKeyError, S3ConnectionError, S3Error, error_from_response
from .sigv4 import EMPTY_SHA256, Credentials, sign, uri_encode

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "SHA256_METADATA",
    "ObjectHead",
    "ObjectInfo",
    "S3Client",
    "S3Url",
    "Transfer",
]

MIN_PART_SIZE = 5 << 20  # S3's floor for every part but the last
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 << 20
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: hex SHA-256 of the whole object
_BUFFER = 1 << 20
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_ATTEMPTS = 3


@dataclass(frozen=True)
class S3Url:
    """s3://BUCKET/KEY, the form backup locations take in VelocityBackup.status."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Url:
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ValueError(f"an s3:// URL needs a bucket and a key: {url!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of a listing."""

    key: str
    size: int
    last_modified: str  # ISO 8601 as the server sent it


@dataclass(frozen=True)
class ObjectHead:
    size: int
    metadata: dict[str, str]  # x-amz-meta-* without the prefix, names lower-case


@dataclass(frozen=True)
class Transfer:
    """What one upload or download moved."""

    size: int
    sha256: str  # hex
    parts: int = 1
    seconds: float = 0.0


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: http.client.HTTPResponse | None = field(default=None, repr=False)


class _Slice:
    """A file-like view of LENGTH bytes of a file from OFFSET, for http.client to stream."""

    def __init__(self, fh: BinaryIO, offset: int, length: int) -> None:
        self._fh, self._left = fh, length
        fh.seek(offset)

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data


class S3Client:
    """Synchronous client for one endpoint and key pair; one connection per request.

    `path_style` addresses buckets as ENDPOINT/BUCKET/KEY (MinIO, versitygw, most
    self-hosted servers) instead of BUCKET.ENDPOINT/KEY. `connect_address` sends every
    request to that (host, port) whatever the Host header says, like curl's --resolve
    (virtual-host names that DNS does not know). `ca_file` adds a CA for https endpoints.
    Idempotent requests are retried on connection errors and 5xx answers, 3 tries in all.
    """

    def __init__(self, endpoint: str, credentials: Credentials, *, region: str = "us-east-1",
                 path_style: bool = True, ca_file: str | None = None, timeout: float = 60.0,
                 part_size: int = DEFAULT_PART_SIZE, connect_address: tuple[str, int] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {endpoint!r}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self.endpoint = endpoint
        self.region = region
        self.path_style = path_style
        self.part_size = part_size
        self._credentials = credentials
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc.rpartition("@")[2]
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base_path = parts.path.rstrip("/")
        self._timeout = timeout
        self._connect_address = connect_address
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None

    def __repr__(self) -> str:
        return f"S3Client({self.endpoint!r}, region={self.region!r}, path_style={self.path_style})"

    # ------------------------------------------------------------------ requests
    def _address(self, bucket: str, key: str) -> tuple[str, str]:
        """(Host header, decoded path) for BUCKET/KEY in the configured addressing style."""
        if not bucket:
            return self._netloc, self._base_path + "/"
        if self.path_style:
            return self._netloc, f"{self._base_path}/{bucket}" + (f"/{key}" if key else "")
        return f"{bucket}.{self._netloc}", f"{self._base_path}/{key}"

    def _connection(self, host: str) -> http.client.HTTPConnection:
        if self._connect_address is not None:
            address, port = self._connect_address
        else:
            address, port = host.rpartition(":")[0] if ":" in host else host, self._port
            if address.startswith("["):
                address = address[1:-1]
        if self._https:
            # The certificate must match the Host we ask for, not the address we dial.
            conn: http.client.HTTPConnection = _PinnedHTTPSConnection(
                address, port, server_hostname=host.split(":")[0], timeout=self._timeout,
                context=self._ssl, blocksize=_BUFFER)
        else:
            conn = http.client.HTTPConnection(address, port, timeout=self._timeout, blocksize=_BUFFER)
        return conn

    def _request(self, method: str, bucket: str, key: str = "", *, query: Sequence[tuple[str, str]] = (),
                 headers: Mapping[str, str] | None = None, body: bytes | Callable[[], _Slice] = b"",
                 length: int | None = None, payload_sha256: str | None = None, stream: bool = False,
                 retry: bool = True) -> _Response:
        """One signed request; error answers raise S3Error. `body` is bytes or a factory of
        a fresh file slice (so a retry can resend it)."""
        host, path = self._address(bucket, key)
        if isinstance(body, bytes):
            length = len(body)
            payload_sha256 = payload_sha256 or hashlib.sha256(body).hexdigest()
        assert length is not None and payload_sha256 is not None
        resource = f"{self.endpoint.rstrip('/')} s3://{bucket}/{key}" if bucket else self.endpoint
        target = uri_encode(path, keep_slash=True)
        if query:
            target += "?" + "&".join(f"{uri_encode(k, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
                                     for k, v in query)
        attempts = _ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            signed = sign(method=method, host=host, path=path, query=query,
                          headers={**(headers or {}), "Content-Length": str(length)},
                          payload_sha256=payload_sha256, credentials=self._credentials,
                          region=self.region, when=self._clock())
            conn = self._connection(host)
            try:
                payload = body if isinstance(body, bytes) else body()
                conn.request(method, target, body=payload, headers=signed)
                response = conn.getresponse()
                if response.status < 300 and stream:
                    return _Response(response.status, dict(response.getheaders()), stream=response)
                data = response.read()
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A certificate that does not verify will not verify on the next try either.
                if attempt == attempts or isinstance(exc, ssl.SSLCertVerificationError):
                    raise S3ConnectionError(f"{method} {resource}: {exc}") from exc
                time.sleep(attempt)
                continue
            if response.status < 300:
                return _Response(response.status, dict(response.getheaders()), data)
            error = error_from_response(response.status, data, method=method, resource=resource)
            if error.permanent or attempt == attempts:
                raise error
            time.sleep(attempt)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ buckets
    def create_bucket(self, bucket: str) -> None:
        """Create BUCKET (in the client's region; us-east-1 needs no location body)."""
        body = b""
        if self.region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="{_NS[1:-1]}"><LocationConstraint>{self.region}'
                    "</LocationConstraint></CreateBucketConfiguration>").encode()
        self._request("PUT", bucket, body=body)

    def list_objects(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> list[ObjectInfo]:
        """Every object whose key starts with PREFIX, in key order (ListObjectsV2, all pages
        of at most PAGE_SIZE keys)."""
        out: list[ObjectInfo] = []
        token = ""
        while True:
            query = [("list-type", "2"), ("max-keys", str(page_size)), ("prefix", prefix)]
            if token:
                query.append(("continuation-token", token))
            root = ET.fromstring(self._request("GET", bucket, query=query).body)
            for item in root.iter(f"{_NS}Contents"):
                out.append(ObjectInfo(key=item.findtext(f"{_NS}Key") or "",
                                      size=int(item.findtext(f"{_NS}Size") or 0),
                                      last_modified=item.findtext(f"{_NS}LastModified") or ""))
            token = root.findtext(f"{_NS}NextContinuationToken") or ""
            if (root.findtext(f"{_NS}IsTruncated") or "false") != "true" or not token:
                return out

    # ------------------------------------------------------------------ objects
    def head_object(self, bucket: str, key: str) -> ObjectHead:
        response = self._request("HEAD", bucket, key)
        meta = {k.lower().removeprefix("x-amz-meta-"): v for k, v in response.headers.items()
                if k.lower().startswith("x-amz-meta-")}
        return ObjectHead(size=int(response.headers.get("Content-Length", "0")), metadata=meta)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete KEY; deleting a missing key succeeds, as in S3."""
        self._request("DELETE", bucket, key)

    def put_bytes(self, bucket: str, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> None:
        self._request("PUT", bucket, key, body=data, headers=_meta_headers(metadata))

    def put_file(self, bucket: str, key: str, path: Path, *,
                 metadata: Mapping[str, str] | None = None) -> Transfer:
        """Upload PATH; its SHA-256 is stored as metadata `sha256` (with METADATA's entries)."""
        start = time.monotonic()
        size = path.stat().st_size
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        whole, parts = _hash_file(path, part_size)
        headers = _meta_headers({**(metadata or {}), SHA256_METADATA: whole})
        headers["Content-Type"] = "application/octet-stream"
        with path.open("rb") as fh:
            if len(parts) <= 1:
                self._request("PUT", bucket, key, body=functools.partial(_Slice, fh, 0, size), length=size,
                              payload_sha256=parts[0] if parts else EMPTY_SHA256, headers=headers)
            else:
                self._multipart(bucket, key, fh, size, part_size, parts, headers)
        return Transfer(size=size, sha256=whole, parts=max(1, len(parts)), seconds=time.monotonic() - start)

    def _multipart(self, bucket: str, key: str, fh: BinaryIO, size: int, part_size: int,
                   part_hashes: list[str], headers: dict[str, str]) -> None:
        created = self._request("POST", bucket, key, query=[("uploads", "")], headers=headers, retry=False)
        upload_id = ET.fromstring(created.body).findtext(f"{_NS}UploadId") or ""
        if not upload_id:
            raise S3Error("MalformedResponse", "CreateMultipartUpload answered without an UploadId", status=200,
                          method="POST", resource=f"s3://{bucket}/{key}")
        try:
            etags = []
            for number, digest in enumerate(part_hashes, start=1):
                offset = (number - 1) * part_size
                length = min(part_size, size - offset)
                response = self._request(
                    "PUT", bucket, key, query=[("partNumber", str(number)), ("uploadId", upload_id)],
                    body=functools.partial(_Slice, fh, offset, length), length=length, payload_sha256=digest)
                etags.append(response.headers.get("ETag") or response.headers.get("Etag") or "")
            listing = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
                              for n, e in enumerate(etags, start=1))
            done = self._request("POST", bucket, key, query=[("uploadId", upload_id)],
                                 body=f"<CompleteMultipartUpload>{listing}</CompleteMultipartUpload>".encode())
            # S3 may answer 200 with an <Error> body when completion fails late.
            if done.body and ET.fromstring(done.body).tag.endswith("Error"):
                raise error_from_response(500, done.body, method="POST", resource=f"s3://{bucket}/{key}")
        except BaseException:
            # The original error matters more; a bucket lifecycle rule reaps leftovers.
            with contextlib.suppress(S3Error, S3ConnectionError):
                self._request("DELETE", bucket, key, query=[("uploadId", upload_id)], retry=False)
            raise

    def get_file(self, bucket: str, key: str, path: Path, *, expected_sha256: str | None = None) -> Transfer:
        """Download KEY to PATH, verified against EXPECTED_SHA256 (hex) or, when None, the
        object's `sha256` metadata; ChecksumMismatchError leaves nothing at PATH."""
        start = time.monotonic()
        response = self._request("GET", bucket, key, stream=True)
        assert response.stream is not None
        headers = {k.lower(): v for k, v in response.headers.items()}
        expected = expected_sha256 or headers.get(f"x-amz-meta-{SHA256_METADATA}")
        partial = path.with_name(path.name + ".partial")
        digest = hashlib.sha256()
        size = 0
        try:
            with partial.open("wb") as out:
                for chunk in _chunks(response.stream):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            announced = headers.get("content-length")
            resource = f"s3://{bucket}/{key}"
            if announced is not None and int(announced) != size:
                raise S3ConnectionError(f"GET {resource}: got {size} of {announced} bytes")
            if expected is not None and digest.hexdigest() != expected.removeprefix("sha256:"):
                raise ChecksumMismatchError(resource, expected.removeprefix("sha256:"), digest.hexdigest())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            response.stream.close()
        return Transfer(size=size, sha256=digest.hexdigest(), seconds=time.monotonic() - start)

    def object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.head_object(bucket, key)
        except NoSuchKeyError:
            return False
        return True


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address that may differ from the name the certificate must carry."""

    def __init__(self, host: str, port: int, *, server_hostname: str, timeout: float,
                 context: ssl.SSLContext | None, blocksize: int) -> None:
        super().__init__(host, port, timeout=timeout, context=context, blocksize=blocksize)
        self._server_hostname = server_hostname
        self._context: ssl.SSLContext = context or ssl.create_default_context()

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _chunks(stream: http.client.HTTPResponse) -> Iterator[bytes]:
    while chunk := stream.read(_BUFFER):
        yield chunk


def _meta_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {f"x-amz-meta-{k.lower()}": v for k, v in (metadata or {}).items()}


def _hash_file(path: Path, part_size: int) -> tuple[str, list[str]]:
    """(whole-file SHA-256, SHA-256 of each PART_SIZE slice), in one read."""
    whole = hashlib.sha256()
    parts: list[str] = []
    part = hashlib.sha256()
    in_part = 0
    with path.open("rb") as fh:
        while chunk := fh.read(min(_BUFFER, part_size - in_part)):
            whole.update(chunk)
            part.update(chunk)
            in_part += len(chunk)
            if in_part == part_size:
                parts.append(part.hexdigest())
                part, in_part = hashlib.sha256(), 0
    if in_part or not parts:
        parts.append(part.hexdigest())
    return whole.hexdigest(), parts
