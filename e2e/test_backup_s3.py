"""Backups to S3-compatible storage on a real cluster: a real S3 server (versitygw, image
velocity/s3:dev built offline by hack/images/build.sh) runs in the test's namespace,
examples/03-backup-s3.yaml is applied against it, the backup lands in the bucket, a new
cluster restores from it with identical data, and wrong credentials fail a backup with a
reason that says so.

Only the endpoint, the key pair, the image and the pull policy of the example are
substituted. Run: `make e2e E2E_ARGS="e2e/test_backup_s3.py -x"`.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import REPO, OperatorProcess, running_operator
from .sdk_pods import run_client, service_endpoint

S3_IMAGE = os.environ.get("VELOCITY_S3_IMAGE", "velocity/s3:dev")
S3_PORT = 7070
BUCKET = "velocity-backups"
EXAMPLE = REPO / "examples" / "03-backup-s3.yaml"
KEYS = 500  # orders:i = i for i < KEYS
RESTRICTED = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str


@pytest.fixture(scope="module")
def operator(namespace: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(namespace, tmp_path_factory.mktemp("operator") / "operator.log") as op:
        yield op


def _s3_tool_pod(name: str, *args: str) -> dict[str, Any]:
    """`python -m velocity_operator.s3 ARGS` in the engine image with the root key pair."""
    env: list[dict[str, Any]] = [{"name": "VDB_S3_ENDPOINT", "value": f"http://s3:{S3_PORT}"}]
    env += [{"name": target, "valueFrom": {"secretKeyRef": {"name": "s3-root", "key": source}}}
            for target, source in (("AWS_ACCESS_KEY_ID", "ROOT_ACCESS_KEY_ID"),
                                   ("AWS_SECRET_ACCESS_KEY", "ROOT_SECRET_ACCESS_KEY"))]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "enableServiceLinks": False,
                     "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                     "containers": [{"name": "s3", "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                                     "command": ["python3", "-m", "velocity_operator.s3", *args], "env": env,
                                     "securityContext": RESTRICTED}]}}


def _run_s3_tool(ns: Kubectl, name: str, *args: str) -> str:
    ns.apply(_s3_tool_pod(name, *args))
    wait_for(lambda: ns.json("get", "pod", name)["status"].get("phase") in ("Succeeded", "Failed"),
             timeout=180, what=f"pod {name}")
    phase, logs = ns.json("get", "pod", name)["status"]["phase"], ns.run("logs", name)
    ns.run("delete", "pod", name, "--wait=false")
    assert phase == "Succeeded", f"{' '.join(args)} failed:\n{logs}"
    return logs


@pytest.fixture(scope="module")
def s3(namespace: Kubectl) -> S3Server:
    """versitygw in the namespace (Service `s3`, port 7070, buckets on an emptyDir), with
    the bucket the example uses. Deleted with the namespace."""
    key_id, secret = "E2E" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    labels = {"app": "velocity-e2e-s3"}
    namespace.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-root"},
         "stringData": {"ROOT_ACCESS_KEY_ID": key_id, "ROOT_SECRET_ACCESS_KEY": secret}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "s3", "labels": labels},
         "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
                  "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                  "containers": [{
                      "name": "s3", "image": S3_IMAGE, "imagePullPolicy": PULL_POLICY,
                      "args": ["--port", f":{S3_PORT}", "--health", "/health", "posix", "/data"],
                      "envFrom": [{"secretRef": {"name": "s3-root"}}],
                      "ports": [{"name": "s3", "containerPort": S3_PORT}],
                      "readinessProbe": {"httpGet": {"path": "/health", "port": S3_PORT}, "periodSeconds": 1},
                      "securityContext": RESTRICTED,
                      "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
                  }],
                  "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3"},
         "spec": {"selector": labels, "ports": [{"name": "s3", "port": S3_PORT, "targetPort": S3_PORT}]}},
    )
    namespace.run("wait", "--for=condition=Ready", "pod/s3", "--timeout=180s", timeout=200)
    assert "created bucket" in _run_s3_tool(namespace, "s3-mb", "mb", BUCKET)
    return S3Server(f"http://s3.{namespace.namespace}.svc:{S3_PORT}", key_id, secret)


def _example(s3: S3Server) -> dict[str, dict[str, Any]]:
    """examples/03-backup-s3.yaml by kind, pointed at the test's server and images."""
    objects = {o["kind"]: o for o in yaml.safe_load_all(EXAMPLE.read_text()) if o}
    assert set(objects) == {"Secret", "VelocityCluster", "VelocityBackup"}
    objects["Secret"]["stringData"] = {"AWS_ACCESS_KEY_ID": s3.access_key_id,
                                       "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}
    spec = objects["VelocityCluster"]["spec"]
    spec["image"], spec["imagePullPolicy"] = ENGINE_IMAGE, PULL_POLICY
    spec["backup"]["destination"]["s3"]["endpoint"] = s3.endpoint
    return objects


def _finished(ns: Kubectl, backup: str) -> dict[str, Any]:
    done: dict[str, Any] = wait_for(lambda: (b := ns.json("get", "vbackup", backup))
                    and b.get("status", {}).get("phase") in ("Completed", "Failed") and b,
                    timeout=300, what=f"backup {backup} to finish")
    return done


def test_03_example_backs_up_to_s3(namespace: Kubectl, operator: OperatorProcess, s3: S3Server) -> None:
    objects = _example(s3)
    namespace.apply(objects["Secret"], objects["VelocityCluster"])
    namespace.run("wait", "--for=condition=Ready", "vc/orders", "--timeout=300s", timeout=320)
    assert "OK" in run_client(namespace, "orders", "c-fill", service_endpoint(namespace, "orders"),
                              "fill", "orders", str(KEYS))
    namespace.apply(objects["VelocityBackup"])
    backup = _finished(namespace, "orders-manual-1")
    status = backup["status"]
    assert status["phase"] == "Completed", status
    assert status["location"] == f"s3://{BUCKET}/velocity/orders/orders-manual-1.vsnap"
    assert status["sizeBytes"] > 0 and status["durationSeconds"] > 0
    assert status["checksum"].startswith("sha256:")
    print(f"\nS3 backup of {KEYS} keys: {status['sizeBytes']} bytes, {status['durationSeconds']}s "
          "(snapshot + upload, in the Job)")
    namespace.run("wait", "--for=condition=Completed", "vbackup/orders-manual-1", "--timeout=10s")
    # The object is really in the bucket, with the size the status reports.
    listing = _run_s3_tool(namespace, "s3-ls", "ls", f"s3://{BUCKET}/velocity/orders/")
    assert f"{status['sizeBytes']} " in listing and status["location"] in listing, listing
    # The credentials never reach the Job's spec (secretKeyRef only).
    job = namespace.run("get", "job", "orders-manual-1-snapshot", "-o", "yaml")
    assert s3.secret_access_key not in job and "secretKeyRef" in job
    vc = namespace.json("get", "vc", "orders")
    assert vc["status"]["lastBackup"]["location"] == status["location"]


def test_restore_from_s3_has_identical_data(namespace: Kubectl, operator: OperatorProcess, s3: S3Server) -> None:
    start = time.monotonic()
    namespace.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster",
                     "metadata": {"name": "orders-restored"},
                     "spec": {"replicas": 1, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                              "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}},
                              "bootstrap": {"fromBackup": {"name": "orders-manual-1"}}}})
    namespace.run("wait", "--for=condition=Ready", "vc/orders-restored", "--timeout=300s", timeout=320)
    print(f"\napply -> Ready of a cluster restored from S3: {time.monotonic() - start:.1f}s")
    pod = namespace.json("get", "pod", "orders-restored-0")
    # The node-id init container first (the engine's node id, issue 11), then the download.
    inits = {c["name"]: c for c in pod["status"]["initContainerStatuses"]}
    assert set(inits) == {"node-id", "restore-download"}, inits
    init = inits["restore-download"]
    assert init["state"]["terminated"]["exitCode"] == 0
    assert "verified" in namespace.run("logs", "orders-restored-0", "-c", "restore-download")
    out = run_client(namespace, "orders-restored", "c-count", service_endpoint(namespace, "orders-restored"),
                     "count-stale", "orders", str(KEYS))
    assert f"MATCH {KEYS}" in out, out


def test_wrong_credentials_fail_the_backup_with_a_reason(namespace: Kubectl, operator: OperatorProcess,
                                                         s3: S3Server) -> None:
    namespace.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-credentials"},
         "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key_id, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}},
        {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup", "metadata": {"name": "orders-bad-creds"},
         "spec": {"cluster": "orders", "destination": {"s3": {
             "endpoint": s3.endpoint, "bucket": BUCKET, "prefix": "velocity",
             "credentialsSecret": {"name": "wrong-credentials"}}}}},
    )
    status = _finished(namespace, "orders-bad-creds")["status"]
    assert status["phase"] == "Failed", status
    assert status["reason"] == "S3AccessDenied"
    assert "SignatureDoesNotMatch" in status["message"], status["message"]
    assert "not-the-secret" not in status["message"]
    # FailJob on a permanent error: one pod, no retries.
    assert len(namespace.json("get", "pods", "-l", "vdb.io/backup=orders-bad-creds")["items"]) == 1
