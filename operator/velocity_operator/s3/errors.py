"""What can go wrong talking to S3, as typed errors carrying the server's own words.

`S3Error.code` is the S3 error code (`NoSuchBucket`, `SignatureDoesNotMatch`, ...);
subclasses exist for the codes callers act on (credentials, missing bucket or key).
HEAD answers have no body, so their status alone picks the class. These classes are the
whole error surface of `velocity_operator.s3`: the adapter (`client.py`) translates
botocore's exceptions into them, so no caller ever imports botocore.
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_CODES",
    "AccessDeniedError",
    "ChecksumMismatchError",
    "NoSuchBucketError",
    "NoSuchKeyError",
    "S3ConnectionError",
    "S3Error",
    "error_for",
]

# Codes that mean "these credentials cannot do this": retrying will not help.
# XAdminUserNotFound is versitygw's answer (HTTP 404) for an access key id it does not
# know, where AWS says InvalidAccessKeyId (HTTP 403). InvalidToken / ExpiredToken are a
# bad or expired session token; InvalidIdentityToken, IDPCommunicationError and
# InvalidClientTokenId come from STS while exchanging a web identity token for keys;
# NoCredentials is ours: the default chain found no credentials at all.
CREDENTIAL_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound",
    "InvalidToken", "ExpiredToken", "InvalidIdentityToken", "ExpiredTokenException",
    "InvalidClientTokenId", "IDPCommunicationError", "IDPRejectedClaim", "NoCredentials",
})


class S3Error(Exception):
    """An error answer from the server (or from STS while getting credentials)."""

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
        """True when repeating the request cannot succeed: credentials that do not work,
        and 4xx answers other than throttling."""
        if self.code in CREDENTIAL_CODES:
            return True
        return 400 <= self.status < 500 and self.code not in ("SlowDown", "RequestTimeout", "Throttling")


class AccessDeniedError(S3Error):
    """AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, a bad session or web
    identity token, or no credentials at all: wrong or insufficient credentials."""


class NoSuchBucketError(S3Error):
    """The bucket does not exist (S3 does not create it for us)."""


class NoSuchKeyError(S3Error):
    """The object does not exist."""


class S3ConnectionError(OSError):
    """The endpoint could not be reached, its certificate did not verify, or the
    connection broke mid-request."""


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
# HEAD answers carry no body: botocore reports the bare status as the code.
_BY_STATUS = {"403": "AccessDenied", "404": "NotFound"}


def error_for(code: str, message: str, *, status: int, method: str, resource: str,
              request_id: str = "") -> S3Error:
    """The typed error for an error answer; `code` as the server (or botocore) gave it."""
    code = _BY_STATUS.get(code, code) or f"HTTP{status}"
    if not message:
        message = {403: "access denied", 404: "not found"}.get(status, "no error message")
    cls = _BY_CODE.get(code, S3Error)
    if code == "NotFound" and method in ("HEAD", "HeadObject"):
        cls = NoSuchKeyError
    return cls(code, message, status=status, method=method, resource=resource, request_id=request_id)
