"""What `kubectl velocity` asks the operator for, written where the operator looks.

- backup: a VelocityBackup of the cluster (the operator runs its snapshot Job);
- promote: annotation `vdb.io/switchover-to=POD` on the VelocityCluster
  (controllers/promote.py: a planned switchover, then the operator removes it);
- rotate-certificates: annotation `vdb.io/rotate-certificates=<new value>`
  (controllers/tls.py: each new value re-issues the server certificate once).

Nothing here talks to an engine: the operator does, with the admin token it holds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..api.crd import BACKUP, CLUSTER
from ..controllers.promote import SWITCHOVER_ANNOTATION, engine_pod_selector
from ..controllers.tls import ROTATE_ANNOTATION
from ..kube import Kube
from .status import ClusterNotFound

__all__ = ["RequestError", "annotate", "backup_object", "create_backup", "request_promotion", "request_rotation"]


class RequestError(ValueError):
    """A request refused before anything was written (unknown pod, name taken, ...)."""


def backup_object(cluster: str, namespace: str, now: dt.datetime, name: str | None = None) -> dict[str, Any]:
    """The on-demand VelocityBackup (named CLUSTER-YYYYMMDDHHMMSS unless `name` is given)."""
    return {
        "apiVersion": BACKUP.api_version, "kind": BACKUP.kind,
        "metadata": {"name": name or f"{cluster}-{now:%Y%m%d%H%M%S}", "namespace": namespace,
                     "labels": {"vdb.io/cluster": cluster, "app.kubernetes.io/part-of": "velocity"}},
        "spec": {"cluster": cluster},
    }


async def _cluster(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    cluster = await kube.get(CLUSTER.api_version, CLUSTER.kind, namespace, name)
    if cluster is None:
        raise ClusterNotFound(name, namespace)
    return cluster


async def create_backup(kube: Kube, cluster: str, namespace: str, now: dt.datetime,
                        name: str | None = None) -> dict[str, Any]:
    await _cluster(kube, cluster, namespace)
    obj = backup_object(cluster, namespace, now, name)
    created = await kube.create(obj)
    if created is None:
        raise RequestError(f'VelocityBackup "{obj["metadata"]["name"]}" already exists in namespace "{namespace}"')
    return created


async def annotate(kube: Kube, cluster: str, namespace: str, key: str, value: str) -> dict[str, Any]:
    return await kube.merge_patch(CLUSTER.api_version, CLUSTER.kind, namespace, cluster,
                                  {"metadata": {"annotations": {key: value}}})


async def request_promotion(kube: Kube, cluster: str, namespace: str, pod: str) -> dict[str, Any]:
    """Ask for a switchover to `pod`; refused here if `pod` is not one of the cluster's pods."""
    await _cluster(kube, cluster, namespace)
    pods = await kube.list("v1", "Pod", namespace, label_selector=engine_pod_selector(cluster))
    known = sorted(p["metadata"]["name"] for p in pods)
    if pod not in known:
        raise RequestError(f'pod "{pod}" is not a pod of VelocityCluster "{cluster}" '
                           f"(its pods: {', '.join(known) or 'none'})")
    return await annotate(kube, cluster, namespace, SWITCHOVER_ANNOTATION, pod)


async def request_rotation(kube: Kube, cluster: str, namespace: str, now: dt.datetime) -> dict[str, Any]:
    """Ask for a new server certificate: a value the annotation never had (the time, to the microsecond)."""
    await _cluster(kube, cluster, namespace)
    return await annotate(kube, cluster, namespace, ROTATE_ANNOTATION, now.strftime("%Y%m%dT%H%M%S.%fZ"))
