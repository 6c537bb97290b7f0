"""AWS Signature Version 4 for the S3 API, with nothing but hashlib and hmac.

The signature is an HMAC-SHA256 chain over a canonical form of the request:

    canonical request = METHOD \\n URI \\n QUERY \\n HEADERS \\n \\n SIGNED-HEADER-NAMES \\n PAYLOAD-SHA256
    string to sign    = AWS4-HMAC-SHA256 \\n DATETIME \\n DATE/REGION/s3/aws4_request \\n sha256(canonical request)
    signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, DATE), REGION), "s3"), "aws4_request")

S3 differs from the other services in one point that matters here: the URI path is
encoded once, not twice. The payload hash is always a real SHA-256 (callers hash files
before sending them), so the server checks the body as well as the headers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "Credentials",
    "authorization",
    "canonical_query",
    "canonical_request",
    "sign",
    "signing_key",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SERVICE = "s3"


@dataclass(frozen=True)
class Credentials:
    """An access key pair. The secret never appears in repr() (it ends up in logs)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and / in paths)."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """Parameters encoded, then sorted by name and value (a bare `?uploads` is `uploads=`)."""
    pairs = sorted((uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(method: str, path: str, query: Sequence[tuple[str, str]],
                      headers: Mapping[str, str], payload_sha256: str) -> tuple[str, str]:
    """(canonical request, signed header names) for `headers`, all of which are signed.

    `path` is the decoded URI path (it is encoded here, once, as S3 wants)."""
    canonical = {name.lower().strip(): " ".join(value.strip().split()) for name, value in headers.items()}
    names = sorted(canonical)
    signed = ";".join(names)
    lines = [
        method.upper(),
        uri_encode(path or "/", keep_slash=True),
        canonical_query(query),
        "".join(f"{n}:{canonical[n]}\n" for n in names),
        signed,
        payload_sha256,
    ]
    return "\n".join(lines), signed


def _scope(when: dt.datetime, region: str) -> str:
    return f"{when:%Y%m%d}/{region}/{SERVICE}/aws4_request"


def string_to_sign(request: str, when: dt.datetime, region: str) -> str:
    digest = hashlib.sha256(request.encode()).hexdigest()
    return f"{ALGORITHM}\n{when:%Y%m%dT%H%M%SZ}\n{_scope(when, region)}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, when: dt.datetime, region: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), f"{when:%Y%m%d}")
    for part in (region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    return key


def authorization(credentials: Credentials, when: dt.datetime, region: str, signed_headers: str,
                  to_sign: str) -> str:
    signature = hmac.new(signing_key(credentials.secret_access_key, when, region), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    return (f"{ALGORITHM} Credential={credentials.access_key_id}/{_scope(when, region)},"
            f"SignedHeaders={signed_headers},Signature={signature}")


def sign(*, method: str, host: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str],
         payload_sha256: str, credentials: Credentials, region: str, when: dt.datetime) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Content-Sha256 and Authorization.

    Every header passed in is signed; `when` must be UTC (servers allow ~15 minutes of skew)."""
    when = when.astimezone(dt.UTC)
    out = {"Host": host, **headers, "X-Amz-Date": f"{when:%Y%m%dT%H%M%SZ}",
           "X-Amz-Content-Sha256": payload_sha256}
    request, signed = canonical_request(method, path, query, out, payload_sha256)
    out["Authorization"] = authorization(credentials, when, region, signed, string_to_sign(request, when, region))
    return out
