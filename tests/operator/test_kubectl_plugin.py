"""`kubectl velocity` (the kubectl-velocity console script) against a real kube-apiserver (tier 1).

The plugin runs as a subprocess, the way kubectl runs a plugin, with --kubeconfig (and
--context) of the tier's API server. The operator runs too, so the objects the plugin
reads are the operator's (StatefulSet pods, conditions, Leases) and what the plugin
writes is what the operator reacts to:

- status: the test plays the engines (Lease holder and epoch, member Lease positions)
  and the kubelet (pods Ready); every field of the screen and of --json is checked;
- backup: creates the VelocityBackup (refused for a missing cluster or a taken name);
- promote: sets vdb.io/switchover-to, which the operator answers (an Event, annotation
  removed); a pod that is not the cluster's is refused before anything is written;
- rotate-certificates: a new vdb.io/rotate-certificates value, which the operator turns
  into a new server certificate;
- connect: velocityctl with the Secrets' CA and tokens, against a real engine running
  with the operator's material (podsim) through --address (no kubelet here to
  port-forward to); without --address the port-forward fails cleanly.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner
from velocity_operator.controllers.promote import SWITCHOVER_ANNOTATION
from velocity_operator.controllers.tls import ROTATE_ANNOTATION

from tests.kube.kube_api import KubeAPI

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for
from .podsim import BIN, SimulatedPod, operator_material

PLUGIN = BIN / "kubectl-velocity"


def plugin(kube_api: KubeAPI, *args: str) -> subprocess.CompletedProcess[str]:
    # --kubeconfig before the command (as a group option): after `connect NAME --` it would be velocityctl's.
    return subprocess.run([str(PLUGIN), "--kubeconfig", str(kube_api.kubeconfig), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _endpoint(name: str, ns: str, ordinal: int) -> str:
    return f"vdb://{name}-{ordinal}.{name}-headless.{ns}.svc:2005"


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _play_engines(kubectl: Kubectl, name: str, ns: str, primary: int, epoch: int, seqs: dict[int, int]) -> None:
    """What the engines' Lease agents write: the primary Lease's holder and epoch, and each
    member Lease's holder (the pod's endpoint) and log position."""
    wait_for("the member Leases", lambda: all(kubectl.get("lease", f"{name}-primary-member-{i}", ns) for i in seqs))
    kubectl.run("patch", "lease", f"{name}-primary", "-n", ns, "--type=merge", "-p", json.dumps({
        "metadata": {"annotations": {"vdb.io/epoch": str(epoch)}},
        "spec": {"holderIdentity": _endpoint(name, ns, primary), "leaseDurationSeconds": 15,
                 "renewTime": _micro_now()}}))
    for ordinal, seq in seqs.items():
        kubectl.run("patch", "lease", f"{name}-primary-member-{ordinal}", "-n", ns, "--type=merge", "-p", json.dumps({
            "metadata": {"annotations": {"vdb.io/seq": str(seq)}},
            "spec": {"holderIdentity": _endpoint(name, ns, ordinal), "renewTime": _micro_now()}}))


def _events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    return [e.get("message", "") for e in kubectl.items("events", ns) if e.get("reason") == reason]


def _annotations(kubectl: Kubectl, name: str, ns: str) -> dict[str, str]:
    return dict(((kubectl.get("vc", name, ns) or {}).get("metadata") or {}).get("annotations") or {})


@pytest.fixture
def three_pods(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> str:
    """Cluster kv with 3 pods Ready, kv-1 the primary at epoch 4, positions 100/120/90."""
    kubectl.apply(cluster("kv", ns, replicas=3))
    wait_for("3 pods", lambda: len(kubectl.items("pods", ns, "app.kubernetes.io/instance=kv")) == 3, timeout=60)
    _play_engines(kubectl, "kv", ns, primary=1, epoch=4, seqs={0: 100, 1: 120, 2: 90})
    mark_pods_ready(kubectl, ns, "app.kubernetes.io/instance=kv")
    return "kv"


def test_status_shows_pods_roles_lag_epoch_lease_backup_and_conditions(
        kubectl: Kubectl, kube_api: KubeAPI, three_pods: str, ns: str) -> None:
    made = plugin(kube_api, "backup", "kv", "-n", ns, "--backup-name", "kv-manual", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {"name": "kv-manual", "namespace": ns, "cluster": "kv", "phase": "Pending",
                                       "location": None, "message": None}

    seen: list[dict[str, Any]] = []

    def settled() -> dict[str, Any] | None:
        done = plugin(kube_api, "status", "kv", "-n", ns, "--json")
        assert done.returncode == 0, done.stderr
        s: dict[str, Any] = json.loads(done.stdout)
        seen[:] = [s]
        roles = {p["name"]: p["role"] for p in s["pods"]}
        ready = next((c for c in s["conditions"] if c["type"] == "Ready"), None)
        ok = (roles == {"kv-0": "replica", "kv-1": "primary", "kv-2": "replica"}
              and ready is not None and ready["status"] == "True" and s["replicas"]["ready"] == 3)
        return s if ok else None

    try:
        s = wait_for("the operator to label the roles and report Ready", settled, timeout=60)
    except AssertionError:
        pytest.fail(f"last status: {json.dumps(seen, indent=1)}")
    assert (s["name"], s["namespace"], s["primary"]) == ("kv", ns, "kv-1")
    assert s["replicas"]["desired"] == 3
    assert s["lease"] | {"renewTime": None} == {
        "name": "kv-primary", "exists": True, "holder": _endpoint("kv", ns, 1), "holderPod": "kv-1", "epoch": 4,
        "renewTime": None, "durationSeconds": 15}
    pods = {p["name"]: p for p in s["pods"]}
    assert [p["name"] for p in s["pods"]] == ["kv-0", "kv-1", "kv-2"]  # not the backup Job's pod
    assert {n: (p["seq"], p["lagBatches"], p["ready"], p["phase"]) for n, p in pods.items()} == {
        "kv-0": (100, 20, True, "Running"), "kv-1": (120, 0, True, "Running"), "kv-2": (90, 30, True, "Running")}
    assert [b["name"] for b in s["backups"]] == ["kv-manual"]
    assert s["tls"] is True and s["certificate"]["secretName"] == "kv-tls"

    text = plugin(kube_api, "status", "kv", "-n", ns)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert f"Cluster      {ns}/kv" in out
    assert "Replicas     3 desired, 3 ready" in out
    assert "Lease        kv-primary held by kv-1, epoch 4, renewed" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("kv-")}
    assert rows["kv-2"][:7] == ["kv-2", "replica", "1/1", "Running", "0", "90", "30"]
    assert rows["kv-1"][:7] == ["kv-1", "primary", "1/1", "Running", "0", "120", "0"]
    assert rows["kv-manual"][0:1] == ["kv-manual"]
    assert any(line.split()[:2] == ["Ready", "True"] for line in out.splitlines())


def test_status_of_a_missing_cluster_fails(kube_api: KubeAPI, ns: str, crds: None) -> None:
    done = plugin(kube_api, "status", "nope", "-n", ns)
    assert done.returncode == 1
    assert f'VelocityCluster "nope" not found in namespace "{ns}"' in done.stderr


def test_backup_creates_a_velocitybackup_and_refuses_a_taken_name(
        kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("bk", ns))
    done = plugin(kube_api, "-n", ns, "backup", "bk", "--json")  # namespace before the command works too
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["name"]
    assert name.startswith("bk-") and len(name) == len("bk-YYYYMMDDHHMMSS")
    obj = kubectl.get("velocitybackup", name, ns)
    assert obj is not None and obj["spec"] == {"cluster": "bk"}
    assert obj["metadata"]["labels"]["vdb.io/cluster"] == "bk"
    again = plugin(kube_api, "backup", "bk", "-n", ns, "--backup-name", name)
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = plugin(kube_api, "backup", "nope", "-n", ns)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert [b["metadata"]["name"] for b in kubectl.items("velocitybackups", ns)] == [name]


def test_promote_sets_the_request_the_operator_answers(kubectl: Kubectl, kube_api: KubeAPI, three_pods: str,
                                                       ns: str) -> None:
    wait_for("status.currentPrimary kv-1",
             lambda: ((kubectl.get("vc", "kv", ns) or {}).get("status") or {}).get("currentPrimary") == "kv-1")
    refused = plugin(kube_api, "promote", "kv", "kv-7", "-n", ns)
    assert refused.returncode == 1 and 'pod "kv-7" is not a pod of VelocityCluster "kv"' in refused.stderr
    assert SWITCHOVER_ANNOTATION not in _annotations(kubectl, "kv", ns)

    # kv-0 is a real pod, but no engine runs in this tier: the operator tries the
    # switchover, reports SwitchoverFailed and removes the one-shot request.
    done = plugin(kube_api, "promote", "kv", "kv-0", "-n", ns, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cluster": "kv", "namespace": ns, "pod": "kv-0", "requested": True,
                                       "annotation": f"{SWITCHOVER_ANNOTATION}=kv-0"}
    failed = wait_for("SwitchoverFailed", lambda: _events(kubectl, ns, "SwitchoverFailed"), timeout=90)
    assert any(f"{SWITCHOVER_ANNOTATION}=kv-0" in m for m in failed), failed
    wait_for("the request removed", lambda: SWITCHOVER_ANNOTATION not in _annotations(kubectl, "kv", ns))

    # The current primary: already satisfied; --wait returns once the operator answered.
    same = plugin(kube_api, "promote", "kv", "kv-1", "-n", ns, "--wait", "--timeout", "60", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["primary"] == "kv-1"
    assert any("kv-1 already is the primary" in m for m in _events(kubectl, ns, "Switchover"))


def test_rotate_certificates_sets_a_new_value_the_operator_rotates_on(
        kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("rc", ns))
    first = wait_for("Secret rc-tls", lambda: kubectl.get("secret", "rc-tls", ns))
    done = plugin(kube_api, "rotate-certificates", "rc", "-n", ns, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["annotation"] == ROTATE_ANNOTATION and _annotations(kubectl, "rc", ns)[ROTATE_ANNOTATION] == \
        answer["value"]
    second = wait_for("a new certificate", lambda: (s := kubectl.get("secret", "rc-tls", ns))
                      and s["data"]["tls.crt"] != first["data"]["tls.crt"] and s, timeout=60)
    assert second["metadata"]["annotations"][ROTATE_ANNOTATION] == answer["value"]
    again = plugin(kube_api, "rotate-certificates", "rc", "-n", ns, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["value"] != answer["value"]


def test_connect_runs_velocityctl_with_the_cluster_secrets(
        kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess, ns: str, tmp_path: Path,
        engines: list[SimulatedPod]) -> None:
    kubectl.apply(cluster("cn", ns))
    vc = wait_for("the cluster", lambda: kubectl.get("vc", "cn", ns))
    wait_for("Secret cn-admin", lambda: kubectl.get("secret", "cn-admin", ns))
    material = operator_material(kubectl, ns, Owner(name="cn", namespace=ns, uid=vc["metadata"]["uid"]))
    pod = SimulatedPod(tmp_path / "cn-0", material, VelocityClusterSpec.model_validate(vc["spec"]), pod_name="cn-0")
    engines.append(pod)
    pod.start()
    address = f"127.0.0.1:{pod.port}"

    wrote = plugin(kube_api, "connect", "cn", "-n", ns, "--address", address, "--", "set", "via-plugin", "yes")
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    assert pod.ctl("get", "via-plugin").stdout.strip() == "yes"
    # The server name checked is the Service's, which the operator's certificate covers.
    info = plugin(kube_api, "connect", "cn", "-n", ns, "--address", address, "--", "info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["server"]["tls"] is True
    # An admin command gets NAME-admin's token (the client token may not snapshot).
    snap = plugin(kube_api, "connect", "cn", "-n", ns, "--address", address, "--", "snapshot",
                  "--quiet", str(tmp_path / "s.vsnap"))
    assert snap.returncode == 0, snap.stdout + snap.stderr
    assert (tmp_path / "s.vsnap").stat().st_size > 0

    # Without --address: kubectl port-forward to svc/cn, which has no running pod here.
    forward = plugin(kube_api, "connect", "cn", "-n", ns, "--kubectl", str(kube_api.bin_dir / "kubectl"),
                     "--forward-timeout", "2")
    assert forward.returncode == 1 and "port-forward svc/cn failed" in forward.stderr


def test_namespace_defaults_to_the_kubeconfig_context(kubectl: Kubectl, kube_api: KubeAPI,
                                                      operator: OperatorProcess, ns: str, tmp_path: Path) -> None:
    kubectl.apply(cluster("ctx", ns))
    config = json.loads(kubectl.run("config", "view", "--raw", "-o", "json").stdout)
    config["contexts"].append({"name": "in-ns", "context": {**config["contexts"][0]["context"], "namespace": ns}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    done = subprocess.run([str(PLUGIN), "status", "ctx", "--kubeconfig", str(kubeconfig), "--context", "in-ns",
                           "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["namespace"] == ns
    # The current context has no namespace: "default", where there is no such cluster.
    other = subprocess.run([str(PLUGIN), "status", "ctx", "--kubeconfig", str(kubeconfig)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert other.returncode == 1 and 'namespace "default"' in other.stderr

