"""The client Service NAME (port 2005) and the headless Service NAME-headless (pod DNS).

spec.service sets the client Service's type and annotations (issue 17); the headless
Service is always ClusterIP None.
"""

from __future__ import annotations

from typing import Any

from .. import names
from ..api.service import ClientServiceSpec
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


def client_service(owner: Owner, service: ClientServiceSpec | None = None) -> dict[str, Any]:
    """What SDKs connect to: the primary, i.e. the pod the operator labelled
    vdb.io/role=primary after reading the Lease. Between a failover and the operator's
    relabelling the Service may point at no pod or at the deposed one, which answers
    REDIRECT to the new primary (the SDK follows it).

    `service` is spec.service (default: ClusterIP, no annotations). A NodePort or
    LoadBalancer Service publishes the client port only: the metrics port has no
    authentication, so it stays inside the cluster (pods are scraped directly)."""
    service = service if service is not None else ClientServiceSpec()
    annotations = dict(service.annotations) if service.annotations else None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, names.service(owner.name), annotations=annotations),
        "spec": {
            "type": service.type,
            "selector": {**names.selector(owner.name), names.ROLE_LABEL: "primary"},
            "ports": _ports(metrics=service.type == "ClusterIP"),
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
