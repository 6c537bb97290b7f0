"""Backup to S3 and restore from it with real processes: a real engine, the backup Job's
runner uploading to a real S3 server (versitygw), the StatefulSet's download init
container (its own shell command, paths relocated) fetching and verifying the object,
and a new engine started by the operator's restore wrapper serving the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.api.destination import S3Credentials, S3Destination
from velocity_operator.builders import config, statefulset
from velocity_operator.builders.restore_download import S3RestoreSource
from velocity_operator.s3 import env as s3env

from tests.support.s3_server import S3Server

from .podsim import BIN, ClusterMaterial, SimulatedPod


def _secret_env(s3: S3Server) -> dict[str, str]:
    """What the kubelet resolves the secretKeyRef variables to."""
    return {s3env.ACCESS_KEY_ID: s3.credentials.access_key_id,
            s3env.SECRET_ACCESS_KEY: s3.credentials.secret_access_key}


def _run_init_container(source: S3RestoreSource, data_root: Path, restore_root: Path,
                        s3: S3Server) -> subprocess.CompletedProcess[str]:
    """The restore-download init container of the StatefulSet, run on the host."""
    sts = statefulset.statefulset(ClusterMaterial().owner, VelocityClusterSpec(), config_hash="x", restore=source)
    [init] = [c for c in sts["spec"]["template"]["spec"]["initContainers"] if c["name"] == "restore-download"]

    def relocate(text: str) -> str:
        return text.replace(statefulset.RESTORE_DIR, str(restore_root)).replace(config.DATA_DIR, str(data_root))

    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **_secret_env(s3)}
    env |= {e["name"]: e["value"] for e in init["env"] if "value" in e}
    return subprocess.run([relocate(part) for part in [*init["command"], *init["args"]]], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_backup_to_s3_then_restore(tmp_path: Path, engines: list[SimulatedPod]) -> None:
    with S3Server(tmp_path / "s3") as s3:
        s3.client().create_bucket("bkp")
        material = ClusterMaterial()
        source = SimulatedPod(tmp_path / "alpha-0", material, VelocityClusterSpec())
        engines.append(source)
        source.start()
        for i in range(50):
            assert source.ctl("set", f"key:{i}", f"value-{i}").returncode == 0

        # The backup Job's container for destination.s3 (env as builders/s3_env.py sets it).
        url = "s3://bkp/velocity/alpha/b1.vsnap"
        log = tmp_path / "termination-log"
        # The Job's CA and admin token (snapshots are admin operations, issue 11).
        env = {**os.environ, **source.backup_env(), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
               s3env.ENDPOINT: s3.endpoint, s3env.REGION: s3.region, **_secret_env(s3)}
        done = subprocess.run([sys.executable, "-m", "velocity_operator.snapshot_job", "--file",
                               str(tmp_path / "scratch" / "b1.vsnap"), "--s3-url", url, "--termination-log", str(log)],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(log.read_text())
        assert report["location"] == url and report["sizeBytes"] > 0

        restore = S3RestoreSource(
            destination=S3Destination(endpoint=s3.endpoint, bucket="bkp", region=s3.region,
                                      credentials_secret=S3Credentials(name="creds")),
            key="velocity/alpha/b1.vsnap", sha256=str(report["checksum"]).removeprefix("sha256:"))
        restored_root, downloads = tmp_path / "beta-0", tmp_path / "beta-0-restore"
        downloads.mkdir()
        (restored_root / "data").mkdir(parents=True)
        fetched = _run_init_container(restore, restored_root / "data", downloads, s3)
        assert fetched.returncode == 0, fetched.stderr
        assert "verified" in fetched.stdout
        assert (downloads / "backup.vsnap").stat().st_size == report["sizeBytes"]

        restored = SimulatedPod(restored_root, material, VelocityClusterSpec(), restore=restore,  # type: ignore[arg-type]
                                restore_root=downloads)
        engines.append(restored)
        restored.start()
        for i in (0, 17, 49):
            got = restored.ctl("get", f"key:{i}")
            assert got.returncode == 0 and got.stdout.strip() == f"value-{i}", got.stderr

        # A restarted pod keeps its data: the init container does not download again.
        (downloads / "backup.vsnap").unlink()
        again = _run_init_container(restore, restored_root / "data", downloads, s3)
        assert again.returncode == 0 and "not empty" in again.stdout
        assert not (downloads / "backup.vsnap").exists()


def test_download_with_a_wrong_checksum_fails_and_leaves_nothing(tmp_path: Path) -> None:
    with S3Server(tmp_path / "s3") as s3:
        client = s3.client()
        client.create_bucket("bkp")
        client.put_bytes("bkp", "a/b1.vsnap", b"not the recorded snapshot")
        restore = S3RestoreSource(
            destination=S3Destination(endpoint=s3.endpoint, bucket="bkp", credentials_secret=S3Credentials(name="c")),
            key="a/b1.vsnap", sha256="00" * 32)
        (tmp_path / "data").mkdir()
        (tmp_path / "restore").mkdir()
        done = _run_init_container(restore, tmp_path / "data", tmp_path / "restore", s3)
        assert done.returncode == 3, done.stderr
        assert "does not match" in done.stderr
        assert list((tmp_path / "restore").iterdir()) == []
