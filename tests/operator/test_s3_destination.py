"""destination.s3's credential, CA, encryption and identity fields on a real API server:
the CRD's validation and defaults, `kubectl explain`, and the backup Job the operator
makes from them (what it waits for, what it references, which identity it runs as)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for


def _backup(name: str, ns: str, s3: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup", "metadata": {"name": name, "namespace": ns},
            "spec": {"cluster": "s3c", "destination": {"s3": {"endpoint": "https://minio.storage.svc:9000",
                                                              "bucket": "bkt", **s3}}}}


def _phase(kubectl: Kubectl, ns: str, name: str, *phases: str) -> dict[str, Any] | None:
    obj = kubectl.get("vbackup", name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") in phases else None


@pytest.mark.parametrize(("s3", "message"), [
    ({"serverSideEncryption": {"algorithm": "AES256", "kmsKeyId": "k"}}, "kmsKeyId needs algorithm aws:kms"),
    ({"serverSideEncryption": {"algorithm": "rot13"}}, 'supported values: "AES256", "aws:kms"'),
    ({"caSecret": {"name": "Not_A_Name"}}, "caSecret.name"),
    ({"serviceAccountName": "UPPER"}, "serviceAccountName"),
    ({"credentialsSecret": {"name": "c", "sessionTokenKey": ""}}, "sessionTokenKey"),
])
def test_invalid_s3_fields_are_rejected(kubectl: Kubectl, crds: None, ns: str, s3: dict[str, Any],
                                        message: str) -> None:
    done = kubectl.apply(_backup("bad", ns, s3), check=False)
    assert done.returncode != 0, "the API server accepted an invalid destination"
    assert message in done.stderr, done.stderr


def test_defaults_and_explain(kubectl: Kubectl, crds: None, ns: str) -> None:
    kubectl.apply(_backup("chain", ns, {"caSecret": {"name": "minio-ca"},
                                        "serverSideEncryption": {"algorithm": "aws:kms"}}))
    obj = kubectl.get("vbackup", "chain", ns)
    assert obj is not None
    s3 = obj["spec"]["destination"]["s3"]
    assert "credentialsSecret" not in s3  # optional: the default chain
    assert s3["useInstanceMetadata"] is False
    assert s3["caSecret"] == {"name": "minio-ca", "key": "ca.crt"}
    explained = kubectl.run("explain", "vbackup.spec.destination.s3.caSecret").stdout
    assert "instead of the system CAs" in explained
    assert "session token" in kubectl.run("explain", "vbackup.spec.destination.s3.credentialsSecret").stdout
    assert "IRSA" in kubectl.run("explain", "vc.spec.backup.destination.s3.serviceAccountName").stdout


def test_backup_job_references_token_ca_and_runs_as_the_service_account(kubectl: Kubectl, operator: OperatorProcess,
                                                                        ns: str) -> None:
    kubectl.apply(cluster("s3c", ns))
    wait_for("pod", lambda: kubectl.items("pods", ns, "app.kubernetes.io/instance=s3c"))
    mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=s3c,app.kubernetes.io/component=engine")
    kubectl.run("wait", "--for=condition=Ready", "vc/s3c", "-n", ns, "--timeout=30s")

    # Temporary keys in a Secret and a private CA: the backup waits for both Secrets.
    kubectl.apply(_backup("tmpkeys", ns, {
        "credentialsSecret": {"name": "creds", "sessionTokenKey": "AWS_SESSION_TOKEN"},
        "caSecret": {"name": "minio-ca"}, "serverSideEncryption": {"algorithm": "aws:kms", "kmsKeyId": "alias/v"}}))
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                   "stringData": {"AWS_ACCESS_KEY_ID": "ASIAID", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}})
    obj = wait_for("Pending", lambda: _phase(kubectl, ns, "tmpkeys", "Pending"))
    assert obj["status"]["reason"] == "WaitingForCredentials"
    wait_for("message about the token", lambda: "no key AWS_SESSION_TOKEN" in (
        (kubectl.get("vbackup", "tmpkeys", ns) or {}).get("status", {}).get("message", "")))
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                   "stringData": {"AWS_ACCESS_KEY_ID": "ASIAID", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
                                  "AWS_SESSION_TOKEN": "t0ken"}})
    wait_for("message about the CA", lambda: "minio-ca" in (
        (kubectl.get("vbackup", "tmpkeys", ns) or {}).get("status", {}).get("message", "")))
    assert kubectl.get("job", "tmpkeys-snapshot", ns) is None
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "minio-ca", "namespace": ns},
                   "stringData": {"ca.crt": "-----BEGIN CERTIFICATE-----\n"}})
    wait_for("Running", lambda: _phase(kubectl, ns, "tmpkeys", "Running"), timeout=60)
    job = kubectl.get("job", "tmpkeys-snapshot", ns)
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["AWS_SESSION_TOKEN"] == {"secretKeyRef": {"name": "creds", "key": "AWS_SESSION_TOKEN"}}
    assert env["VDB_S3_CA_BUNDLE"] == {"secretKeyRef": {"name": "minio-ca", "key": "ca.crt"}}
    assert (env["VDB_S3_SSE"], env["VDB_S3_SSE_KMS_KEY_ID"]) == ("aws:kms", "alias/v")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "t0ken" not in json.dumps(job) and "s3cr3t" not in json.dumps(job)

    # No Secret: nothing to wait for; the Job runs as the IRSA ServiceAccount.
    kubectl.apply(_backup("irsa", ns, {"serviceAccountName": "velocity-backup"}))
    wait_for("Running", lambda: _phase(kubectl, ns, "irsa", "Running"), timeout=60)
    job = kubectl.get("job", "irsa-snapshot", ns)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "velocity-backup"
    assert pod["automountServiceAccountToken"] is False
    names = {e["name"] for e in pod["containers"][0]["env"]}
    assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
