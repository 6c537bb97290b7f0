"""spec.podTemplate.tolerations on a real scheduler (docs/operator/placement.md, issue 17).

One worker node gets a NoSchedule taint of this module's own (`vdb.io/e2e-dedicated=NS`)
for the duration of the module, and both clusters select that node by its hostname, so the
tainted node is their only choice:

- a cluster without tolerations stays Pending there: its pod is Unschedulable because of
  the taint, the VelocityCluster is not Ready;
- a cluster whose spec.podTemplate.tolerations tolerates the taint runs there and becomes
  Ready.

The taint is removed afterwards (pods already on the node are never evicted by a NoSchedule
taint, so other modules are not disturbed). The node is any Ready node but the oldest, which
the other modules pin their pods to (e2e/placement.py). It needs two nodes (make e2e adds
velocity-node-2); a one-node cluster skips. The operator runs as a host process. Run:
`make e2e E2E_ARGS=e2e/test_placement_taint.py`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .kube import Kubectl, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .operator_host import OperatorProcess, running_operator
from .placement import HOSTNAME_LABEL, pinned_node

TAINT_KEY = "vdb.io/e2e-dedicated"


def _ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def operator(namespace: Kubectl) -> Iterator[OperatorProcess]:
    with running_operator(namespace) as op:
        yield op


@pytest.fixture(scope="module")
def tainted(namespace: Kubectl) -> Iterator[str]:
    """The hostname of a Ready, schedulable worker tainted `TAINT_KEY=NS:NoSchedule` for the module."""
    pinned = pinned_node(namespace)
    nodes = [n for n in namespace.json("get", "nodes")["items"]
             if _ready(n) and not n["spec"].get("unschedulable")
             and n["metadata"]["labels"].get(HOSTNAME_LABEL) != pinned]
    if not nodes:
        pytest.skip("needs a second Ready node to taint (make e2e adds velocity-node-2)")
    node = nodes[0]["metadata"]["name"]
    taint = f"{TAINT_KEY}={namespace.namespace}:NoSchedule"
    namespace.run("taint", "nodes", node, taint, "--overwrite")
    try:
        yield str(nodes[0]["metadata"]["labels"].get(HOSTNAME_LABEL, node))
    finally:
        namespace.run("taint", "nodes", node, f"{TAINT_KEY}:NoSchedule-", check=False)


def _cluster(name: str, hostname: str, **pod_template: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": 1, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
                            "nodeSelector": {HOSTNAME_LABEL: hostname},
                            "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}}}
    if pod_template:
        spec["podTemplate"] = pod_template
    return {"apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": name}, "spec": spec}


def _unschedulable(ns: Kubectl, pod: str) -> str | None:
    """The scheduler's message if `pod` exists and is Unschedulable, else None."""
    obj = ns.json("get", "pods", "-l", "app.kubernetes.io/component=engine")["items"]
    for p in obj:
        if p["metadata"]["name"] != pod:
            continue
        for c in p.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                return str(c.get("message") or "Unschedulable")
    return None


def test_without_tolerations_stays_pending(namespace: Kubectl, operator: OperatorProcess, tainted: str) -> None:
    ns = namespace
    ns.apply(_cluster("untol", tainted))
    message = wait_for(lambda: _unschedulable(ns, "untol-0"), timeout=120, interval=0.5,
                       what="untol-0 Unschedulable")
    print(f"\nuntol-0 on a cluster without tolerations: {message}")
    assert "untolerated taint" in message, message
    pod = ns.json("get", "pod", "untol-0")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName"), pod["status"]
    ready = next((c for c in ns.json("get", "vc", "untol").get("status", {}).get("conditions") or []
                  if c["type"] == "Ready"), None)
    assert ready is None or ready["status"] != "True", ready
    ns.run("delete", "vc", "untol", "--wait=true", "--timeout=120s", timeout=140)


def test_with_tolerations_runs_on_the_tainted_node(namespace: Kubectl, operator: OperatorProcess,
                                                   tainted: str) -> None:
    ns = namespace
    toleration = {"key": TAINT_KEY, "operator": "Equal", "value": str(ns.namespace), "effect": "NoSchedule"}
    start = time.monotonic()
    ns.apply(_cluster("tol", tainted, tolerations=[toleration]))
    ns.run("wait", "--for=condition=Ready", "vc/tol", "--timeout=240s", timeout=260)
    print(f"\ntol (tolerating the taint): Ready on {tainted} after {time.monotonic() - start:.1f}s")
    pod = ns.json("get", "pod", "tol-0")
    assert toleration in pod["spec"]["tolerations"], pod["spec"]["tolerations"]
    node = ns.json("get", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"].get(HOSTNAME_LABEL) == tainted
    assert any(t["key"] == TAINT_KEY and t["effect"] == "NoSchedule" for t in node["spec"].get("taints") or [])
    vc = ns.json("get", "vc", "tol")
    assert vc["status"]["readyReplicas"] == 1 and vc["status"]["currentPrimary"] == "tol-0"
