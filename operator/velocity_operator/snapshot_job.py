"""Runs inside a backup Job: take a snapshot with velocityctl, checksum it, report as JSON.

`python -m velocity_operator.snapshot_job --file /backup/velocity/CLUSTER/BACKUP.vsnap`
`python -m velocity_operator.snapshot_job --file /scratch/BACKUP.vsnap --s3-url s3://B/K`

With --s3-url the runner first aborts the multipart uploads left under the key's
directory (PREFIX/CLUSTER/) by backup Jobs killed mid-upload, those started more than
--abort-uploads-older-than seconds ago (default two hours, twice the Job's deadline, so a
backup still running is never touched); then it uploads the snapshot (S3 settings from
the environment, see velocity_operator.s3.env) with its SHA-256 as object metadata and
removes it from the scratch volume. SIGTERM (the Job deleted or past its deadline)
cancels the upload and aborts it before the process exits. The report (size, sha256,
duration, location) goes to /dev/termination-log, where the operator reads it from the
pod status; a failure reports `error` and, for S3, a `reason` the operator puts in the
backup's status. Exit status 3 marks errors a retry cannot fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from .s3 import AccessDeniedError, NoSuchBucketError, S3ConnectionError, S3Error, S3Url
from .s3.env import MissingSettingError

if TYPE_CHECKING:  # the SDK is imported only for S3 backups (a claim's Job never loads it)
    from .s3.client import S3Client

__all__ = ["EXIT_PERMANENT", "STALE_UPLOAD_SECONDS", "Terminated", "main", "report", "s3_failure_reason",
           "sha256_file"]

TERMINATION_LOG = Path("/dev/termination-log")
EXIT_PERMANENT = 3
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell would report
# Multipart uploads under the cluster's prefix older than this are left by killed Jobs:
# twice the backup Job's activeDeadlineSeconds (builders/backup_job.py), so no live
# backup of the same cluster can own one.
STALE_UPLOAD_SECONDS = 7200

# Reasons reported for S3 failures; the operator copies them into status.reason
# (velocity_operator.conditions.Reason holds the same strings).
S3_ACCESS_DENIED = "S3AccessDenied"
S3_BUCKET_NOT_FOUND = "S3BucketNotFound"
S3_UNREACHABLE = "S3Unreachable"
S3_ERROR = "S3Error"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def report(path: Path, duration: float) -> dict[str, object]:
    return {"sizeBytes": path.stat().st_size, "checksum": sha256_file(path),
            "durationSeconds": round(duration, 3)}


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM: unwinds through the upload, which aborts
    itself (a BaseException, so no `except Exception` on the way swallows it)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    except Terminated as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_TERMINATED


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description="Take one Velocity backup.")
    parser.add_argument("--file", type=Path, required=True, help="where the snapshot goes")
    parser.add_argument("--insecure", action="store_true", help="plaintext cluster without auth")
    parser.add_argument("--velocityctl", default="velocityctl", help="the CLI to run")
    parser.add_argument("--termination-log", type=Path, default=TERMINATION_LOG)
    parser.add_argument("--s3-url", type=S3Url.parse, help="upload the snapshot to s3://BUCKET/KEY, then delete it")
    parser.add_argument("--abort-uploads-older-than", type=float, default=STALE_UPLOAD_SECONDS, metavar="SECONDS",
                        help="with --s3-url: first abort multipart uploads under the key's directory started "
                             f"at least this long ago (default {STALE_UPLOAD_SECONDS}; negative: skip)")
    args = parser.parse_args(argv)

    args.file.parent.mkdir(parents=True, exist_ok=True)
    partial = args.file.with_name(args.file.name + ".partial")
    cmd = [args.velocityctl, *(["--insecure"] if args.insecure else []), "snapshot", str(partial)]
    start = time.monotonic()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    duration = time.monotonic() - start
    if done.returncode != 0 or not partial.is_file():
        message = (done.stderr.strip() or done.stdout.strip() or "no output")[-2000:]
        _write(args.termination_log, {"error": f"velocityctl snapshot exited {done.returncode}: {message}"})
        print(message, file=sys.stderr)
        return 1
    # Rename only once complete, so a file named BACKUP.vsnap is always a whole snapshot.
    os.replace(partial, args.file)
    if args.s3_url is not None:
        return _upload(args.file, args.s3_url, start, args.termination_log, args.abort_uploads_older_than)
    result = report(args.file, duration)
    args.file.with_name(args.file.name + ".sha256").write_text(f"{result['checksum']}  {args.file.name}\n")
    _write(args.termination_log, result)
    print(json.dumps(result))
    return 0


def s3_failure_reason(exc: Exception) -> str:
    if isinstance(exc, (AccessDeniedError, MissingSettingError)):
        return S3_ACCESS_DENIED
    if isinstance(exc, NoSuchBucketError):
        return S3_BUCKET_NOT_FOUND
    if isinstance(exc, S3ConnectionError):
        return S3_UNREACHABLE
    return S3_ERROR


def _abort_stale_uploads(client: S3Client, url: S3Url, older_than: float) -> dict[str, object]:
    """Abort what killed uploads left under the key's directory; report, never fail:
    a missing s3:ListBucketMultipartUploads permission must not cost the backup."""
    directory = url.key.rpartition("/")[0]
    if older_than < 0 or not directory:
        return {}
    try:
        aborted = client.abort_stale_uploads(url.bucket, directory + "/", older_than=dt.timedelta(seconds=older_than))
    except (S3Error, S3ConnectionError) as exc:
        print(f"cannot clean up stale multipart uploads: {exc}", file=sys.stderr)
        return {"staleUploadsError": str(exc)[:500]}
    for upload in aborted:
        print(f"aborted stale multipart upload s3://{url.bucket}/{upload.key} started {upload.initiated.isoformat()}",
              file=sys.stderr)
    return {"abortedUploads": len(aborted)}


def _upload(file: Path, url: S3Url, start: float, termination_log: Path, stale_after: float) -> int:
    """Clean up stale uploads, upload FILE to URL (its SHA-256 as metadata), report,
    and free the scratch space."""
    from .s3.client import client_from_env

    try:
        with client_from_env() as client:
            cleanup = _abort_stale_uploads(client, url, stale_after)
            upload_start = time.monotonic()
            done = client.put_file(url.bucket, url.key, file, metadata={"source": "velocity-backup"})
    except (S3Error, S3ConnectionError, MissingSettingError) as exc:
        file.unlink(missing_ok=True)
        permanent = not isinstance(exc, S3Error | S3ConnectionError) or (isinstance(exc, S3Error) and exc.permanent)
        _write(termination_log, {"error": f"upload to {url} failed: {exc}"[:2000], "reason": s3_failure_reason(exc)})
        print(f"upload to {url} failed: {exc}", file=sys.stderr)
        return EXIT_PERMANENT if permanent else 1
    except Terminated:
        _write(termination_log, {"error": f"upload to {url} interrupted by SIGTERM (multipart upload aborted)",
                                 "reason": S3_ERROR})
        raise
    file.unlink(missing_ok=True)
    result: dict[str, object] = {
        "sizeBytes": done.size, "checksum": "sha256:" + done.sha256,
        "durationSeconds": round(time.monotonic() - start, 3),
        "uploadSeconds": round(time.monotonic() - upload_start, 3), "location": str(url), "parts": done.parts,
        **cleanup,
    }
    _write(termination_log, result)
    print(json.dumps(result))
    return 0


def _write(path: Path, payload: dict[str, object]) -> None:
    try:
        path.write_text(json.dumps(payload))
    except OSError as exc:  # outside Kubernetes there is no termination log
        print(f"cannot write {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
