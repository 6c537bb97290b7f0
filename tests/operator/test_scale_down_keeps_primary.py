"""Scale-down never removes the primary, on a real kube-apiserver with real engines.

Two engines run as local processes (podsim) with the operator's own Secrets (CA, server
certificate, tokens) and elect their primary through the cluster's Lease; the primary is
made pod 1, the highest ordinal. Scaling 2 -> 1 must then not lower the StatefulSet's
replicas while pod 1 holds the Lease: the operator asks pod 1's engine (TLS, admin token) for
a switchover to pod 0 first.

In this tier replicas cannot stream (their advertised pod DNS names do not resolve, see
test_replication_wiring.py), so the engine's switchover cannot succeed here: what this
proves is the operator's side with real engines (it reaches the Lease holder over TLS
with the token, finds no caught-up target, keeps the primary and retries), and that the
step is taken as soon as the Lease moves to pod 0. The successful switchover with an
SDK write load and zero lost writes is proven on the local cluster
(e2e/test_operator_lifecycle.py::test_scale_3_to_1_keeps_data_and_claims).

The operator reaches the local engines through VELOCITY_OPERATOR_ENGINE_ADDRESSES (test
only: pod -> 127.0.0.1:PORT), keeping the pod DNS name as TLS server name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner
from velocity_operator.controllers.switchover import ADDRESSES_ENV

from tests.kube.kube_api import KubeAPI

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for
from .podsim import SimulatedPod, engine_kubeconfig, operator_material

NAME = "sd"
SELECTOR = f"app.kubernetes.io/instance={NAME}"


def _holder(kubectl: Kubectl, ns: str) -> str | None:
    lease = kubectl.get("lease", f"{NAME}-primary", ns)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def _endpoint(ns: str, ordinal: int) -> str:
    return f"vdb://{NAME}-{ordinal}.{NAME}-headless.{ns}.svc:2005"


def _events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    items = json.loads(kubectl.run("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [e["message"] for e in items if e["reason"] == reason]


def _sts_replicas(kubectl: Kubectl, ns: str) -> int:
    sts = kubectl.get("statefulset", NAME, ns)
    assert sts is not None
    return int(sts["spec"]["replicas"])


def test_scale_down_switches_over_before_removing_the_primary(
        kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess, ns: str, tmp_path: Path,
        engines: list[SimulatedPod], monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl.apply(cluster(NAME, ns, replicas=2))
    vc: dict[str, Any] = wait_for("the cluster", lambda: kubectl.get("vc", NAME, ns))
    wait_for("2 pods", lambda: len(kubectl.items("pods", ns, SELECTOR)) == 2)
    wait_for(f"rolebinding/{NAME}-engine", lambda: kubectl.get("rolebinding", f"{NAME}-engine", ns))
    owner = Owner(name=NAME, namespace=ns, uid=vc["metadata"]["uid"])
    material = operator_material(kubectl, ns, owner)
    spec = VelocityClusterSpec.model_validate(vc["spec"])
    kubeconfig = engine_kubeconfig(kubectl, kube_api, ns, f"{NAME}-engine", tmp_path / "engine.kubeconfig")

    # Pod 1 starts first and takes the Lease: the primary is the highest ordinal, the
    # pod a plain StatefulSet scale-down would remove.
    second = SimulatedPod(tmp_path / f"{NAME}-1", material, spec, lease_kubeconfig=kubeconfig, pod_name=f"{NAME}-1")
    engines.append(second)
    second.start()
    wait_for(f"{NAME}-1 to take the Lease", lambda: _holder(kubectl, ns) == _endpoint(ns, 1), timeout=30)
    first = SimulatedPod(tmp_path / f"{NAME}-0", material, spec, lease_kubeconfig=kubeconfig, pod_name=f"{NAME}-0")
    engines.append(first)
    first.start()
    assert second.ctl("set", "before-scale", "1").returncode == 0

    # The operator reaches the local engines by their ports (test-only override); it is
    # read when the operator starts, so the session's operator is restarted with it.
    monkeypatch.setenv(ADDRESSES_ENV, json.dumps({f"{ns}/{NAME}-0": f"127.0.0.1:{first.port}",
                                                  f"{ns}/{NAME}-1": f"127.0.0.1:{second.port}"}))
    operator.stop()
    operator.start()
    mark_pods_ready(kubectl, ns, SELECTOR)
    wait_for(f"status.currentPrimary {NAME}-1",
             lambda: ((kubectl.get("vc", NAME, ns) or {}).get("status") or {}).get("currentPrimary") == f"{NAME}-1")

    kubectl.run("scale", f"vc/{NAME}", "-n", ns, "--replicas=1")
    # The operator asks pod 1's engine (TLS with the cluster's CA, the token) to hand over.
    # Its replica does not stream in this tier, so the engine reports no usable target:
    # the operator keeps the primary and both pods, and tries again at each reconcile.
    failed = wait_for("a refused switchover", lambda: _events(kubectl, ns, "SwitchoverFailed"), timeout=60)
    assert any(f"from {NAME}-1" in m and "streaming" in m for m in failed), failed

    def retried() -> bool:
        assert _sts_replicas(kubectl, ns) == 2, "replicas lowered while the primary is pod 1"
        assert second.process is not None and second.process.poll() is None
        return len(_events(kubectl, ns, "SwitchoverFailed")) >= 1 and _switchover_attempts(kubectl, ns) >= 3

    wait_for("three attempts, replicas kept", retried, timeout=60, interval=0.5)
    pod1 = kubectl.get("pod", f"{NAME}-1", ns)
    assert pod1 is not None and not pod1["metadata"].get("deletionTimestamp"), "the primary's pod is going"
    assert second.ctl("set", "during-scale", "1").returncode == 0, "the primary stopped taking writes"
    assert not _events(kubectl, ns, "Switchover")

    # The Lease moves to pod 0 (pod 1's engine stops and releases it): the step is taken
    # at once (Lease watch), and only then.
    observed: list[tuple[str | None, int]] = []

    def stepped_down() -> bool:
        observed.append((_holder(kubectl, ns), _sts_replicas(kubectl, ns)))
        return observed[-1][1] == 1

    second.stop()
    wait_for("replicas lowered to 1", stepped_down, timeout=60, interval=0.2)
    assert all(not (holder == _endpoint(ns, 1) and replicas == 1) for holder, replicas in observed), observed
    assert _holder(kubectl, ns) == _endpoint(ns, 0)
    wait_for("pod 1 removed", lambda: [p["metadata"]["name"] for p in kubectl.items("pods", ns, SELECTOR)
                                       if not p["metadata"].get("deletionTimestamp")] == [f"{NAME}-0"])
    assert first.ctl("set", "after-scale", "1").returncode == 0


def _switchover_attempts(kubectl: Kubectl, ns: str) -> int:
    """Refused switchovers so far (an Event repeated with the same message counts up)."""
    items = json.loads(kubectl.run("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return sum(int(e.get("count") or 1) for e in items if e["reason"] == "SwitchoverFailed")


def test_sync_cluster_that_cannot_lose_a_pod_gets_a_warning(kubectl: Kubectl, operator: OperatorProcess,
                                                             ns: str) -> None:
    kubectl.apply(cluster("sy", ns, replicas=2, replication={"mode": "sync", "syncReplicas": 1}))
    warned = wait_for("the sizing warning", lambda: _events(kubectl, ns, "SyncNoFaultTolerance"), timeout=30)
    assert "replicas >= syncReplicas + 2 = 3" in warned[0], warned
    # Once per spec generation, not at every resync (2 s in this tier): more reconciles
    # of the same generation add none (the counter is operator-wide; alone in its
    # namespace this cluster is reconciled by its own timer at least as often as that).
    start = _reconciles(operator)
    wait_for("three resyncs", lambda: _reconciles(operator) >= start + 3, timeout=30)
    assert len(_events(kubectl, ns, "SyncNoFaultTolerance")) == 1
    vc = kubectl.get("vc", "sy", ns)
    assert vc is not None and vc["status"]["observedGeneration"] == vc["metadata"]["generation"]
    # A size that tolerates the loss of a pod: no new warning for the new generation.
    kubectl.run("scale", "vc/sy", "-n", ns, "--replicas=3")
    wait_for("generation 2 observed", lambda: ((kubectl.get("vc", "sy", ns) or {}).get("status") or {})
             .get("observedGeneration") == 2)
    assert len(_events(kubectl, ns, "SyncNoFaultTolerance")) == 1


def _reconciles(operator: OperatorProcess) -> float:
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith('velocity_operator_reconciles_total{resource="VelocityCluster"'):
            total += float(line.rsplit(" ", 1)[1])
    return total
