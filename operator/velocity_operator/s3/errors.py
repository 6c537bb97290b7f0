"""What can go wrong talking to S3, as typed errors carrying the server's own words.

S3 answers errors with an XML document: <Error><Code>NoSuchBucket</Code><Message>...
</Message>...</Error>. `S3Error.code` is that code; subclasses exist for the codes callers
act on (credentials, missing bucket or key). HEAD answers have no body, so their status
alone picks the class.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = [
    "CREDENTIAL_CODES",
    "AccessDeniedError",
    "ChecksumMismatchError",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "S3ConnectionError",
    "S3Error",
    "error_from_response",
]

# Codes that mean "these credentials cannot do this": retrying will not help.
# XAdminUserNotFound is versitygw's answer (HTTP 404) for an access key id it does not
# know, where AWS says InvalidAccessKeyId (HTTP 403).
CREDENTIAL_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound"})


class S3Error(Exception):
    """An error answer from the server."""

    def __init__(self, code: str, message: str, *, status: int, method: str, resource: str,
                 request_id: str = "") -> None:
        self.code = code
        self.message = message
        self.status = status
        self.method = method
        self.resource = resource
        self.request_id = request_id
        detail = f" (request id {request_id})" if request_id else ""
        super().__init__(f"{method} {resource}: HTTP {status} {code}: {message}{detail}")

    @property
    def permanent(self) -> bool:
        """True when repeating the request cannot succeed (4xx other than throttling)."""
        return 400 <= self.status < 500 and self.code not in ("SlowDown", "RequestTimeout")


class AccessDeniedError(S3Error):
    """AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch (or a server's own code for
    an unknown key id): wrong or insufficient credentials."""


class NoSuchBucketError(S3Error):
    """The bucket does not exist (S3 does not create it for us)."""


class NoSuchKeyError(S3Error):
    """The object does not exist."""


class S3ConnectionError(OSError):
    """The endpoint could not be reached or the connection broke mid-request."""


class ChecksumMismatchError(ValueError):
    """Downloaded bytes do not hash to the checksum recorded when they were uploaded."""

    def __init__(self, resource: str, expected: str, actual: str) -> None:
        self.resource, self.expected, self.actual = resource, expected, actual
        super().__init__(f"{resource}: sha256 {actual} does not match the recorded {expected}")


_BY_CODE: dict[str, type[S3Error]] = {
    **dict.fromkeys(CREDENTIAL_CODES, AccessDeniedError),
    "NoSuchBucket": NoSuchBucketError,
    "NoSuchKey": NoSuchKeyError,
}
_BY_STATUS = {403: "AccessDenied", 404: "NotFound"}


def error_from_response(status: int, body: bytes, *, method: str, resource: str) -> S3Error:
    """The typed error for an error answer (body may be empty, e.g. for HEAD)."""
    code, message, request_id = _BY_STATUS.get(status, f"HTTP{status}"), "", ""
    if body:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            message = body[:500].decode(errors="replace")
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
            request_id = root.findtext("RequestId") or ""
    if not message:
        message = {403: "access denied", 404: "not found"}.get(status, "no error message")
    cls = _BY_CODE.get(code, S3Error)
    if code == "NotFound" and method == "HEAD":
        cls = NoSuchKeyError
    return cls(code, message, status=status, method=method, resource=resource, request_id=request_id)
