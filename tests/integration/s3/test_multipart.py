"""Multipart uploads against a real S3 server: parts in parallel, memory that does not
grow with the file, and the two ways an upload is interrupted - SIGTERM (the Job deleted
or past its deadline: the runner aborts its own upload) and SIGKILL (OOM, node loss:
nothing runs, and the next backup of the cluster aborts what was left)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.s3 import env as s3env
from velocity_operator.s3.client import S3Client, Upload

from tests.support.s3_server import S3Server

MiB = 1 << 20


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """192 MiB of random bytes: 12 parts of 16 MiB, long enough to interrupt."""
    path = tmp_path_factory.mktemp("payload") / "snapshot"
    with path.open("wb") as fh:
        for _ in range(192):
            fh.write(os.urandom(MiB))
    return path


def _job(tmp_path: Path, s3: S3Server, payload: Path, *extra: str) -> subprocess.Popen[str]:
    """The backup Job's runner uploading PAYLOAD (velocityctl played by a script)."""
    cli = tmp_path / "velocityctl"
    cli.write_text(f'#!/bin/sh\ntest "$1" = snapshot && cp "{payload}" "$2"\n')
    cli.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ |= {s3env.ENDPOINT: s3.endpoint, s3env.EC2_METADATA_DISABLED: "true",
                s3env.ACCESS_KEY_ID: s3.credentials.access_key_id,
                s3env.SECRET_ACCESS_KEY: s3.credentials.secret_access_key}
    return subprocess.Popen([sys.executable, "-m", "velocity_operator.snapshot_job", "--file",
                             str(tmp_path / "scratch" / "b.vsnap"), "--velocityctl", str(cli), "--termination-log",
                             str(tmp_path / "termination-log"), *extra], env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _uploading(client: S3Client, bucket: str, proc: subprocess.Popen[str]) -> Upload:
    """The upload PROC has started, once at least one part has arrived at the server."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the upload ended before it could be interrupted: {proc.communicate()}"
        for upload in client.list_uploads(bucket):
            parts = client._client.list_parts(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)
            if parts.get("Parts"):
                return upload
        time.sleep(0.02)
    raise AssertionError("no multipart upload with a part appeared")


def test_parts_go_up_in_parallel(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(48 * MiB))
    client = s3.client(part_size=6 * MiB, concurrency=4)
    lock = threading.Lock()
    in_flight, peak = 0, 0

    def started(**_: Any) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)

    def finished(**_: Any) -> None:
        nonlocal in_flight
        with lock:
            in_flight -= 1

    client._client.meta.events.register("before-call.s3.UploadPart", started)
    client._client.meta.events.register("after-call.s3.UploadPart", finished)
    done = client.put_file(bucket, "parallel", src)
    assert done.parts == 8
    assert 2 <= peak <= 4, peak
    assert client.head_object(bucket, "parallel").size == 48 * MiB


# VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) high-water mark
# across exec; VmHWM belongs to the new address space.
_MEASURE = textwrap.dedent("""
    import json, re, sys
    from pathlib import Path
    from velocity_operator.s3.client import Credentials, S3Client

    def peak_kib():
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))

    endpoint, key_id, secret, bucket, path = sys.argv[1:6]
    with S3Client(endpoint, credentials=Credentials(key_id, secret), part_size=16 << 20, concurrency=4) as client:
        client.put_bytes(bucket, "warm-up", b"x")
        before = peak_kib()
        done = client.put_file(bucket, "measured", Path(path))
        after = peak_kib()
    print(json.dumps({"before_kib": before, "peak_kib": after, "parts": done.parts, "seconds": done.seconds}))
""")


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(s3: S3Server, bucket: str, payload: Path, tmp_path: Path) -> None:
    """Peak RSS of a process uploading 192 MiB in 16 MiB parts, 4 at a time, against its
    RSS once the SDK is loaded and a first request made. s3transfer streams each part
    from the file, so the difference stays far below even one part per thread."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, s3.endpoint, s3.credentials.access_key_id,
                           s3.credentials.secret_access_key, bucket, str(payload)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    grown_mib = (result["peak_kib"] - result["before_kib"]) / 1024
    print(f"\n192 MiB upload, 12 parts x 16 MiB, concurrency 4: peak RSS {result['peak_kib'] / 1024:.0f} MiB "
          f"({result['before_kib'] / 1024:.0f} MiB before the upload, +{grown_mib:.0f} MiB), "
          f"{result['seconds']:.1f} s")
    assert result["parts"] == 12
    assert grown_mib < 32, result
    assert result["peak_kib"] < 128 * 1024, result  # the backup Job's limit is 256Mi


@pytest.mark.slow
def test_sigterm_aborts_the_upload(s3: S3Server, bucket: str, payload: Path, tmp_path: Path) -> None:
    proc = _job(tmp_path, s3, payload, "--s3-url", f"s3://{bucket}/velocity/alpha/b1.vsnap")
    client = s3.client()
    _uploading(client, bucket, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    report = json.loads((tmp_path / "termination-log").read_text())
    assert "interrupted by SIGTERM" in report["error"]
    # Aborted before the process ended: no parts left behind, and no object.
    assert client.list_uploads(bucket) == []
    assert client.list_objects(bucket) == []


@pytest.mark.slow
def test_sigkill_leaves_an_upload_that_the_next_backup_aborts(s3: S3Server, bucket: str, payload: Path,
                                                                tmp_path: Path) -> None:
    client = s3.client()
    url = f"s3://{bucket}/velocity/alpha/b1.vsnap"
    first = _job(tmp_path / "first", s3, payload, "--s3-url", url) if (tmp_path / "first").mkdir() is None else None
    assert first is not None
    left = _uploading(client, bucket, first)
    first.kill()
    first.communicate(timeout=30)
    assert [u.upload_id for u in client.list_uploads(bucket)] == [left.upload_id]  # nothing could clean up
    # Another cluster's leftovers under the same bucket are not this backup's business.
    other = client._client.create_multipart_upload(Bucket=bucket, Key="velocity/beta/b1.vsnap")["UploadId"]

    # The next backup of the cluster, with the default bound (2 h): the upload is too
    # young to be a dead Job's, so it stays; with the bound at 0 it goes.
    (tmp_path / "second").mkdir()
    second = _job(tmp_path / "second", s3, payload, "--s3-url", f"s3://{bucket}/velocity/alpha/b2.vsnap")
    assert second.wait(timeout=300) == 0, second.communicate()
    report = json.loads((tmp_path / "second" / "termination-log").read_text())
    assert report["abortedUploads"] == 0
    assert {u.upload_id for u in client.list_uploads(bucket)} == {left.upload_id, other}

    (tmp_path / "third").mkdir()
    third = _job(tmp_path / "third", s3, payload, "--s3-url", f"s3://{bucket}/velocity/alpha/b3.vsnap",
                 "--abort-uploads-older-than", "0")
    _, stderr = third.communicate(timeout=300)
    assert third.returncode == 0, stderr
    report = json.loads((tmp_path / "third" / "termination-log").read_text())
    assert report["abortedUploads"] == 1
    assert f"aborted stale multipart upload s3://{bucket}/velocity/alpha/b1.vsnap" in stderr
    assert [u.upload_id for u in client.list_uploads(bucket)] == [other]
    assert sorted(o.key for o in client.list_objects(bucket)) == ["velocity/alpha/b2.vsnap", "velocity/alpha/b3.vsnap"]

