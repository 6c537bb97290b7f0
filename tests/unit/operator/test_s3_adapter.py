"""velocity_operator.s3 without a server: how botocore's exceptions map to our error
types, the settings pods read from their environment, and what the adapter asks botocore
to send (addressing style, server-side encryption, a session token), captured at
botocore's before-send event instead of going to the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, SSLError
from velocity_operator.s3 import AccessDeniedError, NoSuchBucketError, NoSuchKeyError, S3ConnectionError, S3Error
from velocity_operator.s3 import env as s3env
from velocity_operator.s3.client import Credentials, S3Client, S3Url, client_from_env
from velocity_operator.s3.env import MissingSettingError, settings_from_env
from velocity_operator.s3.errors import error_for

KEYS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


class _Captured:
    """Requests the client would have sent, each answered 200 with BODY."""

    def __init__(self, client: S3Client, body: bytes = b"") -> None:
        self.requests: list[AWSPreparedRequest] = []
        self._body = body
        client._client.meta.events.register("before-send.s3", self._send)

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.requests.append(request)

        class _Raw:
            def __init__(self, data: bytes) -> None:
                self._data = data

            def stream(self, **_: Any) -> Iterator[bytes]:
                yield self._data

        return AWSResponse(request.url, 200, {}, _Raw(self._body))

    def header(self, name: str, index: int = -1) -> str | None:
        value = self.requests[index].headers.get(name)
        return value.decode() if isinstance(value, bytes) else value


def _client_error(code: str, status: int, operation: str = "PutObject", message: str = "the message") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "R1"}}, operation)


@pytest.mark.parametrize(("code", "cls"), [
    ("SignatureDoesNotMatch", AccessDeniedError), ("InvalidAccessKeyId", AccessDeniedError),
    ("AccessDenied", AccessDeniedError), ("InvalidToken", AccessDeniedError), ("ExpiredToken", AccessDeniedError),
    ("NoSuchBucket", NoSuchBucketError), ("NoSuchKey", NoSuchKeyError), ("InternalError", S3Error),
])
def test_server_errors_map_to_types(code: str, cls: type[S3Error]) -> None:
    client = S3Client("http://127.0.0.1:9", credentials=KEYS)
    status = 500 if code == "InternalError" else 403
    with pytest.raises(cls) as info, client._translate("PutObject", "b", "k"):
        raise _client_error(code, status)
    err = info.value
    assert type(err) is cls
    assert (err.code, err.message, err.request_id, err.status) == (code, "the message", "R1", status)
    assert str(err) == f"PutObject http://127.0.0.1:9 s3://b/k: HTTP {status} {code}: the message (request id R1)"
    assert err.permanent == (code != "InternalError")


def test_throttling_is_not_permanent() -> None:
    assert not error_for("SlowDown", "", status=503, method="PutObject", resource="r").permanent
    assert not error_for("SlowDown", "", status=429, method="PutObject", resource="r").permanent


def test_bodyless_head_errors_use_the_status() -> None:
    assert type(error_for("404", "", status=404, method="HeadObject", resource="r")) is NoSuchKeyError
    assert type(error_for("403", "", status=403, method="HeadObject", resource="r")) is AccessDeniedError


def test_sts_errors_say_they_came_while_getting_credentials() -> None:
    client = S3Client("http://127.0.0.1:9")
    with pytest.raises(AccessDeniedError) as info, client._translate("PutObject", "b", "k"):
        raise _client_error("InvalidIdentityToken", 400, operation="AssumeRoleWithWebIdentity",
                            message="Incorrect token audience")
    assert "getting credentials (AssumeRoleWithWebIdentity): Incorrect token audience" in str(info.value)
    assert info.value.permanent


def test_no_credentials_is_a_permanent_access_error() -> None:
    client = S3Client("http://127.0.0.1:9")
    with pytest.raises(AccessDeniedError) as info, client._translate("GetObject", "b", "k"):
        raise NoCredentialsError()
    assert info.value.code == "NoCredentials" and info.value.permanent


@pytest.mark.parametrize("exc", [EndpointConnectionError(endpoint_url="http://x"),
                                 SSLError(endpoint_url="https://x", error="CERTIFICATE_VERIFY_FAILED")])
def test_transport_failures_are_connection_errors(exc: Exception) -> None:
    client = S3Client("http://127.0.0.1:9")
    with pytest.raises(S3ConnectionError), client._translate("GetObject", "b", "k"):
        raise exc


def test_s3_url() -> None:
    url = S3Url.parse("s3://bkt/velocity/alpha/b1.vsnap")
    assert (url.bucket, url.key, str(url)) == ("bkt", "velocity/alpha/b1.vsnap", "s3://bkt/velocity/alpha/b1.vsnap")
    for bad in ("pvc://c/p", "s3://bkt", "s3:///k"):
        with pytest.raises(ValueError):
            S3Url.parse(bad)


def test_secrets_are_not_in_repr() -> None:
    keys = Credentials("AKIA", "secret-value", "token-value")
    assert "secret-value" not in repr(keys) and "token-value" not in repr(keys)


def test_settings_from_env() -> None:
    settings = settings_from_env({s3env.ENDPOINT: "https://s3.example", s3env.REGION: "eu-west-1",
                                  s3env.PATH_STYLE: "false", s3env.CA_BUNDLE: "PEM", s3env.SSE: "aws:kms",
                                  s3env.SSE_KMS_KEY_ID: "alias/backups"})
    assert (settings.endpoint, settings.region, settings.path_style) == ("https://s3.example", "eu-west-1", False)
    assert (settings.ca_pem, settings.sse, settings.sse_kms_key_id) == ("PEM", "aws:kms", "alias/backups")
    assert "PEM" not in repr(settings)
    defaults = settings_from_env({s3env.ENDPOINT: "http://m:9000"})
    assert (defaults.region, defaults.path_style, defaults.sse, defaults.ca_pem) == ("us-east-1", True, None, None)
    with pytest.raises(MissingSettingError, match=s3env.ENDPOINT):
        settings_from_env({})
    with pytest.raises(MissingSettingError, match="AES256"):
        settings_from_env({s3env.ENDPOINT: "http://m", s3env.SSE: "rot13"})


def test_path_and_virtual_host_addressing() -> None:
    path = S3Client("http://s3.test:7070", credentials=KEYS)
    sent = _Captured(path)
    path.delete_object("bkt", "dir/a b+c")
    assert sent.requests[-1].url == "http://s3.test:7070/bkt/dir/a%20b%2Bc"
    virtual = S3Client("http://s3.test:7070", credentials=KEYS, path_style=False)
    sent = _Captured(virtual)
    virtual.delete_object("bkt", "dir/k")
    assert sent.requests[-1].url == "http://bkt.s3.test:7070/dir/k"


def test_server_side_encryption_and_session_token_are_sent(tmp_path: Path) -> None:
    client = S3Client("http://s3.test:7070", credentials=Credentials("ASIAEXAMPLE", "secret", "the-session-token"),
                      sse="aws:kms", sse_kms_key_id="alias/backups")
    sent = _Captured(client)
    client.put_bytes("bkt", "k", b"v", metadata={"source": "velocity-backup"})
    assert sent.header("x-amz-server-side-encryption") == "aws:kms"
    assert sent.header("x-amz-server-side-encryption-aws-kms-key-id") == "alias/backups"
    assert sent.header("x-amz-security-token") == "the-session-token"
    assert sent.header("x-amz-meta-source") == "velocity-backup"
    assert "Credential=ASIAEXAMPLE/" in (sent.header("Authorization") or "")
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    client.put_file("bkt", "f", small)
    assert sent.header("x-amz-server-side-encryption") == "aws:kms"
    assert sent.header("x-amz-meta-sha256") is not None


def test_sse_kms_key_needs_kms() -> None:
    with pytest.raises(ValueError, match="aws:kms"):
        S3Client("http://m", sse="AES256", sse_kms_key_id="k")


def test_ca_bundle_text_becomes_a_readable_path_and_goes_away() -> None:
    client = S3Client("https://s3.test", credentials=KEYS, ca_pem="-----BEGIN CERTIFICATE-----\n")
    assert client._ca is not None
    path = client._ca.path
    assert Path(path).read_text() == "-----BEGIN CERTIFICATE-----\n"
    client.close()
    assert not os.path.exists(path) or Path(path).read_text() != "-----BEGIN CERTIFICATE-----\n"


def test_default_chain_reads_the_session_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(s3env.ENDPOINT, "http://s3.test:7070")
    monkeypatch.setenv(s3env.ACCESS_KEY_ID, "ASIAFROMENV")
    monkeypatch.setenv(s3env.SECRET_ACCESS_KEY, "secret")
    monkeypatch.setenv(s3env.SESSION_TOKEN, "env-session-token")
    with client_from_env() as client:
        sent = _Captured(client)
        client.delete_object("bkt", "k")
    assert sent.header("x-amz-security-token") == "env-session-token"
    assert "Credential=ASIAFROMENV/" in (sent.header("Authorization") or "")
