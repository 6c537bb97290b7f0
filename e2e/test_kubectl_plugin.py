"""Every `kubectl velocity` command (docs/operator/kubectl-plugin.md) through the real
console script, on one two-pod VelocityCluster of a real cluster (issue 17).

The plugin runs as kubectl would run it (`kubectl-velocity ARGS`, the script installed with
the package next to this Python), always with `--kubeconfig` and `-n`:

- `status NAME` as text and `--json`: pods and roles, primary, epoch, the Lease holder,
  conditions, all matching what the API server holds;
- `promote NAME POD --wait`: the operator's planned switchover moves Lease `NAME-primary`
  (epoch + 1) and status.currentPrimary to POD;
- `backup NAME --wait`: a VelocityBackup to the cluster's default destination (the claim
  `NAME-backups`) ends Completed;
- `connect NAME -- set/get`: port-forward to the client Service plus velocityctl with the
  cluster's CA and tokens from its Secrets;
- `rotate-certificates NAME`: the operator re-issues the server certificate (new serial,
  same CA).

The operator runs as a host process (e2e/operator_host.py). Run:
`make e2e E2E_ARGS=e2e/test_kubectl_plugin.py`.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import OperatorProcess, running_operator

NAME = "kp"


def _plugin_binary() -> str:
    beside = Path(sys.executable).parent / "kubectl-velocity"
    found = str(beside) if beside.is_file() else shutil.which("kubectl-velocity")
    if not found:
        pytest.fail("kubectl-velocity not found (installed with the velocity package: make install)", pytrace=False)
    return found


def plugin(ns: Kubectl, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl velocity ARGS --kubeconfig K -n NS` (the options after the command, as kubectl passes them)."""
    argv = [_plugin_binary(), *args[:1], "--kubeconfig", ns.kubeconfig, "-n", str(ns.namespace), *args[1:]]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    print(f"\n$ kubectl velocity {' '.join(args)}  ({time.monotonic() - start:.1f}s, exit {done.returncode})\n"
          f"{done.stdout}{done.stderr}")
    if check:
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    return done


def _status_json(ns: Kubectl) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(plugin(ns, "status", NAME, "--json").stdout)
    return summary


def _lease(ns: Kubectl) -> tuple[str, int]:
    """(holderIdentity of Lease NAME-primary, the holder's endpoint `vdb://POD.NAME-headless.NS.svc:2005`;
    its epoch)."""
    lease = ns.json("get", "lease", f"{NAME}-primary")
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    epoch = int((lease["metadata"].get("annotations") or {}).get("vdb.io/epoch") or 0)
    return holder, epoch


def _pod_of(holder: str) -> str:
    return holder.removeprefix("vdb://").split(".")[0]


def _secret_data(ns: Kubectl, name: str, key: str) -> bytes:
    return base64.b64decode(ns.json("get", "secret", name)["data"][key])


def _serial(ns: Kubectl) -> int:
    return int(x509.load_pem_x509_certificate(_secret_data(ns, f"{NAME}-tls", "tls.crt")).serial_number)


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


