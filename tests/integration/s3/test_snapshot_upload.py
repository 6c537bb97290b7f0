"""The backup Job's runner uploading to a real S3 server (velocityctl played by a script)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from velocity_operator.s3 import env as s3env

from tests.support.engine_proc import free_port
from tests.support.s3_server import S3Server

SNAPSHOT = os.urandom(300_000)


def _run(tmp_path: Path, url: str, *, endpoint: str, key_id: str, secret: str) -> tuple[int, dict[str, object], Path]:
    cli = tmp_path / "velocityctl"
    (tmp_path / "payload").write_bytes(SNAPSHOT)
    cli.write_text(f'#!/bin/sh\ntest "$1" = snapshot && cp "{tmp_path / "payload"}" "$2"\n')
    cli.chmod(0o755)
    scratch = tmp_path / "scratch" / "b1.vsnap"
    log = tmp_path / "termination-log"
    environ = {**os.environ, s3env.ENDPOINT: endpoint, s3env.ACCESS_KEY_ID: key_id, s3env.SECRET_ACCESS_KEY: secret}
    done = subprocess.run([sys.executable, "-m", "velocity_operator.snapshot_job", "--file", str(scratch),
                           "--velocityctl", str(cli), "--termination-log", str(log), "--s3-url", url],
                          env=environ, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, json.loads(log.read_text()), scratch


def test_upload_reports_location_and_checksum(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/velocity/alpha/b1.vsnap"
    code, report, scratch = _run(tmp_path, url, endpoint=s3.endpoint, key_id=s3.credentials.access_key_id,
                                 secret=s3.credentials.secret_access_key)
    assert code == 0, report
    digest = hashlib.sha256(SNAPSHOT).hexdigest()
    assert report["location"] == url
    assert report["sizeBytes"] == len(SNAPSHOT)
    assert report["checksum"] == f"sha256:{digest}"
    assert not scratch.exists()  # scratch space freed after the upload
    head = s3.client().head_object(bucket, "velocity/alpha/b1.vsnap")
    assert head.size == len(SNAPSHOT) and head.metadata["sha256"] == digest


def test_wrong_credentials_fail_permanently_with_a_reason(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    code, report, scratch = _run(tmp_path, f"s3://{bucket}/k.vsnap", endpoint=s3.endpoint,
                                 key_id=s3.credentials.access_key_id, secret="wrong-secret")
    assert code == 3
    assert report["reason"] == "S3AccessDenied"
    assert "SignatureDoesNotMatch" in str(report["error"])
    assert "wrong-secret" not in str(report["error"])
    assert not scratch.exists()
    assert s3.client().list_objects(bucket) == []


def test_missing_bucket_fails_permanently(s3: S3Server, tmp_path: Path) -> None:
    code, report, _ = _run(tmp_path, "s3://absent-bucket/k.vsnap", endpoint=s3.endpoint,
                           key_id=s3.credentials.access_key_id, secret=s3.credentials.secret_access_key)
    assert (code, report["reason"]) == (3, "S3BucketNotFound")


def test_unreachable_endpoint_is_retryable(tmp_path: Path) -> None:
    code, report, _ = _run(tmp_path, "s3://b/k.vsnap", endpoint=f"http://127.0.0.1:{free_port()}",
                           key_id="a", secret="b")
    assert (code, report["reason"]) == (1, "S3Unreachable")
