"""velocity_operator.s3 against a real S3 server (versitygw over a temp directory): every
call the backups make, the error types, https with a custom CA, virtual-host addressing
and the command line. Credentials, multipart concurrency and interruptions have their own
files (test_credentials.py, test_multipart.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from velocity_operator import tlsutil
from velocity_operator.s3 import (
    CREDENTIAL_CODES,
    AccessDeniedError,
    ChecksumMismatchError,
    NoSuchBucketError,
    NoSuchKeyError,
    S3ConnectionError,
)
from velocity_operator.s3 import env as s3env
from velocity_operator.s3.client import Credentials, S3Client

from tests.support.engine_proc import free_port
from tests.support.s3_server import S3Server

MiB = 1 << 20


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def test_bytes_round_trip_with_metadata(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    client.put_bytes(bucket, "a/b c+d.txt", b"hello", metadata={"cluster": "alpha"})
    head = client.head_object(bucket, "a/b c+d.txt")
    assert head.size == 5
    assert head.metadata["cluster"] == "alpha"
    assert [o.key for o in client.list_objects(bucket, "a/")] == ["a/b c+d.txt"]


def test_small_file_single_put_and_verified_get(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "small.vsnap"
    expected = _random_file(src, 100_000)
    client = s3.client()
    up = client.put_file(bucket, "velocity/alpha/b1.vsnap", src, metadata={"backup": "b1"})
    assert (up.size, up.sha256, up.parts) == (100_000, expected, 1)
    assert client.head_object(bucket, "velocity/alpha/b1.vsnap").metadata == {"backup": "b1", "sha256": expected}
    out = tmp_path / "restored.vsnap"
    down = client.get_file(bucket, "velocity/alpha/b1.vsnap", out)
    assert down.sha256 == expected
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.slow
def test_64_mib_multipart_round_trip(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "big.vsnap"
    expected = _random_file(src, 64 * MiB + 12345)
    client = s3.client(part_size=16 * MiB)
    up = client.put_file(bucket, "big.vsnap", src)
    assert (up.parts, up.sha256) == (5, expected)
    head = client.head_object(bucket, "big.vsnap")
    assert head.size == 64 * MiB + 12345 and head.metadata["sha256"] == expected
    out = tmp_path / "big.out"
    down = client.get_file(bucket, "big.vsnap", out, expected_sha256=expected)
    assert down.size == 64 * MiB + 12345
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    # No multipart leftovers: listed neither as objects nor as unfinished uploads.
    assert [o.key for o in client.list_objects(bucket)] == ["big.vsnap"]
    assert client.list_uploads(bucket) == []


def test_listing_pages_through_a_prefix(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    for i in range(5):
        client.put_bytes(bucket, f"velocity/alpha/b{i}.vsnap", b"x" * i)
    client.put_bytes(bucket, "velocity/beta/b0.vsnap", b"y")
    listed = client.list_objects(bucket, "velocity/alpha/", page_size=2)
    assert [o.key for o in listed] == [f"velocity/alpha/b{i}.vsnap" for i in range(5)]
    assert [o.size for o in listed] == list(range(5))
    assert all(o.last_modified for o in listed)


def test_delete_removes_and_tolerates_missing(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    client.put_bytes(bucket, "k", b"v")
    client.delete_object(bucket, "k")
    assert client.list_objects(bucket) == []
    assert not client.object_exists(bucket, "k")
    client.delete_object(bucket, "k")  # S3 semantics: deleting nothing succeeds


def test_wrong_secret_is_signature_does_not_match(s3: S3Server, bucket: str) -> None:
    client = s3.client(Credentials(s3.credentials.access_key_id, "not-the-secret"))
    with pytest.raises(AccessDeniedError) as info:
        client.put_bytes(bucket, "k", b"v")
    assert info.value.code == "SignatureDoesNotMatch"
    assert "not-the-secret" not in repr(client)
    assert info.value.status == 403 and info.value.permanent
    assert "not-the-secret" not in str(info.value)


def test_unknown_access_key_is_refused(s3: S3Server, bucket: str) -> None:
    client = s3.client(Credentials("NOSUCHKEY", "whatever"))
    with pytest.raises(AccessDeniedError) as info:
        client.list_objects(bucket)
    assert info.value.code in CREDENTIAL_CODES
    assert info.value.permanent


def test_missing_bucket(s3: S3Server, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"data")
    with pytest.raises(NoSuchBucketError) as info:
        s3.client().put_file("no-such-bucket", "k", src)
    assert info.value.code == "NoSuchBucket"
    assert "no-such-bucket" in str(info.value)


def test_missing_key_leaves_no_file(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(NoSuchKeyError):
        s3.client().get_file(bucket, "absent", out)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_checksum_mismatch_leaves_no_file(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    client = s3.client()
    client.put_bytes(bucket, "k", b"payload")
    out = tmp_path / "out"
    with pytest.raises(ChecksumMismatchError):
        client.get_file(bucket, "k", out, expected_sha256="sha256:" + "0" * 64)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_unreachable_endpoint_is_a_connection_error(tmp_path: Path) -> None:
    client = S3Client(f"http://127.0.0.1:{free_port()}", credentials=Credentials("a", "b"), timeout=2)
    with pytest.raises(S3ConnectionError, match=r"127\.0\.0\.1"):
        client.list_objects("bkt")


def test_virtual_host_style_through_a_proxy(tmp_path: Path) -> None:
    """BUCKET.s3.test:PORT resolves nowhere, so the request goes through HTTP_PROXY (the
    server itself, which takes absolute-form targets): the server sees Host
    vhost.s3.test and serves bucket `vhost` - as a pod behind a corporate proxy would."""
    with S3Server(tmp_path, virtual_domain="s3.test") as server:
        server.client().create_bucket("vhost")
        server.client().put_bytes("vhost", "dir/key", b"virtual")
        environ = {"HTTP_PROXY": f"http://127.0.0.1:{server.port}", "NO_PROXY": "", "no_proxy": "",
                   s3env.ENDPOINT: f"http://s3.test:{server.port}", s3env.PATH_STYLE: "false"}
        done = _cli(server, "get", "s3://vhost/dir/key", str(tmp_path / "out"), extra=environ)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out").read_bytes() == b"virtual"
        assert _cli(server, "mb", "second", extra=environ).returncode == 0
        # The bucket really was created by name from the Host header: path-style sees it.
        server.client().put_bytes("second", "k", b"v")


def _cli(s3: S3Server, *args: str, secret: str | None = None,
         extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ |= {s3env.ENDPOINT: s3.endpoint, s3env.REGION: s3.region, s3env.EC2_METADATA_DISABLED: "true",
                s3env.ACCESS_KEY_ID: s3.credentials.access_key_id,
                s3env.SECRET_ACCESS_KEY: secret or s3.credentials.secret_access_key, **(extra or {})}
    return subprocess.run([sys.executable, "-m", "velocity_operator.s3", *args], env=environ,
                          capture_output=True, text=True, check=False, timeout=60)


def test_command_line_get_rm_and_exit_codes(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    s3.client().put_bytes(bucket, "p/k", b"cli")
    digest = hashlib.sha256(b"cli").hexdigest()
    out = tmp_path / "k"
    done = _cli(s3, "get", f"s3://{bucket}/p/k", str(out), "--sha256", digest)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == b"cli"
    listed = _cli(s3, "ls", f"s3://{bucket}/p/")
    assert f"s3://{bucket}/p/k" in listed.stdout
    denied = _cli(s3, "rm", f"s3://{bucket}/p/k", secret="wrong")
    assert denied.returncode == 3 and "SignatureDoesNotMatch" in denied.stderr
    assert _cli(s3, "rm", f"s3://{bucket}/p/k").returncode == 0
    assert s3.client().list_objects(bucket, "p/") == []
    assert _cli(s3, "mb", "second").returncode == 0
    assert _cli(s3, "get", f"s3://{bucket}/p/k", str(out)).returncode == 3  # NoSuchKey: permanent


def test_https_with_a_custom_ca(tmp_path: Path) -> None:
    """The server's certificate comes from a test CA: a path (ca_file), or the PEM text
    itself as destination.caSecret delivers it (VDB_S3_CA_BUNDLE), both verify it; the
    system CAs alone do not."""
    with S3Server(tmp_path, tls=True) as server:
        client = server.client()  # ca_file
        client.create_bucket("secure")
        client.put_bytes("secure", "k", b"over tls")
        out = tmp_path / "out"
        client.get_file("secure", "k", out)
        assert out.read_bytes() == b"over tls"
        pem = server.ca_file.read_text()
        with S3Client(server.endpoint, credentials=server.credentials, ca_pem=pem) as from_text:
            assert [o.key for o in from_text.list_objects("secure")] == ["k"]
        done = _cli(server, "get", "s3://secure/k", str(tmp_path / "cli-out"), extra={s3env.CA_BUNDLE: pem})
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "cli-out").read_bytes() == b"over tls"
        # Without the CA the certificate does not verify.
        stranger = S3Client(server.endpoint, credentials=server.credentials, timeout=5)
        with pytest.raises(S3ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            stranger.list_objects("secure")
        refused = _cli(server, "ls", "s3://secure/")
        assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        # Another CA's certificate is no better than none.
        other = tlsutil.issue_ca("another-ca", now=dt.datetime.now(dt.UTC))
        wrong = _cli(server, "ls", "s3://secure/", extra={s3env.CA_BUNDLE: other.cert_pem.decode()})
        assert wrong.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in wrong.stderr


def test_command_line_lists_and_aborts_unfinished_uploads(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    started = client._client.create_multipart_upload(Bucket=bucket, Key="velocity/alpha/b1.vsnap")
    client._client.create_multipart_upload(Bucket=bucket, Key="velocity/beta/b1.vsnap")
    listed = _cli(s3, "uploads", f"s3://{bucket}/velocity/alpha/")
    assert listed.returncode == 0, listed.stderr
    assert started["UploadId"] in listed.stdout and "beta" not in listed.stdout
    # Too young to be stale: kept.
    kept = _cli(s3, "abort-uploads", f"s3://{bucket}/velocity/alpha/", "--older-than", "3600")
    assert kept.returncode == 0 and "aborted 0 multipart upload(s)" in kept.stdout
    done = _cli(s3, "abort-uploads", f"s3://{bucket}/velocity/alpha/", "--older-than", "0")
    assert done.returncode == 0, done.stderr
    assert "aborted 1 multipart upload(s)" in done.stdout
    assert [u.key for u in client.list_uploads(bucket)] == ["velocity/beta/b1.vsnap"]
