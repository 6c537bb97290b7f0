"""The client Service NAME (port 2005) and the headless Service NAME-headless (pod DNS)."""

from __future__ import annotations

from typing import Any

from .. import names
from .meta import Owner, object_meta

__all__ = ["client_service", "headless_service"]


def _ports(metrics: bool) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = [
        {"name": "vproto", "port": names.CLIENT_PORT, "targetPort": "vproto", "protocol": "TCP"}
    ]
    if metrics:
        ports.append({"name": "metrics", "port": names.METRICS_PORT, "targetPort": "metrics",
                      "protocol": "TCP"})
    return ports


def client_service(owner: Owner) -> dict[str, Any]:
    """What SDKs connect to: the primary, i.e. the pod the operator labelled
    vdb.io/role=primary after reading the Lease. Between a failover and the operator's
    relabelling the Service may point at no pod or at the deposed one, which answers
    REDIRECT to the new primary (the SDK follows it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, names.service(owner.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": {**names.selector(owner.name), names.ROLE_LABEL: "primary"},
            "ports": _ports(metrics=True),
        },
    }


def headless_service(owner: Owner) -> dict[str, Any]:
    """Stable pod names NAME-i.NAME-headless; not-ready pods are published so that
    replicas can find each other while they start."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, names.headless_service(owner.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector(owner.name),
            "ports": _ports(metrics=False),
        },
    }
