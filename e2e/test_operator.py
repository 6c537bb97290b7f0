"""The operator on a real cluster: apply -> Ready, TLS + token traffic, data survives pod
deletion, scaling, invalid input, backup to a PVC and restore.

The operator runs as a host process against the cluster's kubeconfig (watching only the
test's namespace), so the suite needs the engine image in the cluster but not the
operator image. Run: `make e2e` (local cluster) or `pytest e2e/test_operator.py --kubeconfig K`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import running_operator
from .sdk_pods import run_client

REPO = Path(__file__).resolve().parents[1]
READY_TARGET_S = 60.0

@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[subprocess.Popen[bytes]]:
    with running_operator(namespace) as op:
        assert op.proc is not None
        yield op.proc


def _cluster(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("image", ENGINE_IMAGE)
    spec.setdefault("imagePullPolicy", PULL_POLICY)
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": name}, "spec": spec}


def _client(ns: Kubectl, cluster: str, name: str, endpoint: str, op: str, key: str, value: str) -> str:
    """The SDK in a pod trusting NAME-ca with the token of NAME-auth; its output."""
    return run_client(ns, cluster, name, endpoint, op, key, value)


def _pod0(ns: Kubectl, cluster: str) -> str:
    """Pod 0 by its stable name: a replica or the primary; the SDK follows REDIRECT to the
    Lease holder for writes and linearizable reads either way."""
    return f"vdb://{cluster}-0.{cluster}-headless.{ns.namespace}.svc:2005"


def test_apply_to_ready_with_three_replicas(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    start = time.monotonic()
    namespace.apply(_cluster("alpha", replicas=3, storage={"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}}))
    namespace.run("wait", "--for=condition=Ready", "vc/alpha", "--timeout=300s", timeout=320)
    elapsed = time.monotonic() - start
    print(f"\napply -> Ready for 3 replicas: {elapsed:.1f}s (target {READY_TARGET_S:.0f}s)")
    vc = namespace.json("get", "vc", "alpha")
    assert vc["status"]["readyReplicas"] == 3
    primary = vc["status"]["currentPrimary"]  # the holder of Lease alpha-primary
    assert primary in ("alpha-0", "alpha-1", "alpha-2")
    labelled = namespace.json("get", "pods", "-l", "vdb.io/role=primary")["items"]
    assert [p["metadata"]["name"] for p in labelled] == [primary]
    assert elapsed <= 2 * READY_TARGET_S, f"apply -> Ready took {elapsed:.1f}s"


def test_sdk_traffic_over_tls_with_the_token(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    service = f"vdb://alpha.{namespace.namespace}.svc:2005"
    assert "OK" in _client(namespace, "alpha", "c-set", service, "set", "greeting", "hello")
    # Through pod 0 by its stable name, whatever its role (redirects are followed).
    endpoint = _pod0(namespace, "alpha")
    assert "OK" in _client(namespace, "alpha", "c-set0", endpoint, "set", "k", "v1")
    assert "GOT v1" in _client(namespace, "alpha", "c-get0", endpoint, "get", "k", "")


def test_pod_deletion_keeps_data(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    endpoint = _pod0(namespace, "alpha")
    assert "OK" in _client(namespace, "alpha", "c-before", endpoint, "set", "durable", "yes")
    uid = namespace.json("get", "pod", "alpha-0")["metadata"]["uid"]
    namespace.run("delete", "pod", "alpha-0")
    wait_for(lambda: (p := namespace.pod_ready("alpha-0")) and p["metadata"]["uid"] != uid,
             timeout=180, what="alpha-0 back and ready")
    assert "GOT yes" in _client(namespace, "alpha", "c-after", endpoint, "get", "durable", "")


def test_scale_down_to_one(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    namespace.run("scale", "vc/alpha", "--replicas=1")
    wait_for(lambda: len(namespace.json("get", "pods", "-l", "app.kubernetes.io/instance=alpha")["items"]) == 1,
             timeout=180, what="one pod left")
    namespace.run("wait", "--for=condition=Ready", "vc/alpha", "--timeout=120s", timeout=140)
    # alpha-0 remains; if the primary was alpha-1 or alpha-2, the Lease moved to alpha-0.
    wait_for(lambda: namespace.json("get", "vc", "alpha")["status"].get("currentPrimary") == "alpha-0",
             timeout=60, what="alpha-0 primary")


def test_invalid_cluster_rejected(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    done = subprocess.run(
        [namespace.binary, "--kubeconfig", namespace.kubeconfig, "-n", str(namespace.namespace), "apply", "-f", "-"],
        input=json.dumps(_cluster("bad", replicas=0)), capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "spec.replicas" in done.stderr


def test_backup_to_pvc_and_restore(namespace: Kubectl, operator: subprocess.Popen[bytes]) -> None:
    endpoint = _pod0(namespace, "alpha")
    assert "OK" in _client(namespace, "alpha", "c-bk", endpoint, "set", "backed-up", "precious")
    namespace.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityBackup", "metadata": {"name": "alpha-b1"},
                     "spec": {"cluster": "alpha"}})
    backup = wait_for(lambda: (b := namespace.json("get", "vbackup", "alpha-b1"))
                      and b.get("status", {}).get("phase") in ("Completed", "Failed") and b,
                      timeout=300, what="backup alpha-b1 to finish")
    assert backup["status"]["phase"] == "Completed", backup["status"]
    assert backup["status"]["sizeBytes"] > 0
    assert backup["status"]["checksum"].startswith("sha256:")
    namespace.apply(_cluster("beta", replicas=1, bootstrap={"fromBackup": {"name": "alpha-b1"}}))
    namespace.run("wait", "--for=condition=Ready", "vc/beta", "--timeout=300s", timeout=320)
    assert "GOT precious" in _client(namespace, "beta", "c-rs", _pod0(namespace, "beta"), "get", "backed-up", "")
