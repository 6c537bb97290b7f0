"""Restore from S3: the StatefulSet's download init container and its round trip."""

from __future__ import annotations

from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.api.destination import S3Credentials, S3Destination
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner
from velocity_operator.builders.restore_download import S3RestoreSource

OWNER = Owner(name="restored", namespace="prod", uid="u")
SOURCE = S3RestoreSource(
    destination=S3Destination(endpoint="https://s3.example:9000", bucket="bkp", region="eu-west-1",
                              force_path_style=False,
                              credentials_secret=S3Credentials(name="creds", access_key_id_key="id",
                                                               secret_access_key_key="key")),
    key="velocity/alpha/b1.vsnap", sha256="ab" * 32)


def _spec() -> VelocityClusterSpec:
    return VelocityClusterSpec.model_validate({"storage": {"aof": {"size": "1Gi"}, "snapshots": {"size": "2Gi"}},
                                               "bootstrap": {"fromBackup": {"name": "b1"}}})


def test_init_container_downloads_and_verifies_before_the_engine_restores() -> None:
    obj = sts.statefulset(OWNER, _spec(), config_hash="x", restore=SOURCE)
    pod = obj["spec"]["template"]["spec"]
    # The node id first (builders/statefulset.py), then the download.
    node_id, init = pod["initContainers"]
    assert node_id["name"] == "node-id"
    assert init["name"] == "restore-download"
    assert init["args"] == ["s3://bkp/velocity/alpha/b1.vsnap", "/restore/backup.vsnap", "--sha256", "ab" * 32]
    assert "velocity_operator.s3 get" in init["command"][2]
    assert "ls -A /data" in init["command"][2]  # skipped once the data directory has data
    env = {e["name"]: e for e in init["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "key"}
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in init["volumeMounts"]}
    assert mounts["aof"]["readOnly"] is True and mounts["restore"]["mountPath"] == "/restore"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["restore"] == {"name": "restore", "emptyDir": {"sizeLimit": "2Gi"}}
    engine = pod["containers"][0]
    assert "--restore-from" in engine["command"][2]
    assert {"name": "VELOCITY_RESTORE_FILE", "value": "/restore/backup.vsnap"} in engine["env"]


def test_restore_of_reads_the_s3_source_back() -> None:
    obj = sts.statefulset(OWNER, _spec(), config_hash="x", restore=SOURCE)
    assert sts.restore_of(obj) == SOURCE
    unsigned = S3RestoreSource(destination=SOURCE.destination, key=SOURCE.key, sha256="")
    back = sts.restore_of(sts.statefulset(OWNER, _spec(), config_hash="x", restore=unsigned))
    assert back == unsigned


def test_no_download_container_without_s3_restore() -> None:
    obj = sts.statefulset(OWNER, _spec(), config_hash="x")
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["initContainers"]] == ["node-id"]
