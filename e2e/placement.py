"""Where this suite's pods run: the oldest Ready node of the cluster.

Other suites may add worker nodes and stop them (simulated node loss) while ours run on
the same cluster; pods of ours on such a node would vanish mid-test. The oldest node is
the one every cluster starts with (kind's and the local cluster's first node), so
pinning to it keeps these tests independent of that churn, and on a one-node cluster it
changes nothing.
"""

from __future__ import annotations

import functools

from .kube import Kubectl

__all__ = ["HOSTNAME_LABEL", "pinned_node"]

HOSTNAME_LABEL = "kubernetes.io/hostname"


@functools.cache
def _oldest_ready_node(kubeconfig: str, binary: str) -> str:
    nodes = Kubectl(kubeconfig).json("get", "nodes")["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in n.get("status", {}).get("conditions", []))]
    if not ready:
        raise RuntimeError("no Ready node in the cluster")
    oldest = min(ready, key=lambda n: (n["metadata"]["creationTimestamp"], n["metadata"]["name"]))
    return str(oldest["metadata"]["labels"].get(HOSTNAME_LABEL, oldest["metadata"]["name"]))


def pinned_node(kubectl: Kubectl) -> str:
    """The value of kubernetes.io/hostname of the node this suite's pods go to."""
    return _oldest_ready_node(kubectl.kubeconfig, kubectl.binary)
