"""The NetworkPolicy CLUSTER (spec.networkPolicy.enabled): ingress to the engine pods.

It selects the cluster's engine pods (component=engine) and admits, on TCP only:

- port 2005 (V-Proto) from spec.networkPolicy.clients (default: every pod of the
  namespace), from the cluster's own pods (replication between engines, the engines'
  admin calls during a switchover, and the backup Jobs, whose pods carry the cluster's
  labels) and from the operator (it asks the primary for a switchover);
- port 9105 (metrics) from spec.networkPolicy.prometheus.

Egress is not restricted (engines reach the API server for their Lease, and each other).
Kubelet probes come from the node, which network plugins admit whatever the policy says.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..api.network import DEFAULT_OPERATOR_PEER, DEFAULT_PROMETHEUS_PEER, NetworkPolicyPeer, NetworkPolicySpec
from .meta import Owner, object_meta

__all__ = ["API_VERSION", "network_policy", "peer"]

API_VERSION = "networking.k8s.io/v1"


def peer(p: NetworkPolicyPeer) -> dict[str, Any]:
    """A NetworkPolicyPeer as Kubernetes spells it."""
    return p.to_api()


def _port(number: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": number}]


def network_policy(owner: Owner, spec: NetworkPolicySpec) -> dict[str, Any]:
    cluster = owner.name
    clients = [peer(p) for p in spec.clients] if spec.clients is not None else [{"podSelector": {}}]
    own_pods = {"podSelector": {"matchLabels": names.selector(cluster)}}
    operator = [peer(p) for p in (spec.operator if spec.operator is not None else [DEFAULT_OPERATOR_PEER])]
    prometheus = [peer(p) for p in (spec.prometheus if spec.prometheus is not None else [DEFAULT_PROMETHEUS_PEER])]
    ingress: list[dict[str, Any]] = [
        {"from": [own_pods, *operator], "ports": _port(names.CLIENT_PORT)},
    ]
    if clients:
        ingress.append({"from": clients, "ports": _port(names.CLIENT_PORT)})
    if prometheus:
        ingress.append({"from": prometheus, "ports": _port(names.METRICS_PORT)})
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": object_meta(owner, names.network_policy(cluster)),
        "spec": {
            "podSelector": {"matchLabels": {**names.selector(cluster), "app.kubernetes.io/component": "engine"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
