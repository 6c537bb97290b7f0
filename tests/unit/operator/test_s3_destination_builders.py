"""destination.s3's credentials, CA, encryption and identity fields as the pods see them:
the environment builders/s3_env.py writes, its inverse (the restore source read back from
a StatefulSet), and the Jobs' ServiceAccount and memory."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from velocity_operator import snapshot_job
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.api.destination import S3Destination
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.backup_job import ACTIVE_DEADLINE_SECONDS, S3Location, backup_job, cleanup_job
from velocity_operator.builders.meta import Owner
from velocity_operator.builders.restore_download import S3RestoreSource, s3_restore_of
from velocity_operator.builders.s3_env import destination_from_env, s3_env
from velocity_operator.s3.env import settings_from_env

FULL = S3Destination.model_validate({
    "endpoint": "https://minio.storage.svc:9000", "bucket": "bkp", "region": "eu-west-1", "forcePathStyle": False,
    "credentialsSecret": {"name": "creds", "accessKeyIdKey": "id", "secretAccessKeyKey": "key",
                          "sessionTokenKey": "token"},
    "caSecret": {"name": "minio-ca"},
    "serverSideEncryption": {"algorithm": "aws:kms", "kmsKeyId": "alias/velocity"},
    "useInstanceMetadata": True,
})
CHAIN = S3Destination.model_validate({"endpoint": "https://s3.eu-west-1.amazonaws.com", "bucket": "bkp",
                                      "region": "eu-west-1", "serviceAccountName": "velocity-backup",
                                      "serverSideEncryption": {"algorithm": "AES256"}})


def _env(env: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_secret_credentials_token_and_ca_go_by_reference() -> None:
    env = _env(s3_env(FULL))
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "creds", "key": "id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "creds", "key": "key"}}
    assert env["AWS_SESSION_TOKEN"] == {"secretKeyRef": {"name": "creds", "key": "token"}}
    assert env["VDB_S3_CA_BUNDLE"] == {"secretKeyRef": {"name": "minio-ca", "key": "ca.crt"}}
    assert (env["VDB_S3_SSE"], env["VDB_S3_SSE_KMS_KEY_ID"]) == ("aws:kms", "alias/velocity")
    assert env["AWS_EC2_METADATA_DISABLED"] == "false"


def test_without_a_secret_the_default_chain_runs_and_imds_stays_off() -> None:
    env = _env(s3_env(CHAIN))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VDB_S3_CA_BUNDLE"} & set(env)
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["VDB_S3_SSE"] == "AES256" and "VDB_S3_SSE_KMS_KEY_ID" not in env
    # What the pod makes of it (plain values only; the kubelet resolves the references).
    settings = settings_from_env({k: v for k, v in env.items() if isinstance(v, str)})
    assert (settings.endpoint, settings.region, settings.sse) == ("https://s3.eu-west-1.amazonaws.com", "eu-west-1",
                                                                  "AES256")


@pytest.mark.parametrize("destination", [FULL, CHAIN], ids=["secret", "chain"])
def test_destination_round_trips_through_the_env(destination: S3Destination) -> None:
    back = destination_from_env(s3_env(destination), destination.bucket)
    # prefix and serviceAccountName are not part of a pod's env: restores do not use them.
    assert back == destination.model_copy(update={"service_account_name": None})
    source = S3RestoreSource(destination=back, key="velocity/alpha/b1.vsnap", sha256="ab" * 32)
    obj = sts.statefulset(Owner(name="r", namespace="prod", uid="u"), VelocityClusterSpec(), config_hash="x",
                          restore=source)
    assert sts.restore_of(obj) == source


def test_pods_of_the_previous_operator_read_back_unchanged() -> None:
    """Their init container had endpoint, region, path style and the key pair only."""
    legacy = [{"name": "VDB_S3_ENDPOINT", "value": "http://s3:7070"}, {"name": "VDB_S3_REGION", "value": "us-east-1"},
              {"name": "VDB_S3_FORCE_PATH_STYLE", "value": "true"},
              {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "c", "key": "AWS_ACCESS_KEY_ID"}}},
              {"name": "AWS_SECRET_ACCESS_KEY",
               "valueFrom": {"secretKeyRef": {"name": "c", "key": "AWS_SECRET_ACCESS_KEY"}}}]
    pod = {"initContainers": [{"name": "restore-download", "args": ["s3://bkp/a/b.vsnap", "/restore/backup.vsnap"],
                               "env": legacy}]}
    source = s3_restore_of(pod)
    assert source is not None and source.key == "a/b.vsnap" and source.sha256 == ""
    assert source.destination.credentials_secret is not None
    assert source.destination.credentials_secret.name == "c"
    assert not source.destination.use_instance_metadata


def test_jobs_run_as_the_destination_service_account_without_the_api_token() -> None:
    owner = Owner(name="b1", namespace="prod", uid="u", kind="VelocityBackup")
    location = S3Location(CHAIN, "alpha/b1.vsnap")
    for job in (backup_job(owner, cluster="alpha", backup="b1", location=location, image="img", tls=False),
                cleanup_job(owner, cluster="alpha", backup="b1", location=location, image="img")):
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "velocity-backup"
        assert pod["automountServiceAccountToken"] is False
    without = backup_job(owner, cluster="alpha", backup="b1", location=S3Location(FULL, "alpha/b1.vsnap"),
                         image="img", tls=False)
    assert "serviceAccountName" not in without["spec"]["template"]["spec"]


def test_s3_cleanup_has_room_for_the_sdk() -> None:
    owner = Owner(name="alpha", namespace="prod", uid="u")
    job = cleanup_job(owner, cluster="alpha", backup="b1", location=S3Location(FULL, "alpha/b1.vsnap"), image="img")
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "128Mi"


def test_unknown_encryption_algorithm_is_refused() -> None:
    with pytest.raises(ValidationError):
        S3Destination.model_validate({"endpoint": "https://s3", "bucket": "bkp",
                                      "serverSideEncryption": {"algorithm": "sha1"}})


def test_stale_uploads_are_older_than_any_live_backup_job() -> None:
    """The runner aborts uploads older than twice the Job's deadline: none of a live Job."""
    job = backup_job(Owner(name="b1", namespace="prod", uid="u", kind="VelocityBackup"), cluster="alpha",
                     backup="b1", location=S3Location(CHAIN, "alpha/b1.vsnap"), image="img", tls=False)
    assert job["spec"]["activeDeadlineSeconds"] == ACTIVE_DEADLINE_SECONDS
    assert snapshot_job.STALE_UPLOAD_SECONDS == 2 * ACTIVE_DEADLINE_SECONDS
