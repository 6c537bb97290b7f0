"""Replication wiring on a real kube-apiserver: the engines' Lease RBAC, real engines
started with the operator's generated flags electing a primary through the cluster's
Lease (acting as the cluster's engine ServiceAccount), and the operator following the
Lease holder in status.currentPrimary and in the role label the client Service selects.

There is no kubelet in this tier: the engines run as local processes (podsim) and their
advertised pod DNS names do not resolve, so replicas cannot stream here (replication
itself is tested in tests/integration/replication); election and routing can.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from velocity_operator.api.cluster import VelocityClusterSpec
from velocity_operator.builders.meta import Owner

from tests.kube.kube_api import KubeAPI

from .conftest import Kubectl, OperatorProcess, cluster, mark_pods_ready, wait_for
from .podsim import ClusterMaterial, SimulatedPod, engine_kubeconfig

SELECTOR = "app.kubernetes.io/instance=rp"


def _holder(kubectl: Kubectl, ns: str) -> str | None:
    lease = kubectl.get("lease", "rp-primary", ns)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def _roles(kubectl: Kubectl, ns: str) -> dict[str, str | None]:
    return {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get("vdb.io/role")
            for p in kubectl.items("pods", ns, SELECTOR)}


def test_engine_rbac_is_leases_only(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(cluster("rp", ns, replicas=2))
    for kind in ("serviceaccount", "role", "rolebinding"):
        wait_for(f"{kind}/rp-engine", lambda k=kind: kubectl.get(k, "rp-engine", ns))
    sts = wait_for("StatefulSet", lambda: kubectl.get("statefulset", "rp", ns))
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "rp-engine"
    who = f"--as=system:serviceaccount:{ns}:rp-engine"

    def can(*what: str, namespace: str = ns) -> str:
        return kubectl.run("auth", "can-i", *what, who, "-n", namespace, check=False).stdout.strip()

    # Its own Leases by name (issue 11): the primary Lease and the ordinal member Leases.
    for lease in ("rp-primary", "rp-primary-member-0", "rp-primary-member-1"):
        for verb in ("get", "update"):
            assert can(verb, f"leases.coordination.k8s.io/{lease}") == "yes", (verb, lease)
        assert can("delete", f"leases.coordination.k8s.io/{lease}") == "no", lease
    # Not another cluster's Lease, nor a Lease it does not know; no create, watch or delete.
    for lease in ("other-primary", "rp-primary-member-x", "kube-controller-manager"):
        assert can("update", f"leases.coordination.k8s.io/{lease}") == "no", lease
        assert can("get", f"leases.coordination.k8s.io/{lease}") == "no", lease
    assert can("list", "leases.coordination.k8s.io") == "yes"  # by label: cannot be limited by name
    for verb in ("create", "watch", "delete", "patch"):
        assert can(verb, "leases.coordination.k8s.io") == "no", verb
    assert can("get", "secrets") == "no"
    assert can("list", "leases.coordination.k8s.io", namespace="default") == "no"
    # The operator created the Leases the engines may not create themselves.
    for lease in ("rp-primary", "rp-primary-member-0", "rp-primary-member-1"):
        wait_for(f"Lease {lease}", lambda n=lease: kubectl.get("lease", n, ns))


def test_sync_replicas_must_be_below_replicas(kubectl: Kubectl, crds: None, ns: str) -> None:
    done = kubectl.apply(cluster("bad", ns, replicas=2, replication={"mode": "sync", "syncReplicas": 2}),
                         check=False)
    assert done.returncode != 0 and "syncReplicas must be below spec.replicas" in done.stderr, done.stderr
    kubectl.apply(cluster("good", ns, replicas=3, replication={"mode": "sync", "syncReplicas": 2}))


def test_primary_follows_the_lease_holder(kubectl: Kubectl, kube_api: KubeAPI, operator: OperatorProcess,
                                          ns: str, tmp_path: Path, engines: list[SimulatedPod]) -> None:
    kubectl.apply(cluster("rp", ns, replicas=2))
    vc: dict[str, Any] = wait_for("the cluster", lambda: kubectl.get("vc", "rp", ns))
    wait_for("2 pods", lambda: len(kubectl.items("pods", ns, SELECTOR)) == 2)
    svc = wait_for("Service rp", lambda: kubectl.get("service", "rp", ns))
    assert svc["spec"]["selector"]["vdb.io/role"] == "primary"
    wait_for("rolebinding/rp-engine", lambda: kubectl.get("rolebinding", "rp-engine", ns))

    owner = Owner(name="rp", namespace=ns, uid=vc["metadata"]["uid"])
    material = ClusterMaterial(owner)
    spec = VelocityClusterSpec.model_validate(vc["spec"])
    kubeconfig = engine_kubeconfig(kubectl, kube_api, ns, "rp-engine", tmp_path / "engine.kubeconfig")

    first = SimulatedPod(tmp_path / "rp-0", material, spec, lease_kubeconfig=kubeconfig, pod_name="rp-0")
    engines.append(first)
    first.start()
    endpoint = f"vdb://rp-0.rp-headless.{ns}.svc:2005"
    wait_for("rp-0 to take the Lease", lambda: _holder(kubectl, ns) == endpoint, timeout=30)
    wait_for("status.currentPrimary rp-0",
             lambda: ((kubectl.get("vc", "rp", ns) or {}).get("status") or {}).get("currentPrimary") == "rp-0")
    wait_for("role labels", lambda: _roles(kubectl, ns) == {"rp-0": "primary", "rp-1": "replica"})
    done = first.ctl("set", "k", "v")  # the Lease holder takes writes
    assert done.returncode == 0, done.stderr

    second = SimulatedPod(tmp_path / "rp-1", material, spec, lease_kubeconfig=kubeconfig, pod_name="rp-1")
    engines.append(second)
    second.start()
    # The member Lease shows the second engine joined the election.
    wait_for("rp-1's member Lease", lambda: any(
        (item.get("spec") or {}).get("holderIdentity") == f"vdb://rp-1.rp-headless.{ns}.svc:2005"
        for item in kubectl.items("leases", ns, "vdb.io/lease=rp-primary")))
    assert _holder(kubectl, ns) == endpoint

    # The primary is stopped gracefully (what a pod deletion does). Its replica cannot stream
    # in this tier, so it cannot hand over: it releases the Lease (empty holder, its member
    # Lease marked not alive, both plain updates the engine's Role allows), and the live
    # member takes it at its next round instead of after the 5 s lease duration.
    t_stop = time.monotonic()
    first.stop()
    wait_for("rp-1 to take the Lease", lambda: _holder(kubectl, ns) == f"vdb://rp-1.rp-headless.{ns}.svc:2005",
             timeout=40, interval=0.05)
    t_lease = time.monotonic()
    wait_for("role labels moved", lambda: _roles(kubectl, ns) == {"rp-0": "replica", "rp-1": "primary"},
             timeout=15, interval=0.05)
    t_label = time.monotonic()
    wait_for("status.currentPrimary rp-1",
             lambda: ((kubectl.get("vc", "rp", ns) or {}).get("status") or {}).get("currentPrimary") == "rp-1",
             timeout=15, interval=0.05)
    t_status = time.monotonic()
    # Measured, not asserted tightly (shared 2-core machine): the Lease watch, not the
    # 2 s resync of this tier, is what moves the label (see the operator log).
    print(f"\nprimary stopped -> Lease moved {t_lease - t_stop:.2f}s; Lease -> role label {t_label - t_lease:.2f}s, "
          f"-> status.currentPrimary {t_status - t_lease:.2f}s")
    printed = kubectl.run("get", "vc", "rp", "-n", ns).stdout
    assert "rp-1" in printed, printed
    # Released, not expired: well under the lease duration (5 s) plus a renewal (1 s).
    assert t_lease - t_stop < 4, f"the Lease moved {t_lease - t_stop:.2f}s after the stop"


def test_rolling_update_restarts_the_primary_last(kubectl: Kubectl, operator: OperatorProcess, ns: str) -> None:
    """OnDelete, driven by the operator: replicas highest ordinal first, the Lease holder
    last, one pod at a time while every pod is ready. The Lease is written by hand here
    (as an engine would) to make the middle pod the primary."""
    selector = "app.kubernetes.io/instance=ru"
    kubectl.apply(cluster("ru", ns, replicas=3))
    wait_for("3 pods", lambda: len(kubectl.items("pods", ns, selector)) == 3)
    kubectl.apply({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "ru-primary", "namespace": ns, "annotations": {"vdb.io/epoch": "1"}},
                   "spec": {"holderIdentity": f"vdb://ru-1.ru-headless.{ns}.svc:2005", "leaseDurationSeconds": 5}})
    wait_for("ru-1 labelled primary", lambda: {p["metadata"]["name"]: (p["metadata"].get("labels") or {})
                                               .get("vdb.io/role") for p in kubectl.items("pods", ns, selector)}
             == {"ru-0": "replica", "ru-1": "primary", "ru-2": "replica"})
    mark_pods_ready(kubectl, ns, selector)
    kubectl.run("wait", "--for=condition=Ready", "vc/ru", "-n", ns, "--timeout=30s")
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pods", ns, selector)}

    patch = {"spec": {"config": {"maxValueBytes": 4096}}}  # restart-only: live keys do not roll
    kubectl.run("patch", "vc", "ru", "-n", ns, "--type=merge", "-p", json.dumps(patch))
    order: list[str] = []

    def step() -> bool:
        # What kubelets would do: recreated pods start and become ready. Each pod is marked
        # ready only under the uid recorded here (a uid in the patch is a precondition),
        # so no restart goes unseen.
        pods = kubectl.items("pods", ns, selector)
        assert len(pods) >= 2, "more than one pod down at a time"
        for pod in pods:
            name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
            if uids.get(name) != uid:
                uids[name] = uid
                order.append(name)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ready = {"metadata": {"uid": uid}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}}
            kubectl.run("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge",
                        "-p", json.dumps(ready), check=False)
        return len(order) == 3

    wait_for("every pod restarted", step, timeout=120, interval=0.5)
    assert order == ["ru-2", "ru-0", "ru-1"], order
    wait_for("phase Ready after the rollout",
             lambda: ((kubectl.get("vc", "ru", ns) or {}).get("status") or {}).get("phase") == "Ready", timeout=30)
