"""velocity_operator.s3 against a real S3 server (versitygw over a temp directory)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from velocity_operator.s3 import (
    CREDENTIAL_CODES,
    AccessDeniedError,
    ChecksumMismatchError,
    Credentials,
    NoSuchBucketError,
    NoSuchKeyError,
    S3Client,
    S3ConnectionError,
)
from velocity_operator.s3 import env as s3env

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
    assert up.parts == 5
    assert client.head_object(bucket, "big.vsnap").size == 64 * MiB + 12345
    out = tmp_path / "big.out"
    down = client.get_file(bucket, "big.vsnap", out, expected_sha256=expected)
    assert down.size == 64 * MiB + 12345
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    # No multipart leftovers are listed as objects.
    assert [o.key for o in client.list_objects(bucket)] == ["big.vsnap"]


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
    client = S3Client(f"http://127.0.0.1:{free_port()}", Credentials("a", "b"), timeout=2)
    with pytest.raises(S3ConnectionError, match=r"127\.0\.0\.1"):
        client.list_objects("b")


def test_virtual_host_style(tmp_path: Path) -> None:
    with S3Server(tmp_path, virtual_domain="s3.test") as server:
        client = S3Client(f"http://s3.test:{server.port}", server.credentials, path_style=False,
                          connect_address=("127.0.0.1", server.port))
        server.client().create_bucket("vhost")
        client.put_bytes("vhost", "dir/key", b"virtual")
        assert [o.key for o in client.list_objects("vhost", "dir/")] == ["dir/key"]
        out = tmp_path / "out"
        client.get_file("vhost", "dir/key", out)
        assert out.read_bytes() == b"virtual"
        # The object really is in bucket "vhost": path-style sees it too.
        assert server.client().head_object("vhost", "dir/key").size == 7


def _cli(s3: S3Server, *args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, s3env.ENDPOINT: s3.endpoint, s3env.REGION: s3.region,
               s3env.ACCESS_KEY_ID: s3.credentials.access_key_id,
               s3env.SECRET_ACCESS_KEY: secret or s3.credentials.secret_access_key}
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


def test_https_with_the_servers_ca(tmp_path: Path) -> None:
    with S3Server(tmp_path, tls=True) as server:
        client = server.client()
        client.create_bucket("secure")
        client.put_bytes("secure", "k", b"over tls")
        out = tmp_path / "out"
        client.get_file("secure", "k", out)
        assert out.read_bytes() == b"over tls"
        # Without the CA the certificate does not verify: refused at once, not retried.
        stranger = S3Client(server.endpoint, server.credentials, timeout=5)
        with pytest.raises(S3ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            stranger.list_objects("secure")
