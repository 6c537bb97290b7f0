"""The snapshot Job and where backups are stored."""

from __future__ import annotations

from typing import Any

from velocity_operator.api.backup import VelocityBackupSpec
from velocity_operator.api.destination import BackupDestination
from velocity_operator.builders.backup_job import (
    PvcLocation,
    S3Location,
    backup_job,
    cleanup_job,
    resolve_destination,
    stored_location,
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


def _s3(**extra: Any) -> BackupDestination:
    dest = VelocityBackupSpec.model_validate({"cluster": "alpha", "destination": {"s3": {
        "endpoint": "http://s3.storage.svc:7070", "bucket": "bkp", "credentialsSecret": {"name": "s3"}, **extra}}}
    ).destination
    assert dest is not None
    return dest


def test_s3_destination_is_prefix_cluster_backup() -> None:
    loc = resolve_destination("alpha", "b1", _s3(prefix="/velocity/prod/"))
    assert isinstance(loc, S3Location)
    assert (loc.bucket, loc.key, loc.url) == ("bkp", "velocity/prod/alpha/b1.vsnap", "s3://bkp/velocity/prod/alpha/b1.vsnap")
    assert resolve_destination("alpha", "b1", _s3()).url == "s3://bkp/alpha/b1.vsnap"


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_s3_job_stages_in_scratch_and_reads_credentials_from_the_secret() -> None:
    owner = Owner(name="b1", namespace="prod", uid="u", kind="VelocityBackup")
    dest = _s3(region="eu-west-1", forcePathStyle=False,
               credentialsSecret={"name": "creds", "accessKeyIdKey": "id", "secretAccessKeyKey": "key"})
    loc = resolve_destination("alpha", "b1", dest)
    job = backup_job(owner, cluster="alpha", backup="b1", location=loc, image="img", tls=True, scratch_size="3Gi")
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][1:] == ["velocity_operator.snapshot_job", "--file", "/scratch/b1.vsnap",
                             "--s3-url", "s3://bkp/alpha/b1.vsnap"]
    env = _env(c)
    assert env["VDB_S3_ENDPOINT"] == "http://s3.storage.svc:7070"
    assert env["VDB_S3_REGION"] == "eu-west-1"
    assert env["VDB_S3_FORCE_PATH_STYLE"] == "false"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "creds", "key": "id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "creds", "key": "key"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "3Gi"}}
    assert "backup" not in volumes
    assert {"name": "scratch", "mountPath": "/scratch"} in c["volumeMounts"]
    # Wrong credentials or a missing bucket (exit 3) fail the Job at once.
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule == {"action": "FailJob", "onExitCodes": {"containerName": "snapshot", "operator": "In", "values": [3]}}


def test_s3_cleanup_deletes_the_object() -> None:
    owner = Owner(name="alpha", namespace="prod", uid="u")
    loc = stored_location("s3://bkp/alpha/alpha-1.vsnap", _s3())
    assert isinstance(loc, S3Location)
    job = cleanup_job(owner, cluster="alpha", backup="alpha-1", location=loc, image="img")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["python", "-m", "velocity_operator.s3", "rm", "s3://bkp/alpha/alpha-1.vsnap"]
    assert _env(c)["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "s3"
    assert job["spec"]["template"]["spec"]["volumes"] == []


def test_stored_location_parses_status_urls() -> None:
    assert stored_location("pvc://c/velocity/a/b.vsnap", None) == PvcLocation("c", "velocity/a/b.vsnap")
    assert stored_location("s3://bkp/a/b.vsnap", None) is None  # no endpoint known
    assert stored_location("s3://other/a/b.vsnap", _s3()) is None  # not the configured bucket
    assert stored_location("", _s3()) is None


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
    assert env["VDB_CA"].endswith("/ca.crt")
    # Snapshots need the admin token (issue 11): the Job mounts NAME-admin and nothing else.
    assert env["VDB_ADMIN_TOKEN_FILE"] == env["VDB_TOKEN_FILE"] == "/etc/velocity/admin/token"
    assert c["args"][-2:] == ["--file", "/backup/v/a/b1.vsnap"]
    assert {v["name"] for v in pod["volumes"]} == {"backup", "tmp", "ca", "admin"}
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"alpha-ca", "alpha-admin"}
    assert {"name": "admin", "mountPath": "/etc/velocity/admin", "readOnly": True} in c["volumeMounts"]
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
