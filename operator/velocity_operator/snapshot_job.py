"""Runs inside a backup Job: take a snapshot with velocityctl, checksum it, report as JSON.

`python -m velocity_operator.snapshot_job --file /backup/velocity/CLUSTER/BACKUP.vsnap`

The report (size, sha256, duration) goes to /dev/termination-log, where the operator
reads it from the pod status. Only the standard library is imported: the engine image
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

__all__ = ["main", "report", "sha256_file"]

TERMINATION_LOG = Path("/dev/termination-log")


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
    result = report(args.file, duration)
    args.file.with_name(args.file.name + ".sha256").write_text(f"{result['checksum']}  {args.file.name}\n")
    _write(args.termination_log, result)
    print(json.dumps(result))
    return 0


def _write(path: Path, payload: dict[str, object]) -> None:
    try:
        path.write_text(json.dumps(payload))
    except OSError as exc:  # outside Kubernetes there is no termination log
        print(f"cannot write {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
