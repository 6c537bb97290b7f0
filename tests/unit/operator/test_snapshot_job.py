"""The backup Job's runner: rename only when complete, checksum, JSON report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from velocity_operator import snapshot_job


def _fake_cli(tmp_path: Path, body: str) -> Path:
    cli = tmp_path / "velocityctl"
    cli.write_text("#!/bin/sh\n" + body)
    cli.chmod(0o755)
    return cli


def test_success_reports_size_and_checksum(tmp_path: Path) -> None:
    cli = _fake_cli(tmp_path, 'test "$1" = snapshot && printf "snapshot-bytes" > "$2"\n')
    out = tmp_path / "backup" / "velocity" / "alpha" / "b1.vsnap"
    log = tmp_path / "termination-log"
    assert snapshot_job.main(["--file", str(out), "--velocityctl", str(cli), "--termination-log", str(log)]) == 0
    report = json.loads(log.read_text())
    assert report["sizeBytes"] == len(b"snapshot-bytes")
    assert report["checksum"] == "sha256:" + hashlib.sha256(b"snapshot-bytes").hexdigest()
    assert out.read_bytes() == b"snapshot-bytes"
    assert (out.parent / "b1.vsnap.sha256").read_text().startswith(report["checksum"])
    assert not (out.parent / "b1.vsnap.partial").exists()


def test_failure_leaves_no_backup_file(tmp_path: Path) -> None:
    cli = _fake_cli(tmp_path, 'printf "half" > "$2"; echo "connection refused" >&2; exit 2\n')
    out = tmp_path / "b1.vsnap"
    log = tmp_path / "termination-log"
    assert snapshot_job.main(["--file", str(out), "--velocityctl", str(cli), "--termination-log", str(log)]) == 1
    assert not out.exists()
    assert "connection refused" in json.loads(log.read_text())["error"]


def test_insecure_flag_is_passed(tmp_path: Path) -> None:
    cli = _fake_cli(tmp_path, 'test "$1" = --insecure && test "$2" = snapshot && printf x > "$3"\n')
    log = tmp_path / "log"
    args = ["--file", str(tmp_path / "f.vsnap"), "--velocityctl", str(cli), "--termination-log", str(log), "--insecure"]
    assert snapshot_job.main(args) == 0
