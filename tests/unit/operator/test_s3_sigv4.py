"""SigV4 against the example requests AWS publishes for S3 (header-based authentication,
examplebucket, 2013-05-24), and the error mapping of velocity_operator.s3."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from velocity_operator.s3 import AccessDeniedError, NoSuchBucketError, NoSuchKeyError, S3Error, S3Url
from velocity_operator.s3.errors import error_from_response
from velocity_operator.s3.sigv4 import EMPTY_SHA256, Credentials, canonical_request, sign, signing_key

AWS_EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
HOST = "examplebucket.s3.amazonaws.com"


def _signature(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
               payload: str = EMPTY_SHA256) -> str:
    signed = sign(method=method, host=HOST, path=path, query=query, headers=headers, payload_sha256=payload,
                  credentials=AWS_EXAMPLE, region="us-east-1", when=WHEN)
    assert signed["X-Amz-Date"] == "20130524T000000Z"
    assert signed["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,")
    return signed["Authorization"].rpartition("Signature=")[2]


def test_get_object_with_range() -> None:
    assert _signature("GET", "/test.txt", [], {"Range": "bytes=0-9"}) == (
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_put_object_with_a_dollar_in_the_key() -> None:
    body = b"Welcome to Amazon S3."
    headers = {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"}
    assert _signature("PUT", "/test$file.text", [], headers, hashlib.sha256(body).hexdigest()) == (
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")


def test_get_bucket_lifecycle_subresource() -> None:
    assert _signature("GET", "/", [("lifecycle", "")], {}) == (
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")


def test_list_objects_with_sorted_query() -> None:
    # Given out of order on purpose: the canonical query sorts the parameters.
    assert _signature("GET", "/", [("prefix", "J"), ("max-keys", "2")], {}) == (
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_canonical_request_encodes_the_path_once_and_trims_headers() -> None:
    request, signed = canonical_request("put", "/a b/c%d", [("uploadId", "x/y")], {"Host": "h", "X-A": "  1   2 "},
                                        EMPTY_SHA256)
    lines = request.split("\n")
    assert lines[:3] == ["PUT", "/a%20b/c%25d", "uploadId=x%2Fy"]
    assert "x-a:1 2" in lines
    assert signed == "host;x-a"


def test_signature_depends_on_the_secret_and_the_date() -> None:
    base = signing_key(AWS_EXAMPLE.secret_access_key, WHEN, "us-east-1")
    assert signing_key("other", WHEN, "us-east-1") != base
    assert signing_key(AWS_EXAMPLE.secret_access_key, WHEN + dt.timedelta(days=1), "us-east-1") != base


def test_secret_is_not_in_repr() -> None:
    assert AWS_EXAMPLE.secret_access_key not in repr(AWS_EXAMPLE)


@pytest.mark.parametrize(("code", "cls"), [
    ("SignatureDoesNotMatch", AccessDeniedError), ("InvalidAccessKeyId", AccessDeniedError),
    ("AccessDenied", AccessDeniedError), ("NoSuchBucket", NoSuchBucketError), ("NoSuchKey", NoSuchKeyError),
    ("InternalError", S3Error),
])
def test_error_documents_map_to_types(code: str, cls: type[S3Error]) -> None:
    body = (f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>the message</Message>"
            "<RequestId>R1</RequestId></Error>").encode()
    err = error_from_response(500 if code == "InternalError" else 403, body, method="PUT", resource="s3://b/k")
    assert type(err) is cls
    assert (err.code, err.message, err.request_id) == (code, "the message", "R1")
    assert str(err) == f"PUT s3://b/k: HTTP {err.status} {code}: the message (request id R1)"
    assert err.permanent == (code != "InternalError")


def test_bodyless_head_errors_use_the_status() -> None:
    assert type(error_from_response(404, b"", method="HEAD", resource="r")) is NoSuchKeyError
    assert type(error_from_response(403, b"", method="HEAD", resource="r")) is AccessDeniedError


def test_s3_url() -> None:
    url = S3Url.parse("s3://bkt/velocity/alpha/b1.vsnap")
    assert (url.bucket, url.key, str(url)) == ("bkt", "velocity/alpha/b1.vsnap", "s3://bkt/velocity/alpha/b1.vsnap")
    for bad in ("pvc://c/p", "s3://bkt", "s3:///k"):
        with pytest.raises(ValueError):
            S3Url.parse(bad)
