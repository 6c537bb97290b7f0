"""The snapshot Job and where backups are stored."""

from __future__ import annotations

import pytest
from velocity_operator.api.backup import VelocityBackupSpec
from velocity_operator.builders.backup_job import (
    DestinationNotSupportedError,
    PvcLocation,
    backup_job,
    cleanup_job,
    resolve_destination,
)
from velocity_operator.builders.meta import Owner


def _dest(raw: dict[str, object]) -> object:
    return VelocityBackupSpec.model_validate({"cluster": "alpha", "destination": raw}).destination


def test_default_destination_is_the_cluster_claim() -> None:
    loc = resolve_destination("alpha", "b1", None)
    assert loc == PvcLocation("alpha-backups", "velocity/alpha/b1.vsnap")
    assert loc.url == "pvc://alpha-backups/velocity/alpha/b1.vsnap"


def test_pvc_destination_uses_its_path() -> None:
    dest = VelocityBackupSpec.model_validate(
        {"cluster": "alpha", "destination": {"persistentVolumeClaim": {"claimName": "nfs", "path": "db/"}}}
    ).destination
    assert resolve_destination("alpha", "b1", dest) == PvcLocation("nfs", "db/alpha/b1.vsnap")


def test_s3_is_refused_with_a_typed_error() -> None:
    dest = VelocityBackupSpec.model_validate({"cluster": "alpha", "destination": {"s3": {
        "endpoint": "http://minio:9000", "bucket": "bkp", "credentialsSecret": {"name": "s3"}}}}).destination
    with pytest.raises(DestinationNotSupportedError, match="S3"):
        resolve_destination("alpha", "b1", dest)


def test_job_targets_the_primary_with_tls_and_token() -> None:
    owner = Owner(name="b1", namespace="prod", uid="u", kind="VelocityBackup")
    job = backup_job(owner, cluster="alpha", backup="b1", location=PvcLocation("alpha-backups", "v/a/b1.vsnap"),
                     image="velocity/engine:dev", tls=True)
    assert job["metadata"]["name"] == "b1-snapshot"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "VelocityBackup"
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["VDB_ENDPOINT"] == "vdb://alpha.prod.svc:2005"
    assert env["VDB_CA"].endswith("/ca.crt") and env["VDB_TOKEN_FILE"].endswith("/token")
    assert c["args"][-2:] == ["--file", "/backup/v/a/b1.vsnap"]
    assert {v["name"] for v in pod["volumes"]} == {"backup", "tmp", "ca", "auth"}
    assert pod["restartPolicy"] == "Never"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_job_without_tls_is_insecure() -> None:
    owner = Owner(name="b1", namespace="prod", uid="u", kind="VelocityBackup")
    job = backup_job(owner, cluster="alpha", backup="b1", location=PvcLocation("c", "p.vsnap"),
                     image="i", tls=False)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][-1] == "--insecure"
    assert "VDB_CA" not in {e["name"] for e in c["env"]}


def test_cleanup_job_removes_the_files() -> None:
    owner = Owner(name="alpha", namespace="prod", uid="u")
    job = cleanup_job(owner, cluster="alpha", backup="alpha-202601010000",
                      location=PvcLocation("alpha-backups", "velocity/alpha/alpha-202601010000.vsnap"), image="img")
    assert job["metadata"]["name"] == "alpha-202601010000-cleanup"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "VelocityCluster"
    c = job["spec"]["template"]["spec"]["containers"][0]
    target = "/backup/velocity/alpha/alpha-202601010000.vsnap"
    assert c["command"] == ["rm", "-f", "--", target, f"{target}.sha256", f"{target}.partial"]
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "alpha-backups"
