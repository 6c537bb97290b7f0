"""Backup and restore with real engine processes: the backup Job's runner takes a snapshot
of a running engine, and a new pod started with the operator's restore wrapper serves
the same data, and keeps its own writes across a restart."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.statefulset import RestoreSource

from .podsim import BIN, ClusterMaterial, SimulatedPod


def test_snapshot_job_then_restore(tmp_path: Path, engines: list[SimulatedPod]) -> None:
    material = ClusterMaterial()
    source = SimulatedPod(tmp_path / "alpha-0", material, VelocityClusterSpec())
    engines.append(source)
    source.start()
    for i in range(50):
        assert source.ctl("set", f"key:{i}", f"value-{i}").returncode == 0

    # The backup Job's container: python -m velocity_operator.snapshot_job --file ...
    claim = tmp_path / "alpha-backups"
    target = claim / "velocity" / "alpha" / "b1.vsnap"
    log = tmp_path / "termination-log"
    # The Job's own environment: the admin token (snapshots are admin operations, issue 11).
    env = {**os.environ, **source.backup_env(), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("VDB_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "velocity_operator.snapshot_job", "--file", str(target),
                           "--termination-log", str(log)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(log.read_text())
    assert report["sizeBytes"] == target.stat().st_size > 0
    assert report["checksum"] == "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest()

    # A new cluster with spec.bootstrap.fromBackup: pods start through the restore wrapper.
    restored = SimulatedPod(tmp_path / "beta-0", material, VelocityClusterSpec(),
                            restore=RestoreSource("alpha-backups", "velocity/alpha/b1.vsnap"), restore_root=claim)
    engines.append(restored)
    restored.start()
    for i in (0, 17, 49):
        got = restored.ctl("get", f"key:{i}")
        assert got.returncode == 0 and got.stdout.strip() == f"value-{i}", got.stderr
    assert restored.ctl("set", "after-restore", "kept").returncode == 0

    # A restart must keep what was written since the restore.
    restored.stop()
    restored.start()
    got = restored.ctl("get", "after-restore")
    assert got.returncode == 0 and got.stdout.strip() == "kept", got.stderr
    assert restored.ctl("get", "key:3").stdout.strip() == "value-3"