@pytest.fixture(scope="module")
def cluster(namespace: Kubectl, operator: OperatorProcess) -> Kubectl:
    """A two-pod cluster (TLS on, the default), Ready, with a streaming replica."""
    namespace.apply({"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": NAME},
                     "spec": {"replicas": 2, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                              "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}}}})
    namespace.run("wait", "--for=condition=Ready", f"vc/{NAME}", "--timeout=300s", timeout=320)
    return namespace


def test_status_text_and_json(cluster: Kubectl) -> None:
    ns = cluster
    vc = ns.json("get", "vc", NAME)
    holder, epoch = _lease(ns)
    primary = vc["status"]["currentPrimary"]
    assert _pod_of(holder) == primary, (holder, primary)

    text = plugin(ns, "status", NAME).stdout
    assert f"{ns.namespace}/{NAME}" in text
    assert f"held by {primary}" in text and f"epoch {epoch}" in text, text
    for pod in (f"{NAME}-0", f"{NAME}-1"):
        assert pod in text

    s = _status_json(ns)
    assert (s["name"], s["namespace"], s["primary"]) == (NAME, ns.namespace, primary)
    assert s["replicas"]["desired"] == 2 and s["replicas"]["ready"] == 2, s["replicas"]
    assert s["lease"]["holder"] == holder and s["lease"]["holderPod"] == primary
    assert s["lease"]["epoch"] == epoch and epoch >= 1
    roles = {p["name"]: p["role"] for p in s["pods"]}
    assert roles == {primary: "primary", next(p for p in roles if p != primary): "replica"}, roles
    assert all(p["ready"] for p in s["pods"]), s["pods"]
    conditions = {c["type"]: c["status"] for c in s["conditions"]}
    assert conditions.get("Ready") == "True", conditions
    assert s["certificate"] and s["credentials"], s


def test_promote_moves_the_lease(cluster: Kubectl) -> None:
    ns = cluster
    # The replica must be streaming for the switchover: the status screen shows its position.
    wait_for(lambda: all(p.get("seq") is not None for p in _status_json(ns)["pods"]), timeout=60,
             what="both pods' log positions published")
    old = ns.json("get", "vc", NAME)["status"]["currentPrimary"]
    _, old_epoch = _lease(ns)
    target = f"{NAME}-1" if old == f"{NAME}-0" else f"{NAME}-0"
    start = time.monotonic()
    out = json.loads(plugin(ns, "promote", NAME, target, "--wait", "--json").stdout)
    assert out["primary"] == target, out
    holder, epoch = _lease(ns)
    assert _pod_of(holder) == target and epoch == old_epoch + 1, (holder, epoch, old_epoch)
    wait_for(lambda: ns.json("get", "vc", NAME)["status"].get("currentPrimary") == target, timeout=60,
             interval=0.5, what=f"status.currentPrimary = {target}")
    print(f"\npromote {old} -> {target}: Lease and status moved in {time.monotonic() - start:.1f}s")
    assert "vdb.io/switchover-to" not in (ns.json("get", "vc", NAME)["metadata"].get("annotations") or {})
    ns.run("wait", "--for=condition=Ready", f"vc/{NAME}", "--timeout=120s", timeout=140)
    s = _status_json(ns)
    assert s["primary"] == target and {p["name"]: p["role"] for p in s["pods"]}[target] == "primary"


def test_backup_to_the_default_claim(cluster: Kubectl) -> None:
    ns = cluster
    start = time.monotonic()
    out = json.loads(plugin(ns, "backup", NAME, "--wait", "--timeout", "300", "--json", timeout=330).stdout)
    print(f"\nbackup --wait: {time.monotonic() - start:.1f}s")
    assert out["phase"] == "Completed", out
    assert out["location"] and out["location"].startswith(f"pvc://{NAME}-backups/"), out
    obj = ns.json("get", "velocitybackup", out["name"])
    assert obj["metadata"]["labels"]["vdb.io/cluster"] == NAME
    assert obj["status"]["phase"] == "Completed"
    assert ns.json("get", "pvc", f"{NAME}-backups")["status"]["phase"] == "Bound"


def test_connect_set_and_get(cluster: Kubectl) -> None:
    ns = cluster
    kubectl = ["--kubectl", ns.binary]
    plugin(ns, "connect", NAME, *kubectl, "--", "set", "plugin:key", "through-the-plugin")
    got = plugin(ns, "connect", NAME, *kubectl, "--", "get", "plugin:key").stdout
    assert "through-the-plugin" in got, got
    # No velocityctl arguments: `info`, which answers as the primary.
    info = plugin(ns, "connect", NAME, *kubectl).stdout
    assert info.strip(), info


def test_rotate_certificates(cluster: Kubectl) -> None:
    ns = cluster
    ca = _secret_data(ns, f"{NAME}-ca", "ca.crt")
    old = _serial(ns)
    start = time.monotonic()
    out = json.loads(plugin(ns, "rotate-certificates", NAME, "--json").stdout)
    assert out["annotation"] == "vdb.io/rotate-certificates" and out["value"], out
    assert ns.json("get", "vc", NAME)["metadata"]["annotations"]["vdb.io/rotate-certificates"] == out["value"]
    new = wait_for(lambda: (s := _serial(ns)) != old and s, timeout=60, interval=0.5,
                   what=f"a new certificate in {NAME}-tls")
    print(f"\nrotate-certificates: new serial after {time.monotonic() - start:.1f}s")
    assert new != old
    assert _secret_data(ns, f"{NAME}-ca", "ca.crt") == ca  # same CA
