"""Where the tier finds its Kubernetes binaries.

They are built by `make k8s-bins` (hack/k8s-build.sh) into a cache outside the repository,
one directory per version; `hack/k8s-build.sh --check` prints the directory of the current
set or says what is missing. `VELOCITY_K8S_BIN_DIR` points somewhere else instead (a
directory holding etcd, kube-apiserver, kube-controller-manager and kubectl).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import KubeTierError

__all__ = ["REPO_ROOT", "REQUIRED", "find_bin_dir"]

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def find_bin_dir() -> Path:
    """Return the directory of the cached binaries, or raise KubeTierError saying why not."""
    override = os.environ.get("VELOCITY_K8S_BIN_DIR")
    if override:
        bin_dir = Path(override)
    else:
        done = subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "k8s-build.sh"), "--check"],
            capture_output=True, text=True, check=False, timeout=60,
        )
        if done.returncode != 0:
            raise KubeTierError(done.stderr.strip() or "hack/k8s-build.sh --check failed")
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    missing = [name for name in REQUIRED if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise KubeTierError(
            f"Kubernetes binaries missing from {bin_dir}: {', '.join(missing)} (run `make k8s-bins`)"
        )
    return bin_dir
