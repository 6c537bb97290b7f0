"""Where a VelocityCluster's primary is, as the API shows it, for any cluster name.

The Lease holder, the pods' role labels, status.currentPrimary and the client Service's
ready endpoints, read in one kubectl call (the reading test_failover.py does for its
cluster `fo`), and the engine container of a pod (node, containerd id, restarts) for
tests that signal it from outside (--container-signal).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .kube import Kubectl, KubectlError, wait_for
from .manifests import ENGINE_IMAGE, PULL_POLICY
from .placement import HOSTNAME_LABEL, pinned_node

__all__ = ["EngineContainer", "Switch", "all_ready", "engine_container", "follow_switch", "primary",
           "send_signal", "state"]


def state(ns: Kubectl, cluster: str) -> dict[str, Any]:
    """{"holder": Lease holder pod, "pods": {name: node, ip, role, uid, phase, ready,
    deleting, restarts}, "current": status.currentPrimary, "endpoints": ready addresses of
    the client Service}."""
    items = ns.json("get", "leases,pods,endpointslices,velocityclusters")["items"]
    st: dict[str, Any] = {"holder": None, "pods": {}, "current": None, "endpoints": set()}
    for item in items:
        kind, meta = item["kind"], item["metadata"]
        if kind == "Lease" and meta["name"] == f"{cluster}-primary":
            holder = (item.get("spec") or {}).get("holderIdentity") or ""
            st["holder"] = holder.removeprefix("vdb://").split(".")[0] or None
        elif kind == "Pod" and (meta.get("labels") or {}).get("app.kubernetes.io/instance") == cluster:
            status = item.get("status", {})
            conditions = status.get("conditions", [])
            st["pods"][meta["name"]] = {
                "node": item["spec"].get("nodeName"), "ip": status.get("podIP"),
                "role": (meta.get("labels") or {}).get("vdb.io/role"), "uid": meta["uid"],
                "phase": status.get("phase"),
                "ready": any(c["type"] == "Ready" and c["status"] == "True" for c in conditions),
                "deleting": bool(meta.get("deletionTimestamp")),
                "restarts": sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or []),
            }
        elif kind == "EndpointSlice" and (meta.get("labels") or {}).get("kubernetes.io/service-name") == cluster:
            for ep in item.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready"):
                    st["endpoints"].update(ep.get("addresses", []))
        elif kind == "VelocityCluster" and meta["name"] == cluster:
            st["current"] = (item.get("status") or {}).get("currentPrimary")
    return st


def create_sync_cluster(ns: Kubectl, cluster: str, replicas: int = 3) -> None:
    """Apply a sync-mode (syncReplicas 1) VelocityCluster pinned to this suite's node and wait
    until it is Ready with every pod Ready."""
    ns.apply({
        "apiVersion": "vdb.io/v1alpha1", "kind": "VelocityCluster", "metadata": {"name": cluster},
        "spec": {
            "replicas": replicas, "image": ENGINE_IMAGE, "imagePullPolicy": PULL_POLICY,
            "nodeSelector": {HOSTNAME_LABEL: pinned_node(ns)},
            "replication": {"mode": "sync", "syncReplicas": 1},
            "storage": {"aof": {"size": "256Mi"}, "snapshots": {"size": "256Mi"}},
        },
    })
    ns.run("wait", "--for=condition=Ready", f"vc/{cluster}", "--timeout=300s", timeout=320)
    wait_for(lambda: all_ready(ns, cluster, replicas), timeout=180, what=f"{replicas} pods Ready")


def primary(ns: Kubectl, cluster: str, timeout: float = 120) -> str:
    """The primary once the Lease, the status and the role label all name it."""
    return str(wait_for(lambda: (st := state(ns, cluster))["holder"] and st["current"] == st["holder"]
                        and st["pods"].get(st["holder"], {}).get("role") == "primary" and st["holder"],
                        timeout=timeout, what=f"a primary of {cluster} named by the Lease, the status and the label"))


def all_ready(ns: Kubectl, cluster: str, count: int) -> bool:
    pods = state(ns, cluster)["pods"]
    return len(pods) == count and all(p["ready"] and not p["deleting"] for p in pods.values())


@dataclass
class Switch:
    """When each piece of routing state first named the new primary (seconds after t0)."""

    t0: float
    old: str
    new: str | None = None
    seen: dict[str, float] = field(default_factory=dict)

    def mark(self, what: str) -> None:
        self.seen.setdefault(what, round(time.time() - self.t0, 2))


def follow_switch(ns: Kubectl, cluster: str, t0: float, old: str, timeout: float = 120) -> Switch:
    """Poll until the Lease, the role label, status.currentPrimary and the Service's ready
    endpoints all name one new primary; record when each first did."""
    sw = Switch(t0=t0, old=old)
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            st = state(ns, cluster)
        except KubectlError:
            time.sleep(0.3)
            continue
        holder = st["holder"]
        if holder and holder != old:
            sw.new = holder
            sw.mark("lease")
            pod = st["pods"].get(holder, {})
            if pod.get("role") == "primary" and all(
                    p["role"] != "primary" for n, p in st["pods"].items() if n != holder):
                sw.mark("label")
            if st["current"] == holder:
                sw.mark("status")
            if pod.get("ip") and st["endpoints"] == {pod["ip"]}:
                sw.mark("service endpoints")
            if len(sw.seen) == 4:
                return sw
        time.sleep(0.3)
    raise AssertionError(f"the primary of {cluster} did not move everywhere within {timeout:.0f}s "
                         f"(seen so far: {sw.seen}, holder {sw.new}, last state: {st})")


@dataclass(frozen=True)
class EngineContainer:
    node: str
    container_id: str
    restarts: int
    started_at: str | None


def engine_container(ns: Kubectl, pod: str) -> EngineContainer:
    """The running engine container of `pod`."""
    item = ns.json("get", "pod", pod)
    status = next(c for c in item["status"]["containerStatuses"] if c["name"] == "engine")
    return EngineContainer(node=item["spec"]["nodeName"], container_id=status.get("containerID", ""),
                           restarts=int(status.get("restartCount", 0)),
                           started_at=(status.get("state", {}).get("running") or {}).get("startedAt"))


def send_signal(command: str, container: EngineContainer, signal: str) -> None:
    """`command NODE CONTAINER_ID SIGNAL` (--container-signal), which must succeed."""
    done = subprocess.run([*shlex.split(command), container.node, container.container_id, signal],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command} {container.node} {container.container_id} {signal}: {done.stderr}"
