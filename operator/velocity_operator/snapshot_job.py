"""Runs inside a backup Job: take a snapshot with velocityctl, checksum it, report as JSON.

`python -m velocity_operator.snapshot_job --file /backup/velocity/CLUSTER/BACKUP.vsnap`
`python -m velocity_operator.snapshot_job --file /scratch/BACKUP.vsnap --s3-url s3://B/K`

With --s3-url the snapshot is uploaded (S3 settings from the environment, see
velocity_operator.s3.env) with its SHA-256 as object metadata, then removed from the
scratch volume. The report (size, sha256, duration, location) goes to
/dev/termination-log, where the operator reads it from the pod status; a failure reports
`error` and, for S3, a `reason` the operator puts in the backup's status. Exit status 3
marks errors a retry cannot fix. Only the standard library is imported: the engine image
runs this without the operator's dependencies being needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .s3 import AccessDeniedError, NoSuchBucketError, S3ConnectionError, S3Error, S3Url
from .s3.env import MissingSettingError, client_from_env

__all__ = ["EXIT_PERMANENT", "main", "report", "s3_failure_reason", "sha256_file"]

TERMINATION_LOG = Path("/dev/termination-log")
EXIT_PERMANENT = 3

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Take one Velocity backup.")
    parser.add_argument("--file", type=Path, required=True, help="where the snapshot goes")
    parser.add_argument("--insecure", action="store_true", help="plaintext cluster without auth")
    parser.add_argument("--velocityctl", default="velocityctl", help="the CLI to run")
    parser.add_argument("--termination-log", type=Path, default=TERMINATION_LOG)
    parser.add_argument("--s3-url", type=S3Url.parse, help="upload the snapshot to s3://BUCKET/KEY, then delete it")
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
        return _upload(args.file, args.s3_url, start, args.termination_log)
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


def _upload(file: Path, url: S3Url, start: float, termination_log: Path) -> int:
    """Upload FILE to URL (its SHA-256 as metadata), report, and free the scratch space."""
    try:
        client = client_from_env(os.environ)
        upload_start = time.monotonic()
        done = client.put_file(url.bucket, url.key, file, metadata={"source": "velocity-backup"})
    except (S3Error, S3ConnectionError, MissingSettingError) as exc:
        file.unlink(missing_ok=True)
        permanent = not isinstance(exc, S3Error | S3ConnectionError) or (isinstance(exc, S3Error) and exc.permanent)
        _write(termination_log, {"error": f"upload to {url} failed: {exc}"[:2000], "reason": s3_failure_reason(exc)})
        print(f"upload to {url} failed: {exc}", file=sys.stderr)
        return EXIT_PERMANENT if permanent else 1
    file.unlink(missing_ok=True)
    result: dict[str, object] = {
        "sizeBytes": done.size, "checksum": "sha256:" + done.sha256,
        "durationSeconds": round(time.monotonic() - start, 3),
        "uploadSeconds": round(time.monotonic() - upload_start, 3), "location": str(url), "parts": done.parts,
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
