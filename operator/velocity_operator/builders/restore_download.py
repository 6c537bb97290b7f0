"""Restoring from S3: an init container downloads the backup and verifies its checksum.

The engine's `--restore-from` reads a local file, so a pod of a cluster bootstrapped from
an S3 backup first runs `python -m velocity_operator.s3 get` (engine image) into an
emptyDir mounted at RESTORE_DIR; the download is verified against the SHA-256 recorded in
VelocityBackup.status.checksum (or, when the status has none, the object's own `sha256`
metadata) and renamed into place only when it matches, so the engine never starts from a
partial or corrupted file. Like the engine's restore script, the download is skipped
when the data directory already holds data (a restarted pod keeps what it has written).

The init container gets the destination's S3 environment (builders/s3_env.py). Without a
credentials Secret it runs with the engine pods' identity, ServiceAccount CLUSTER-engine:
for IRSA, annotate that ServiceAccount with the role (docs/operator/backup-restore.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.destination import S3Destination
from .config import DATA_DIR, NOT_DATA
from .s3_env import destination_from_env, s3_env

__all__ = ["DOWNLOAD_CONTAINER", "RESTORE_FILE", "S3RestoreSource", "download_container", "s3_restore_of"]

DOWNLOAD_CONTAINER = "restore-download"
RESTORE_FILE = "backup.vsnap"  # inside the restore emptyDir

# The same test as statefulset._RESTORE_SCRIPT: only an empty data directory restores.
_NOT_DATA_ARGS = "".join(f" -e {name}" for name in NOT_DATA)
_DATA_IS_EMPTY = f'[ -z "$(ls -A {DATA_DIR} | grep -v -x{_NOT_DATA_ARGS})" ]'
_SCRIPT = (f'if {_DATA_IS_EMPTY}; then exec python -m velocity_operator.s3 get "$@"; fi; '
           'echo "data directory is not empty: no download"')


@dataclass(frozen=True)
class S3RestoreSource:
    """A backup object that new pods start from."""

    destination: S3Destination
    key: str
    sha256: str  # hex; "" to trust the object's sha256 metadata

    @property
    def url(self) -> str:
        return f"s3://{self.destination.bucket}/{self.key}"


def download_container(source: S3RestoreSource, *, image: str, pull_policy: str, restore_dir: str,
                       data_mount: dict[str, Any], security: dict[str, Any]) -> dict[str, Any]:
    """The init container; `data_mount` is the engine's data volume mount (read to decide
    whether to download), `restore_dir` the emptyDir the file goes to."""
    args = [source.url, f"{restore_dir}/{RESTORE_FILE}"]
    if source.sha256:
        args += ["--sha256", source.sha256]
    return {
        "name": DOWNLOAD_CONTAINER,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["/bin/sh", "-c", _SCRIPT, "restore-download"],
        "args": args,
        "env": s3_env(source.destination),
        "volumeMounts": [{**data_mount, "readOnly": True}, {"name": "restore", "mountPath": restore_dir}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": security,
    }


def s3_restore_of(pod_spec: dict[str, Any]) -> S3RestoreSource | None:
    """The S3 source an existing pod template downloads, read back from its init container
    (so a running cluster keeps its source even after the backup object is deleted)."""
    init = next((c for c in pod_spec.get("initContainers") or [] if c.get("name") == DOWNLOAD_CONTAINER), None)
    if init is None:
        return None
    args = list(init.get("args") or [])
    try:
        bucket, _, key = args[0].removeprefix("s3://").partition("/")
        sha256 = args[args.index("--sha256") + 1] if "--sha256" in args else ""
        destination = destination_from_env(list(init.get("env") or []), bucket)
    except (IndexError, KeyError, ValueError, TypeError):
        return None  # not ours, or edited by hand: resolve the source from the backup again
    return S3RestoreSource(destination=destination, key=key, sha256=sha256)
